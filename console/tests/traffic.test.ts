import { describe, expect, it } from "vitest";
import { ApiError } from "../src/api";
import { LOCALES } from "../src/messages";
import {
  NETWORK_AREA,
  STATE_KEYS,
  formatDuration,
  formatLength,
  parsePoint,
  pickedFeatures,
  pointText,
  routeBounds,
  routeFeatures,
  routeParams,
  routeSummary,
  stateLegend,
  stateLevel,
  tpiChartOption,
  tpiPoints,
  tpiSeries,
  trafficProblem,
  type IndexHistory,
  type Route,
  type RouteAnswer,
} from "../src/traffic";

function label(key: string): string {
  return key.split(".").reduce<any>((node, part) => node?.[part], LOCALES["zh-CN"]);
}

function history(area: string, points: [string, unknown][]): IndexHistory {
  return {
    area,
    travel_time_index: [],
    traffic_performance_index: points.map(([at, value]) => ({ at, value })),
    congestion_level: [],
  };
}

function route(seconds: number, free: number, states: string[], coordinates: [number, number][]): Route {
  return {
    travel_time_s: seconds,
    free_flow_time_s: free,
    length_m: states.length * 500,
    geometry: { type: "LineString", coordinates },
    segments: states.map((state, i) => ({ id: `s${i}`, name: null, state, speed_kmh: 20, travel_time_s: seconds / states.length, length_m: 500 })),
  };
}

const ANSWER: RouteAnswer = {
  origin: { junction: "osm-1", lon: 113.6, lat: 34.75, distance_m: 3.2 },
  destination: { junction: "osm-3", lon: 113.62, lat: 34.75, distance_m: 0 },
  routes: [
    route(130, 110, ["free", "severe"], [[113.6, 34.75], [113.61, 34.75], [113.62, 34.75]]),
    route(200, 160, ["light", "moderate", "free"], [[113.6, 34.75], [113.61, 34.745], [113.625, 34.74], [113.62, 34.75]]),
  ],
};

describe("segment and area states", () => {
  it("gives each of the five states its own colour and the label 畅通 … 严重拥堵", () => {
    const labels = STATE_KEYS.map((key) => label(`level.${stateLevel(key).key}`));
    expect(labels).toEqual(["畅通", "基本畅通", "轻度拥堵", "中度拥堵", "严重拥堵"]);
    expect(new Set(STATE_KEYS.map((key) => stateLevel(key).color)).size).toBe(5);
    expect(stateLegend().map((band) => band.key)).toEqual([...STATE_KEYS]);
  });

  it("says 'no data' for anything the app does not send", () => {
    for (const key of [undefined, null, "jammed", 3]) expect(stateLevel(key).key).toBe("unknown");
  });
});

describe("TPI curves", () => {
  it("keeps numeric points in time order, one per instant", () => {
    const points = tpiPoints(
      history(NETWORK_AREA, [
        ["2026-11-21T10:00:00Z", 4.5],
        ["2026-11-21T08:00:00Z", 2],
        ["2026-11-21T09:00:00Z", "n/a"],
        ["not a time", 3],
        ["2026-11-21T10:00:00Z", 5],
      ]),
    );
    expect(points).toEqual([
      [Date.parse("2026-11-21T08:00:00Z"), 2],
      [Date.parse("2026-11-21T10:00:00Z"), 5],
    ]);
  });

  it("puts the network first, then the districts by name", () => {
    const names: Record<string, string> = { "410105": "金水区", "410102": "中原区", network: "全路网" };
    const series = tpiSeries(
      [history("410105", []), history(NETWORK_AREA, [["2026-11-21T08:00:00Z", 1]]), history("410102", [])],
      (area) => names[area],
    );
    expect(series.map((line) => line.area)).toEqual([NETWORK_AREA, "410102", "410105"]);
    expect(series[0].name).toBe("全路网");
  });

  it("draws the network bold over the five level bands, each band named", () => {
    const series = tpiSeries([history(NETWORK_AREA, [["2026-11-21T08:00:00Z", 1]]), history("410102", [])], (area) => area);
    const option = tpiChartOption(series, label, 0, 86_400_000) as any;
    expect(option.yAxis).toMatchObject({ min: 0, max: 10 });
    expect(option.xAxis).toMatchObject({ type: "time", min: 0, max: 86_400_000 });
    expect(option.series.map((s: any) => s.lineStyle.width)).toEqual([3, 1.5]);
    const bands = option.series[0].markArea.data;
    expect(bands.map((band: any) => [band[0].yAxis, band[1].yAxis])).toEqual([[0, 2], [2, 4], [4, 6], [6, 8], [8, 10]]);
    expect(bands.map((band: any) => band[0].name)).toEqual(["畅通", "基本畅通", "轻度拥堵", "中度拥堵", "严重拥堵"]);
    expect(option.series[1].markArea).toBeUndefined();
  });
});

