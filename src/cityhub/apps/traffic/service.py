"""Live traffic per tenant: the road network and its router in memory, live speeds and flows from
detector and floating-car observations, segment states and indices, persisted back as entities.

Segments are NGSI-LD ``RoadSegment`` entities: the network in memory is built from them (on first
use in a process, and again when segments are added or removed outside an import), so every hub
process can serve routes. Live speeds arrive as ``TrafficFlowObserved`` entities (``refRoadSegment``,
``averageVehicleSpeed`` in km/h, ``intensity`` in vehicles per hour) or as ``averageVehicleSpeed``
written on the segment itself.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.apps.traffic.congestion import AreaIndex, SegmentState, area_indices, segment_states
from cityhub.apps.traffic.importers import ImportedNetwork, safe_id
from cityhub.apps.traffic.network import Node, RoadClass, RoadNetwork, Segment, build_network, haversine_m
from cityhub.apps.traffic.routing import Path, Router
from cityhub.plugins import NotFound, entities, isoformat, utcnow

SEGMENT_TYPE = "RoadSegment"
FLOW_TYPE = "TrafficFlowObserved"
INDEX_TYPE = "TrafficPerformanceIndex"
SEGMENT_PREFIX = "urn:ngsi-ld:RoadSegment:"
NETWORK_AREA = "network"
PAGE = 1000
WRITE_BATCH = 500
#: Hourly flow per lane assumed for a segment with no flow observed, to weight it in the indices.
DEFAULT_FLOW_PER_LANE = {
    RoadClass.EXPRESSWAY: 1200.0,
    RoadClass.ARTERIAL: 800.0,
    RoadClass.SECONDARY: 500.0,
    RoadClass.BRANCH: 300.0,
}
#: Floating cars: how far from a segment a position still matches it, and the weight of one car's
#: speed against the segment's recent speed.
PROBE_MATCH_DISTANCE = 40.0
PROBE_WEIGHT = 0.3
PROBE_TYPE = "Vehicle"
#: With ``avoid=severe``, segments in severe congestion count this many times their travel time.
SEVERE_PENALTY = 10.0


def segment_urn(segment_id: str) -> str:
    return f"{SEGMENT_PREFIX}{segment_id}"


def index_urn(tenant: str, area: str) -> str:
    return f"urn:ngsi-ld:{INDEX_TYPE}:{tenant}:{safe_id(area)}"


def _prop(value: Any, unit: str | None = None, observed_at: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value}
    if unit:
        out["unitCode"] = unit
    if observed_at:
        out["observedAt"] = observed_at
    return out


def _geo(geometry: dict[str, Any]) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": geometry}


def segment_entity(network: RoadNetwork, edge: int, district: str | None) -> dict[str, Any]:
    seg = network.segments[edge]
    a, b = int(network.src[edge]), int(network.dst[edge])
    start = [float(network.lon[a]), float(network.lat[a])]
    end = [float(network.lon[b]), float(network.lat[b])]
    line = [list(p) for p in network.segment_shape(edge)]
    entity: dict[str, Any] = {
        "id": segment_urn(seg.id),
        "type": SEGMENT_TYPE,
        "roadClass": _prop(seg.road_class.value),
        "length": _prop(round(seg.length_m, 2), "MTR"),
        "totalLaneNumber": _prop(seg.lanes),
        "maximumAllowedSpeed": _prop(round(seg.free_flow_kmh, 2), "KMH"),
        "freeFlowSpeed": _prop(round(seg.free_flow_kmh, 2), "KMH"),
        "startJunction": _prop(network.node_ids[a]),
        "endJunction": _prop(network.node_ids[b]),
        "startPoint": _geo({"type": "Point", "coordinates": start}),
        "endPoint": _geo({"type": "Point", "coordinates": end}),
    }
    if len({tuple(p) for p in line}) >= 2:
        entity["location"] = _geo({"type": "LineString", "coordinates": line})
    else:
        entity["location"] = _geo({"type": "Point", "coordinates": start})
    if seg.name:
        entity["name"] = _prop(seg.name)
    if seg.road:
        entity["refRoad"] = {"type": "Relationship", "object": f"urn:ngsi-ld:Road:{safe_id(seg.road)}"}
    if district:
        entity["areaServed"] = _prop(district)
    return entity


def _value(entity: Mapping[str, Any], name: str) -> Any:
    attr = entity.get(name)
    if isinstance(attr, list):  # several datasetIds: the first
        attr = attr[0] if attr else None
    if not isinstance(attr, dict):
        return None
    if attr.get("type") == "Relationship":
        return attr.get("object")
    return attr.get("value")


def _observed_at(entity: Mapping[str, Any], name: str) -> datetime | None:
    attr = entity.get(name)
    if isinstance(attr, list):
        attr = attr[0] if attr else None
    if isinstance(attr, dict) and isinstance(attr.get("observedAt"), str):
        try:
            return datetime.fromisoformat(attr["observedAt"].replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _observed_edges(live: LiveNetwork, target: str, direction: Any) -> list[int]:
    """The segments a detector's observation is for: the one it names, and that road's other
    direction (an import names it ``<id>-r``) unless ``laneDirection`` says which one it counts
    (``forward``: the named segment, ``backward``: the other)."""
    seg_id = target[len(SEGMENT_PREFIX) :] if target.startswith(SEGMENT_PREFIX) else target
    index = live.network.segment_index
    wanted = {"forward": [seg_id], "backward": [f"{seg_id}-r"]}.get(str(direction), [seg_id, f"{seg_id}-r"])
    return [index[name] for name in wanted if name in index]


def segment_from_entity(entity: Mapping[str, Any]) -> tuple[Segment, Node, Node, str | None] | None:
    """The segment an entity describes with its two junctions and district; None when it lacks
    what routing needs (junctions, points, length, speed)."""
    try:
        seg_id = str(entity["id"])[len(SEGMENT_PREFIX) :]
        start, end = _value(entity, "startPoint"), _value(entity, "endPoint")
        a, b = str(_value(entity, "startJunction")), str(_value(entity, "endJunction"))
        length = float(_value(entity, "length"))
        speed = float(_value(entity, "freeFlowSpeed") or _value(entity, "maximumAllowedSpeed"))
        road_class = RoadClass(_value(entity, "roadClass") or RoadClass.BRANCH.value)
        lanes = int(_value(entity, "totalLaneNumber") or 1)
        location = _value(entity, "location")
        shape = (
            [(float(p[0]), float(p[1])) for p in location["coordinates"]]
            if isinstance(location, dict) and location.get("type") == "LineString"
            else []
        )
        node_a = Node(a, float(start["coordinates"][0]), float(start["coordinates"][1]))
        node_b = Node(b, float(end["coordinates"][0]), float(end["coordinates"][1]))
    except (KeyError, TypeError, ValueError):
        return None
    road = _value(entity, "refRoad")
    district = _value(entity, "areaServed")
    segment = Segment(
        seg_id,
        a,
        b,
        length,
        speed,
        road_class,
        lanes,
        name=_value(entity, "name"),
        road=str(road).rsplit(":", 1)[-1] if road else None,
        shape=shape,
    )
    return segment, node_a, node_b, str(district) if district else None


@dataclass
class LiveNetwork:
    """One tenant's network with its live state (arrays indexed by segment)."""

    network: RoadNetwork
    router: Router
    district_names: list[str]
    district_codes: npt.NDArray[np.int64]
    speed_kmh: npt.NDArray[np.float64] = field(init=False)
    flow: npt.NDArray[np.float64] = field(init=False)
    flow_observed: npt.NDArray[np.bool_] = field(init=False)
    observed_at: npt.NDArray[np.float64] = field(init=False)  # epoch seconds, NaN never
    published_state: npt.NDArray[np.int8] = field(init=False)
    published_speed: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        m = self.network.segment_count
        self.speed_kmh = self.network.free_flow_kmh.copy()
        default = np.array(
            [DEFAULT_FLOW_PER_LANE[RoadClass.from_code(int(c))] for c in self.network.road_class]
        )
        self.flow = default * self.network.lanes
        self.flow_observed = np.zeros(m, dtype=bool)
        self.observed_at = np.full(m, np.nan)
        self.published_state = np.full(m, -1, dtype=np.int8)
        self.published_speed = np.full(m, np.nan)

    def observe(self, edge: int, speed_kmh: float | None, flow: float | None, at: datetime) -> None:
        if speed_kmh is not None and math.isfinite(speed_kmh) and speed_kmh >= 0:
            self.speed_kmh[edge] = speed_kmh
            self.observed_at[edge] = at.timestamp()
            live = min(max(speed_kmh, 0.5), float(self.network.free_flow_kmh[edge]))
            self.router.update_travel_times([edge], [float(self.network.length_m[edge]) / (live / 3.6)])
        if flow is not None and math.isfinite(flow) and flow >= 0:
            self.flow[edge] = flow
            self.flow_observed[edge] = True

    def observe_many(self, edges: Sequence[int], speeds_kmh: Sequence[float], at: datetime) -> None:
        """:meth:`observe` for a batch of speeds."""
        idx = np.asarray(edges, dtype=np.int64)
        speeds = np.asarray(speeds_kmh, dtype=np.float64)
        ok = np.isfinite(speeds) & (speeds >= 0)
        idx, speeds = idx[ok], speeds[ok]
        self.speed_kmh[idx] = speeds
        self.observed_at[idx] = at.timestamp()
        live = np.minimum(np.maximum(speeds, 0.5), self.network.free_flow_kmh[idx])
        self.router.update_travel_times(idx.tolist(), (self.network.length_m[idx] / (live / 3.6)).tolist())

    def match_probe(self, lon: float, lat: float, heading: float | None) -> int | None:
        """The segment a floating car at (lon, lat) driving towards ``heading`` (degrees clockwise
        from north) is on: among the segments at the nearest junction, the closest one within
        PROBE_MATCH_DISTANCE metres whose direction is within 60° of the heading; None if none."""
        net = self.network
        node, _ = net.nearest_node(lon, lat)
        candidates = net.out_edges[net.out_start[node] : net.out_start[node + 1]].tolist()
        candidates += net.in_edges[net.in_start[node] : net.in_start[node + 1]].tolist()
        scale = math.cos(math.radians(lat)) * 111_195.0
        best: tuple[float, int] | None = None
        for edge in candidates:
            shape = net.segment_shape(edge)
            if heading is not None:
                (x0, y0), (x1, y1) = shape[0], shape[-1]
                bearing = math.degrees(math.atan2((x1 - x0) * scale, (y1 - y0) * 111_195.0)) % 360
                if abs((bearing - heading + 180) % 360 - 180) > 60:
                    continue
            gap = min(_point_to_piece_m(lon, lat, a, b, scale) for a, b in itertools.pairwise(shape))
            if gap <= PROBE_MATCH_DISTANCE and (best is None or gap < best[0]):
                best = (gap, edge)
        return best[1] if best else None

    def probe(self, edge: int, speed_kmh: float, at: datetime, ttl: float) -> None:
        """A floating car's speed on a segment: smoothed into a recent observation, else taken."""
        recent = math.isfinite(self.observed_at[edge]) and self.observed_at[edge] >= at.timestamp() - ttl
        value = (
            (1 - PROBE_WEIGHT) * float(self.speed_kmh[edge]) + PROBE_WEIGHT * speed_kmh
            if recent
            else speed_kmh
        )
        self.observe(edge, value, None, at)

    def observed(self, now: datetime, ttl: float) -> npt.NDArray[np.bool_]:
        with np.errstate(invalid="ignore"):
            return np.isfinite(self.observed_at) & (self.observed_at >= now.timestamp() - ttl)

    def expire(self, now: datetime, ttl: float) -> None:
        """Observations older than ``ttl`` seconds no longer count: back to free-flow for routing."""
        stale = np.isfinite(self.observed_at) & ~self.observed(now, ttl)
        if stale.any():
            self.speed_kmh[stale] = self.network.free_flow_kmh[stale]
            self.observed_at[stale] = np.nan
            edges = np.flatnonzero(stale)
            self.router.update_travel_times(edges.tolist(), self.router.free_flow[edges].tolist())

    def states(self) -> npt.NDArray[np.int8]:
        return segment_states(self.network.road_class, self.speed_kmh)

    def indices(self, now: datetime, ttl: float) -> list[AreaIndex]:
        return area_indices(
            length_m=self.network.length_m,
            speed_kmh=self.speed_kmh,
            free_flow_kmh=self.network.free_flow_kmh,
            weight=self.flow,
            states=self.states(),
            area_codes=self.district_codes,
            area_names=self.district_names,
            observed=self.observed(now, ttl),
        )


