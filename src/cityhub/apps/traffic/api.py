from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timedelta
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from cityhub.apps.traffic import forecast as fc
from cityhub.apps.traffic.congestion import AreaIndex, SegmentState, segment_state
from cityhub.apps.traffic.importers import NetworkFormatError, format_for_name, read_network
from cityhub.apps.traffic.network import RoadClass
from cityhub.apps.traffic.schemas import (
    AreaLine,
    ForecastAnswer,
    ForecastLine,
    HistoryPoint,
    ImportResult,
    IndexHistory,
    LiveState,
    ParkingAnswer,
    ParkingLine,
    Route,
    RouteAnswer,
    RouteSegment,
    SegmentLine,
    SegmentPage,
    SnappedPoint,
)
from cityhub.apps.traffic.service import (
    NETWORK_AREA,
    LiveNetwork,
    LiveTraffic,
    index_history,
    nearest_free_parking,
    path_geometry,
    plan_routes,
    segment_urn,
    segments_matching,
    snap,
    speed_history,
)
from cityhub.apps.traffic.settings import TrafficSettings
from cityhub.plugins import (
    DbSession,
    HubError,
    NotFound,
    RequestTenant,
    UnprocessableEntity,
    entities,
    utcnow,
)

FORECAST_HISTORY_DAYS = 28
FORECAST_MIN_OBSERVED_SLOTS = 2 * fc.SLOTS_PER_DAY


class NetworkFileTooLarge(HubError):
    status = 413
    type = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    title = "Network file too large"


def parse_point(text: str, label: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        raise UnprocessableEntity(f"{label} must be 'lon,lat' in decimal degrees, got {text!r}") from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90) or not all(map(np.isfinite, (lon, lat))):
        raise UnprocessableEntity(f"{label} ({text}) is outside WGS-84 longitude/latitude ranges")
    return lon, lat


def _area_line(index: AreaIndex) -> AreaLine:
    return AreaLine(
        area=index.area,
        travel_time_index=round(index.tti, 4),
        traffic_performance_index=round(index.tpi, 3),
        level=index.level.key,
        level_zh=index.level.label_zh,
        level_en=index.level.label_en,
        congested_share=round(index.congested_share, 4),
        segments=index.segments,
        observed_segments=index.observed_segments,
    )


def _segment_line(live: LiveNetwork, edge: int, observed: bool) -> SegmentLine:
    net = live.network
    seg = net.segments[edge]
    speed = float(live.speed_kmh[edge])
    state = segment_state(seg.road_class, speed)
    district_code = int(live.district_codes[edge])
    a, b = int(net.src[edge]), int(net.dst[edge])
    return SegmentLine(
        id=segment_urn(seg.id),
        name=seg.name,
        road_class=seg.road_class.value,
        length_m=round(float(net.length_m[edge]), 2),
        lanes=int(net.lanes[edge]),
        free_flow_kmh=float(net.free_flow_kmh[edge]),
        speed_kmh=round(speed, 2),
        observed=observed,
        state=state.key,
        state_zh=state.label_zh,
        travel_time_s=round(live.router.weights[edge], 2),
        travel_time_index=round(float(net.free_flow_kmh[edge]) / max(speed, 0.1), 4),
        district=live.district_names[district_code] if district_code < len(live.district_names) else None,
        start_point=[float(net.lon[a]), float(net.lat[a])],
        end_point=[float(net.lon[b]), float(net.lat[b])],
    )


