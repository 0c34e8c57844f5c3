"""SUMO-driven traffic for the demo (the optional ``sumo`` extra: ``pip install cityhub[sumo]``).

SUMO (Eclipse SUMO, the ``eclipse-sumo`` wheel: its binaries and tools, no network access) runs a
road network; the hub gets it and its traffic through its public APIs only:

- the network is imported by the traffic application (``POST /api/v1/traffic/network``, the
  ``.net.xml`` importer), so hub segments are ``sumo-<edge>``;
- each period, SUMO's per-edge mean speeds and flows go through the IoT Agent ingestion path as
  floating-car data aggregated per segment (``TrafficFlowObserved``: ``averageVehicleSpeed``,
  ``intensity``, ``refRoadSegment``, ``laneDirection=forward``), one device per edge;
- a seeded share of the vehicles, when they depart, ask the hub for a route
  (``GET /api/v1/traffic/route``) and drive it (``traci.vehicle.setRoute``).

The per-edge speed of a period is SUMO's own account: the distance the vehicles drove on the edge
over the time they spent on it (Σ v·dt ÷ Σ n·dt, from the lane subscriptions of every step), which
is how SUMO's ``edgeData`` output defines ``speed``; its flow is density × speed (vehicles per
hour). SUMO also writes its ``edgeData`` for the same periods (``edgedata.xml`` in the work
directory), the reference to check the hub's travel time index against.

Like the rest of the simulator, a client of the hub: it imports no hub code; what it knows of the
imported segments (length, free-flow speed, end points) it reads back from the broker.

Deterministic for a seed: the network, the trips and SUMO's own random numbers are seeded, and the
vehicles that take the hub's route are chosen by a hash of the seed and the vehicle id.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from cityhub.sim.runner import HttpSender, Message, Tally
from cityhub.sim.seed import SERVICE, SERVICE_PATH, _check, _listed

APIKEY = "sumo-fcd"
FLOW_TYPE = "TrafficFlowObserved"
SEGMENT_URN = "urn:ngsi-ld:RoadSegment:"
#: Where the grid network is put when no origin is given: just east of the demo city's roads.
DEFAULT_ORIGIN = (114.0, 34.72)


class SumoMissing(RuntimeError):
    """SUMO is not installed (the ``sumo`` extra); the message says how to get it."""


def sumo_home() -> Path:
    """SUMO's directory in the ``eclipse-sumo`` wheel (``bin/``, ``tools/``, ``data/``)."""
    try:
        import sumo
    except ImportError:
        raise SumoMissing(
            "SUMO is not installed: pip install 'cityhub[sumo]' (the eclipse-sumo wheel)"
        ) from None
    return Path(sumo.SUMO_HOME)


def _traci() -> Any:
    try:
        import traci
    except ImportError:
        raise SumoMissing("TraCI is not installed: pip install 'cityhub[sumo]'") from None
    return traci


def binary(name: str) -> str:
    path = sumo_home() / "bin" / name
    if not path.exists():
        raise SumoMissing(f"{path} is missing from the SUMO installation")
    return str(path)


def safe_id(raw: str) -> str:
    """The traffic application's id of an imported SUMO edge is ``sumo-`` + this: anything but
    letters, digits, '.', '_' and '-' becomes '_' and its code point in hex (docs/traffic.md)."""
    return re.sub(r"[^A-Za-z0-9._-]", lambda m: f"_{ord(m.group()):x}", raw)


def edge_ids(net: Path) -> list[str]:
    """The ids of a SUMO network's edges, internal, crossing and walking-area edges left out."""
    found = []
    for _, elem in ET.iterparse(net, events=("end",)):
        if elem.tag == "edge" and elem.get("function") not in ("internal", "crossing", "walkingarea"):
            found.append(elem.get("id", ""))
        if elem.tag in ("edge", "junction", "connection", "tlLogic"):
            elem.clear()
    return found


@dataclass(frozen=True)
class Segment:
    """An imported edge as the hub has it (read back from its ``RoadSegment`` entity)."""

    edge: str
    length_m: float
    free_flow_kmh: float
    start: tuple[float, float]  # lon, lat of its start junction
    end: tuple[float, float]


