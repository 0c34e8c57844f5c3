// The layer registry: what the city map draws, one layer per NGSI-LD entity type. The base map
// (districts, grid cells, roads) and the data layers are registered the same way; an application's
// console code adds its own with registerLayer() (docs/console.md).

import {
  AQI_LEVELS,
  CONGESTION_LEVELS,
  DEVICE_LEVELS,
  PARKING_LEVELS,
  SEVERITY_LEVELS,
  UNKNOWN,
  aqiLevel,
  congestionLevel,
  deviceLevel,
  noiseLevel,
  parkingLevel,
  severityLevel,
  waterLevel,
  type Level,
} from "./levels";
import type { Feature, FeatureCollection } from "./api";

export type Geometry = "point" | "line" | "fill";

export interface LayerDef {
  /** Unique id, also the map's source and layer id. */
  id: string;
  /** The NGSI-LD entity type (short name of the core @context) queried from the broker. */
  entityType: string;
  /** i18n key of the layer's name. */
  titleKey: string;
  geometry: Geometry;
  /** Part of the base map: drawn below every data layer, not clickable. */
  base?: boolean;
  /** Shown when the map opens (default true). */
  visible?: boolean;
  /** The state of one entity (colour and label) from its keyValues properties; without it, ``color``. */
  level?: (properties: Record<string, unknown>) => Level;
  color?: string;
  /** The states the legend lists. */
  legend?: Level[];
  /** The attributes (keyValues names) that ``level`` and ``label`` read: only these are fetched
   *  for the map, which keeps a layer of ten thousand entities small. Undefined: all of them. */
  properties?: readonly string[];
  /** The property whose text labels each feature (drawn with the browser's own fonts). */
  label?: string;
  /** The zoom from which labels show (default 0: always). */
  labelMinZoom?: number;
}

/** What one layer asks the hub for: its own properties plus the one it is labelled by. */
export function fetchedProperties(def: LayerDef): string[] | undefined {
  if (def.properties === undefined) return undefined;
  return [...new Set([...def.properties, ...(def.label ? [def.label] : [])])];
}

/** What a map of these layers asks for in its one request: every layer's properties, or all of
 *  them as soon as one layer does not say. */
export function mapProperties(defs: readonly LayerDef[]): string[] | undefined {
  const wanted = new Set<string>();
  for (const def of defs) {
    const own = fetchedProperties(def);
    if (own === undefined) return undefined;
    for (const name of own) wanted.add(name);
  }
  return [...wanted];
}

/** Whether a feature (keyValues ``type``: a name or a list of names) belongs to a layer. */
export function ofLayer(def: LayerDef, feature: Feature): boolean {
  const type = feature.properties.type;
  return Array.isArray(type) ? type.includes(def.entityType) : type === def.entityType;
}

const registry = new Map<string, LayerDef>();

export function registerLayer(def: LayerDef): void {
  if (!/^[a-z][a-z0-9-]*$/.test(def.id)) throw new Error(`layer id ${def.id} must be lower-case letters, digits, '-'`);
  if (registry.has(def.id)) throw new Error(`layer ${def.id} is already registered`);
  if (!def.entityType) throw new Error(`layer ${def.id} needs an entity type`);
  if (!def.level && !def.color) throw new Error(`layer ${def.id} needs a level function or a colour`);
  registry.set(def.id, { visible: true, ...def });
}

export function unregisterLayer(id: string): void {
  registry.delete(id);
}

/** Registered layers, base map first, then data layers, each in registration order. */
export function layers(): LayerDef[] {
  const all = [...registry.values()];
  return [...all.filter((def) => def.base), ...all.filter((def) => !def.base)];
}

export function layerById(id: string): LayerDef | undefined {
  return registry.get(id);
}

export function layersForType(entityType: string): LayerDef[] {
  return layers().filter((def) => def.entityType === entityType);
}

/** Features ready to draw: each carries its id and its state's colour and label key. */
export function styled(def: LayerDef, collection: FeatureCollection): FeatureCollection {
  return { type: "FeatureCollection", features: collection.features.map((feature) => styleFeature(def, feature)) };
}

export function styleFeature(def: LayerDef, feature: Feature): Feature {
  const { location: _location, ...properties } = feature.properties;
  const level = def.level ? def.level(properties) : { key: "", color: def.color ?? UNKNOWN.color };
  return {
    type: "Feature",
    geometry: feature.geometry,
    properties: { ...properties, id: String(feature.id ?? properties.id), _color: level.color, _level: level.key },
  };
}

type Ring = [number, number][];