def build_router(traffic: LiveTraffic, settings: TrafficSettings) -> APIRouter:
    # every answer comes from the live network, built from the road segments and flow readings:
    # a department that may not read those datasets whole is refused, as the broker would refuse
    router = APIRouter(
        tags=["traffic"], dependencies=[Depends(entities.reads_types("RoadSegment", "TrafficFlowObserved"))]
    )

    @router.post(
        "/network",
        response_model=ImportResult,
        status_code=201,
        summary="Import a road network: SUMO .net.xml, OpenStreetMap .osm or .pbf",
    )
    async def import_network(
        session: DbSession,
        tenant: RequestTenant,
        file: Annotated[UploadFile, File(description="The network file; its name's ending tells the format")],
        format: Annotated[Literal["sumo", "osm", "pbf"] | None, Form()] = None,
        district: Annotated[
            str | None, Form(pattern=r"^\d{6}$", description="District code of every imported segment")
        ] = None,
        origin: Annotated[
            str | None, Form(description="lon,lat of x = y = 0 of a SUMO network with no projection")
        ] = None,
    ) -> ImportResult:
        fmt = format or format_for_name(file.filename or "")
        if fmt is None:
            raise UnprocessableEntity(
                f"cannot tell the format of {file.filename!r}: name it .net.xml, .osm or .pbf, or give format"
            )
        anchor = parse_point(origin, "origin") if origin else None
        limit = settings.max_upload_mb * 1024 * 1024
        with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as spool:
            size = 0
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise NetworkFileTooLarge(f"network files are limited to {settings.max_upload_mb} MB")
                spool.write(chunk)
            spool.flush()
            try:
                imported = await asyncio.to_thread(read_network, spool.name, fmt, origin=anchor)
            except NetworkFormatError as exc:
                raise UnprocessableEntity(f"{file.filename}: {exc}") from None
        if not imported.segments:
            raise UnprocessableEntity(f"{file.filename}: no drivable road in the file")
        live = await traffic.import_network(session, tenant, imported, district)
        return ImportResult(
            format=fmt,
            segments_imported=len(imported.segments),
            nodes_imported=len(imported.nodes),
            network_segments=live.network.segment_count,
            network_nodes=live.network.node_count,
            landmarks=len(live.router.landmarks),
        )

    @router.get("/segments", response_model=SegmentPage, summary="Road segments with their live state")
    async def segments(
        session: DbSession,
        tenant: RequestTenant,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
        state: Annotated[str | None, Query(description="Only segments in this state, e.g. severe")] = None,
        q: Annotated[
            str | None,
            Query(min_length=1, max_length=100, description="Only segments whose name or id contains this"),
        ] = None,
    ) -> SegmentPage:
        live = await traffic.require(session, tenant)
        observed = live.observed(utcnow(), traffic.observation_ttl)
        edges = np.arange(live.network.segment_count)
        if state is not None:
            try:
                wanted = SegmentState.from_key(state)
            except ValueError:
                keys = ", ".join(s.key for s in SegmentState)
                raise UnprocessableEntity(f"unknown state {state!r}: one of {keys}") from None
            edges = edges[live.states() == int(wanted)]
        if q is not None:
            edges = edges[segments_matching(live.network, q)[edges]]
        page = edges[offset : offset + limit].tolist()
        return SegmentPage(
            total=len(edges), segments=[_segment_line(live, e, bool(observed[e])) for e in page]
        )

    @router.get("/segments/{segment_id}", response_model=SegmentLine, summary="One segment's live state")
    async def segment(session: DbSession, tenant: RequestTenant, segment_id: str) -> SegmentLine:
        live = await traffic.require(session, tenant)
        edge = live.network.segment_index.get(segment_id.removeprefix("urn:ngsi-ld:RoadSegment:"))
        if edge is None:
            raise NotFound(f"no road segment {segment_id}")
        observed = bool(live.observed(utcnow(), traffic.observation_ttl)[edge])
        return _segment_line(live, edge, observed)

    @router.get(
        "/state", response_model=LiveState, summary="Live TTI and TPI of the network and each district"
    )
    async def state(session: DbSession, tenant: RequestTenant) -> LiveState:
        live = await traffic.require(session, tenant)
        now = utcnow()
        indices = live.indices(now, traffic.observation_ttl)
        observed = live.observed(now, traffic.observation_ttl)
        states = live.states()[observed]
        counts = (
            np.bincount(states, minlength=len(SegmentState)) if len(states) else np.zeros(len(SegmentState))
        )
        return LiveState(
            at=now,
            segments=live.network.segment_count,
            observed_segments=int(observed.sum()),
            by_state={s.key: int(counts[int(s)]) for s in SegmentState},
            network=_area_line(indices[-1]),
            districts=[_area_line(i) for i in indices[:-1]],
        )

    @router.post(
        "/indices/publish",
        response_model=LiveState,
        summary="Write segment states and the indices as entities now (the app also does it periodically)",
    )
    async def publish(session: DbSession, tenant: RequestTenant) -> LiveState:
        indices = await traffic.publish(session, tenant)
        live = await traffic.require(session, tenant)
        now = utcnow()
        observed = live.observed(now, traffic.observation_ttl)
        states = live.states()[observed]
        counts = (
            np.bincount(states, minlength=len(SegmentState)) if len(states) else np.zeros(len(SegmentState))
        )
        return LiveState(
            at=now,
            segments=live.network.segment_count,
            observed_segments=int(observed.sum()),
            by_state={s.key: int(counts[int(s)]) for s in SegmentState},
            network=_area_line(indices[-1]),
            districts=[_area_line(i) for i in indices[:-1]],
        )

    @router.get("/indices/history", response_model=IndexHistory, summary="TTI, TPI and level over time")
    async def history(
        session: DbSession,
        tenant: RequestTenant,
        area: Annotated[str, Query(description="A district code, or 'network'")] = NETWORK_AREA,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> IndexHistory:
        end = end or utcnow()
        start = start or end - timedelta(days=1)
        if start.tzinfo is None or end.tzinfo is None:
            raise UnprocessableEntity("start and end need a time zone (e.g. 2026-11-21T08:00:00Z)")
        if start >= end:
            raise UnprocessableEntity("start must be before end")
        found = await index_history(session, tenant, area, start, end)
        return IndexHistory(
            area=area,
            **{
                key: [HistoryPoint(at=t, value=v) for t, v in found[attr]]
                for key, attr in (
                    ("travel_time_index", "travelTimeIndex"),
                    ("traffic_performance_index", "trafficPerformanceIndex"),
                    ("congestion_level", "congestionLevel"),
                )
            },
        )

    @router.get(
        "/route",
        response_model=RouteAnswer,
        summary="Fastest route on live travel times, with alternatives; 404 with a reason when none",
    )
    async def route(
        session: DbSession,
        tenant: RequestTenant,
        origin: Annotated[str, Query(alias="from", description="lon,lat")],
        destination: Annotated[str, Query(alias="to", description="lon,lat")],
        alternatives: Annotated[int, Query(ge=0, le=3)] = 0,
        avoid: Annotated[
            Literal["severe"] | None, Query(description="'severe': keep off severe congestion")
        ] = None,
    ) -> RouteAnswer:
        a = parse_point(origin, "from")
        b = parse_point(destination, "to")
        live = await traffic.require(session, tenant)
        source = snap(live, *a, leaving=True, max_distance=settings.snap_distance, label="from")
        target = snap(live, *b, leaving=False, max_distance=settings.snap_distance, label="to")
        paths = plan_routes(live, source, target, alternatives=alternatives, avoid_severe=avoid == "severe")
        net = live.network
        states = live.states()
        answer = []
        for path in paths:
            segs = [
                RouteSegment(
                    id=segment_urn(net.segments[e].id),
                    name=net.segments[e].name,
                    state=SegmentState(int(states[e])).key,
                    speed_kmh=round(float(live.speed_kmh[e]), 2),
                    travel_time_s=round(live.router.weights[e], 2),
                    length_m=round(float(net.length_m[e]), 2),
                )
                for e in path.edges
            ]
            answer.append(
                Route(
                    travel_time_s=round(path.seconds, 2),
                    free_flow_time_s=round(float(live.router.free_flow[path.edges].sum()), 2),
                    length_m=round(path.length_m, 2),
                    geometry={"type": "LineString", "coordinates": path_geometry(net, path)},
                    segments=segs,
                )
            )

        def snapped(point: int, distance: float) -> SnappedPoint:
            return SnappedPoint(
                junction=net.node_ids[point],
                lon=float(net.lon[point]),
                lat=float(net.lat[point]),
                distance_m=round(distance, 1),
            )

        return RouteAnswer(
            origin=snapped(source.node, source.distance_m),
            destination=snapped(target.node, target.distance_m),
            routes=answer,
        )

    @router.get(
        "/parking/nearest",
        response_model=ParkingAnswer,
        summary="Nearest off-street lots and on-street spots with free places",
        dependencies=[Depends(entities.reads_types("OffStreetParking", "ParkingSpot"))],
    )
    async def parking(
        session: DbSession,
        tenant: RequestTenant,
        lon: Annotated[float, Query(ge=-180, le=180)],
        lat: Annotated[float, Query(ge=-90, le=90)],
        limit: Annotated[int, Query(ge=1, le=100)] = 5,
        max_distance: Annotated[float | None, Query(gt=0, le=50_000, description="metres")] = None,
    ) -> ParkingAnswer:
        found = await nearest_free_parking(
            session, tenant, lon, lat, limit=limit, max_distance=max_distance or settings.parking_distance
        )
        return ParkingAnswer(
            parking=[
                ParkingLine(
                    id=p.id,
                    type=p.type,
                    name=p.name,
                    free=p.free,
                    total=p.total,
                    distance_m=round(p.distance_m, 1),
                    location=p.location,
                )
                for p in found
            ]
        )

    @router.get(
        "/forecast/{segment_id}",
        response_model=ForecastAnswer,
        summary="Speed forecast of a segment at 15, 30 and 60 minutes",
    )
    async def forecast(session: DbSession, tenant: RequestTenant, segment_id: str) -> ForecastAnswer:
        live = await traffic.require(session, tenant)
        seg_id = segment_id.removeprefix("urn:ngsi-ld:RoadSegment:")
        edge = live.network.segment_index.get(seg_id)
        if edge is None:
            raise NotFound(f"no road segment {segment_id}")
        road_class: RoadClass = live.network.segments[edge].road_class
        now = utcnow()
        current = float(live.speed_kmh[edge])
        points = await speed_history(session, tenant, seg_id, FORECAST_HISTORY_DAYS)
        times = fc.forecast_times(now)
        if points:
            series = fc.resample(points, end=now)
            series.values[-1] = current if not np.isfinite(series.values[-1]) else series.values[-1]
            observed_slots = int(np.isfinite(series.values).sum())
        else:
            series, observed_slots = None, 0
        if series is not None and observed_slots >= FORECAST_MIN_OBSERVED_SLOTS:
            model = fc.fit(series)
            predicted = model.predict(series)
            horizon_steps = max(fc.HORIZONS_MINUTES) // fc.STEP_MINUTES
            ahead = fc.SpeedSeries(series.start, np.append(series.values, np.full(horizon_steps, np.nan)))
            expected = model.expected(ahead)
            last = len(series.values) - 1
            baseline = {h: float(expected[last + h // fc.STEP_MINUTES]) for h in fc.HORIZONS_MINUTES}
            method = "profile+regression"
        else:
            predicted = dict.fromkeys(fc.HORIZONS_MINUTES, current)
            mean = float(np.nanmean(series.values)) if series is not None else current
            baseline = dict.fromkeys(fc.HORIZONS_MINUTES, mean)
            method = "persistence"
        return ForecastAnswer(
            segment=segment_urn(seg_id),
            method=method,
            observations=len(points),
            current_speed_kmh=round(current, 2),
            forecasts=[
                ForecastLine(
                    horizon_minutes=h,
                    at=times[h],
                    speed_kmh=round(predicted[h], 2),
                    baseline_kmh=round(baseline[h], 2),
                    state=segment_state(road_class, predicted[h]).key,
                )
                for h in fc.HORIZONS_MINUTES
            ],
        )

    return router