def grid_network(
    directory: Path, *, size: int = 4, length: float = 250.0, lanes: int = 2, speed_ms: float = 13.89
) -> Path:
    """A ``size`` × ``size`` grid of ``length`` m blocks made by SUMO's netgenerate (no projection:
    it is imported with an origin)."""
    out = directory / "grid.net.xml"
    subprocess.run(
        [
            binary("netgenerate"),
            "--grid",
            f"--grid.number={size}",
            f"--grid.length={length:g}",
            f"--default.lanenumber={lanes}",
            f"--default.speed={speed_ms:g}",
            "--no-turnarounds",
            "--output-file",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def write_trips(path: Path, edges: list[str], *, vehicles: int, duration: float, seed: int) -> int:
    """``vehicles`` trips between random edges departing evenly over ``duration`` seconds; SUMO
    routes them (fastest path) when they depart. Vehicles keep to the speed limit
    (``speedDev=0``), so free-flow speed is the limit, as in the hub's segments."""
    rng = random.Random(seed)
    edges = sorted(edges)
    if len(edges) < 2:
        raise ValueError("the network has fewer than two drivable edges")
    lines = ["<routes>", '    <vType id="car" speedDev="0"/>']
    for i in range(vehicles):
        start, end = rng.sample(edges, 2)
        depart = duration * i / vehicles
        lines.append(
            f'    <trip id="v{i}" type="car" depart="{depart:.2f}" from="{start}" to="{end}" '
            'departLane="best" departSpeed="max"/>'
        )
    lines.append("</routes>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vehicles


@dataclass
class EdgeAccount:
    """One edge's vehicle time (s) and distance (m) in the current period."""

    sampled: float = 0.0
    distance: float = 0.0


@dataclass
class Period:
    """What the hub was sent for one period of simulated time."""

    begin: float
    end: float
    at: datetime
    speeds_kmh: dict[str, float]  # SUMO edge id → mean speed, edges with vehicles
    flows: dict[str, float]  # SUMO edge id → vehicles per hour (0 for empty edges)


@dataclass
class SumoReport:
    vehicles: int = 0
    departed: int = 0
    arrived: int = 0
    rerouted: int = 0  # took the hub's route
    route_refused: int = 0  # the hub had no route, or SUMO could not drive it
    periods: int = 0
    tally: Tally = field(default_factory=Tally)


def chosen(seed: int, vehicle: str, share: float) -> bool:
    """Whether ``vehicle`` takes the hub's route: a hash of the seed and id below ``share``."""
    digest = hashlib.sha256(f"{seed}:{vehicle}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class SumoRun:
    """One SUMO run feeding a hub. :meth:`setup` imports the network and provisions the devices;
    :meth:`run` steps SUMO and feeds the hub each ``period`` seconds of simulated time."""

    def __init__(
        self,
        workdir: Path,
        *,
        tenant: str = "410100",
        district: str | None = "410122",
        net: Path | None = None,
        origin: tuple[float, float] = DEFAULT_ORIGIN,
        seed: int = 42,
        vehicles: int = 1200,
        duration: float = 1800.0,
        period: float = 300.0,
        reroute: float = 0.2,
        speed: float = 0.0,
        start: datetime | None = None,
    ) -> None:
        if period <= 0 or duration <= 0:
            raise ValueError("period and duration must be positive")
        if speed < 0:
            raise ValueError("speed must be 0 (as fast as possible) or more")
        self.workdir = workdir
        self.tenant = tenant
        self.district = district
        self.net_path = net
        self.origin = origin
        self.seed = seed
        self.vehicles = vehicles
        self.duration = duration
        self.period = period
        self.reroute = reroute
        self.speed = speed
        self.start = (start or datetime.now(UTC)).replace(microsecond=0)
        self.by_edge: dict[str, Segment] = {}  # SUMO edge id → the hub's segment, after setup
        self.edge_of_urn: dict[str, str] = {}
        self.report = SumoReport()

    @property
    def edgedata_path(self) -> Path:
        return self.workdir / "edgedata.xml"

    def prepare(self) -> None:
        """The network (a grid unless one was given) and SUMO's edgeData output file."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.net_path is None:
            self.net_path = grid_network(self.workdir)
        (self.workdir / "edgedata.add.xml").write_text(
            "<additional>\n"
            f'    <edgeData id="hub" file="{self.edgedata_path.name}" period="{self.period:g}" '
            'excludeEmpty="true"/>\n'
            "</additional>\n",
            encoding="utf-8",
        )

    async def setup(self, client: httpx.AsyncClient) -> int:
        """Import the network into the tenant through the traffic application, read the segments
        it made back, write the trips between them and provision one floating-car device per edge
        (idempotent); returns the segments imported."""
        if self.net_path is None:
            self.prepare()
        assert self.net_path is not None
        headers = {"NGSILD-Tenant": self.tenant}
        data = {"format": "sumo", "origin": f"{self.origin[0]},{self.origin[1]}"}
        if self.district:
            data["district"] = self.district
        files = {"file": (self.net_path.name, self.net_path.read_bytes(), "application/xml")}
        response = await client.post("/api/v1/traffic/network", files=files, data=data, headers=headers)
        _check(response, "SUMO network import")
        imported: int = response.json()["segments_imported"]
        await self._segments(client)
        self.report.vehicles = write_trips(
            self.workdir / "trips.xml",
            list(self.by_edge),
            vehicles=self.vehicles,
            duration=self.duration,
            seed=self.seed,
        )
        await self._provision(client)
        return imported

    async def _segments(self, client: httpx.AsyncClient) -> None:
        """The imported edges (the ones a car may use) as the hub's ``RoadSegment`` entities."""
        assert self.net_path is not None
        edge_of_id = {f"{SEGMENT_URN}sumo-{safe_id(edge)}": edge for edge in edge_ids(self.net_path)}
        headers = {"NGSILD-Tenant": self.tenant}
        offset = 0
        while True:
            response = await client.get(
                "/ngsi-ld/v1/entities",
                params={
                    "type": "RoadSegment",
                    "idPattern": f"^{SEGMENT_URN}sumo-",
                    "attrs": "length,freeFlowSpeed,startPoint,endPoint",
                    "options": "keyValues",
                    "limit": 1000,
                    "offset": offset,
                },
                headers=headers,
            )
            _check(response, "road segments")
            page = response.json()
            for entity in page:
                edge = edge_of_id.get(entity["id"])
                if edge is None:
                    continue
                start, end = entity["startPoint"]["coordinates"], entity["endPoint"]["coordinates"]
                self.by_edge[edge] = Segment(
                    edge,
                    float(entity["length"]),
                    float(entity["freeFlowSpeed"]),
                    (float(start[0]), float(start[1])),
                    (float(end[0]), float(end[1])),
                )
                self.edge_of_urn[entity["id"]] = edge
            if len(page) < 1000:
                break
            offset += 1000

    async def _provision(self, client: httpx.AsyncClient) -> None:
        path = f"/{self.district}" if self.district else "/"
        headers = {SERVICE: self.tenant, SERVICE_PATH: path}
        groups = {g["apikey"] for g in await _listed(client, "/iot/services", "services", self.tenant)}
        if APIKEY not in groups:
            group = {
                "apikey": APIKEY,
                "entity_type": FLOW_TYPE,
                "resource": "/iot/json",
                "protocol": "IoTA-JSON",
                "transport": "HTTP",
                "expected_interval": max(30, int(self.period / self.speed) + 30 if self.speed else 3600),
                "attributes": [
                    {
                        "object_id": "averageVehicleSpeed",
                        "name": "averageVehicleSpeed",
                        "type": "Number",
                        "unitCode": "KMH",
                    },
                    {"object_id": "intensity", "name": "intensity", "type": "Number"},
                ],
                "static_attributes": [{"name": "source", "type": "Text", "value": "SUMO"}],
            }
            _check(await client.post("/iot/services", json={"services": [group]}, headers=headers), "group")
        have = {d["device_id"] for d in await _listed(client, "/iot/devices", "devices", self.tenant)}
        new = [self._device(edge) for edge in self.by_edge if self.device_id(edge) not in have]
        for start in range(0, len(new), 200):
            chunk = new[start : start + 200]
            _check(await client.post("/iot/devices", json={"devices": chunk}, headers=headers), "devices")

    @staticmethod
    def urn(edge: str) -> str:
        return f"{SEGMENT_URN}sumo-{safe_id(edge)}"

    @staticmethod
    def device_id(edge: str) -> str:
        return f"sumo-{safe_id(edge)}"

    def _device(self, edge: str) -> dict[str, Any]:
        return {
            "device_id": self.device_id(edge),
            "entity_name": f"urn:ngsi-ld:{FLOW_TYPE}:{self.device_id(edge)}",
            "entity_type": FLOW_TYPE,
            "apikey": APIKEY,
            "protocol": "IoTA-JSON",
            "transport": "HTTP",
            "static_attributes": [
                {"name": "refRoadSegment", "type": "Relationship", "value": self.urn(edge)},
                {"name": "laneDirection", "type": "Text", "value": "forward"},
                {"name": "name", "type": "Text", "value": f"SUMO {edge}"},
            ],
        }

    async def run(
        self,
        client: httpx.AsyncClient,
        *,
        on_period: Callable[[Period], Awaitable[None]] | None = None,
        stop: asyncio.Event | None = None,
    ) -> SumoReport:
        """Step SUMO (1 s steps) to ``duration``; after each period send its edge speeds and flows
        and call ``on_period``. Paced ``speed`` times faster than the wall clock (0: flat out)."""
        if not self.by_edge:
            raise RuntimeError("setup() first: the hub has no segments of this network yet")
        traci = _traci()
        tc = traci.constants
        label = f"cityhub-{self.seed}-{id(self)}"
        options = {
            "net-file": str(self.net_path),
            "route-files": str(self.workdir / "trips.xml"),
            "additional-files": str(self.workdir / "edgedata.add.xml"),
            "seed": str(self.seed),
            "step-length": "1",
            "end": f"{self.duration:g}",
            "ignore-route-errors": "true",
            "no-step-log": "true",
            "no-warnings": "true",
        }
        command = [
            binary("sumo"),
            *(part for name, value in options.items() for part in (f"--{name}", value)),
        ]
        traci.start(command, label=label)
        conn = traci.getConnection(label)
        sender = HttpSender(client, concurrency=16)
        try:
            # lanes, not edges: an edge's mean speed averages its lanes, an empty one at its limit
            lane_edge: dict[str, str] = {}
            for edge in self.by_edge:
                for index in range(conn.edge.getLaneNumber(edge)):
                    lane_edge[f"{edge}_{index}"] = edge
                    conn.lane.subscribe(
                        f"{edge}_{index}", [tc.LAST_STEP_MEAN_SPEED, tc.LAST_STEP_VEHICLE_NUMBER]
                    )
            accounts = {edge: EdgeAccount() for edge in self.by_edge}
            began = time.monotonic()
            begin = 0.0
            step = 0
            while step < self.duration:
                if stop is not None and stop.is_set():
                    break
                conn.simulationStep()
                step += 1
                for lane, values in conn.lane.getAllSubscriptionResults().items():
                    count = values[tc.LAST_STEP_VEHICLE_NUMBER]
                    if count:
                        account = accounts[lane_edge[lane]]
                        account.sampled += count
                        account.distance += count * values[tc.LAST_STEP_MEAN_SPEED]
                departed = conn.simulation.getDepartedIDList()
                self.report.departed += len(departed)
                self.report.arrived += conn.simulation.getArrivedNumber()
                for vehicle in departed:
                    if chosen(self.seed, vehicle, self.reroute):
                        await self._reroute(client, conn, traci, vehicle)
                if step - begin >= self.period or step >= self.duration:
                    period = self._period(begin, float(step), accounts)
                    await self._send(sender, period)
                    if on_period is not None:
                        await on_period(period)
                    accounts = {edge: EdgeAccount() for edge in self.by_edge}
                    begin = float(step)
                if self.speed > 0:
                    ahead = step / self.speed - (time.monotonic() - began)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        finally:
            conn.close()
        return self.report

    def _period(self, begin: float, end: float, accounts: dict[str, EdgeAccount]) -> Period:
        length = end - begin
        speeds: dict[str, float] = {}
        flows: dict[str, float] = {}
        for edge, account in accounts.items():
            if account.sampled > 0:
                speed_ms = account.distance / account.sampled
                speeds[edge] = speed_ms * 3.6
                # density (vehicles on the edge on average) × speed: vehicles per hour
                flows[edge] = account.sampled / length * speed_ms / self.by_edge[edge].length_m * 3600
            else:
                flows[edge] = 0.0
        return Period(begin, end, self.start + timedelta(seconds=end), speeds, flows)

    async def _send(self, sender: HttpSender, period: Period) -> None:
        stamp = period.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        messages = []
        for edge, flow in period.flows.items():
            reading: dict[str, Any] = {"TimeInstant": stamp, "intensity": round(flow, 3)}
            if edge in period.speeds_kmh:
                reading["averageVehicleSpeed"] = round(period.speeds_kmh[edge], 4)
            messages.append(Message(APIKEY, self.device_id(edge), (reading,)))
        tally = self.report.tally
        await sender.send(messages, tally)
        tally.messages += len(messages)
        tally.readings += len(messages)
        self.report.periods += 1

    async def _reroute(self, client: httpx.AsyncClient, conn: Any, traci: Any, vehicle: str) -> None:
        """The hub's fastest route from the end of the vehicle's first edge to the start of its
        last; the vehicle drives first edge + that route + last edge."""
        route = list(conn.vehicle.getRoute(vehicle))
        first, last = conn.vehicle.getRoadID(vehicle), route[-1] if route else None
        if last is None or first not in self.by_edge or last not in self.by_edge or first == last:
            return
        origin, destination = self.by_edge[first].end, self.by_edge[last].start
        if origin == destination:
            return
        response = await client.get(
            "/api/v1/traffic/route",
            params={"from": f"{origin[0]},{origin[1]}", "to": f"{destination[0]},{destination[1]}"},
            headers={"NGSILD-Tenant": self.tenant},
        )
        if response.status_code != 200:
            self.report.route_refused += 1
            return
        edges = [self.edge_of_urn.get(s["id"]) for s in response.json()["routes"][0]["segments"]]
        if any(e is None for e in edges):
            self.report.route_refused += 1
            return
        try:
            conn.vehicle.setRoute(vehicle, [first, *[e for e in edges if e], last])
        except traci.TraCIException:
            self.report.route_refused += 1
            return
        self.report.rerouted += 1
