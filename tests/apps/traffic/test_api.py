"""The traffic app in a started hub: import, live state from observations, write-back, routes,
parking and forecasts, through the HTTP API and the broker."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cityhub.apps.traffic.routing import INCREMENTAL_SEGMENTS
from cityhub.apps.traffic.service import LiveTraffic
from cityhub.apps.traffic.tasks import Publisher
from cityhub.plugins import isoformat, utcnow

DATA = Path(__file__).parent / "data"
JSON = {"Content-Type": "application/json"}
SEG = "urn:ngsi-ld:RoadSegment:"


async def import_osm(client: httpx.AsyncClient, district: str | None = "410102") -> httpx.Response:
    files = {"file": ("small.osm", (DATA / "small.osm").read_bytes(), "application/xml")}
    data = {"district": district} if district else {}
    return await client.post("/api/v1/traffic/network", files=files, data=data)


async def observe(
    app: FastAPI,
    client: httpx.AsyncClient,
    detector: str,
    segment: str,
    kmh: float,
    direction: str | None = "forward",
) -> None:
    """A detector's reading for ``segment``; ``direction`` None: a detector of the whole road."""
    now = isoformat(utcnow())
    entity: dict[str, object] = {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:{detector}",
        "type": "TrafficFlowObserved",
        "refRoadSegment": {"type": "Relationship", "object": SEG + segment},
        "averageVehicleSpeed": {"type": "Property", "value": kmh, "observedAt": now, "unitCode": "KMH"},
        "intensity": {"type": "Property", "value": 600, "observedAt": now},
    }
    if direction is not None:
        entity["laneDirection"] = {"type": "Property", "value": direction}
    answer = await client.post("/ngsi-ld/v1/entities", json=entity, headers=JSON)
    if answer.status_code == 409:
        answer = await client.post(f"/ngsi-ld/v1/entities/{entity['id']}/attrs", json=entity, headers=JSON)
    assert answer.status_code in (201, 204), answer.text
    await app.state.hub.relay.drain()


async def test_import_then_segments_and_route(client: httpx.AsyncClient) -> None:
    answer = await import_osm(client)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["format"] == "osm"
    assert (body["segments_imported"], body["network_segments"], body["network_nodes"]) == (9, 9, 8)
    page = (await client.get("/api/v1/traffic/segments", params={"limit": 3})).json()
    assert page["total"] == 9
    assert len(page["segments"]) == 3
    one = (await client.get(f"/api/v1/traffic/segments/{SEG}osm-100-0")).json()
    assert (one["road_class"], one["lanes"], one["district"], one["state"]) == (
        "arterial",
        2,
        "410102",
        "free",
    )
    # the segment is an NGSI-LD entity in the broker
    entity = (await client.get(f"/ngsi-ld/v1/entities/{SEG}osm-100-0")).json()
    assert entity["type"] == "RoadSegment"
    assert entity["location"]["value"]["type"] == "LineString"

    route = await client.get(
        "/api/v1/traffic/route", params={"from": "113.6001,34.7501", "to": "113.62,34.75"}
    )
    assert route.status_code == 200, route.text
    [best] = route.json()["routes"]
    assert [s["id"] for s in best["segments"]] == [SEG + "osm-100-0", SEG + "osm-100-1"]
    assert best["length_m"] == pytest.approx(2 * 914.5, rel=5e-3)
    assert best["travel_time_s"] == pytest.approx(best["length_m"] / (60 / 3.6), rel=1e-3)
    assert best["geometry"]["coordinates"][0] == [113.6, 34.75]
    assert route.json()["origin"]["junction"] == "osm-1"


async def test_route_errors(client: httpx.AsyncClient) -> None:
    none_yet = await client.get("/api/v1/traffic/route", params={"from": "113.6,34.75", "to": "113.62,34.75"})
    assert none_yet.status_code == 404
    assert "import one first" in none_yet.json()["detail"]
    assert none_yet.json()["reason"] == "no_network"
    await import_osm(client)
    unconnected = await client.get(
        "/api/v1/traffic/route", params={"from": "113.6,34.73", "to": "113.62,34.75"}
    )
    assert unconnected.status_code == 404
    assert unconnected.json()["reason"] == "unconnected"
    assert "cannot be reached" in unconnected.json()["detail"]
    far = await client.get("/api/v1/traffic/route", params={"from": "114.5,34.75", "to": "113.62,34.75"})
    assert far.status_code == 404
    assert "no road within" in far.json()["detail"]
    for bad in ("113.6", "east,north", "200,34.7", "113.6,95"):
        answer = await client.get("/api/v1/traffic/route", params={"from": bad, "to": "113.62,34.75"})
        assert answer.status_code == 422, bad
        assert answer.json()["detail"]
    missing = await client.get("/api/v1/traffic/route", params={"from": "113.6,34.75"})
    assert missing.status_code == 400  # the hub answers missing parameters with 400