/** Twice the signed area of a ring and its centroid (shoelace); null when it has no area. */
function ringCentroid(ring: Ring): { area: number; at: [number, number] } | null {
  let area = 0;
  let x = 0;
  let y = 0;
  for (let i = 0; i < ring.length - 1; i++) {
    const [x0, y0] = ring[i];
    const [x1, y1] = ring[i + 1];
    const cross = x0 * y1 - x1 * y0;
    area += cross;
    x += (x0 + x1) * cross;
    y += (y0 + y1) * cross;
  }
  if (area === 0) return null;
  return { area: Math.abs(area), at: [x / (3 * area), y / (3 * area)] };
}

/** Where an area's label goes: the centroid of the outer ring of its largest part. One point per
 *  area, so a district spread over several map tiles is labelled once, not once per tile. */
export function labelPoint(geometry: Feature["geometry"]): [number, number] | null {
  if (!geometry) return null;
  const parts = (geometry.type === "Polygon" ? [geometry.coordinates] : geometry.type === "MultiPolygon" ? geometry.coordinates : []) as Ring[][];
  let best: { area: number; at: [number, number] } | null = null;
  for (const part of parts) {
    const found = Array.isArray(part) && part.length ? ringCentroid(part[0]) : null;
    if (found && (!best || found.area > best.area)) best = found;
  }
  return best ? best.at : null;
}

/** The label points of an area layer's features, each with the feature's properties. */
export function labelPoints(features: Iterable<Feature>): FeatureCollection {
  const points: Feature[] = [];
  for (const feature of features) {
    const at = labelPoint(feature.geometry);
    if (at) points.push({ type: "Feature", id: feature.id, geometry: { type: "Point", coordinates: at }, properties: feature.properties });
  }
  return { type: "FeatureCollection", features: points };
}

const bands = (list: { level: Level }[]) => list.map((band) => band.level);

export function registerBuiltinLayers(): void {
  const named = { label: "name", properties: [] as string[] };
  registerLayer({ id: "districts", entityType: "AdministrativeArea", titleKey: "layer.districts", geometry: "fill", base: true, color: "#c9d6e3", ...named });
  registerLayer({ id: "grid-cells", entityType: "GridCell", titleKey: "layer.gridCells", geometry: "fill", base: true, color: "#e4ebf2", visible: false, ...named, labelMinZoom: 15 });
  registerLayer({ id: "roads", entityType: "Road", titleKey: "layer.roads", geometry: "line", base: true, color: "#9aa5b1", ...named, labelMinZoom: 12 });
  registerLayer({ id: "road-segments", entityType: "RoadSegment", titleKey: "layer.roadSegments", geometry: "line", level: congestionLevel, legend: [...bands(CONGESTION_LEVELS), UNKNOWN], ...named, labelMinZoom: 14,
    properties: ["congestionLevel", "congestionIndex", "averageVehicleSpeed", "maximumAllowedSpeed", "congested"] });
  registerLayer({ id: "air-quality", entityType: "AirQualityObserved", titleKey: "layer.airQuality", geometry: "point", level: (p) => aqiLevel(p.airQualityIndex), legend: [...bands(AQI_LEVELS), UNKNOWN], ...named, labelMinZoom: 14,
    properties: ["airQualityIndex"] });
  registerLayer({ id: "water-quality", entityType: "WaterQualityObserved", titleKey: "layer.waterQuality", geometry: "point", level: waterLevel, ...named, labelMinZoom: 14, properties: ["waterQualityClass"] });
  registerLayer({ id: "noise", entityType: "NoiseLevelObserved", titleKey: "layer.noise", geometry: "point", level: noiseLevel, ...named, labelMinZoom: 14, properties: ["noiseCompliant", "LAeq", "noiseLimit"] });
  registerLayer({ id: "parking", entityType: "OffStreetParking", titleKey: "layer.parking", geometry: "point", level: parkingLevel, legend: [...bands(PARKING_LEVELS), UNKNOWN], ...named, labelMinZoom: 14,
    properties: ["availableSpotNumber", "totalSpotNumber"] });
  registerLayer({ id: "devices", entityType: "Device", titleKey: "layer.devices", geometry: "point", level: deviceLevel, legend: [...Object.values(DEVICE_LEVELS), UNKNOWN], ...named, labelMinZoom: 15, properties: ["deviceState"] });
  registerLayer({ id: "alerts", entityType: "Alert", titleKey: "layer.alerts", geometry: "point", level: severityLevel, legend: [...Object.values(SEVERITY_LEVELS), UNKNOWN], ...named, labelMinZoom: 14, properties: ["severity"] });
}
