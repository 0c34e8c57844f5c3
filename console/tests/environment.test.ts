import { describe, expect, it } from "vitest";
import {
  AQI_CATEGORIES,
  addDays,
  aqiCategory,
  calendarCells,
  calendarOption,
  calendarRange,
  categoryCounts,
  dayTooltip,
  daysBetween,
  districtNames,
  fittedLine,
  percent,
  periodOf,
  periodProblem,
  rankRows,
  stationNames,
  trendOption,
  trendWord,
  type DayLine,
  type RankLine,
} from "../src/environment";
import { LOCALES } from "../src/messages";

/** The zh-CN texts, looked up the way vue-i18n does for the keys the module uses. */
function t(key: string, named: Record<string, unknown> = {}): string {
  const text = key.split(".").reduce<any>((node, part) => node?.[part], LOCALES["zh-CN"]);
  if (typeof text !== "string") throw new Error(`no text for ${key}`);
  return text.replace(/\{(\w+)\}/g, (_, name) => String(named[name]));
}

function day(date: string, aqi: number | null, primary: string[] = [], missing: string[] = []): DayLine {
  return { day: date, aqi, category_zh: null, primary_pollutants: primary, missing };
}

describe("AQI categories (HJ 633)", () => {
  it.each([
    [0, "aqi.good", "#00e400", "优"],
    [50, "aqi.good", "#00e400", "优"],
    [51, "aqi.moderate", "#ffff00", "良"],
    [100, "aqi.moderate", "#ffff00", "良"],
    [101, "aqi.light", "#ff7e00", "轻度污染"],
    [151, "aqi.medium", "#ff0000", "中度污染"],
    [201, "aqi.heavy", "#99004c", "重度污染"],
    [300, "aqi.heavy", "#99004c", "重度污染"],
    [301, "aqi.severe", "#7e0023", "严重污染"],
  ])("AQI %d is %s in the standard's colour %s (%s)", (aqi, key, color, text) => {
    expect(aqiCategory(aqi)).toEqual({ key, color });
    expect(t(`level.${key}`)).toBe(text);
  });

  it("greys anything that is not an AQI, as no data", () => {
    for (const value of [null, undefined, "80", Number.NaN, -3]) expect(aqiCategory(value).key).toBe("unknown");
  });

  it("has six distinct colours", () => {
    expect(new Set(AQI_CATEGORIES.map((band) => band.level.color)).size).toBe(6);
  });
});

describe("periods", () => {
  const now = new Date(2026, 10, 22, 9, 30); // 22 November 2026, local time

  it("end yesterday and count their days", () => {
    expect(periodOf("7", now)).toEqual({ start: "2026-11-15", end: "2026-11-21" });
    expect(periodOf("30", now)).toEqual({ start: "2026-10-23", end: "2026-11-21" });
    expect(daysBetween("2026-10-23", "2026-11-21")).toBe(30);
    expect(periodOf("year", now)).toEqual({ start: "2026-01-01", end: "2026-11-21" });
  });

  it("on New Year's Day, the year to date is the past year", () => {
    expect(periodOf("year", new Date(2027, 0, 1, 8))).toEqual({ start: "2026-01-01", end: "2026-12-31" });
  });

  it("cross months and leap days", () => {
    expect(addDays("2028-02-28", 1)).toBe("2028-02-29");
    expect(addDays("2026-03-01", -1)).toBe("2026-02-28");
  });

  it("give the calendar whole months ending with yesterday's, at most the API's 366 days", () => {
    expect(calendarRange(6, now)).toEqual({ start: "2026-06-01", end: "2026-11-21" });
    expect(calendarRange(3, new Date(2026, 0, 1, 8))).toEqual({ start: "2025-10-01", end: "2025-12-31" });
    for (let month = 0; month < 12; month++) {
      const range = calendarRange(12, new Date(2028, month, 1 + month));
      expect(daysBetween(range.start, range.end)).toBeLessThanOrEqual(366);
      expect(range.start.endsWith("-01")).toBe(true);
    }
  });

  it("name what is wrong with a custom period", () => {
    expect(periodProblem({ start: "2026-11-01", end: "2026-11-21" })).toBeNull();
    expect(periodProblem({ start: "", end: "2026-11-21" })).toBe("environment.periodMissing");
    expect(periodProblem({ start: "2026-11-21", end: "2026-11-01" })).toBe("environment.periodBackwards");
    expect(periodProblem({ start: "2025-01-01", end: "2026-01-02" })).toBe("environment.periodTooLong");
    expect(periodProblem({ start: "2025-01-01", end: "2026-01-01" })).toBeNull(); // 366 days
    for (const key of ["environment.periodMissing", "environment.periodBackwards", "environment.periodTooLong"]) expect(t(key)).toMatch(/\S/);
  });
});