def _point_to_piece_m(
    lon: float, lat: float, a: tuple[float, float], b: tuple[float, float], scale: float
) -> float:
    """Metres from (lon, lat) to the piece a-b, on a local plane (``scale``: metres per degree of
    longitude there)."""
    ax, ay = (a[0] - lon) * scale, (a[1] - lat) * 111_195.0
    bx, by = (b[0] - lon) * scale, (b[1] - lat) * 111_195.0
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
    return math.hypot(ax + t * dx, ay + t * dy)


def live_network(network: RoadNetwork, districts: list[str | None], *, landmarks: int) -> LiveNetwork:
    names = sorted({d for d in districts if d})
    code = {name: i for i, name in enumerate(names)}
    # segments of no district get their own (unnamed) bin, left out of the per-district list
    codes = np.array([code.get(d, len(names)) if d else len(names) for d in districts], dtype=np.int64)
    return LiveNetwork(network, Router(network, landmarks=landmarks), names, codes)


class LiveTraffic:
    """Every tenant's :class:`LiveNetwork` in this process, loaded on first use."""

    def __init__(self, *, landmarks: int = 16, observation_ttl: float = 900.0) -> None:
        self.landmarks = landmarks
        self.observation_ttl = observation_ttl
        self._networks: dict[str, LiveNetwork] = {}
        self._stale: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def tenants(self) -> list[str]:
        return list(self._networks)

    async def network(self, session: AsyncSession, tenant: str) -> LiveNetwork | None:
        """The tenant's network, loaded from its segment entities if this process has none yet or
        segments changed outside an import; None when the tenant has no segments."""
        if tenant in self._networks and tenant not in self._stale:
            return self._networks[tenant]
        async with self._locks.setdefault(tenant, asyncio.Lock()):
            if tenant in self._networks and tenant not in self._stale:
                return self._networks[tenant]
            self._stale.discard(tenant)
            loaded = await self._load(session, tenant)
            if loaded is None:
                self._networks.pop(tenant, None)
            else:
                previous = self._networks.get(tenant)
                if previous is not None:
                    _carry_over(previous, loaded)
                self._networks[tenant] = loaded
            return loaded

    async def require(self, session: AsyncSession, tenant: str) -> LiveNetwork:
        found = await self.network(session, tenant)
        if found is None:
            raise NotFound(
                f"tenant {tenant} has no road network: import one first (POST /api/v1/traffic/network)",
                reason="no_network",
            )
        return found

    async def _load(self, session: AsyncSession, tenant: str) -> LiveNetwork | None:
        nodes: dict[str, Node] = {}
        segments: list[Segment] = []
        districts: list[str | None] = []
        speeds: list[tuple[int, float, datetime | None]] = []
        offset = 0
        while True:
            page = await entities.find_entities(session, tenant, type=SEGMENT_TYPE, limit=PAGE, offset=offset)
            for entity in page:
                parsed = segment_from_entity(entity)
                if parsed is None:
                    continue
                segment, a, b, district = parsed
                nodes.setdefault(a.id, a)
                nodes.setdefault(b.id, b)
                speed = _value(entity, "averageVehicleSpeed")
                if isinstance(speed, int | float):
                    speeds.append((len(segments), float(speed), _observed_at(entity, "averageVehicleSpeed")))
                segments.append(segment)
                districts.append(district)
            if len(page) < PAGE:
                break
            offset += PAGE
        if not segments:
            return None
        # seconds of CPU for a city (landmark trees): off the event loop
        network = await asyncio.to_thread(build_network, list(nodes.values()), segments)
        live = await asyncio.to_thread(live_network, network, districts, landmarks=self.landmarks)
        for edge, speed, at in speeds:
            if at is not None:
                live.observe(edge, speed, None, at)
                live.published_speed[edge] = speed
        live.published_state = live.states()
        return live

    async def import_network(
        self, session: AsyncSession, tenant: str, imported: ImportedNetwork, district: str | None
    ) -> LiveNetwork:
        """Write the imported segments as entities and install the network in memory (merged with
        the segments the tenant already has)."""
        network = build_network(imported.nodes, imported.segments)
        batch: list[dict[str, Any]] = []
        for edge in range(network.segment_count):
            batch.append(segment_entity(network, edge, district or network.segments[edge].district))
            if len(batch) >= WRITE_BATCH:
                await entities.write_entities(session, tenant, batch)
                batch = []
        if batch:
            await entities.write_entities(session, tenant, batch)
        self._stale.add(tenant)
        live = await self.network(session, tenant)
        assert live is not None
        return live

    def apply_change(self, tenant: str, change: Mapping[str, Any]) -> None:
        """Take one ``EntitiesChanged`` change: an observation, or a segment added or removed."""
        live = self._networks.get(tenant)
        types = set(change.get("types") or ())
        if entities.expand(SEGMENT_TYPE) in types:
            if live is None:
                return
            seg_id = str(change["id"])[len(SEGMENT_PREFIX) :]
            edge = live.network.segment_index.get(seg_id)
            if change.get("op") == "delete" or edge is None:
                self._stale.add(tenant)
                return
            if change.get("entity") is None:
                return
            entity = entities.compact_entity(change["entity"])
            speed = _value(entity, "averageVehicleSpeed")
            # the app's own write-back rounds to 0.01 km/h: that is not a new observation
            if isinstance(speed, int | float) and abs(float(speed) - live.speed_kmh[edge]) > 0.006:
                at = _observed_at(entity, "averageVehicleSpeed") or utcnow()
                live.observe(edge, float(speed), None, at)
        elif entities.expand(PROBE_TYPE) in types and live is not None and change.get("entity") is not None:
            entity = entities.compact_entity(change["entity"])
            speed, heading, location = (_value(entity, k) for k in ("speed", "heading", "location"))
            point = (
                _point_of(location)
                if isinstance(location, dict) and location.get("type") == "Point"
                else None
            )
            if not isinstance(speed, int | float) or point is None or not math.isfinite(speed) or speed < 0:
                return
            edge = live.match_probe(*point, float(heading) if isinstance(heading, int | float) else None)
            if edge is not None:
                at = _observed_at(entity, "speed") or _observed_at(entity, "location") or utcnow()
                live.probe(edge, float(speed), at, self.observation_ttl)
        elif entities.expand(FLOW_TYPE) in types and live is not None and change.get("entity") is not None:
            entity = entities.compact_entity(change["entity"])
            target = _value(entity, "refRoadSegment")
            edges = _observed_edges(live, str(target), _value(entity, "laneDirection")) if target else []
            speed = _value(entity, "averageVehicleSpeed")
            flow = _value(entity, "intensity")
            at = _observed_at(entity, "averageVehicleSpeed") or _observed_at(entity, "intensity") or utcnow()
            for edge in edges:
                live.observe(
                    edge,
                    float(speed) if isinstance(speed, int | float) else None,
                    float(flow) if isinstance(flow, int | float) else None,
                    at,
                )

    async def refresh_bounds(self, tenant: str) -> None:
        """The router brought to the current live times, in worker threads: its customisation
        (see ``Router.install_metric``; segments changed meanwhile are applied at the next query)
        and tighter ALT bounds (see ``Router.install_bounds``)."""
        live = self._networks.get(tenant)
        if live is None:
            return
        metric = await asyncio.to_thread(live.router.prepare_metric)
        if self._networks.get(tenant) is live:
            live.router.install_metric(metric)
        bounds = await asyncio.to_thread(live.router.floor_bounds)
        if self._networks.get(tenant) is live:
            live.router.install_bounds(bounds)

    async def publish(self, session: AsyncSession, tenant: str) -> list[AreaIndex]:
        """Write the segments whose state or speed changed since the last time (``congestionLevel``,
        ``averageVehicleSpeed``, ``travelTimeIndex``) and the indices of every district and the
        network as ``TrafficPerformanceIndex`` entities (their history is the broker's)."""
        live = await self.require(session, tenant)
        now = utcnow()
        live.expire(now, self.observation_ttl)
        observed = live.observed(now, self.observation_ttl)
        states = live.states()
        changed = np.flatnonzero(
            observed & ((states != live.published_state) | (live.speed_kmh != live.published_speed))
        )
        at = isoformat(now)
        net = live.network
        batch = []
        for edge in changed.tolist():
            state = SegmentState(int(states[edge]))
            tti = float(net.free_flow_kmh[edge] / max(live.speed_kmh[edge], 0.1))
            batch.append(
                {
                    "id": segment_urn(net.segments[edge].id),
                    "type": SEGMENT_TYPE,
                    "congestionLevel": _prop(state.key, observed_at=at),
                    "averageVehicleSpeed": _prop(round(float(live.speed_kmh[edge]), 2), "KMH", at),
                    "travelTimeIndex": _prop(round(tti, 3), observed_at=at),
                }
            )
            if len(batch) >= WRITE_BATCH:
                await entities.write_entities(session, tenant, batch)
                batch = []
        if batch:
            await entities.write_entities(session, tenant, batch)
        live.published_state[changed] = states[changed]
        live.published_speed[changed] = live.speed_kmh[changed]
        indices = live.indices(now, self.observation_ttl)
        await entities.write_entities(
            session, tenant, [_index_entity(tenant, index, at) for index in indices]
        )
        return indices


