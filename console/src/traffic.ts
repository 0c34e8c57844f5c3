// The traffic page's browser-side logic: segment and area states as colour + label, the TPI curves
// shaped for ECharts, the planner's points and the routes drawn on the map. No Vue, no map here,
// so Vitest checks it all (tests/traffic.test.ts).

import { ApiError, type Feature, type FeatureCollection } from "./api";
import { CONGESTION_LEVELS, congestionLevel, type Level } from "./levels";

export const TRAFFIC_API = "/api/v1/traffic";
export const NETWORK_AREA = "network";

/** The traffic app's state keys, best first; a segment's state and an area's level use the same ones. */
export const STATE_KEYS = ["free", "basicallyFree", "light", "moderate", "severe"] as const;
export type StateKey = (typeof STATE_KEYS)[number];

export interface AreaLine {
  area: string;
  travel_time_index: number;
  traffic_performance_index: number;
  level: string;
  level_zh: string;
  level_en: string;
  congested_share: number;
  segments: number;
  observed_segments: number;
}

export interface LiveState {
  at: string;
  segments: number;
  observed_segments: number;
  by_state: Record<string, number>;
  network: AreaLine;
  districts: AreaLine[];
}

export interface HistoryPoint {
  at: string;
  value: unknown;
}

export interface IndexHistory {
  area: string;
  travel_time_index: HistoryPoint[];
  traffic_performance_index: HistoryPoint[];
  congestion_level: HistoryPoint[];
}

export interface SegmentLine {
  id: string;
  name: string | null;
  road_class: string;
  length_m: number;
  lanes: number;
  free_flow_kmh: number;
  speed_kmh: number;
  observed: boolean;
  state: string;
  state_zh: string;
  travel_time_s: number;
  travel_time_index: number;
  district: string | null;
  start_point: [number, number];
  end_point: [number, number];
}

export interface RouteSegment {
  id: string;
  name: string | null;
  state: string;
  speed_kmh: number;
  travel_time_s: number;
  length_m: number;
}

export interface Route {
  travel_time_s: number;
  free_flow_time_s: number;
  length_m: number;
  geometry: { type: "LineString"; coordinates: [number, number][] };
  segments: RouteSegment[];
}

export interface SnappedPoint {
  junction: string;
  lon: number;
  lat: number;
  distance_m: number;
}

export interface RouteAnswer {
  origin: SnappedPoint;
  destination: SnappedPoint;
  routes: Route[];
}

/** A segment state or an area level (the traffic app's key) as the map's colour and the i18n label
 *  key of the five bands 畅通 … 严重拥堵; anything else is "no data". */
export function stateLevel(key: unknown): Level {
  return congestionLevel({ congestionLevel: key });
}

/** The five bands, for legends: key, colour, i18n label key. */
export function stateLegend(): { key: StateKey; level: Level }[] {
  return STATE_KEYS.map((key) => ({ key, level: stateLevel(key) }));
}

// ------------------------------------------------------------------ TPI curves

export interface AreaSeries {
  area: string;
  name: string;
  /** [epoch ms, TPI], in time order. */
  points: [number, number][];
}

/** One area's TPI history as chart points: numbers only, in time order, one point per instant. */
export function tpiPoints(history: IndexHistory): [number, number][] {
  const byTime = new Map<number, number>();
  for (const point of history.traffic_performance_index) {
    const at = Date.parse(point.at);
    if (!Number.isFinite(at) || typeof point.value !== "number" || !Number.isFinite(point.value)) continue;
    byTime.set(at, point.value);
  }
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]);
}

/** The network first, then the districts by name; ``names`` gives an area code's display name. */
export function tpiSeries(histories: IndexHistory[], names: (area: string) => string): AreaSeries[] {
  const series = histories.map((history) => ({ area: history.area, name: names(history.area), points: tpiPoints(history) }));
  return series.sort((a, b) => {
    if (a.area === NETWORK_AREA) return -1;
    if (b.area === NETWORK_AREA) return 1;
    return a.name.localeCompare(b.name);
  });
}

