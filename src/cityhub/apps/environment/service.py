"""The app's reads of the broker: hourly and daily AQI from a station's history, rankings,
good-day ratio, trends, forecasts, noise compliance per period, and sites against their limits.
The write-back consumer is in ``tasks``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from statistics import mean
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.apps.environment import averages, limits, noise, water
from cityhub.apps.environment.aqi import (
    AqiResult,
    MissingPollutants,
    Standard,
    compute_aqi,
)
from cityhub.apps.environment.forecast import forecast
from cityhub.plugins import entities

AIR, WATER, NOISE = "AirQualityObserved", "WaterQualityObserved", "NoiseLevelObserved"
POLLUTANTS = ("so2", "no2", "co", "o3", "pm10", "pm25")
#: Units a pollutant may be reported in (UN/CEFACT): µg/m³, CO in mg/m³.
UNITS = dict.fromkeys(POLLUTANTS, "GQ") | {"co": "GP"}
NOISE_INPUTS = ("LAeq", "LAmax")
WATER_INPUTS = tuple(name for names in water.ATTRIBUTES.values() for name in names)


class UnusableReading(ValueError):
    """A reading that cannot be scored: impossible value or unit."""


def value_of(entity: Mapping[str, Any], attr: str) -> Any:
    prop = entity.get(attr)
    return prop.get("value") if isinstance(prop, dict) else None


def observed_at(entity: Mapping[str, Any], attrs: tuple[str, ...]) -> datetime | None:
    times = []
    for attr in attrs:
        prop = entity.get(attr)
        if isinstance(prop, dict) and prop.get("observedAt"):
            times.append(datetime.fromisoformat(str(prop["observedAt"]).replace("Z", "+00:00")))
    return max(times) if times else None


def observed_property(value: Any, at: datetime | None) -> dict[str, Any]:
    """A normalized NGSI-LD Property, observed at ``at``."""
    prop: dict[str, Any] = {"type": "Property", "value": value}
    if at is not None:
        prop["observedAt"] = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return prop


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def check_units(entity: Mapping[str, Any]) -> None:
    for pollutant in POLLUTANTS:
        prop = entity.get(pollutant)
        if isinstance(prop, dict) and prop.get("unitCode") not in (None, UNITS[pollutant]):
            raise UnusableReading(f"{pollutant}: unit {prop['unitCode']!r}, expected {UNITS[pollutant]}")


# -- history ---------------------------------------------------------------------------------------


async def hourly_series(
    session: AsyncSession, tenant: str, entity_id: str, attrs: tuple[str, ...], start: datetime, end: datetime
) -> dict[str, dict[datetime, float]]:
    history = await entities.read_history(session, tenant, entity_id, list(attrs), start, end)
    return hourly(history)


def hourly(history: dict[str, list[tuple[datetime, Any]]]) -> dict[str, dict[datetime, float]]:
    return {
        attr: averages.hourly_means(
            (_aware(at), float(v))
            for at, v in points
            if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
        )
        for attr, points in history.items()
    }


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def hourly_aqi(
    session: AsyncSession, tenant: str, entity_id: str, hour: datetime, standard: Standard
) -> AqiResult:
    """The hourly AQI of a station for the UTC hour starting at ``hour``, from its readings."""
    span = 24 if standard is Standard.HJ633_2012 else 1
    series = await hourly_series(
        session, tenant, entity_id, POLLUTANTS, hour - timedelta(hours=span - 1), hour + timedelta(hours=1)
    )
    return compute_aqi(averages.hourly_items(series, hour, standard), standard, "hour")


@dataclass(frozen=True)
class HourlyAqi:
    hour: datetime
    result: AqiResult | None
    missing: list[str]


async def hourly_aqi_series(
    session: AsyncSession, tenant: str, entity_id: str, start: datetime, end: datetime, standard: Standard
) -> list[HourlyAqi]:
    """The hourly AQI of each UTC hour in ``[start, end)``, from the station's readings."""
    first = hour_of(start)
    span = 24 if standard is Standard.HJ633_2012 else 1
    series = await hourly_series(
        session, tenant, entity_id, POLLUTANTS, first - timedelta(hours=span - 1), end
    )
    out = []
    hour = first
    while hour < end:
        items = averages.hourly_items(series, hour, standard)
        try:
            out.append(HourlyAqi(hour, compute_aqi(items, standard, "hour"), []))
        except MissingPollutants as missing:
            out.append(HourlyAqi(hour, None, missing.missing))
        hour += timedelta(hours=1)
    return out