describe("route planner", () => {
  it("reads 'lon,lat' points and refuses anything else", () => {
    expect(parsePoint("113.6,34.75")).toEqual([113.6, 34.75]);
    expect(parsePoint(" 113.6 , 34.75 ")).toEqual([113.6, 34.75]);
    expect(parsePoint("113.6 34.75")).toEqual([113.6, 34.75]);
    expect(parsePoint("113.6，34.75")).toEqual([113.6, 34.75]);
    for (const bad of ["", "113.6", "113.6,", "east,north", "200,34", "113,95", "1,2,3"]) expect(parsePoint(bad), bad).toBeNull();
    expect(pointText([113.6, 34.75])).toBe("113.600000,34.750000");
  });

  it("asks the route endpoint for alternatives and avoiding severe congestion", () => {
    expect(routeParams([113.6, 34.75], [113.62, 34.75], 2, true)).toEqual({
      from: "113.600000,34.750000",
      to: "113.620000,34.750000",
      alternatives: 2,
      avoid: "severe",
    });
    const plain = routeParams([113.6, 34.75], [113.62, 34.75], 9, false);
    expect(plain.alternatives).toBe(3);
    expect(plain.avoid).toBeUndefined();
  });

  it("draws the chosen route on top and the snapped ends as points", () => {
    const drawn = routeFeatures(ANSWER);
    expect(drawn.features.map((f) => f.id)).toEqual(["route-1", "route-0", "origin", "destination"]);
    expect(drawn.features[1].properties).toMatchObject({ rank: 0, fastest: true, chosen: true, travel_time_s: 130 });
    expect(drawn.features[0].properties.chosen).toBe(false);
    expect(drawn.features[0].properties._color).not.toBe(drawn.features[1].properties._color);
    expect(drawn.features[2].geometry).toEqual({ type: "Point", coordinates: [113.6, 34.75] });
    const other = routeFeatures(ANSWER, 1);
    expect(other.features.map((f) => f.id)).toEqual(["route-0", "route-1", "origin", "destination"]);
    expect(routeFeatures(null).features).toEqual([]);
    expect(pickedFeatures([113.6, 34.75], null).features.map((f) => f.properties.role)).toEqual(["origin"]);
  });

  it("frames every route and end point", () => {
    expect(routeBounds(ANSWER)).toEqual([
      [113.6, 34.74],
      [113.625, 34.75],
    ]);
    expect(routeBounds(null)).toBeNull();
  });

  it("sums a route's delay and congested stretches", () => {
    expect(routeSummary(ANSWER.routes[0])).toEqual({ minutes: 130 / 60, km: 1, delayMinutes: 20 / 60, severe: 1, congestedKm: 0.5 });
    expect(routeSummary(ANSWER.routes[1]).severe).toBe(0);
    expect(routeSummary(ANSWER.routes[1]).congestedKm).toBe(0.5);
  });

  it("formats times and lengths as an operator reads them", () => {
    const units = { h: "h", min: "min", s: "s" };
    expect(formatDuration(45, units)).toBe("45 s");
    expect(formatDuration(12 * 60 + 10, units)).toBe("12 min");
    expect(formatDuration(65 * 60, units)).toBe("1 h 05 min");
    expect(formatDuration(Number.NaN, units)).toBe("—");
    expect(formatLength(850.4)).toBe("850 m");
    expect(formatLength(12_449)).toBe("12.4 km");
  });

  it("tells an unconnected network, a missing network and a far point apart", () => {
    const unconnected = new ApiError(404, { status: 404, detail: "no route: junction b cannot be reached", reason: "unconnected" });
    expect(trafficProblem(unconnected)).toEqual({ key: "traffic.unconnected", detail: "no route: junction b cannot be reached" });
    expect(trafficProblem(new ApiError(404, { detail: "tenant x has no road network", reason: "no_network" })).key).toBe("traffic.noNetwork");
    expect(trafficProblem(new ApiError(404, { detail: "no road within 500 m of from (1,2)" })).key).toBe("traffic.tooFar");
    expect(trafficProblem(new ApiError(403, { detail: "forbidden" })).key).toBe("traffic.forbidden");
    expect(trafficProblem(new Error("offline"))).toEqual({ key: "traffic.failed", detail: "offline" });
    for (const key of ["traffic.unconnected", "traffic.noNetwork", "traffic.tooFar", "traffic.forbidden", "traffic.failed"]) {
      expect(typeof label(key)).toBe("string");
    }
  });
});
