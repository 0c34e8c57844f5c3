// Browser-side logic of the environment page: periods, the AQI calendar's cells and colours, the
// station and district ranking, and the trend line. Kept out of the view so Vitest can check it.

import { UNKNOWN, type Level } from "./levels";

/** The environment app's API (/api/v1/environment) as the page reads it. */
export const ENV_API = "/api/v1/environment";

export interface DayLine {
  day: string;
  aqi: number | null;
  category_zh: string | null;
  primary_pollutants: string[];
  missing: string[];
}

export interface Trend {
  start: string;
  end: string;
  slope_per_day: number | null;
  days: DayLine[];
}

export interface RankLine {
  rank: number;
  key: string;
  mean_aqi: number;
  days: number;
  good_days: number;
}

export interface Ranking {
  standard: string;
  start: string;
  end: string;
  by: "station" | "district";
  lines: RankLine[];
}

export interface GoodDays {
  start: string;
  end: string;
  good_days: number;
  valid_days: number;
  ratio: number | null;
}

export interface StationLine {
  id: string;
  name: string | null;
  district: string | null;
  aqi: number | null;
  category: { level?: number; label_zh?: string; label_en?: string; colour?: string } | null;
  primary_pollutant: string | null;
  observed_at: string | null;
}

export interface WaterStation {
  id: string;
  name: string | null;
  district: string | null;
  water_class: string | null;
  determining_items: string[] | null;
  target_class: string | null;
  worse_than_target: boolean | null;
}

export interface NoiseStation {
  id: string;
  name: string | null;
  district: string | null;
  zone: string | number | null;
  laeq: number | null;
  period: string | null;
  limit: number | null;
  compliant: boolean | null;
}

/** The six AQI categories of HJ 633 with the standard's own colours (its RGB table), each also
 *  named by an i18n key under "level." – a calendar cell is never colour alone. */
export const AQI_CATEGORIES: { max: number; level: Level }[] = [
  { max: 50, level: { key: "aqi.good", color: "#00e400" } },
  { max: 100, level: { key: "aqi.moderate", color: "#ffff00" } },
  { max: 150, level: { key: "aqi.light", color: "#ff7e00" } },
  { max: 200, level: { key: "aqi.medium", color: "#ff0000" } },
  { max: 300, level: { key: "aqi.heavy", color: "#99004c" } },
  { max: Infinity, level: { key: "aqi.severe", color: "#7e0023" } },
];

/** The HJ 633 category of an AQI value; anything that is not a valid AQI is "no data", in grey. */
export function aqiCategory(aqi: unknown): Level {
  if (typeof aqi !== "number" || !Number.isFinite(aqi) || aqi < 0) return UNKNOWN;
  return AQI_CATEGORIES.find((band) => aqi <= band.max)!.level;
}

// -- dates: calendar days as "YYYY-MM-DD", counted in UTC so no daylight-saving shift moves them --

const DAY_MS = 86_400_000;

