"""Air quality index: HJ 633-2026 (the default, in force since 2026-03-01) and HJ 633-2012 (legacy).

Pure calculation, no I/O. An *item* is a pollutant with its averaging period (``pm25_24h``,
``o3_8h``); the IAQI of an item is read off the breakpoint table of the chosen version by linear
interpolation on the segment that holds the concentration, and rounded up to an integer (进位取整).
The AQI is the largest IAQI; above 50 the item(s) with that IAQI name the primary pollutant(s).

The differences between the versions, all kept as data below:

- PM10 24h and PM2.5 24h breakpoints at IAQI 100 (150 → 120 and 75 → 60 µg/m³);
- which items a daily or hourly AQI takes (:data:`REQUIRED`): 2012 takes the O3 daily maximum 1h
  as well as the maximum 8h for a day, and the rolling O3 8h and PM 24h means for an hour; 2026
  takes the O3 maximum 8h for a day and only 1h values for an hour, scoring hourly PM on the 24h
  table;
- beyond the top of a short table: SO2 1h above 800 µg/m³ reports the SO2 24h IAQI (2012) or 200
  (2026); O3 8h above 800 reports the O3 1h IAQI (2012) or 300 (2026);
- 2026 rounds concentrations before scoring: µg/m³ to integers, CO (mg/m³) to one decimal. The
  rounding follows GB/T 8170 (round half to even), applied to the value as given;
- 2012 names the exceeding pollutants (IAQI above 100); 2026 dropped that notion.

Concentrations beyond the top breakpoint of a full table score 500 (the scale's end).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt

Period = Literal["hour", "day"]


class Standard(StrEnum):
    HJ633_2026 = "HJ633-2026"
    HJ633_2012 = "HJ633-2012"


DEFAULT_STANDARD = Standard.HJ633_2026

#: The IAQI at each breakpoint column.
IAQI_LEVELS: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 400, 500)

_COMMON: dict[str, tuple[float, ...]] = {
    "so2_24h": (0, 50, 150, 475, 800, 1600, 2100, 2620),
    "so2_1h": (0, 150, 500, 650, 800),
    "no2_24h": (0, 40, 80, 180, 280, 565, 750, 940),
    "no2_1h": (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    "co_24h": (0, 2, 4, 14, 24, 36, 48, 60),
    "co_1h": (0, 5, 10, 35, 60, 90, 120, 150),
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "o3_8h": (0, 100, 160, 215, 265, 800),
}

#: Breakpoints (µg/m³; CO mg/m³) per version and item; a short tuple ends where the table does.
BREAKPOINTS: dict[Standard, dict[str, tuple[float, ...]]] = {
    Standard.HJ633_2012: {
        **_COMMON,
        "pm10_24h": (0, 50, 150, 250, 350, 420, 500, 600),
        "pm25_24h": (0, 35, 75, 115, 150, 250, 350, 500),
    },
    Standard.HJ633_2026: {
        **_COMMON,
        "pm10_24h": (0, 50, 120, 250, 350, 420, 500, 600),
        "pm25_24h": (0, 35, 60, 115, 150, 250, 350, 500),
    },
}

#: Items scored on another item's table: hourly PM under 2026 uses the 24h table.
TABLE_OF: dict[str, str] = {"pm10_1h": "pm10_24h", "pm25_1h": "pm25_24h"}

#: The pollutant each item measures, as reports name it.
POLLUTANT: dict[str, str] = {
    "so2_24h": "SO2",
    "so2_1h": "SO2",
    "no2_24h": "NO2",
    "no2_1h": "NO2",
    "co_24h": "CO",
    "co_1h": "CO",
    "o3_1h": "O3",
    "o3_8h": "O3",
    "pm10_24h": "PM10",
    "pm10_1h": "PM10",
    "pm25_24h": "PM2.5",
    "pm25_1h": "PM2.5",
}

ITEMS: tuple[str, ...] = tuple(POLLUTANT)

#: The items an AQI takes, per version and period.
REQUIRED: dict[tuple[Standard, Period], tuple[str, ...]] = {
    (Standard.HJ633_2012, "day"): (
        "so2_24h", "no2_24h", "co_24h", "pm10_24h", "pm25_24h", "o3_1h", "o3_8h",
    ),
    (Standard.HJ633_2026, "day"): ("so2_24h", "no2_24h", "co_24h", "pm10_24h", "pm25_24h", "o3_8h"),
    (Standard.HJ633_2012, "hour"): (
        "so2_1h", "no2_1h", "co_1h", "o3_1h", "o3_8h", "pm10_24h", "pm25_24h",
    ),
    (Standard.HJ633_2026, "hour"): ("so2_1h", "no2_1h", "co_1h", "o3_1h", "pm10_1h", "pm25_1h"),
}  # fmt: skip

#: Beyond the top of a short table (2012: score another item instead; 2026: a fixed IAQI).
OVER_TOP_2012: dict[str, str] = {"so2_1h": "so2_24h", "o3_8h": "o3_1h"}
OVER_TOP_2026: dict[str, int] = {"so2_1h": 200, "o3_8h": 300}

#: A concentration above this is not a reading of ambient air (µg/m³; CO mg/m³).
PLAUSIBLE_MAX: dict[str, float] = {
    "SO2": 10_000,
    "NO2": 10_000,
    "CO": 1_000,
    "O3": 10_000,
    "PM10": 10_000,
    "PM2.5": 10_000,
}


@dataclass(frozen=True)
class Category:
    level: int
    label_zh: str
    label_en: str
    rgb: tuple[int, int, int]
    low: int
    high: int | None

    @property
    def colour(self) -> str:
        return "#{:02X}{:02X}{:02X}".format(*self.rgb)


CATEGORIES: tuple[Category, ...] = (
    Category(1, "优", "Excellent", (0, 228, 0), 0, 50),
    Category(2, "良", "Good", (255, 255, 0), 51, 100),
    Category(3, "轻度污染", "Lightly polluted", (255, 126, 0), 101, 150),
    Category(4, "中度污染", "Moderately polluted", (255, 0, 0), 151, 200),
    Category(5, "重度污染", "Heavily polluted", (153, 0, 76), 201, 300),
    Category(6, "严重污染", "Severely polluted", (126, 0, 35), 301, None),
)


class ImpossibleConcentration(ValueError):
    """A concentration that cannot be a reading (negative, not finite, beyond what air holds)."""

    def __init__(self, item: str, value: float) -> None:
        super().__init__(f"{item}: {value!r} is not a possible concentration")
        self.item = item
        self.value = value


class MissingPollutants(ValueError):
    """An AQI was asked for without all the items it takes."""

    def __init__(self, missing: list[str], standard: Standard, period: Period) -> None:
        super().__init__(f"{standard} {period} AQI needs {', '.join(missing)}")
        self.missing = missing
        self.standard = standard
        self.period = period


@dataclass(frozen=True)
class AqiResult:
    standard: Standard
    period: Period
    aqi: int
    category: Category
    iaqi: dict[str, int]
    primary: list[str] = field(default_factory=list)  # items, e.g. ["pm25_24h"]
    exceeding: list[str] | None = None  # 2012 only: items with IAQI above 100

    @property
    def primary_pollutants(self) -> list[str]:
        return list(dict.fromkeys(POLLUTANT[item] for item in self.primary))


def category(aqi: int) -> Category:
    for cat in CATEGORIES:
        if cat.high is None or aqi <= cat.high:
            return cat
    raise AssertionError("unreachable")  # pragma: no cover


def _ceil(value: float) -> int:
    # IAQI are rounded up; rounding to 9 places first keeps 90.00000000001 (float noise) at 90
    return math.ceil(round(value, 9))


def prepare(item: str, value: float, standard: Standard) -> float:
    """The concentration as the version scores it (2026 rounds it first); checks it is possible."""
    if item not in POLLUTANT:
        raise KeyError(item)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ImpossibleConcentration(item, value)
    if value < 0 or value > PLAUSIBLE_MAX[POLLUTANT[item]]:
        raise ImpossibleConcentration(item, value)
    if standard is Standard.HJ633_2026:
        if POLLUTANT[item] == "CO":
            return round(value * 10) / 10
        return float(round(value))
    return float(value)


def iaqi(item: str, value: float, standard: Standard = DEFAULT_STANDARD) -> int | None:
    """The IAQI of one item, or None where 2012 reports another item instead (beyond a short table)."""
    c = prepare(item, value, standard)
    table = BREAKPOINTS[standard][TABLE_OF.get(item, item)]
    if c > table[-1]:
        if len(table) == len(IAQI_LEVELS):
            return IAQI_LEVELS[-1]
        if standard is Standard.HJ633_2026:
            return OVER_TOP_2026[item]
        return None
    i = max(0, min(len(table) - 2, _segment(table, c)))
    lo, hi = table[i], table[i + 1]
    return _ceil((IAQI_LEVELS[i + 1] - IAQI_LEVELS[i]) / (hi - lo) * (c - lo) + IAQI_LEVELS[i])


def _segment(table: tuple[float, ...], c: float) -> int:
    for i in range(len(table) - 1):
        if c < table[i + 1]:
            return i
    return len(table) - 2


def missing_items(
    concentrations: Mapping[str, float | None], standard: Standard, period: Period
) -> list[str]:
    """The items the AQI takes that ``concentrations`` lacks (including one the 2012 rule for SO2
    1h above 800 needs: the SO2 24h mean)."""
    required = list(REQUIRED[(standard, period)])
    if standard is Standard.HJ633_2012 and period == "hour":
        so2 = concentrations.get("so2_1h")
        if so2 is not None and so2 > BREAKPOINTS[standard]["so2_1h"][-1]:
            required.append("so2_24h")
    return [item for item in required if concentrations.get(item) is None]


def compute_aqi(
    concentrations: Mapping[str, float | None],
    standard: Standard = DEFAULT_STANDARD,
    period: Period = "day",
) -> AqiResult:
    """The AQI of a station for a day or an hour; raises :class:`MissingPollutants` naming what is
    missing, :class:`ImpossibleConcentration` for a value that cannot be a reading."""
    missing = missing_items(concentrations, standard, period)
    if missing:
        raise MissingPollutants(missing, standard, period)
    scores: dict[str, int] = {}
    for item in REQUIRED[(standard, period)]:
        value = concentrations[item]
        assert value is not None
        score = iaqi(item, value, standard)
        if score is None:  # 2012 beyond a short table: report the substitute item's IAQI
            substitute = OVER_TOP_2012[item]
            sub_value = concentrations[substitute]
            assert sub_value is not None
            score = iaqi(substitute, sub_value, standard)
            assert score is not None
        scores[item] = score
    top = max(scores.values())
    primary = [item for item, score in scores.items() if score == top] if top > 50 else []
    exceeding = (
        [item for item, score in scores.items() if score > 100] if standard is Standard.HJ633_2012 else None
    )
    return AqiResult(standard, period, top, category(top), scores, primary, exceeding)


# -- vectorised, for many records at once ---------------------------------------------------------

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def prepare_array(item: str, values: FloatArray, standard: Standard) -> FloatArray:
    """:func:`prepare` over an array; impossible values become NaN (their records get no AQI)."""
    c = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(c) | (c < 0) | (c > PLAUSIBLE_MAX[POLLUTANT[item]])
    if standard is Standard.HJ633_2026:
        c = np.rint(c * 10) / 10 if POLLUTANT[item] == "CO" else np.rint(c)
    return np.where(bad, np.nan, c)


def iaqi_array(item: str, values: FloatArray, standard: Standard = DEFAULT_STANDARD) -> FloatArray:
    """:func:`iaqi` over an array, as floats: NaN for an impossible value, and -1 where 2012 reports
    another item instead. Same arithmetic as the scalar path, so the results are identical."""
    c = prepare_array(item, values, standard)
    table = np.asarray(BREAKPOINTS[standard][TABLE_OF.get(item, item)], dtype=np.float64)
    levels = np.asarray(IAQI_LEVELS[: len(table)], dtype=np.float64)
    safe = np.nan_to_num(c, nan=0.0)
    i = np.clip(np.searchsorted(table, safe, side="right") - 1, 0, len(table) - 2)
    lo, hi = table[i], table[i + 1]
    raw = (levels[i + 1] - levels[i]) / (hi - lo) * (safe - lo) + levels[i]
    out = np.ceil(np.round(raw, 9))
    over = safe > table[-1]
    if len(table) == len(IAQI_LEVELS):
        out = np.where(over, float(IAQI_LEVELS[-1]), out)
    elif standard is Standard.HJ633_2026:
        out = np.where(over, float(OVER_TOP_2026[item]), out)
    else:
        out = np.where(over, -1.0, out)
    return np.where(np.isnan(c), np.nan, out)


def aqi_array(
    columns: Mapping[str, FloatArray],
    standard: Standard = DEFAULT_STANDARD,
    period: Period = "day",
) -> IntArray:
    """The AQI of many records (one array per item, NaN where missing); -1 where a record lacks an
    item or holds an impossible value."""
    scores = []
    for item in REQUIRED[(standard, period)]:
        score = iaqi_array(item, columns[item], standard)
        if standard is Standard.HJ633_2012 and item in OVER_TOP_2012:
            other = OVER_TOP_2012[item]
            held = columns.get(other)
            sub_values = np.full(len(score), np.nan) if held is None else held
            substitute = iaqi_array(other, sub_values, standard)
            score = np.where(score == -1.0, substitute, score)
        scores.append(score)
    stacked = np.vstack(scores)
    top = stacked.max(axis=0)
    return np.where(np.isnan(top), -1, top).astype(np.int64)