describe("the AQI calendar", () => {
  const days = [day("2026-11-18", 137, ["PM2.5"]), day("2026-11-19", 58, ["PM10"]), day("2026-11-20", null, [], ["pm25_24h"]), day("2026-11-21", 42)];
  const cells = calendarCells(days);

  it("colours each day by its category and counts the days per category", () => {
    expect(cells.map((cell) => cell.level.key)).toEqual(["aqi.light", "aqi.moderate", "unknown", "aqi.good"]);
    const counts = Object.fromEntries(categoryCounts(cells).map((item) => [item.level.key, item.count]));
    expect(counts).toEqual({ "aqi.good": 1, "aqi.moderate": 1, "aqi.light": 1, "aqi.medium": 0, "aqi.heavy": 0, "aqi.severe": 0, unknown: 1 });
  });

  it("says the category in words in the tooltip, with the primary pollutant or what was missing", () => {
    expect(dayTooltip(cells[0], t)).toBe("2026-11-18<br/>AQI 137 · 轻度污染<br/>首要污染物：PM2.5");
    expect(dayTooltip(cells[2], t)).toBe("2026-11-20<br/>无数据<br/>缺少：pm25_24h");
    expect(dayTooltip({ ...cells[3], pollutants: ["<b>"] }, t)).toContain("&#60;b&#62;");
  });

  it("builds a calendar heatmap over the range with a coloured cell a day", () => {
    const option = calendarOption(cells, { start: "2026-06-01", end: "2026-11-21" }, t, "zh-CN") as any;
    expect(option.calendar.range).toEqual(["2026-06-01", "2026-11-21"]);
    expect(option.calendar.dayLabel.nameMap).toBe("ZH");
    const data = option.series[0].data;
    expect(option.series[0].coordinateSystem).toBe("calendar");
    expect(data[0]).toEqual({ value: ["2026-11-18", 137], itemStyle: { color: "#ff7e00" } });
    expect(data[2].itemStyle.color).toBe("#e3e7ec");
    expect(option.tooltip.formatter({ dataIndex: 1 })).toContain("良");
    expect((calendarOption(cells, { start: "a", end: "b" }, t, "en") as any).calendar.monthLabel.nameMap).toBe("EN");
  });
});

describe("the ranking", () => {
  const lines: RankLine[] = [
    { rank: 1, key: "urn:ngsi-ld:AirQualityObserved:b", mean_aqi: 48.5, days: 10, good_days: 10 },
    { rank: 2, key: "urn:ngsi-ld:AirQualityObserved:a", mean_aqi: 48.5, days: 10, good_days: 9 },
    { rank: 3, key: "urn:ngsi-ld:AirQualityObserved:c", mean_aqi: 131.2, days: 8, good_days: 2 },
    { rank: 4, key: "urn:ngsi-ld:AirQualityObserved:d", mean_aqi: 77, days: 0, good_days: 0 },
  ];
  const names = stationNames([
    { id: "urn:ngsi-ld:AirQualityObserved:a", name: "市监测站" },
    { id: "urn:ngsi-ld:AirQualityObserved:b", name: null },
  ]);

  it("ranks by mean daily AQI, best first, equal means sharing a rank", () => {
    const rows = rankRows(lines, names, "best");
    expect(rows.map((row) => [row.rank, row.name])).toEqual([[1, "市监测站"], [1, "b"], [3, "d"], [4, "c"]]);
    expect(rows[0]).toMatchObject({ meanAqi: 48.5, goodRatio: 0.9, level: { key: "aqi.good" } });
    expect(rows[2].goodRatio).toBeNull();
  });

  it("lists the worst first when asked, keeping each one's rank, and cuts the list", () => {
    const rows = rankRows(lines, names, "worst", 2);
    expect(rows.map((row) => [row.rank, row.key.slice(-1), row.level.key])).toEqual([[4, "c", "aqi.light"], [3, "d", "aqi.moderate"]]);
  });

  it("names districts from the tenant's administrative areas", () => {
    const districts = districtNames([
      { id: "urn:ngsi-ld:AdministrativeArea:410102", name: "中原区" },
      { id: "urn:ngsi-ld:AdministrativeArea:410105" },
    ]);
    expect(districts).toEqual({ "410102": "中原区" });
    const rows = rankRows([{ rank: 1, key: "410105", mean_aqi: 60, days: 3, good_days: 3 }, { rank: 2, key: "410102", mean_aqi: 70, days: 3, good_days: 2 }], districts, "best");
    expect(rows.map((row) => row.name)).toEqual(["410105", "中原区"]);
  });

  it("shows shares as percentages", () => {
    expect(percent(0.8667)).toBe("86.7%");
    expect(percent(null)).toBe("—");
  });
});

describe("the trend", () => {
  it("calls a falling AQI an improvement and small slopes steady", () => {
    expect(trendWord(-1.2)).toBe("environment.improving");
    expect(trendWord(0.5)).toBe("environment.worsening");
    expect(trendWord(0.05)).toBe("environment.steady");
    expect(trendWord(null)).toBe("environment.noTrend");
  });

  it("draws the least-squares line through the valid days", () => {
    const days = [day("2026-11-01", 100), day("2026-11-02", null), day("2026-11-03", 80)];
    expect(fittedLine(days, -10)).toEqual([100, 90, 80]);
    expect(fittedLine([day("2026-11-01", 100)], null)).toEqual([null]);
    const option = trendOption({ start: "2026-11-01", end: "2026-11-03", slope_per_day: -10, days }, t) as any;
    expect(option.xAxis.data).toEqual(["11-01", "11-02", "11-03"]);
    expect(option.series[0].data[1]).toMatchObject({ value: null });
    expect(option.series[0].data[0].itemStyle.color).toBe("#ffff00");
    expect(option.series[1].name).toBe("线性趋势");
  });
});