/** The local calendar day of ``at`` (the user's clock: the city's day on a city workstation). */
export function localDay(at: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`;
}

export function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
}

/** Days from ``start`` to ``end``, both counted. */
export function daysBetween(start: string, end: string): number {
  return Math.round((Date.parse(`${end}T00:00:00Z`) - Date.parse(`${start}T00:00:00Z`)) / DAY_MS) + 1;
}

export type Preset = "7" | "30" | "90" | "year";
export const PRESETS: Preset[] = ["7", "30", "90", "year"];

export interface Period {
  start: string;
  end: string;
}

/** A chosen period, ending yesterday (the last day with a full day of readings). */
export function periodOf(preset: Preset, now: Date): Period {
  const end = addDays(localDay(now), -1);
  if (preset === "year") return { start: `${end.slice(0, 4)}-01-01`, end };
  return { start: addDays(end, 1 - Number(preset)), end };
}

/** The calendar's span: whole months, the last one holding yesterday. */
export function calendarRange(months: number, now: Date): Period {
  const end = addDays(localDay(now), -1);
  const year = Number(end.slice(0, 4));
  const month = Number(end.slice(5, 7)) - 1 - (months - 1);
  const first = new Date(Date.UTC(year, month, 1));
  return { start: first.toISOString().slice(0, 10), end };
}

/** The API's limit on a period. */
export const MAX_DAYS = 366;

/** Why a period cannot be asked for (an i18n key), or null when it can. */
export function periodProblem(period: Partial<Period>): string | null {
  const day = /^\d{4}-\d{2}-\d{2}$/;
  if (!period.start || !period.end || !day.test(period.start) || !day.test(period.end)) return "environment.periodMissing";
  if (period.end < period.start) return "environment.periodBackwards";
  if (daysBetween(period.start, period.end) > MAX_DAYS) return "environment.periodTooLong";
  return null;
}

// -- the AQI calendar ------------------------------------------------------------------------------

/** A day without a valid AQI: a pale cell, so the days with data stand out (the tooltip and the
 *  legend say "no data" in words). */
export const NO_DATA: Level = { key: UNKNOWN.key, color: "#e3e7ec" };

export interface CalendarCell {
  day: string;
  aqi: number | null;
  level: Level;
  pollutants: string[];
  missing: string[];
}

export function calendarCells(days: DayLine[]): CalendarCell[] {
  return days.map((d) => ({
    day: d.day,
    aqi: d.aqi,
    level: d.aqi === null ? NO_DATA : aqiCategory(d.aqi),
    pollutants: d.primary_pollutants ?? [],
    missing: d.missing ?? [],
  }));
}

/** Days per category, in the standard's order, then the days without a valid AQI. */
export function categoryCounts(cells: CalendarCell[]): { level: Level; count: number }[] {
  const levels = [...AQI_CATEGORIES.map((band) => band.level), NO_DATA];
  return levels.map((level) => ({ level, count: cells.filter((cell) => cell.level.key === level.key).length }));
}

type Translate = (key: string, named?: Record<string, unknown>) => string;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A calendar cell's tooltip: the day, the AQI and its category in words, the primary pollutant(s),
 *  or what was missing for a day without a valid AQI. */
export function dayTooltip(cell: CalendarCell, t: Translate): string {
  const lines = [escapeHtml(cell.day)];
  if (cell.aqi === null) {
    lines.push(escapeHtml(t(`level.${UNKNOWN.key}`)));
    if (cell.missing.length) lines.push(escapeHtml(t("environment.tooltipMissing", { list: cell.missing.join(", ") })));
  } else {
    lines.push(`AQI ${cell.aqi} · ${escapeHtml(t(`level.${cell.level.key}`))}`);
    if (cell.pollutants.length) lines.push(escapeHtml(t("environment.tooltipPrimary", { list: cell.pollutants.join(", ") })));
  }
  return lines.join("<br/>");
}

/** The ECharts option of the calendar heatmap: one cell a day, coloured by its category. */
export function calendarOption(cells: CalendarCell[], range: Period, t: Translate, locale: string): Record<string, unknown> {
  const english = locale === "en";
  return {
    tooltip: { formatter: (params: { dataIndex: number }) => dayTooltip(cells[params.dataIndex], t) },
    calendar: {
      range: [range.start, range.end],
      orient: "horizontal",
      left: 40,
      right: 16,
      top: 28,
      bottom: 8,
      cellSize: ["auto", "auto"],
      splitLine: { lineStyle: { color: "#5b6470", width: 1 } },
      itemStyle: { color: "#f4f6f8", borderColor: "#fff", borderWidth: 1 },
      yearLabel: { show: false },
      dayLabel: { firstDay: 1, nameMap: english ? "EN" : "ZH" },
      monthLabel: { nameMap: english ? "EN" : "ZH" },
    },
    series: [
      {
        type: "heatmap",
        coordinateSystem: "calendar",
        data: cells.map((cell) => ({
          value: [cell.day, cell.aqi ?? -1],
          itemStyle: { color: cell.level.color },
        })),
      },
    ],
  };
}

// -- ranking ---------------------------------------------------------------------------------------

export type Order = "best" | "worst";

export interface RankRow {
  rank: number;
  key: string;
  name: string;
  meanAqi: number;
  days: number;
  goodDays: number;
  goodRatio: number | null;
  level: Level;
}

/** The last part of an NGSI-LD id (urn:ngsi-ld:AirQualityObserved:aq-1 → aq-1), for a station with no name. */
export function shortId(id: string): string {
  return id.slice(id.lastIndexOf(":") + 1);
}

/** Ranking lines with names, ranked by mean daily AQI (lower is better; equal means share a rank),
 *  best first or worst first, at most ``limit`` of them. */
export function rankRows(lines: RankLine[], names: Record<string, string>, order: Order, limit = Infinity): RankRow[] {
  const sorted = [...lines].sort((a, b) => a.mean_aqi - b.mean_aqi || a.key.localeCompare(b.key));
  const rows: RankRow[] = [];
  sorted.forEach((line, k) => {
    const rank = k > 0 && line.mean_aqi === sorted[k - 1].mean_aqi ? rows[k - 1].rank : k + 1;
    rows.push({
      rank,
      key: line.key,
      name: names[line.key] ?? shortId(line.key),
      meanAqi: line.mean_aqi,
      days: line.days,
      goodDays: line.good_days,
      goodRatio: line.days > 0 ? line.good_days / line.days : null,
      level: aqiCategory(line.mean_aqi),
    });
  });
  if (order === "worst") rows.reverse();
  return rows.slice(0, limit);
}

/** Station id → name (the id's last part where a station has no name). */
export function stationNames(stations: Pick<StationLine, "id" | "name">[]): Record<string, string> {
  return Object.fromEntries(stations.map((s) => [s.id, s.name || shortId(s.id)]));
}

/** District code → name, from the tenant's AdministrativeArea entities (id ending in the code). */
export function districtNames(areas: { id: string; name?: unknown }[]): Record<string, string> {
  return Object.fromEntries(
    areas.filter((area) => typeof area.name === "string" && area.name).map((area) => [shortId(area.id), area.name as string]),
  );
}

/** A share as a percentage with one decimal, or a dash. */
export function percent(ratio: number | null | undefined): string {
  return ratio == null || !Number.isFinite(ratio) ? "—" : `${(ratio * 100).toFixed(1)}%`;
}

// -- trend -----------------------------------------------------------------------------------------

/** Below this slope (AQI points a day, either way) the air is called steady: ±3 points a month. */
export const STEADY_SLOPE = 0.1;

/** The trend in words (an i18n key): a falling AQI is an improvement. */
export function trendWord(slope: number | null): string {
  if (slope === null) return "environment.noTrend";
  if (slope <= -STEADY_SLOPE) return "environment.improving";
  if (slope >= STEADY_SLOPE) return "environment.worsening";
  return "environment.steady";
}

/** The least-squares line through the valid days with the API's slope: its value on each day. */
export function fittedLine(days: DayLine[], slope: number | null): (number | null)[] {
  const points = days.flatMap((d, k) => (d.aqi === null ? [] : [[k, d.aqi] as const]));
  if (slope === null || points.length < 2) return days.map(() => null);
  const meanX = points.reduce((s, [x]) => s + x, 0) / points.length;
  const meanY = points.reduce((s, [, y]) => s + y, 0) / points.length;
  return days.map((_, k) => Math.round((meanY + slope * (k - meanX)) * 10) / 10);
}

/** The ECharts option of the trend chart: the daily AQI (points in their category's colour) and the
 *  linear trend. */
export function trendOption(trend: Trend, t: Translate): Record<string, unknown> {
  const fitted = fittedLine(trend.days, trend.slope_per_day);
  return {
    grid: { left: 44, right: 16, top: 30, bottom: 28 },
    legend: { top: 0 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: trend.days.map((d) => d.day.slice(5)) },
    yAxis: { type: "value", name: "AQI", min: 0 },
    series: [
      {
        name: t("environment.dailyAqi"),
        type: "line",
        color: "#0b5cad",
        connectNulls: false,
        symbolSize: 7,
        data: trend.days.map((d) => ({ value: d.aqi, itemStyle: { color: aqiCategory(d.aqi).color, borderColor: "#333" } })),
      },
      { name: t("environment.fit"), type: "line", color: "#8a8f98", symbol: "none", lineStyle: { type: "dashed" }, data: fitted },
    ],
  };
}
