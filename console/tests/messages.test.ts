import { describe, expect, it } from "vitest";
import { AQI_LEVELS, CONGESTION_LEVELS, DEVICE_LEVELS, PARKING_LEVELS, SEVERITY_LEVELS, UNKNOWN } from "../src/levels";
import { layers, registerBuiltinLayers } from "../src/layers";
import { LOCALES } from "../src/messages";
import { pages } from "../src/router";

function keys(node: unknown, prefix = ""): string[] {
  if (typeof node !== "object" || node === null) return [prefix];
  return Object.entries(node).flatMap(([key, value]) => keys(value, prefix ? `${prefix}.${key}` : key));
}

function text(locale: keyof typeof LOCALES, key: string): unknown {
  return key.split(".").reduce<any>((node, part) => node?.[part], LOCALES[locale]);
}

describe("messages", () => {
  it("has the same keys in Chinese and English, none empty", () => {
    expect(keys(LOCALES.en).sort()).toEqual(keys(LOCALES["zh-CN"]).sort());
    for (const locale of ["zh-CN", "en"] as const) {
      for (const key of keys(LOCALES[locale])) expect(text(locale, key), `${locale} ${key}`).toMatch(/\S/);
    }
  });

  it("names every layer, state and menu entry in both languages", () => {
    registerBuiltinLayers();
    const levels = [AQI_LEVELS, CONGESTION_LEVELS, PARKING_LEVELS].flatMap((list) => list.map((band) => band.level));
    const wanted = [
      ...layers().map((def) => def.titleKey),
      ...[...levels, ...Object.values(DEVICE_LEVELS), ...Object.values(SEVERITY_LEVELS), UNKNOWN].map((level) => `level.${level.key}`),
      ...pages.map((page) => String(page.meta?.menu)),
      ...["infrastructure", "governance", "livelihood", "ecology", "industry"].map((area) => `area.${area}`),
    ];
    for (const locale of ["zh-CN", "en"] as const) {
      for (const key of wanted) expect(typeof text(locale, key), `${locale} ${key}`).toBe("string");
    }
  });
});