@dataclass(frozen=True)
class DailyAqi:
    day: date
    result: AqiResult | None
    missing: list[str]
    items: dict[str, float | None]


async def daily_aqi(
    session: AsyncSession,
    tenant: str,
    entity_id: str,
    first: date,
    last: date,
    standard: Standard,
    tz: tzinfo,
) -> list[DailyAqi]:
    start, end = days_span(first, last, tz)
    series = await hourly_series(session, tenant, entity_id, POLLUTANTS, start, end)
    return _daily(series, first, last, standard, tz)


def days_span(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The local days from ``first`` to ``last`` as [start, end): aware datetimes in ``tz``."""
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    return start, datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1)


def _daily(
    series: dict[str, dict[datetime, float]], first: date, last: date, standard: Standard, tz: tzinfo
) -> list[DailyAqi]:
    out = []
    day = first
    while day <= last:
        items = averages.daily_items(series, day, tz)
        out.append(_score_day(day, items, standard))
        day += timedelta(days=1)
    return out


def _score_day(day: date, items: dict[str, float | None], standard: Standard) -> DailyAqi:
    try:
        return DailyAqi(day, compute_aqi(items, standard, "day"), [], items)
    except MissingPollutants as missing:
        return DailyAqi(day, None, missing.missing, items)


async def station(session: AsyncSession, tenant: str, entity_id: str) -> dict[str, Any] | None:
    return await entities.read_entity(session, tenant, entity_id)


async def station_exists(session: AsyncSession, tenant: str, entity_id: str) -> bool:
    return await station(session, tenant, entity_id) is not None


PAGE = 1000


async def stations(
    session: AsyncSession, tenant: str, entity_type: str = AIR, q: str | None = None
) -> list[dict[str, Any]]:
    """Every entity of the type in the tenant (page by page), in creation order."""
    found: list[dict[str, Any]] = []
    while True:
        page = await entities.find_entities(
            session, tenant, type=entity_type, q=q, limit=PAGE, offset=len(found)
        )
        found.extend(page)
        if len(page) < PAGE:
            return found


def is_ambient(station: dict[str, Any]) -> bool:
    """An air station that measures ambient air (not a construction-site monitor)."""
    return bool(value_of(station, "stationType") != "constructionSite")


async def ambient_stations(session: AsyncSession, tenant: str) -> list[dict[str, Any]]:
    """Air stations that measure ambient air: construction-site monitors are left out."""
    return [s for s in await stations(session, tenant) if is_ambient(s)]


async def city_daily(
    session: AsyncSession, tenant: str, first: date, last: date, standard: Standard, tz: tzinfo
) -> tuple[dict[str, list[DailyAqi]], list[DailyAqi]]:
    """Daily AQI per station, and for the whole tenant from the mean of the stations' daily values."""
    start, end = days_span(first, last, tz)
    ids = [s["id"] for s in await ambient_stations(session, tenant)]
    histories = await entities.read_histories(session, tenant, ids, list(POLLUTANTS), start, end)
    per_station = {
        entity_id: _daily(hourly(histories[entity_id]), first, last, standard, tz) for entity_id in ids
    }
    city = [
        city_day(first + timedelta(days=k), [days[k].items for days in per_station.values()], standard)
        for k in range((last - first).days + 1)
    ]
    return per_station, city


def city_day(day: date, stations: list[dict[str, float | None]], standard: Standard) -> DailyAqi:
    """The tenant's daily AQI: each input the mean of the stations' values that are determined."""
    items: dict[str, float | None] = {}
    for item in {i for held in stations for i in held}:
        values = [held[item] for held in stations if held.get(item) is not None]
        items[item] = mean(v for v in values if v is not None) if values else None
    return _score_day(day, items, standard)


def good_day_ratio(days: list[DailyAqi]) -> tuple[int, int, float | None]:
    """Days with AQI ≤ 100 (优 or 良) among the days with a valid AQI."""
    valid = [d for d in days if d.result is not None]
    good = [d for d in valid if d.result is not None and d.result.aqi <= 100]
    return len(good), len(valid), (round(len(good) / len(valid), 4) if valid else None)


def trend_slope(days: list[DailyAqi]) -> float | None:
    """Least-squares slope of the daily AQI, AQI points per day (negative: improving)."""
    points = [(k, d.result.aqi) for k, d in enumerate(days) if d.result is not None]
    if len(points) < 2:
        return None
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    return round(float(np.polyfit(x, y, 1)[0]), 3)


async def station_forecast(
    session: AsyncSession, tenant: str, entity_id: str, now: datetime, days: int
) -> list[tuple[datetime, float]]:
    end = hour_of(now) + timedelta(hours=1)
    start = end - timedelta(days=days)
    series = (await hourly_series(session, tenant, entity_id, ("airQualityIndex",), start, end))[
        "airQualityIndex"
    ]
    if series:
        start = min(series)
    hours = int((end - start) / timedelta(hours=1))
    y = np.full(hours, np.nan)
    for at, value in series.items():
        y[int((at - start) / timedelta(hours=1))] = value
    return forecast(y, start)


@dataclass(frozen=True)
class NoisePeriodLine:
    day: date
    period: str
    leq: float | None
    readings: int
    limit: float
    compliant: bool | None


async def noise_compliance(
    session: AsyncSession,
    tenant: str,
    entity_id: str,
    zone: str,
    first: date,
    last: date,
    tz: tzinfo,
    day_start: Any,
    night_start: Any,
) -> list[NoisePeriodLine]:
    """Day and night Leq of a station per local day (the energy mean of its LAeq readings, each
    reading an equal interval) against its zone's limits. A night belongs to the day it starts on."""
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    end = datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1, hours=12)
    history = await entities.read_history(session, tenant, entity_id, ["LAeq"], start, end)
    buckets: dict[tuple[date, str], list[float]] = {}
    for at, value in history["LAeq"]:
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= noise.MAX_LEVEL:
            continue
        local = _aware(at).astimezone(tz)
        period = noise.period_of(local, day_start, night_start)
        day = local.date()
        if period == "night" and local.time() < day_start:
            day -= timedelta(days=1)  # the small hours belong to the night that began the day before
        buckets.setdefault((day, period), []).append(float(value))
    out = []
    day = first
    while day <= last:
        for period in ("day", "night"):
            values = buckets.get((day, period), [])
            bound = noise.limit(zone, period)
            leq = round(noise.energy_mean(values), 1) if values else None
            out.append(
                NoisePeriodLine(day, period, leq, len(values), bound, None if leq is None else leq <= bound)
            )
        day += timedelta(days=1)
    return out


