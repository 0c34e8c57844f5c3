"""The demo city against a started hub (SQLite or PostgreSQL): seeding through the public APIs,
and a short simulated run through the real ingestion path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.sim.city import build_city
from cityhub.sim.runner import HttpSender, Simulator
from cityhub.sim.seed import DEPARTMENTS, entity_id, seed
from cityhub.sim.streams import Conditions

CITY = "410100"
NGSI = "/ngsi-ld/v1"


async def _count(client: httpx.AsyncClient, entity_type: str) -> int:
    response = await client.get(
        f"{NGSI}/entities",
        params={"type": entity_type, "count": "true", "limit": 1},
        headers={"NGSILD-Tenant": CITY},
    )
    assert response.status_code == 200, response.text
    return int(response.headers["NGSILD-Results-Count"])


async def test_seeding_creates_tenants_devices_and_entities_once(client: httpx.AsyncClient) -> None:
    city = build_city(42)
    report = await seed(client, city)
    assert report.tenants == 12  # the districts; the city and province exist from the first start
    assert report.devices == len(city.sensors)
    # the hub runs the traffic application: it imports the roads, one segment per direction
    assert report.entities == len(city.cells) + len(city.districts)
    assert report.segments >= len(city.roads)
    assert report.grid_cells == len(city.cells)  # the case workflow locates cases in them
    lon, lat = city.cells[0].centre
    case = await client.post(
        "/api/v1/cases",
        json={
            "category": "E0101",
            "title": "暴露垃圾",
            "location": {"type": "Point", "coordinates": [lon, lat]},
        },
        headers={"NGSILD-Tenant": CITY},
    )
    assert case.status_code == 201, case.text
    assert (case.json()["grid_cell"], case.json()["district"]) == (city.cells[0].code, city.cells[0].district)
    # the demo's departments own the categories: the case goes to 环境卫生管理局, not to triage
    assert report.departments == len(DEPARTMENTS)
    assert (case.json()["department"], case.json()["triage"]) == ("sanitation", False), case.json()
    departments = (await client.get("/api/v1/departments", headers={"NGSILD-Tenant": CITY})).json()
    assert {d["code"]: d["name"] for d in departments}["environment"] == "生态环境局"
    # and an air-quality alert's case (the environment app's rule names air-pollution) is routed too
    assert report.categories == 2
    smog = await client.post(
        "/api/v1/cases",
        json={
            "category": "air-pollution",
            "title": "AQI > 200",
            "location": {"type": "Point", "coordinates": [lon, lat]},
        },
        headers={"NGSILD-Tenant": CITY},
    )
    assert smog.status_code == 201, smog.text
    assert (smog.json()["department"], smog.json()["triage"]) == ("environment", False), smog.json()
    tenants = (await client.get("/api/v1/tenants", params={"parent": CITY})).json()["items"]
    assert {t["code"]: t["name"] for t in tenants}["410104"] == "管城回族区"
    assert len(tenants) == 12
    devices = await client.get(
        "/iot/devices", params={"limit": 1000}, headers={"fiware-service": CITY, "fiware-servicepath": "/*"}
    )
    assert devices.json()["count"] == len(city.sensors)
    # device health by district: each device lies in its district's seeded boundary
    health = (await client.get("/api/v1/ingest/health", headers={"fiware-service": CITY})).json()
    expected: dict[str, int] = {}
    for sensor in city.sensors:
        expected[sensor.district] = expected.get(sensor.district, 0) + 1
    assert {d["name"]: d["total"] for d in health["byDistrict"]} == expected
    assert health["outsideDistricts"]["total"] == 0
    assert {d["name"]: d["title"] for d in health["byDistrict"]}["410104"] == "管城回族区"
    groups = await client.get(
        "/iot/services", params={"limit": 1000}, headers={"fiware-service": CITY, "fiware-servicepath": "/*"}
    )
    intervals = {g["apikey"]: g["expected_interval"] for g in groups.json()["services"]}
    # health judges silence in real time: at 60× a 10-minute air report comes every 10 s
    assert intervals["zz-air-410102"] == 30
    assert intervals["zz-water-410108"] == 70
    assert await _count(client, "RoadSegment") == report.segments
    assert await _count(client, "GridCell") == len(city.cells)
    assert await _count(client, "TrafficFlowObserved") == len(city.of_kind("traffic"))
    station = city.of_kind("air")[0]
    got = (await client.get(f"{NGSI}/entities/{entity_id(station)}", headers={"NGSILD-Tenant": CITY})).json()
    assert got["location"]["value"]["type"] == "Point"
    assert got["district"]["value"] == station.district
    assert got["scope"] == f"/{station.district}"
    segment = (
        await client.get(f"{NGSI}/entities/{city.roads[0].id}", headers={"NGSILD-Tenant": CITY})
    ).json()
    assert segment["location"]["value"]["type"] == "LineString"
    assert segment["freeFlowSpeed"]["value"] > 0
    assert segment["areaServed"]["value"] == city.roads[0].district
    # a second run changes nothing
    again = await seed(client, city)
    assert not again.changed(), again


async def test_a_short_run_lands_readings_and_a_fault_as_dead_letter(client: httpx.AsyncClient) -> None:
    city = build_city(42)
    await seed(client, city)
    start = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # Monday, 14:00 in Zhengzhou
    simulator = Simulator(
        city,
        HttpSender(client),
        seed=42,
        start=start,
        speed=0,
        conditions=Conditions(fault_rate=0.02, silence_rate=0.0),
        kinds=["air", "parking", "water"],
    )
    tally = await simulator.run(timedelta(hours=2))
    assert tally.messages > 0
    assert tally.faults > 0
    assert tally.refused == tally.faults, tally.refusals
    assert tally.refusals == {"validation-failed": tally.faults}
    assert tally.failed == 0
    station = city.of_kind("air")[0]
    got = (await client.get(f"{NGSI}/entities/{entity_id(station)}", headers={"NGSILD-Tenant": CITY})).json()
    assert got["pm25"]["unitCode"] == "GQ"
    assert got["pm25"]["observedAt"] > "2026-11-23T06:00:00Z"
    history = await client.get(
        f"{NGSI}/temporal/entities/{entity_id(station)}",
        params={"attrs": "pm25"},
        headers={"NGSILD-Tenant": CITY},
    )
    assert history.status_code == 200, history.text
    instances = history.json()["pm25"]
    assert len(instances) >= 10  # every 10 simulated minutes for two hours, less faults
    letters = await client.get(
        "/api/v1/ingest/dead-letters",
        params={"reason": "validation-failed", "limit": 1000},
        headers={"fiware-service": CITY},
    )
    assert letters.status_code == 200, letters.text
    assert len(letters.json()["deadLetters"]) == tally.faults
    lot = city.of_kind("parking")[0]
    parked = (await client.get(f"{NGSI}/entities/{entity_id(lot)}", headers={"NGSILD-Tenant": CITY})).json()
    assert 0 <= parked["availableSpotNumber"]["value"] <= lot.static["totalSpotNumber"]


async def test_seeding_without_roads(client: httpx.AsyncClient) -> None:
    city = build_city(42)
    report = await seed(client, city, roads=False)
    assert report.entities == len(city.cells) + len(city.districts)
    assert report.segments == 0
    assert await _count(client, "RoadSegment") == 0
    later = await seed(client, city)  # the roads after all: only they are new
    assert later.segments >= len(city.roads)
    assert later.devices == later.tenants == later.groups == later.entities == later.grid_cells == 0
    assert later.departments == later.categories == 0


async def test_a_hub_without_the_traffic_app_gets_the_roads_as_entities(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"apps_disabled": ["traffic"]}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            city = build_city(42)
            report = await seed(client, city)
            assert report.entities == len(city.roads) + len(city.cells) + len(city.districts)
            assert report.segments == 0
            assert await _count(client, "RoadSegment") == len(city.roads)
