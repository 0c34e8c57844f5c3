import { describe, expect, it } from "vitest";
import { UNKNOWN, aqiLevel, congestionLevel, deviceLevel, noiseLevel, parkingLevel, waterLevel } from "../src/levels";
import { LOCALES } from "../src/messages";

function label(key: string, locale: "zh-CN" | "en" = "zh-CN"): string {
  return key.split(".").reduce<any>((node, part) => node?.[part], (LOCALES[locale] as any).level);
}

describe("AQI levels (HJ 633-2012)", () => {
  it.each([
    [0, "aqi.good", "优"],
    [50, "aqi.good", "优"],
    [51, "aqi.moderate", "良"],
    [100, "aqi.moderate", "良"],
    [101, "aqi.light", "轻度污染"],
    [150, "aqi.light", "轻度污染"],
    [151, "aqi.medium", "中度污染"],
    [200, "aqi.medium", "中度污染"],
    [201, "aqi.heavy", "重度污染"],
    [300, "aqi.heavy", "重度污染"],
    [301, "aqi.severe", "严重污染"],
    [999, "aqi.severe", "严重污染"],
  ])("AQI %d is %s (%s)", (aqi, key, text) => {
    const level = aqiLevel(aqi);
    expect(level.key).toBe(key);
    expect(label(level.key)).toBe(text);
    expect(level.color).toMatch(/^#[0-9a-f]{6}$/);
  });

  it("has a distinct colour for each band", () => {
    const colours = [25, 75, 125, 175, 250, 400].map((aqi) => aqiLevel(aqi).color);
    expect(new Set(colours).size).toBe(6);
  });

  it.each([undefined, null, "80", Number.NaN, -1])("no number (%s) is no data, in grey", (aqi) => {
    expect(aqiLevel(aqi)).toBe(UNKNOWN);
    expect(label(UNKNOWN.key)).toBe("无数据");
    expect(label(UNKNOWN.key, "en")).toBe("No data");
  });
});

describe("congestion levels", () => {
  it("reads the traffic performance index first", () => {
    expect(congestionLevel({ congestionIndex: 1.5 }).key).toBe("congestion.free");
    expect(congestionLevel({ congestionIndex: 3 }).key).toBe("congestion.basic");
    expect(congestionLevel({ congestionIndex: 5 }).key).toBe("congestion.light");
    expect(congestionLevel({ congestionIndex: 7.2 }).key).toBe("congestion.medium");
    expect(congestionLevel({ congestionIndex: 9, averageVehicleSpeed: 60, maximumAllowedSpeed: 60 }).key).toBe("congestion.heavy");
    expect(label("congestion.heavy")).toBe("严重拥堵");
  });

  it("takes the traffic app's segment state first", () => {
    expect(congestionLevel({ congestionLevel: "severe", congestionIndex: 1 }).key).toBe("congestion.heavy");
    expect(congestionLevel({ congestionLevel: "basicallyFree" }).key).toBe("congestion.basic");
    expect(congestionLevel({ congestionLevel: "moderate" }).key).toBe("congestion.medium");
    expect(congestionLevel({ congestionLevel: "unheard-of", congestionIndex: 5 }).key).toBe("congestion.light");
    expect(congestionLevel({ congestionLevel: "constructor" })).toBe(UNKNOWN);
  });

  it("estimates it from speed against the limit, then from the congested flag", () => {
    expect(congestionLevel({ averageVehicleSpeed: 55, maximumAllowedSpeed: 60 }).key).toBe("congestion.free");
    expect(congestionLevel({ averageVehicleSpeed: 6, maximumAllowedSpeed: 60 }).key).toBe("congestion.heavy");
    expect(congestionLevel({ congested: true }).key).toBe("congestion.medium");
    expect(congestionLevel({ congested: false }).key).toBe("congestion.free");
    expect(congestionLevel({ averageVehicleSpeed: 30 })).toBe(UNKNOWN);
    expect(congestionLevel({})).toBe(UNKNOWN);
  });
});

describe("devices and parking", () => {
  it("shows a device's state in colour and words", () => {
    expect(deviceLevel({ deviceState: "online" }).key).toBe("device.online");
    expect(label("device.offline")).toBe("离线");
    expect(deviceLevel({ deviceState: "broken" })).toBe(UNKNOWN);
  });

  it("grades parking by the share of free spaces", () => {
    expect(parkingLevel({ availableSpotNumber: 120, totalSpotNumber: 200 }).key).toBe("parking.plenty");
    expect(parkingLevel({ availableSpotNumber: 3, totalSpotNumber: 200 }).key).toBe("parking.full");
    expect(parkingLevel({ availableSpotNumber: 20, totalSpotNumber: 200 }).key).toBe("parking.few");
    expect(parkingLevel({ availableSpotNumber: 20, totalSpotNumber: 0 })).toBe(UNKNOWN);
  });
});

describe("environment stations", () => {
  it("grades water by its GB 3838 class, as a numeral or a number", () => {
    expect(waterLevel({ waterQualityClass: "II" }).key).toBe("water.good");
    expect(waterLevel({ waterQualityClass: "IV" }).key).toBe("water.poor");
    expect(waterLevel({ waterQualityClass: "劣V" }).key).toBe("water.bad");
    expect(waterLevel({ waterQualityClass: 3 }).key).toBe("water.good");
    expect(waterLevel({ waterQualityClass: "VII" })).toBe(UNKNOWN);
  });

  it("takes the noise verdict when there is one, else compares LAeq with the limit", () => {
    expect(noiseLevel({ noiseCompliant: false, LAeq: 40 }).key).toBe("noise.over");
    expect(noiseLevel({ LAeq: 52, noiseLimit: 50 }).key).toBe("noise.over");
    expect(noiseLevel({ LAeq: 58 }).key).toBe("noise.within");
    expect(noiseLevel({})).toBe(UNKNOWN);
  });
});