def _carry_over(previous: LiveNetwork, loaded: LiveNetwork) -> None:
    """Live observations survive a reload of the network."""
    for seg_id, old in previous.network.segment_index.items():
        new = loaded.network.segment_index.get(seg_id)
        if new is None or not math.isfinite(previous.observed_at[old]):
            continue
        at = datetime.fromtimestamp(float(previous.observed_at[old]), tz=utcnow().tzinfo)
        flow = float(previous.flow[old]) if previous.flow_observed[old] else None
        loaded.observe(new, float(previous.speed_kmh[old]), flow, at)
        loaded.published_state[new] = previous.published_state[old]
        loaded.published_speed[new] = previous.published_speed[old]


def _index_entity(tenant: str, index: AreaIndex, at: str) -> dict[str, Any]:
    return {
        "id": index_urn(tenant, index.area),
        "type": INDEX_TYPE,
        "areaServed": _prop(index.area),
        "travelTimeIndex": _prop(round(index.tti, 4), observed_at=at),
        "trafficPerformanceIndex": _prop(round(index.tpi, 3), observed_at=at),
        "congestionLevel": _prop(index.level.key, observed_at=at),
        "congestedShare": _prop(round(index.congested_share, 4), observed_at=at),
        "observedSegments": _prop(index.observed_segments, observed_at=at),
    }


