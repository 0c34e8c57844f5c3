// States shown on the map and in lists: each is a colour AND a text label (never colour alone).

export interface Level {
  key: string; // i18n key under "level."
  color: string;
}

// China's AQI categories (HJ 633-2012): 优 / 良 / 轻度污染 / 中度污染 / 重度污染 / 严重污染.
export const AQI_LEVELS: { max: number; level: Level }[] = [
  { max: 50, level: { key: "aqi.good", color: "#00a84f" } },
  { max: 100, level: { key: "aqi.moderate", color: "#e6c700" } },
  { max: 150, level: { key: "aqi.light", color: "#ff7e00" } },
  { max: 200, level: { key: "aqi.medium", color: "#e0001b" } },
  { max: 300, level: { key: "aqi.heavy", color: "#99004c" } },
  { max: Infinity, level: { key: "aqi.severe", color: "#7e0023" } },
];

export const UNKNOWN: Level = { key: "unknown", color: "#8a8f98" };

export function aqiLevel(aqi: unknown): Level {
  if (typeof aqi !== "number" || !Number.isFinite(aqi) || aqi < 0) return UNKNOWN;
  return AQI_LEVELS.find((band) => aqi <= band.max)!.level;
}

// Road congestion by the traffic performance index (0–10, GB/T 33171): 畅通 … 严重拥堵.
export const CONGESTION_LEVELS: { max: number; level: Level }[] = [
  { max: 2, level: { key: "congestion.free", color: "#1a9850" } },
  { max: 4, level: { key: "congestion.basic", color: "#91cf60" } },
  { max: 6, level: { key: "congestion.light", color: "#fee08b" } },
  { max: 8, level: { key: "congestion.medium", color: "#fc8d59" } },
  { max: Infinity, level: { key: "congestion.heavy", color: "#d73027" } },
];

/** The traffic app's segment states (`congestionLevel` on a RoadSegment) as TPI bands. */
const CONGESTION_STATES: Record<string, number> = { free: 1, basicallyFree: 3, light: 5, moderate: 7, severe: 9 };

/** A road segment's congestion: the traffic app's `congestionLevel` when written, else its
 *  `congestionIndex` (TPI 0–10), else estimated from `averageVehicleSpeed` against
 *  `maximumAllowedSpeed`, else from the boolean `congested`. */
export function congestionLevel(props: Record<string, unknown>): Level {
  const state = String(props.congestionLevel);
  const index = props.congestionIndex;
  const speed = props.averageVehicleSpeed;
  const limit = props.maximumAllowedSpeed;
  let tpi: number | undefined;
  if (Object.hasOwn(CONGESTION_STATES, state)) {
    tpi = CONGESTION_STATES[state]; // the traffic app's verdict, from speed by road class
  } else if (typeof index === "number" && Number.isFinite(index)) {
    tpi = index;
  } else if (typeof speed === "number" && typeof limit === "number" && limit > 0) {
    tpi = Math.max(0, Math.min(10, 10 * (1 - speed / limit)));
  } else if (typeof props.congested === "boolean") {
    tpi = props.congested ? 7 : 1;
  }
  if (tpi === undefined || tpi < 0) return UNKNOWN;
  return CONGESTION_LEVELS.find((band) => tpi! <= band.max)!.level;
}

export const DEVICE_LEVELS: Record<string, Level> = {
  online: { key: "device.online", color: "#1a9850" },
  offline: { key: "device.offline", color: "#d73027" },
};

export function deviceLevel(props: Record<string, unknown>): Level {
  return DEVICE_LEVELS[String(props.deviceState)] ?? UNKNOWN;
}

// Parking by the share of free spaces: 充足 / 紧张 / 已满.
export const PARKING_LEVELS: { min: number; level: Level }[] = [
  { min: 0.3, level: { key: "parking.plenty", color: "#1a9850" } },
  { min: 0.05, level: { key: "parking.few", color: "#fc8d59" } },
  { min: 0, level: { key: "parking.full", color: "#d73027" } },
];

export function parkingLevel(props: Record<string, unknown>): Level {
  const free = props.availableSpotNumber;
  const total = props.totalSpotNumber;
  if (typeof free !== "number" || typeof total !== "number" || total <= 0) return UNKNOWN;
  const share = Math.max(0, free) / total;
  return PARKING_LEVELS.find((band) => share >= band.min)!.level;
}

export const SEVERITY_LEVELS: Record<string, Level> = {
  critical: { key: "severity.critical", color: "#7e0023" },
  major: { key: "severity.major", color: "#d73027" },
  minor: { key: "severity.minor", color: "#fc8d59" },
  warning: { key: "severity.warning", color: "#e6b800" },
  info: { key: "severity.info", color: "#4575b4" },
};

export function severityLevel(props: Record<string, unknown>): Level {
  return SEVERITY_LEVELS[String(props.severity)] ?? UNKNOWN;
}

/** Noise stations: the environment app's `noiseCompliant` verdict when written back, else `LAeq`
 *  against its `noiseLimit`, else against the daytime limit of a mixed area (GB 3096-2008 class 2: 60 dB). */
export function noiseLevel(props: Record<string, unknown>): Level {
  const within = { key: "noise.within", color: "#1a9850" };
  const over = { key: "noise.over", color: "#d73027" };
  if (typeof props.noiseCompliant === "boolean") return props.noiseCompliant ? within : over;
  const laeq = props.LAeq;
  if (typeof laeq !== "number") return UNKNOWN;
  const limit = typeof props.noiseLimit === "number" ? props.noiseLimit : 60;
  return laeq <= limit ? within : over;
}

const WATER_CLASSES: Record<string, number> = { I: 1, II: 2, III: 3, IV: 4, V: 5, 劣V: 6 };

/** Water quality by the class of GB 3838-2002: "I"…"V", "劣V" (worse than V), or 1–6. */
export function waterLevel(props: Record<string, unknown>): Level {
  const raw = props.waterQualityClass;
  const cls = typeof raw === "number" ? raw : typeof raw === "string" ? WATER_CLASSES[raw] : undefined;
  if (cls === undefined) return UNKNOWN;
  if (cls <= 3) return { key: "water.good", color: "#1a9850" };
  if (cls <= 5) return { key: "water.poor", color: "#fc8d59" };
  return { key: "water.bad", color: "#d73027" };
}
