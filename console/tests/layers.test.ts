import { beforeEach, describe, expect, it } from "vitest";
import { fetchedProperties, labelPoint, labelPoints, layerById, mapProperties, ofLayer, layers, layersForType, registerBuiltinLayers, registerLayer, styleFeature, styled, unregisterLayer } from "../src/layers";

function reset(): void {
  for (const def of layers()) unregisterLayer(def.id);
}

describe("layer registry", () => {
  beforeEach(() => {
    reset();
    registerBuiltinLayers();
  });

  it("puts the base map first, then data layers in registration order", () => {
    const ids = layers().map((def) => def.id);
    expect(ids.slice(0, 3)).toEqual(["districts", "grid-cells", "roads"]);
    expect(ids).toContain("air-quality");
    registerLayer({ id: "bins", entityType: "WasteContainer", titleKey: "layer.bins", geometry: "point", color: "#123456" });
    registerLayer({ id: "parcels", entityType: "LandParcel", titleKey: "layer.parcels", geometry: "fill", base: true, color: "#abcdef" });
    const after = layers().map((def) => def.id);
    expect(after.indexOf("parcels")).toBe(3);
    expect(after.at(-1)).toBe("bins");
  });

  it("refuses duplicates and incomplete definitions", () => {
    expect(() => registerLayer({ id: "air-quality", entityType: "X", titleKey: "x", geometry: "point", color: "#000000" })).toThrow(/already/);
    expect(() => registerLayer({ id: "Bad Id", entityType: "X", titleKey: "x", geometry: "point", color: "#000000" })).toThrow(/lower-case/);
    expect(() => registerLayer({ id: "nothing", entityType: "X", titleKey: "x", geometry: "point" })).toThrow(/colour/);
    expect(() => registerLayer({ id: "untyped", entityType: "", titleKey: "x", geometry: "point", color: "#000000" })).toThrow(/type/);
  });

  it("finds the layers of an entity type, for live changes", () => {
    expect(layersForType("AirQualityObserved").map((def) => def.id)).toEqual(["air-quality"]);
    expect(layersForType("Nothing")).toEqual([]);
    expect(layerById("grid-cells")?.visible).toBe(false);
    expect(layerById("roads")?.visible).toBe(true);
  });

  it("styles each feature with its state's colour and label, keeping its id", () => {
    const def = layerById("air-quality")!;
    const feature = styleFeature(def, {
      type: "Feature",
      id: "urn:ngsi-ld:AirQualityObserved:1",
      geometry: { type: "Point", coordinates: [113.6, 34.7] },
      properties: { type: "AirQualityObserved", airQualityIndex: 160, location: { type: "Point", coordinates: [113.6, 34.7] } },
    });
    expect(feature.properties).toMatchObject({ id: "urn:ngsi-ld:AirQualityObserved:1", _level: "aqi.medium", airQualityIndex: 160 });
    expect(feature.properties.location).toBeUndefined();
    const base = styled(layerById("districts")!, { type: "FeatureCollection", features: [{ type: "Feature", id: "d", geometry: null, properties: {} }] });
    expect(base.features[0].properties._color).toBe("#c9d6e3");
  });

  it("fetches what each layer colours and labels by, or everything when it does not say", () => {
    expect(fetchedProperties(layerById("air-quality")!)).toEqual(["airQualityIndex", "name"]);
    expect(fetchedProperties(layerById("districts")!)).toEqual(["name"]);
    expect(layerById("districts")?.label).toBe("name");
    registerLayer({ id: "bins", entityType: "WasteContainer", titleKey: "layer.bins", geometry: "point", color: "#123456" });
    expect(fetchedProperties(layerById("bins")!)).toBeUndefined();
    registerLayer({ id: "lamps", entityType: "Streetlight", titleKey: "layer.lamps", geometry: "point", color: "#123456", properties: ["powerState"] });
    expect(fetchedProperties(layerById("lamps")!)).toEqual(["powerState"]);
    expect(mapProperties([layerById("lamps")!, layerById("air-quality")!])).toEqual(["powerState", "airQualityIndex", "name"]);
    expect(mapProperties([layerById("lamps")!, layerById("bins")!])).toBeUndefined();
  });

  it("sorts the features of one answer into layers by their types", () => {
    const feature = (type: unknown) => ({ type: "Feature" as const, id: "x", geometry: null, properties: { type } });
    const def = layerById("devices")!;
    expect(ofLayer(def, feature("Device"))).toBe(true);
    expect(ofLayer(def, feature(["Asset", "Device"]))).toBe(true);
    expect(ofLayer(def, feature("Alert"))).toBe(false);
    expect(ofLayer(def, feature(undefined))).toBe(false);
  });

  it("puts one label point in each area, in its largest part", () => {
    const square = (x: number, y: number, size: number) => [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]];
    expect(labelPoint({ type: "Polygon", coordinates: square(0, 0, 2) })).toEqual([1, 1]);
    expect(labelPoint({ type: "MultiPolygon", coordinates: [square(10, 10, 1), square(0, 0, 4)] })).toEqual([2, 2]);
    expect(labelPoint({ type: "Point", coordinates: [1, 2] })).toBeNull();
    expect(labelPoint(null)).toBeNull();
    const points = labelPoints([
      { type: "Feature", id: "d", geometry: { type: "Polygon", coordinates: square(0, 0, 2) }, properties: { name: "中原区" } },
      { type: "Feature", id: "x", geometry: null, properties: {} },
    ]);
    expect(points.features).toEqual([{ type: "Feature", id: "d", geometry: { type: "Point", coordinates: [1, 1] }, properties: { name: "中原区" } }]);
  });
});