async def test_bad_network_files(client: httpx.AsyncClient) -> None:
    cases = [
        ("roads.csv", b"a,b", "cannot tell the format"),
        ("roads.osm", b"<osm><way", "not well-formed"),
        ("roads.osm", b'<osm><node id="1" lat="1" lon="1"/></osm>', "no drivable road"),
        ("roads.net.xml", b"<osm/>", "starts with <net>"),
    ]
    for name, payload, message in cases:
        answer = await client.post("/api/v1/traffic/network", files={"file": (name, payload)})
        assert answer.status_code == 422, name
        assert message in answer.json()["detail"]
    bad_district = await client.post(
        "/api/v1/traffic/network", files={"file": ("a.osm", b"<osm/>")}, data={"district": "north"}
    )
    assert bad_district.status_code == 400


async def test_sumo_import_with_origin(client: httpx.AsyncClient) -> None:
    files = {"file": ("grid.net.xml", (DATA / "sumo_grid.net.xml").read_bytes())}
    refused = await client.post("/api/v1/traffic/network", files=files)
    assert refused.status_code == 422
    assert "not geo-referenced" in refused.json()["detail"]
    answer = await client.post("/api/v1/traffic/network", files=files, data={"origin": "113.6,34.7"})
    assert answer.status_code == 201, answer.text
    assert (answer.json()["format"], answer.json()["network_segments"]) == ("sumo", 48)


async def test_observations_drive_states_indices_and_routes(app: FastAPI, client: httpx.AsyncClient) -> None:
    await import_osm(client)
    before = (
        await client.get("/api/v1/traffic/route", params={"from": "113.6,34.75", "to": "113.62,34.75"})
    ).json()
    await observe(app, client, "d1", "osm-100-0", 10.0)  # arterial at 10 km/h: severe
    await observe(app, client, "d2", "osm-100-1", 55.0)
    state = (await client.get("/api/v1/traffic/state")).json()
    assert state["observed_segments"] == 2
    assert state["by_state"]["severe"] == 1
    assert state["by_state"]["free"] == 1
    network = state["network"]
    # equal lengths and flows: TTI = (L/10 + L/55) / (L/60 + L/60)
    assert network["travel_time_index"] == pytest.approx((1 / 10 + 1 / 55) / (2 / 60), rel=1e-3)
    assert network["congested_share"] == pytest.approx(0.5, rel=1e-3)
    assert network["traffic_performance_index"] == 10
    assert [d["area"] for d in state["districts"]] == ["410102"]
    after = (
        await client.get("/api/v1/traffic/route", params={"from": "113.6,34.75", "to": "113.62,34.75"})
    ).json()
    slow = after["routes"][0]
    assert slow["travel_time_s"] > before["routes"][0]["travel_time_s"] * 3
    assert slow["segments"][0]["state"] == "severe"
    severe = (await client.get("/api/v1/traffic/segments", params={"state": "severe"})).json()
    assert [s["id"] for s in severe["segments"]] == [SEG + "osm-100-0"]
    assert (await client.get("/api/v1/traffic/segments", params={"state": "jammed"})).status_code == 422

    published = await client.post("/api/v1/traffic/indices/publish")
    assert published.status_code == 200
    stored = (await client.get(f"/ngsi-ld/v1/entities/{SEG}osm-100-0")).json()
    assert stored["congestionLevel"]["value"] == "severe"
    assert stored["averageVehicleSpeed"]["value"] == 10.0
    assert stored["travelTimeIndex"]["value"] == 6.0
    index = (
        await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:TrafficPerformanceIndex:410100:network")
    ).json()
    assert index["trafficPerformanceIndex"]["value"] == 10
    history = (await client.get("/api/v1/traffic/indices/history", params={"area": "network"})).json()
    assert [p["value"] for p in history["congestion_level"]] == ["severe"]
    district = (await client.get("/api/v1/traffic/indices/history", params={"area": "410102"})).json()
    assert len(district["travel_time_index"]) == 1
    bad = await client.get("/api/v1/traffic/indices/history", params={"start": "2026-11-21T08:00:00"})
    assert bad.status_code == 422

    # the write-back went through the broker: this process saw it and did not count it as news
    await app.state.hub.relay.drain()
    again = (await client.post("/api/v1/traffic/indices/publish")).json()
    assert again["observed_segments"] == 2

    indicators = (await client.get("/api/v1/indicators")).json()["indicators"]
    traffic = next(i for i in indicators if i["indicator"] == "smart_traffic")
    assert traffic["value"] == 10