async def index_history(
    session: AsyncSession, tenant: str, area: str, start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, Any]]]:
    return await entities.read_history(
        session,
        tenant,
        index_urn(tenant, area),
        ["travelTimeIndex", "trafficPerformanceIndex", "congestionLevel"],
        start,
        end,
    )


async def speed_history(
    session: AsyncSession, tenant: str, segment_id: str, days: int
) -> list[tuple[datetime, float]]:
    end = utcnow()
    found = await entities.read_history(
        session, tenant, segment_urn(segment_id), ["averageVehicleSpeed"], end - timedelta(days=days), end
    )
    return [(t, float(v)) for t, v in found["averageVehicleSpeed"] if isinstance(v, int | float)]


def segments_matching(network: RoadNetwork, text: str) -> npt.NDArray[np.bool_]:
    """Which segments have ``text`` in their name or id (case-insensitive), e.g. for an operator
    looking up a road by name to route from it."""
    needle = text.strip().casefold()
    return np.array(
        [needle in (seg.name or "").casefold() or needle in seg.id.casefold() for seg in network.segments],
        dtype=bool,
    )


# ---------------------------------------------------------------- routing


@dataclass(frozen=True)
class Snapped:
    node: int
    distance_m: float


def snap(
    live: LiveNetwork, lon: float, lat: float, *, leaving: bool, max_distance: float, label: str
) -> Snapped:
    node, distance = live.network.nearest_node(lon, lat, need_out=leaving, need_in=not leaving)
    if distance > max_distance:
        raise NotFound(
            f"no road within {max_distance:.0f} m of {label} ({lon},{lat}); the nearest junction is "
            f"{distance:.0f} m away"
        )
    return Snapped(node, distance)


