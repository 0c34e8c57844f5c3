"""Averaging rules: hourly means from a station's readings, and the daily and rolling values an AQI
takes, with the minimum data coverage of GB 3095-2012 (section 8 and its 2018 amendment; kept as
data here, verify against the text in force):

- an hourly value is the mean of the readings within the hour (hours are labelled by their start);
- a 24-hour mean needs at least 20 hourly values;
- an 8-hour mean (O3) needs at least 6 hourly values in its 8 hours;
- the daily maximum 8-hour O3 is taken over the 8-hour windows ending 08:00–24:00 of the day (17
  windows, all within the day) and needs at least 14 valid windows;
- the daily maximum 1-hour O3 needs at least 20 hourly values.

Pure calculation on plain lists; days are local days (the tenant's time zone).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo

from cityhub.apps.environment.aqi import Standard

MIN_HOURS_24H = 20
MIN_HOURS_8H = 6
MIN_WINDOWS_O3_8H = 14
MIN_HOURS_DAILY_MAX_1H = 20

#: Entity attribute (Smart Data Models) of each pollutant.
ATTRIBUTES: dict[str, str] = {
    "so2": "so2",
    "no2": "no2",
    "co": "co",
    "o3": "o3",
    "pm10": "pm10",
    "pm25": "pm25",
}


def hourly_means(readings: Iterable[tuple[datetime, float]]) -> dict[datetime, float]:
    """Readings (aware datetimes) → mean per UTC hour, keyed by the hour's start (UTC).

    Readings are grouped by their POSIX second's hour, and each hour made a datetime once: a
    replace() and the hash of an aware datetime per reading were most of a city's daily AQI."""
    sums: dict[int, list[float]] = defaultdict(list)
    for at, value in readings:
        sums[int(at.timestamp() // 3600)].append(float(value))
    return {_hour_start(hour): sum(v) / len(v) for hour, v in sorted(sums.items())}


@functools.lru_cache(maxsize=8192)
def _hour_start(hour: int) -> datetime:
    # one object per hour: stations share it, and a datetime keeps its hash once computed
    return _EPOCH + timedelta(hours=hour)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def mean_if_covered(values: list[float | None], minimum: int) -> float | None:
    held = [v for v in values if v is not None]
    return sum(held) / len(held) if len(held) >= minimum else None


def rolling(hours: Mapping[datetime, float], end: datetime, span: int, minimum: int) -> float | None:
    """The mean of the ``span`` hours up to and including the hour starting at ``end``."""
    return mean_if_covered([hours.get(end - timedelta(hours=k)) for k in range(span)], minimum)


def day_hours(hours: Mapping[datetime, float], day: date, tz: tzinfo) -> list[float | None]:
    """The 24 hourly values of a local day (None where missing)."""
    return [hours.get(hour) for hour in _day_keys(day, tz)]


@functools.lru_cache(maxsize=4096)
def _day_keys(day: date, tz: tzinfo) -> tuple[datetime, ...]:
    """The UTC starts of a local day's 24 hours: a city's daily AQI over a month asks for the same
    days once per station and pollutant, and the conversions were most of its time."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return tuple(_utc(start + timedelta(hours=h)) for h in range(24))


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def daily_max_o3_8h(day_values: list[float | None]) -> float | None:
    windows = [mean_if_covered(day_values[s : s + 8], MIN_HOURS_8H) for s in range(17)]
    valid = [w for w in windows if w is not None]
    return max(valid) if len(valid) >= MIN_WINDOWS_O3_8H else None


def daily_max_1h(day_values: list[float | None]) -> float | None:
    held = [v for v in day_values if v is not None]
    return max(held) if len(held) >= MIN_HOURS_DAILY_MAX_1H else None


def daily_items(
    series: Mapping[str, Mapping[datetime, float]], day: date, tz: tzinfo
) -> dict[str, float | None]:
    """The day's AQI inputs (24h means, O3 maxima) from hourly series per pollutant; None where the
    coverage rules leave a value undetermined."""
    out: dict[str, float | None] = {}
    for pollutant in ("so2", "no2", "co", "pm10", "pm25"):
        values = day_hours(series.get(pollutant, {}), day, tz)
        out[f"{pollutant}_24h"] = mean_if_covered(values, MIN_HOURS_24H)
    o3 = day_hours(series.get("o3", {}), day, tz)
    out["o3_8h"] = daily_max_o3_8h(o3)
    out["o3_1h"] = daily_max_1h(o3)
    return out


def hourly_items(
    series: Mapping[str, Mapping[datetime, float]], hour: datetime, standard: Standard
) -> dict[str, float | None]:
    """An hour's AQI inputs: 1h values, plus for 2012 the rolling O3 8h and PM 24h means (and the
    SO2 24h mean its SO2 rule may need)."""

    def at(pollutant: str) -> float | None:
        return series.get(pollutant, {}).get(hour)

    out: dict[str, float | None] = {f"{p}_1h": at(p) for p in ("so2", "no2", "co", "o3", "pm10", "pm25")}
    if standard is Standard.HJ633_2012:
        out["o3_8h"] = rolling(series.get("o3", {}), hour, 8, MIN_HOURS_8H)
        for p in ("pm10", "pm25", "so2"):
            out[f"{p}_24h"] = rolling(series.get(p, {}), hour, 24, MIN_HOURS_24H)
    return out