async def test_another_process_loads_the_network_from_entities(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await import_osm(client)
    await observe(app, client, "d1", "osm-100-0", 10.0)
    await client.post("/api/v1/traffic/indices/publish")
    fresh = LiveTraffic(landmarks=4)
    async with app.state.hub.sessions() as session:
        live = await fresh.network(session, "410100")
    assert live is not None
    assert live.network.segment_count == 9
    assert live.network.node_count == 8
    edge = live.network.segment_index["osm-100-0"]
    assert live.speed_kmh[edge] == 10.0  # the persisted live speed
    assert live.district_names == ["410102"]


async def test_segment_speed_written_on_the_segment_counts(app: FastAPI, client: httpx.AsyncClient) -> None:
    await import_osm(client, district=None)
    now = isoformat(utcnow())
    patch = {"averageVehicleSpeed": {"type": "Property", "value": 20.0, "observedAt": now}}
    answer = await client.post(f"/ngsi-ld/v1/entities/{SEG}osm-200-0/attrs", json=patch, headers=JSON)
    assert answer.status_code == 204, answer.text
    await app.state.hub.relay.drain()
    one = (await client.get(f"/api/v1/traffic/segments/{SEG}osm-200-0")).json()
    assert (one["speed_kmh"], one["state"], one["observed"], one["district"]) == (20.0, "light", True, None)
    assert (await client.get("/api/v1/traffic/state")).json()["districts"] == []
    assert (await client.get(f"/api/v1/traffic/segments/{SEG}nope")).status_code == 404


async def test_nearest_free_parking(client: httpx.AsyncClient) -> None:
    def lot(key: str, lon: float, lat: float, free: int) -> dict[str, object]:
        return {
            "id": f"urn:ngsi-ld:OffStreetParking:{key}",
            "type": "OffStreetParking",
            "name": {"type": "Property", "value": key},
            "availableSpotNumber": {"type": "Property", "value": free},
            "totalSpotNumber": {"type": "Property", "value": 200},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        }

    def spot(key: str, lon: float, lat: float, status: str) -> dict[str, object]:
        return {
            "id": f"urn:ngsi-ld:ParkingSpot:{key}",
            "type": "ParkingSpot",
            "status": {"type": "Property", "value": status},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        }

    for entity in (
        lot("near-full", 113.6001, 34.75, 0),
        lot("mid", 113.603, 34.75, 12),
        lot("far", 113.7, 34.75, 50),  # 9 km away
        spot("s1", 113.6005, 34.75, "free"),
        spot("s2", 113.6002, 34.75, "occupied"),
    ):
        assert (await client.post("/ngsi-ld/v1/entities", json=entity, headers=JSON)).status_code == 201
    answer = await client.get("/api/v1/traffic/parking/nearest", params={"lon": 113.6, "lat": 34.75})
    assert answer.status_code == 200, answer.text
    found = answer.json()["parking"]
    assert [p["id"].rsplit(":", 1)[-1] for p in found] == ["s1", "mid"]
    assert found[1]["free"] == 12
    assert found[1]["distance_m"] == pytest.approx(274, rel=0.01)
    one = (
        await client.get("/api/v1/traffic/parking/nearest", params={"lon": 113.6, "lat": 34.75, "limit": 1})
    ).json()
    assert len(one["parking"]) == 1
    bad = await client.get("/api/v1/traffic/parking/nearest", params={"lon": 113.6, "lat": 134.75})
    assert bad.status_code == 400


async def test_forecast_without_history_is_persistence(app: FastAPI, client: httpx.AsyncClient) -> None:
    await import_osm(client)
    await observe(app, client, "d1", "osm-100-0", 25.0)
    await client.post("/api/v1/traffic/indices/publish")
    answer = await client.get(f"/api/v1/traffic/forecast/{SEG}osm-100-0")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["method"] == "persistence"
    assert body["observations"] == 1
    assert [f["horizon_minutes"] for f in body["forecasts"]] == [15, 30, 60]
    assert all(f["speed_kmh"] == 25.0 and f["state"] == "light" for f in body["forecasts"])
    assert (await client.get("/api/v1/traffic/forecast/nope")).status_code == 404


async def test_periodic_publisher_writes_every_loaded_tenant(app: FastAPI, client: httpx.AsyncClient) -> None:
    await import_osm(client)
    traffic = LiveTraffic(landmarks=2)
    async with app.state.hub.sessions() as session:
        live = await traffic.network(session, "410100")
    assert live is not None
    live.observe(live.network.segment_index["osm-100-1"], 30.0, None, utcnow())
    # more changed segments than an incremental update takes: ALT until the refresh customises
    others = [e for e in range(live.network.segment_count) if e != live.network.segment_index["osm-100-1"]]
    slower = (live.network.free_flow_kmh[others] / 2).tolist()
    live.observe_many(others, slower, utcnow() - timedelta(hours=1))  # expired at publishing
    assert not live.router.customised or len(others) < INCREMENTAL_SEGMENTS
    publisher = Publisher(traffic, app.state.hub.sessions, 0, logging.getLogger("test"))
    publisher.start()  # an interval of 0: never on its own
    await publisher.publish_all()
    await publisher.refresh_all()
    await publisher.stop()
    assert live.router.live_bounds
    assert live.router.customised
    assert live.router.metric.weights.tolist() == live.router.weights
    index = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:TrafficPerformanceIndex:410100:network")
    assert index.status_code == 200
    assert index.json()["observedSegments"]["value"] == 1
    segment = (await client.get(f"/ngsi-ld/v1/entities/{SEG}osm-100-1")).json()
    assert segment["congestionLevel"]["value"] == "light"  # 30 km/h on an arterial: 20–30


async def test_floating_cars_are_matched_to_segments_by_position_and_heading(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await import_osm(client)

    async def car(key: str, lon: float, lat: float, heading: float, kmh: float) -> None:
        now = isoformat(utcnow())
        entity = {
            "id": f"urn:ngsi-ld:Vehicle:{key}",
            "type": "Vehicle",
            "speed": {"type": "Property", "value": kmh, "observedAt": now},
            "heading": {"type": "Property", "value": heading, "observedAt": now},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        }
        answer = await client.post("/ngsi-ld/v1/entities", json=entity, headers=JSON)
        assert answer.status_code == 201, answer.text
        await app.state.hub.relay.drain()

    # on Jianshe Road between junctions 1 and 2, 10 m north of its axis: eastbound and westbound
    await car("taxi-1", 113.6030, 34.75009, 90.0, 12.0)
    await car("taxi-2", 113.6030, 34.75009, 268.0, 45.0)
    await car("taxi-3", 113.6030, 34.7520, 90.0, 5.0)  # 220 m off any road: not matched
    east = (await client.get(f"/api/v1/traffic/segments/{SEG}osm-100-0")).json()
    west = (await client.get(f"/api/v1/traffic/segments/{SEG}osm-100-0-r")).json()
    assert (east["speed_kmh"], east["state"], east["observed"]) == (12.0, "severe", True)
    assert (west["speed_kmh"], west["state"]) == (45.0, "free")
    # a second car on the same segment is smoothed into the first one's speed
    await car("taxi-4", 113.6050, 34.74995, 92.0, 22.0)
    east = (await client.get(f"/api/v1/traffic/segments/{SEG}osm-100-0")).json()
    assert east["speed_kmh"] == pytest.approx(0.7 * 12 + 0.3 * 22)
    assert (await client.get("/api/v1/traffic/state")).json()["observed_segments"] == 2


async def test_a_detector_of_the_whole_road_counts_for_both_directions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await import_osm(client)
    await observe(app, client, "road", "osm-100-0", 10.0, direction=None)
    await observe(app, client, "back", "osm-100-1", 12.0, direction="backward")
    state = (await client.get("/api/v1/traffic/state")).json()
    assert state["observed_segments"] == 3
    severe = (await client.get("/api/v1/traffic/segments", params={"state": "severe"})).json()
    assert sorted(s["id"] for s in severe["segments"]) == [
        SEG + "osm-100-0",
        SEG + "osm-100-0-r",
        SEG + "osm-100-1-r",
    ]


async def test_segments_found_by_name_carry_their_junction_points(client: httpx.AsyncClient) -> None:
    await import_osm(client)
    found = (await client.get("/api/v1/traffic/segments", params={"q": "建设"})).json()
    # Jianshe Road: two pieces, both directions
    assert found["total"] == 4
    assert sorted(s["id"] for s in found["segments"]) == [
        SEG + "osm-100-0",
        SEG + "osm-100-0-r",
        SEG + "osm-100-1",
        SEG + "osm-100-1-r",
    ]
    first = next(s for s in found["segments"] if s["id"] == SEG + "osm-100-0")
    assert (first["start_point"], first["end_point"]) == ([113.6, 34.75], [113.61, 34.75])
    # by id too, case-insensitive, and combined with the state filter
    by_id = (await client.get("/api/v1/traffic/segments", params={"q": "OSM-200"})).json()
    assert {s["name"] for s in by_id["segments"]} == {"桐柏路"}
    assert by_id["total"] == 2
    none = (await client.get("/api/v1/traffic/segments", params={"q": "建设", "state": "severe"})).json()
    assert none == {"total": 0, "segments": []}
    assert (await client.get("/api/v1/traffic/segments", params={"q": ""})).status_code == 400
