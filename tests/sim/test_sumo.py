"""The SUMO driver's naming and seeding; and a short SUMO run feeding a started hub (SQLite or
PostgreSQL): the hub's travel time index for each period, from the speeds it was sent through the
ingestion path, against the TTI computed from SUMO's own edge travel times (its ``edgeData`` output
for the same period). The run needs the ``sumo`` extra (the eclipse-sumo and traci wheels) and is
skipped without it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cityhub.apps.traffic.importers import read_sumo_edge_data, read_sumo_net
from cityhub.apps.traffic.importers import safe_id as importer_safe_id
from cityhub.sim.sumo import Period, SumoRun, chosen, edge_ids, write_trips
from cityhub.sim.sumo import safe_id as sumo_safe_id

needs_sumo = pytest.mark.skipif(
    importlib.util.find_spec("sumo") is None or importlib.util.find_spec("traci") is None,
    reason="SUMO is not installed: pip install -e '.[sumo]' (the eclipse-sumo and traci wheels)",
)
DATA = Path(__file__).parents[1] / "apps" / "traffic" / "data"

CITY = "410100"
DISTRICT = "410122"
#: The hub's speed per edge is SUMO's distance ÷ time on the edge from the step-by-step lane
#: subscriptions; SUMO's edgeData counts the same with sub-step precision (vehicles entering and
#: leaving within a step), so the two differ by a little, most on edges with few vehicles (seed 7:
#: at most 3.5 % on an edge, 0.3 % for the network TTI).
NETWORK_TOLERANCE = 0.01
EDGE_TOLERANCE = 0.05


def test_edge_ids_and_segment_ids_agree_with_the_traffic_importer() -> None:
    """The driver names segments as the traffic application's importer does, without importing it."""
    edges = edge_ids(DATA / "sumo_grid.net.xml")
    imported = read_sumo_net(str(DATA / "sumo_grid.net.xml"), origin=(113.6, 34.7))
    assert sorted(SumoRun.urn(e) for e in edges) == sorted(
        f"urn:ngsi-ld:RoadSegment:{s.id}" for s in imported.segments
    )
    for raw in ("a/b", "x y#1", "plain-1.2_3", "路"):
        assert sumo_safe_id(raw) == importer_safe_id(raw)


def test_trips_and_rerouted_vehicles_are_seeded(tmp_path: Path) -> None:
    edges = [f"e{i}" for i in range(30)]
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert write_trips(tmp_path / f"{name}.xml", edges, vehicles=50, duration=600, seed=seed) == 50
    one, again, other = ((tmp_path / f"{n}.xml").read_text() for n in "abc")
    assert one == again
    assert one != other
    trips = [t for t in one.splitlines() if "<trip " in t]
    assert len(trips) == 50
    assert all('speedDev="0"' in one and " from=" in t for t in trips)
    picked = [v for v in (f"v{i}" for i in range(2000)) if chosen(42, v, 0.2)]
    assert 300 < len(picked) < 500  # about a fifth
    assert picked == [v for v in (f"v{i}" for i in range(2000)) if chosen(42, v, 0.2)]
    assert not any(chosen(42, f"v{i}", 0.0) for i in range(100))


@pytest.mark.slow
@needs_sumo
async def test_hub_tti_matches_sumo_edge_travel_times(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    run = SumoRun(
        tmp_path,
        tenant=CITY,
        district=DISTRICT,
        seed=7,
        vehicles=900,
        duration=1200,
        period=600,
        reroute=0.25,
    )
    imported = await run.setup(client)
    assert imported == 48  # a 4 × 4 grid: 24 streets, both directions
    seen: list[tuple[float, float, dict[str, float]]] = []
    headers = {"NGSILD-Tenant": CITY}

    async def check(period: Period) -> None:
        await app.state.hub.relay.drain()
        state = (await client.post("/api/v1/traffic/indices/publish", headers=headers)).json()
        [district] = [d for d in state["districts"] if d["area"] == DISTRICT]
        segments = (
            await client.get("/api/v1/traffic/segments", params={"limit": 1000}, headers=headers)
        ).json()
        speeds = {s["id"]: s["speed_kmh"] for s in segments["segments"] if s["observed"]}
        seen.append((period.end, district["travel_time_index"], speeds))

    report = await run.run(client, on_period=check)
    assert report.periods == 2
    assert report.tally.refused == report.tally.failed == 0, report.tally
    assert report.rerouted > 20, report  # vehicles drove the hub's routes
    intervals = read_sumo_edge_data(str(run.edgedata_path))
    assert [i.end for i in intervals] == [600.0, 1200.0]
    for interval, (end, hub_tti, hub_speeds) in zip(intervals, seen, strict=True):
        assert end == interval.end
        total = free = 0.0
        compared = 0
        for edge, values in interval.edges.items():
            if "traveltime" not in values or values.get("sampledSeconds", 0) <= 0:
                continue
            segment = run.by_edge[edge]
            free_time = segment.length_m / (segment.free_flow_kmh / 3.6)
            # weight: the edge's flow (vehicles per hour ∝ sampledSeconds ÷ traveltime), as the hub's
            weight = values["sampledSeconds"] / values["traveltime"]
            total += weight * values["traveltime"]
            free += weight * free_time
            hub_speed = hub_speeds[f"urn:ngsi-ld:RoadSegment:sumo-{edge}"]
            assert hub_speed == pytest.approx(values["speed"] * 3.6, rel=EDGE_TOLERANCE), edge
            compared += 1
        assert compared > 40
        sumo_tti = total / free
        assert sumo_tti > 1.2  # congested: not a comparison of two ones
        assert hub_tti == pytest.approx(sumo_tti, rel=NETWORK_TOLERANCE)
