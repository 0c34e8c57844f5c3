"""``/api/v1/environment``: computations on given values, and views of the tenant's stations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from cityhub.apps.environment import limits, noise, service, water
from cityhub.apps.environment.aqi import (
    POLLUTANT,
    ImpossibleConcentration,
    MissingPollutants,
    Standard,
    compute_aqi,
)
from cityhub.apps.environment.forecast import NotEnoughHistory
from cityhub.apps.environment.schemas import (
    AqiAnswer,
    AqiRequest,
    DayLine,
    EnergyAnswer,
    EnergyRequest,
    ExceedanceLine,
    Forecast,
    ForecastLine,
    GoodDays,
    HourLine,
    LimitsRequest,
    NoiseAnswer,
    NoiseLine,
    NoiseRequest,
    Ranking,
    RankLine,
    SoilRequest,
    StationLine,
    Trend,
    WaterAnswer,
    WaterRequest,
)
from cityhub.apps.environment.settings import EnvironmentSettings
from cityhub.plugins import (
    BadRequestData,
    EntitySession,
    NotFound,
    RequestTenant,
    UnprocessableEntity,
    utcnow,
)

MAX_DAYS = 366
MAX_HOURLY_DAYS = 31
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)


class Impossible(UnprocessableEntity):
    type = "urn:cityhub:problem:impossible-value"
    title = "Impossible value"


class MissingInputs(BadRequestData):
    type = "urn:cityhub:problem:missing-pollutants"
    title = "Missing pollutants"


def _lines(found: list[limits.Exceedance]) -> list[ExceedanceLine]:
    return [
        ExceedanceLine(item=e.item, value=e.value, limit=e.limit, ratio=e.ratio, exceeded=e.exceeded)
        for e in found
    ]


def _days(start: date | None, end: date | None, tz: tzinfo) -> tuple[date, date]:
    last = end or (utcnow().astimezone(tz).date() - timedelta(days=1))
    first = start or (last - timedelta(days=29))
    if first > last or (last - first).days >= MAX_DAYS:
        raise BadRequestData(f"the period must run forward and cover at most {MAX_DAYS} days")
    if first < EARLIEST or last > LATEST:
        raise BadRequestData(f"dates must lie between {EARLIEST} and {LATEST}")
    return first, last


def _utc(at: datetime) -> datetime:
    """A time given without an offset is taken as UTC."""
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def _day_line(d: service.DailyAqi) -> DayLine:
    r = d.result
    return DayLine(
        day=d.day,
        aqi=r.aqi if r else None,
        category_zh=r.category.label_zh if r else None,
        primary_pollutants=r.primary_pollutants if r else [],
        missing=d.missing,
    )


def build_router(settings: EnvironmentSettings, tz: tzinfo) -> APIRouter:
    router = APIRouter(tags=["environment"])

    @router.post("/aqi", response_model=AqiAnswer, summary="AQI, IAQI per item, primary pollutant, category")
    async def aqi(body: AqiRequest) -> AqiAnswer:
        unknown = [item for item in body.concentrations if item not in POLLUTANT]
        if unknown:
            raise BadRequestData(f"unknown items: {', '.join(unknown)}", known=sorted(POLLUTANT))
        standard = body.standard or settings.aqi_standard
        try:
            return AqiAnswer.of(compute_aqi(body.concentrations, standard, body.period))
        except MissingPollutants as e:
            raise MissingInputs(
                str(e), missing=e.missing, standard=str(standard), period=body.period
            ) from None
        except ImpossibleConcentration as e:
            raise Impossible(str(e), item=e.item) from None

    @router.post("/water/class", response_model=WaterAnswer, summary="Surface water class per GB 3838-2002")
    async def water_class(body: WaterRequest) -> WaterAnswer:
        if body.target_class is not None and body.target_class not in water.CLASSES:
            raise BadRequestData(f"target_class must be one of {', '.join(water.CLASSES)}")
        try:
            found = water.classify(body.measures, lake=body.water_body_type != "river")
        except KeyError as e:
            raise BadRequestData(f"unknown items: {e.args[0]}", known=[*water.LIMITS, "pH"]) from None
        except water.ImpossibleMeasure as e:
            raise Impossible(str(e), item=e.item) from None
        except ValueError as e:
            raise BadRequestData(str(e)) from None
        worse = found.worse_than(body.target_class) if body.target_class else None
        return WaterAnswer(
            water_class=found.water_class, determining_items=found.determining, by_item=found.by_item,
            worse_than_target=worse,
        )  # fmt: skip

    @router.post("/noise/compliance", response_model=NoiseAnswer, summary="Noise compliance per GB 3096-2008")
    async def noise_compliance(body: NoiseRequest) -> NoiseAnswer:
        if body.period is None and body.at is None:
            raise BadRequestData("give the period (day or night) or the time of the measurement")
        period = body.period or noise.period_of(
            (body.at or utcnow()).astimezone(tz), settings.noise_day_start, settings.noise_night_start
        )
        try:
            found = noise.comply(body.zone, period, body.laeq)
            lmax = (
                noise.night_lmax_ok(body.zone, body.lmax)
                if body.lmax is not None and period == "night"
                else None
            )
        except noise.ImpossibleLevel as e:
            raise Impossible(str(e)) from None
        return NoiseAnswer(
            zone=found.zone, period=found.period, level=found.level, limit=found.limit,
            compliant=found.compliant, excess=found.excess, night_lmax_compliant=lmax,
        )  # fmt: skip

    @router.post(
        "/soil/compliance", response_model=list[ExceedanceLine], summary="Soil vs GB 15618 screening"
    )
    async def soil(body: SoilRequest) -> list[ExceedanceLine]:
        try:
            return _lines(limits.soil(body.ph, body.values))
        except KeyError as e:
            raise BadRequestData(f"unknown items: {e.args[0]}", known=list(limits.SOIL_SCREENING)) from None
        except limits.ImpossibleValue as e:
            raise Impossible(str(e)) from None

    @router.get("/radiation/compliance", response_model=ExceedanceLine, summary="Gamma dose rate (nGy/h)")
    async def radiation(gamma: Annotated[float, Query(description="nGy/h")]) -> ExceedanceLine:
        try:
            return _lines([limits.radiation(gamma)])[0]
        except limits.ImpossibleValue as e:
            raise Impossible(str(e)) from None

    @router.get("/dust/compliance", response_model=ExceedanceLine, summary="Construction-site PM10 (µg/m³)")
    async def dust(pm10: float) -> ExceedanceLine:
        try:
            return _lines([limits.site_dust(pm10, settings.dust_pm10_limit)])[0]
        except limits.ImpossibleValue as e:
            raise Impossible(str(e)) from None

    @router.post("/sources/compliance", response_model=list[ExceedanceLine], summary="Emissions vs limits")
    async def sources(body: LimitsRequest) -> list[ExceedanceLine]:
        try:
            return _lines(limits.against(body.limits, body.values))
        except limits.ImpossibleValue as e:
            raise Impossible(str(e)) from None

    @router.post("/energy/intensity", response_model=EnergyAnswer, summary="Energy per unit of output")
    async def energy(body: EnergyRequest) -> EnergyAnswer:
        try:
            found = limits.energy_use(body.consumption_tce, body.output, body.quota)
        except limits.ImpossibleValue as e:
            raise Impossible(str(e)) from None
        return EnergyAnswer(**found.__dict__)

    @router.get("/stations", response_model=list[StationLine], summary="Air stations with their latest AQI")
    async def stations(session: EntitySession, tenant: RequestTenant) -> list[StationLine]:
        return [
            StationLine(
                id=s["id"],
                name=service.value_of(s, "name"),
                district=service.value_of(s, "district"),
                aqi=service.value_of(s, "airQualityIndex"),
                category=service.value_of(s, "aqiCategory"),
                primary_pollutant=service.value_of(s, "primaryPollutant"),
                observed_at=(s.get("airQualityIndex") or {}).get("observedAt"),
            )
            for s in await service.stations(session, tenant)
        ]

    @router.get(
        "/stations/{station_id}/daily", response_model=list[DayLine], summary="Daily AQI of a station"
    )
    async def station_daily(
        station_id: str, session: EntitySession, tenant: RequestTenant,
        start: date | None = None, end: date | None = None, standard: Standard | None = None,
    ) -> list[DayLine]:  # fmt: skip
        if not await service.station_exists(session, tenant, station_id):
            raise NotFound(f"no station {station_id}")
        first, last = _days(start, end, tz)
        days = await service.daily_aqi(
            session, tenant, station_id, first, last, standard or settings.aqi_standard, tz
        )
        return [_day_line(d) for d in days]

    @router.get(
        "/stations/{station_id}/hourly", response_model=list[HourLine], summary="Hourly AQI of a station"
    )
    async def station_hourly(
        station_id: str, session: EntitySession, tenant: RequestTenant,
        start: datetime | None = None, end: datetime | None = None, standard: Standard | None = None,
    ) -> list[HourLine]:  # fmt: skip
        if not await service.station_exists(session, tenant, station_id):
            raise NotFound(f"no station {station_id}")
        last = _utc(end) if end else utcnow()
        first = _utc(start) if start else last - timedelta(hours=24)
        if first >= last or last - first > timedelta(days=MAX_HOURLY_DAYS):
            raise BadRequestData(f"the period must run forward and cover at most {MAX_HOURLY_DAYS} days")
        if first.date() < EARLIEST or last.date() > LATEST:
            raise BadRequestData(f"dates must lie between {EARLIEST} and {LATEST}")
        hours = await service.hourly_aqi_series(
            session, tenant, station_id, first, last, standard or settings.aqi_standard
        )
        return [
            HourLine(
                hour=h.hour,
                aqi=h.result.aqi if h.result else None,
                category_zh=h.result.category.label_zh if h.result else None,
                primary_pollutants=h.result.primary_pollutants if h.result else [],
                missing=h.missing,
            )
            for h in hours
        ]

    @router.get("/rankings", response_model=Ranking, summary="Stations or districts by mean daily AQI")
    async def rankings(
        session: EntitySession, tenant: RequestTenant, start: date | None = None, end: date | None = None,
        by: Literal["station", "district"] = "station", standard: Standard | None = None,
    ) -> Ranking:  # fmt: skip
        first, last = _days(start, end, tz)
        std = standard or settings.aqi_standard
        per_station, _ = await service.city_daily(session, tenant, first, last, std, tz)
        groups: dict[str, list[service.DailyAqi]] = {}
        if by == "station":
            groups = per_station
        else:
            for s in await service.ambient_stations(session, tenant):
                district = service.value_of(s, "district") or "unknown"
                groups.setdefault(str(district), []).extend(per_station[s["id"]])
        lines = []
        for key, days in groups.items():
            scored = [d.result.aqi for d in days if d.result is not None]
            if scored:
                good, valid, _ = service.good_day_ratio(days)
                lines.append((round(sum(scored) / len(scored), 1), key, valid, good))
        lines.sort()
        return Ranking(
            standard=std, start=first, end=last, by=by,
            lines=[RankLine(rank=k, key=key, mean_aqi=m, days=v, good_days=g)
                   for k, (m, key, v, g) in enumerate(lines, start=1)],
        )  # fmt: skip

    @router.get("/good-days", response_model=GoodDays, summary="Share of days with AQI at most 100")
    async def good_days(
        session: EntitySession, tenant: RequestTenant, start: date | None = None, end: date | None = None,
        standard: Standard | None = None,
    ) -> GoodDays:  # fmt: skip
        first, last = _days(start, end, tz)
        _, city = await service.city_daily(
            session, tenant, first, last, standard or settings.aqi_standard, tz
        )
        good, valid, ratio = service.good_day_ratio(city)
        return GoodDays(start=first, end=last, good_days=good, valid_days=valid, ratio=ratio)

    @router.get("/trends", response_model=Trend, summary="The tenant's daily AQI and its linear trend")
    async def trends(
        session: EntitySession, tenant: RequestTenant, start: date | None = None, end: date | None = None,
        standard: Standard | None = None,
    ) -> Trend:  # fmt: skip
        first, last = _days(start, end, tz)
        _, city = await service.city_daily(
            session, tenant, first, last, standard or settings.aqi_standard, tz
        )
        return Trend(
            start=first, end=last, slope_per_day=service.trend_slope(city), days=[_day_line(d) for d in city]
        )

    @router.get(
        "/stations/{station_id}/forecast", response_model=Forecast, summary="Next 24 hourly AQI values"
    )
    async def station_forecast(station_id: str, session: EntitySession, tenant: RequestTenant) -> Forecast:
        if not await service.station_exists(session, tenant, station_id):
            raise NotFound(f"no station {station_id}")
        try:
            values = await service.station_forecast(
                session, tenant, station_id, utcnow(), settings.forecast_history_days
            )
        except NotEnoughHistory as e:
            raise UnprocessableEntity(str(e), hours=e.hours) from None
        return Forecast(
            station=station_id,
            model="ridge regression per lead time on lagged hourly AQI, hour of day, weekend, trend",
            values=[ForecastLine(at=at, aqi=v) for at, v in values],
        )

    @router.get(
        "/noise/stations/{station_id}/compliance",
        response_model=list[NoiseLine],
        summary="Day and night Leq of a noise station per day against its zone's limits",
    )
    async def noise_station_compliance(
        station_id: str, session: EntitySession, tenant: RequestTenant,
        start: date | None = None, end: date | None = None,
    ) -> list[NoiseLine]:  # fmt: skip
        station = await service.station(session, tenant, station_id)
        if station is None:
            raise NotFound(f"no station {station_id}")
        zone = service.value_of(station, "acousticZone")
        zone = str(zone) if isinstance(zone, int) and not isinstance(zone, bool) else zone
        if zone not in noise.LIMITS:
            raise UnprocessableEntity(
                f"station {station_id} has no acousticZone (one of {', '.join(noise.ZONES)})"
            )
        first, last = _days(start, end, tz)
        lines = await service.noise_compliance(
            session, tenant, station_id, zone, first, last, tz,
            settings.noise_day_start, settings.noise_night_start,
        )  # fmt: skip
        return [NoiseLine(**line.__dict__) for line in lines]

    @router.get("/water/stations", summary="Water stations: class, determining items, target")
    async def water_stations(session: EntitySession, tenant: RequestTenant) -> list[dict[str, object]]:
        return [
            {
                "id": s["id"],
                "name": service.value_of(s, "name"),
                "district": service.value_of(s, "district"),
                "water_class": service.value_of(s, "waterQualityClass"),
                "determining_items": service.value_of(s, "waterQualityDeterminingItems"),
                "target_class": service.value_of(s, "targetWaterClass"),
                "worse_than_target": service.value_of(s, "waterQualityWorseThanTarget"),
            }
            for s in await service.stations(session, tenant, service.WATER)
        ]

    @router.get("/noise/stations", summary="Noise stations: zone, period, limit, compliance")
    async def noise_stations(session: EntitySession, tenant: RequestTenant) -> list[dict[str, object]]:
        return [
            {
                "id": s["id"],
                "name": service.value_of(s, "name"),
                "district": service.value_of(s, "district"),
                "zone": service.value_of(s, "acousticZone"),
                "laeq": service.value_of(s, "LAeq"),
                "period": service.value_of(s, "noisePeriod"),
                "limit": service.value_of(s, "noiseLimit"),
                "compliant": service.value_of(s, "noiseCompliant"),
            }
            for s in await service.stations(session, tenant, service.NOISE)
        ]

    def _sites(path: str, kind: str, summary: str) -> None:
        async def listing(session: EntitySession, tenant: RequestTenant) -> list[dict[str, object]]:
            return await service.sites(session, tenant, kind, settings.dust_pm10_limit)

        router.add_api_route(path, listing, methods=["GET"], summary=summary)

    _sites("/energy/users", service.ENERGY, "Key energy users: consumption per unit of output vs quota")
    _sites("/sources", service.SOURCE, "Key pollution sources: latest emissions vs their limits")
    _sites("/radiation/stations", service.RADIATION, "Radiation stations vs the investigation level")
    _sites("/soil/sites", service.SOIL, "Soil sites vs GB 15618 screening values")
    _sites("/dust/sites", "dust", "Construction sites: latest PM10 vs the site limit")
    return router