/** The ECharts option of the TPI curves: the network's line bold, each district's thin, and the
 *  five level bands (0–2 … 8–10) shaded behind them with their labels, so colour is never alone. */
export function tpiChartOption(series: AreaSeries[], label: (key: string) => string, start: number, end: number): Record<string, unknown> {
  const bands = CONGESTION_LEVELS.map((band, i) => [
    { yAxis: i * 2, name: label(`level.${band.level.key}`), itemStyle: { color: band.level.color, opacity: 0.12 } },
    { yAxis: Math.min((i + 1) * 2, 10) },
  ]);
  return {
    animation: false,
    grid: { left: 40, right: 128, top: 32, bottom: 28 },
    legend: { top: 0, type: "scroll" },
    tooltip: { trigger: "axis", valueFormatter: (value: unknown) => (typeof value === "number" ? value.toFixed(2) : "—") },
    xAxis: { type: "time", min: start, max: end },
    yAxis: { type: "value", min: 0, max: 10, interval: 2, name: "TPI" },
    series: series.map((line, i) => ({
      name: line.name,
      type: "line",
      showSymbol: line.points.length < 30,
      connectNulls: false,
      lineStyle: { width: line.area === NETWORK_AREA ? 3 : 1.5 },
      z: line.area === NETWORK_AREA ? 3 : 2,
      data: line.points,
      ...(i === 0
        ? { markArea: { silent: true, label: { position: "right", fontSize: 10, color: "#5b6776" }, data: bands } }
        : {}),
    })),
  };
}

// ------------------------------------------------------------------ planner

export type LonLat = [number, number];

/** "lon,lat" in decimal degrees (spaces allowed, also "lon lat"), or null when it is not one. */
export function parsePoint(text: string): LonLat | null {
  const parts = text.trim().split(/\s*[,，\s]\s*/);
  if (parts.length !== 2 || parts.some((part) => part === "")) return null;
  const [lon, lat] = parts.map(Number);
  if (!Number.isFinite(lon) || !Number.isFinite(lat)) return null;
  if (lon < -180 || lon > 180 || lat < -90 || lat > 90) return null;
  return [lon, lat];
}

/** A point as the route endpoint's query value ("lon,lat", six decimals: about 0.1 m). */
export function pointText(point: LonLat): string {
  return `${point[0].toFixed(6)},${point[1].toFixed(6)}`;
}

/** Query parameters of GET /api/v1/traffic/route. */
export function routeParams(origin: LonLat, destination: LonLat, alternatives: number, avoidSevere: boolean): Record<string, string | number | undefined> {
  return {
    from: pointText(origin),
    to: pointText(destination),
    alternatives: Math.max(0, Math.min(3, Math.trunc(alternatives))),
    avoid: avoidSevere ? "severe" : undefined,
  };
}

/** Why a route (or the page's data) could not be had, as an i18n key, with the hub's own words. */
export function trafficProblem(error: unknown): { key: string; detail: string } {
  if (error instanceof ApiError) {
    const reason = error.problem.reason;
    const detail = error.message;
    if (error.status === 404 && reason === "unconnected") return { key: "traffic.unconnected", detail };
    if (error.status === 404 && reason === "no_network") return { key: "traffic.noNetwork", detail };
    if (error.status === 404 && /no road within/.test(detail)) return { key: "traffic.tooFar", detail };
    if (error.status === 403) return { key: "traffic.forbidden", detail };
    return { key: "traffic.failed", detail };
  }
  return { key: "traffic.failed", detail: error instanceof Error ? error.message : String(error) };
}

/** Colours of the fastest route and of the alternatives (drawn under it, dashed). */
export const ROUTE_COLORS = ["#0b5cad", "#7b4fa0", "#2f8f9d", "#a0522d"];