def plan_routes(
    live: LiveNetwork, source: Snapped, target: Snapped, *, alternatives: int, avoid_severe: bool
) -> list[Path]:
    penalties = None
    if avoid_severe:
        severe = np.flatnonzero(live.states() == SegmentState.SEVERE)
        penalties = dict.fromkeys(severe.tolist(), SEVERE_PENALTY)
    routes = live.router.routes(source.node, target.node, alternatives=alternatives, penalties=penalties)
    if not routes:
        raise NotFound(
            f"no route: junction {live.network.node_ids[target.node]} cannot be reached from "
            f"junction {live.network.node_ids[source.node]} on this tenant's road network "
            "(the network is not connected between them)",
            reason="unconnected",
        )
    return routes


def path_geometry(network: RoadNetwork, path: Path) -> list[list[float]]:
    if not path.edges:
        v = path.nodes[0]
        return [[float(network.lon[v]), float(network.lat[v])]] * 2
    points: list[list[float]] = []
    for e in path.edges:
        shape = [list(p) for p in network.segment_shape(e)]
        points.extend(shape[1:] if points else shape)
    return points


# ---------------------------------------------------------------- parking


@dataclass(frozen=True)
class FreeParking:
    id: str
    type: str
    name: str | None
    free: int
    total: int | None
    distance_m: float
    location: dict[str, Any]