# -- sites checked against limits (computed when asked, from the entities' latest values) ----------

ENERGY, SOURCE, RADIATION, SOIL = (
    "EnergyConsumptionObserved",
    "PollutionSourceObserved",
    "RadiationObserved",
    "SoilQualityObserved",
)
EMISSIONS = ("so2", "nox", "particulates", "cod", "nh3n")


def site_checks(kind: str, site: Mapping[str, Any], dust_limit: float) -> dict[str, Any]:
    """One site's latest values against its limits; ``problem`` says why a site could not be checked."""
    line: dict[str, Any] = {
        "id": site["id"],
        "name": value_of(site, "name"),
        "district": value_of(site, "district"),
    }
    try:
        if kind == ENERGY:
            use = limits.energy_use(
                value_of(site, "consumption"), value_of(site, "output"), value_of(site, "quota")
            )
            line |= {"consumption_tce": use.consumption_tce, "output": use.output, "intensity": use.intensity,
                     "quota": use.quota, "within_quota": use.within_quota}  # fmt: skip
        elif kind == SOURCE:
            bounds = value_of(site, "emissionLimits") or {}
            values = {p: value_of(site, p) for p in EMISSIONS if value_of(site, p) is not None}
            line["checks"] = [_exceedance(e) for e in limits.against(bounds, values)]
            line["compliant"] = not any(c["exceeded"] for c in line["checks"])
        elif kind == RADIATION:
            line |= _exceedance(limits.radiation(value_of(site, "gammaDoseRate")))
        elif kind == SOIL:
            metals = {m: value_of(site, m) for m in limits.SOIL_SCREENING if value_of(site, m) is not None}
            line["checks"] = [_exceedance(e) for e in limits.soil(value_of(site, "pH"), metals)]
            line["compliant"] = not any(c["exceeded"] for c in line["checks"])
        else:  # construction-site dust
            line |= _exceedance(limits.site_dust(value_of(site, "pm10"), dust_limit))
    except (ValueError, KeyError, TypeError) as problem:
        line["problem"] = str(problem) or "no value"
    return line


def _exceedance(e: limits.Exceedance) -> dict[str, Any]:
    return {"item": e.item, "value": e.value, "limit": e.limit, "ratio": e.ratio, "exceeded": e.exceeded}


async def sites(session: AsyncSession, tenant: str, kind: str, dust_limit: float) -> list[dict[str, Any]]:
    if kind == "dust":
        found = await stations(session, tenant, AIR, q='stationType=="constructionSite"')
    else:
        found = await stations(session, tenant, kind)
    return [site_checks(kind, site, dust_limit) for site in found]