/** What the map draws for an answer: each route a line, the ``chosen`` one (the fastest unless the
 *  user picks another) last so it lies on top, and the origin and destination junctions the hub
 *  snapped to, as points. */
export function routeFeatures(answer: RouteAnswer | null, chosen = 0): FeatureCollection {
  if (!answer) return { type: "FeatureCollection", features: [] };
  const lines: Feature[] = answer.routes.map((route, rank) => ({
    type: "Feature",
    id: `route-${rank}`,
    geometry: route.geometry,
    properties: {
      id: `route-${rank}`,
      rank,
      fastest: rank === 0,
      chosen: rank === chosen,
      travel_time_s: route.travel_time_s,
      length_m: route.length_m,
      _color: ROUTE_COLORS[rank % ROUTE_COLORS.length],
    },
  }));
  const ends: Feature[] = (["origin", "destination"] as const).map((role) => ({
    type: "Feature",
    id: role,
    geometry: { type: "Point", coordinates: [answer[role].lon, answer[role].lat] },
    properties: { id: role, role, junction: answer[role].junction, _color: role === "origin" ? "#1a9850" : "#d73027" },
  }));
  const ordered = [...lines.filter((line) => !line.properties.chosen), ...lines.filter((line) => line.properties.chosen)];
  return { type: "FeatureCollection", features: [...ordered, ...ends] };
}

/** Points the user picked before any answer (origin, destination), as map points. */
export function pickedFeatures(origin: LonLat | null, destination: LonLat | null): FeatureCollection {
  const features: Feature[] = [];
  if (origin) features.push({ type: "Feature", id: "origin", geometry: { type: "Point", coordinates: origin }, properties: { id: "origin", role: "origin", _color: "#1a9850" } });
  if (destination) {
    features.push({ type: "Feature", id: "destination", geometry: { type: "Point", coordinates: destination }, properties: { id: "destination", role: "destination", _color: "#d73027" } });
  }
  return { type: "FeatureCollection", features };
}

/** [[west, south], [east, north]] of every route and end point, or null when there is nothing. */
export function routeBounds(answer: RouteAnswer | null): [LonLat, LonLat] | null {
  if (!answer) return null;
  const points: LonLat[] = [
    [answer.origin.lon, answer.origin.lat],
    [answer.destination.lon, answer.destination.lat],
    ...answer.routes.flatMap((route) => route.geometry.coordinates),
  ];
  const lons = points.map((p) => p[0]);
  const lats = points.map((p) => p[1]);
  return [
    [Math.min(...lons), Math.min(...lats)],
    [Math.max(...lons), Math.max(...lats)],
  ];
}

/** A route's summary: length and time, the delay against free flow, and its congested stretches. */
export function routeSummary(route: Route): { minutes: number; km: number; delayMinutes: number; severe: number; congestedKm: number } {
  const congested = route.segments.filter((s) => s.state === "moderate" || s.state === "severe");
  return {
    minutes: route.travel_time_s / 60,
    km: route.length_m / 1000,
    delayMinutes: Math.max(0, route.travel_time_s - route.free_flow_time_s) / 60,
    severe: route.segments.filter((s) => s.state === "severe").length,
    congestedKm: congested.reduce((sum, s) => sum + s.length_m, 0) / 1000,
  };
}

/** "1 h 05 min", "12 min", "45 s": travel times as an operator reads them. */
export function formatDuration(seconds: number, units: { h: string; min: string; s: string }): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return `${Math.round(seconds)} ${units.s}`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} ${units.min}`;
  return `${Math.floor(minutes / 60)} ${units.h} ${String(minutes % 60).padStart(2, "0")} ${units.min}`;
}

/** "850 m", "12.4 km". */
export function formatLength(metres: number): string {
  if (!Number.isFinite(metres) || metres < 0) return "—";
  return metres < 1000 ? `${Math.round(metres)} m` : `${(metres / 1000).toFixed(1)} km`;
}