def _point_of(geometry: Any) -> tuple[float, float] | None:
    if not isinstance(geometry, dict):
        return None
    coords: Any = geometry.get("coordinates")
    kind = geometry.get("type")
    try:
        if kind == "Point":
            return float(coords[0]), float(coords[1])
        if kind == "Polygon":
            ring = coords[0]
            return sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)
        if kind == "LineString":
            return float(coords[0][0]), float(coords[0][1])
    except (TypeError, IndexError, ValueError, ZeroDivisionError):
        return None
    return None


async def nearest_free_parking(
    session: AsyncSession, tenant: str, lon: float, lat: float, *, limit: int, max_distance: float
) -> list[FreeParking]:
    """Off-street lots with free spaces and free on-street spots near (lon, lat), nearest first."""
    near = {
        "georel": f"near;maxDistance=={max_distance:g}",
        "geometry": "Point",
        "coordinates": f"[{lon},{lat}]",
    }
    found: list[FreeParking] = []
    queries: Iterable[tuple[str, str]] = (
        ("OffStreetParking", "availableSpotNumber>0"),
        ("ParkingSpot", 'status=="free"'),
    )
    for kind, q in queries:
        offset = 0
        while True:
            page = await entities.find_entities(
                session, tenant, type=kind, q=q, limit=PAGE, offset=offset, **near
            )
            for entity in page:
                point = _point_of(_value(entity, "location"))
                if point is None:
                    continue
                free = int(_value(entity, "availableSpotNumber") or 0) if kind == "OffStreetParking" else 1
                total = _value(entity, "totalSpotNumber") if kind == "OffStreetParking" else 1
                found.append(
                    FreeParking(
                        id=str(entity["id"]),
                        type=kind,
                        name=_value(entity, "name"),
                        free=free,
                        total=int(total) if isinstance(total, int | float) else None,
                        distance_m=haversine_m(lon, lat, *point),
                        location=_value(entity, "location"),
                    )
                )
            if len(page) < PAGE:
                break
            offset += PAGE
    found.sort(key=lambda p: p.distance_m)
    return found[:limit]
