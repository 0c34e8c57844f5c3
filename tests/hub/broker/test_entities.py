"""The NGSI-LD entity API on a started hub (SQLite or PostgreSQL), with the core @context."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import httpx
import pytest

BASE = "/ngsi-ld/v1"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"


def flow(entity_id: str = "urn:ngsi-ld:TrafficFlowObserved:zz-001", **extra: object) -> dict:
    return {
        "id": entity_id,
        "type": "TrafficFlowObserved",
        "intensity": {
            "type": "Property",
            "value": 1280,
            "unitCode": "E50",
            "observedAt": "2026-11-21T08:00:00Z",
        },
        "averageVehicleSpeed": {
            "type": "Property",
            "value": 38.5,
            "accuracy": {"type": "Property", "value": 0.9},
        },
        "laneDirection": {"type": "Property", "value": "forward"},
        "refRoadSegment": {"type": "Relationship", "object": "urn:ngsi-ld:RoadSegment:jinshui-road-12"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.6653, 34.7566]}},
        "name": {"type": "LanguageProperty", "languageMap": {"zh": "金水路", "en": "Jinshui Road"}},
        **extra,
    }


async def create(client: httpx.AsyncClient, body: dict, **headers: str) -> httpx.Response:
    return await client.post(f"{BASE}/entities", json=body, headers=headers)


async def test_create_and_retrieve_round_trip(client: httpx.AsyncClient) -> None:
    response = await create(client, flow())
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001"
    got = await client.get(f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert CORE in got.headers["link"]
    assert got.json() == flow()


async def test_ld_json_carries_the_context(client: httpx.AsyncClient) -> None:
    body = flow() | {"@context": CORE}
    response = await client.post(
        f"{BASE}/entities",
        content=__import__("orjson").dumps(body),
        headers={"content-type": "application/ld+json"},
    )
    assert response.status_code == 201, response.text
    got = await client.get(f"{BASE}/entities/{body['id']}", headers={"accept": "application/ld+json"})
    assert got.headers["content-type"] == "application/ld+json"
    assert got.json()["@context"] == CORE


async def test_formats_and_sys_attrs(client: httpx.AsyncClient) -> None:
    await create(client, flow())
    url = f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001"
    key_values = (await client.get(url, params={"options": "keyValues"})).json()
    assert key_values["intensity"] == 1280
    assert key_values["refRoadSegment"] == "urn:ngsi-ld:RoadSegment:jinshui-road-12"
    assert key_values["location"] == {"type": "Point", "coordinates": [113.6653, 34.7566]}
    concise = (await client.get(url, params={"format": "concise"})).json()
    assert concise["laneDirection"] == "forward"
    assert concise["refRoadSegment"] == {"object": "urn:ngsi-ld:RoadSegment:jinshui-road-12"}
    assert concise["averageVehicleSpeed"] == {"value": 38.5, "accuracy": 0.9}
    with_sys = (await client.get(url, params={"options": "sysAttrs"})).json()
    assert with_sys["createdAt"] == with_sys["modifiedAt"]
    assert "createdAt" in with_sys["intensity"]
    zh = (await client.get(url, params={"lang": "zh", "options": "keyValues"})).json()
    assert zh["name"] == "金水路"


async def test_pick_and_omit(client: httpx.AsyncClient) -> None:
    await create(client, flow())
    url = f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001"
    picked = (await client.get(url, params={"attrs": "intensity,location"})).json()
    assert set(picked) == {"id", "type", "intensity", "location"}
    omitted = (await client.get(url, params={"omit": "name,location"})).json()
    assert "name" not in omitted
    assert "intensity" in omitted


async def test_concise_input_is_understood(client: httpx.AsyncClient) -> None:
    body = {
        "id": "urn:ngsi-ld:ParkingSpot:zz-p1",
        "type": "ParkingSpot",
        "status": "free",
        "category": {"value": ["onStreet"]},
        "refParkingSite": {"object": "urn:ngsi-ld:OffStreetParking:zz-1"},
        "location": {"type": "Point", "coordinates": [113.7, 34.76]},
    }
    assert (await create(client, body)).status_code == 201
    got = (await client.get(f"{BASE}/entities/{body['id']}")).json()
    assert got["status"] == {"type": "Property", "value": "free"}
    assert got["refParkingSite"]["type"] == "Relationship"
    assert got["location"]["type"] == "GeoProperty"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"type": "T"}, "entity id is missing"),
        ({"id": "not a uri", "type": "T"}, "must be a URI"),
        ({"id": "urn:a:b"}, "entity type is missing"),
        ({"id": "urn:a:b", "type": "T", "bad(name)": 1}, "forbidden character"),
        ({"id": "urn:a:b", "type": "T", "p": {"type": "Property"}}, "needs a 'value'"),
        ({"id": "urn:a:b", "type": "T", "r": {"type": "Relationship", "object": "nope"}}, "must be a URI"),
        ({"id": "urn:a:b", "type": "T", "location": {"type": "GeoProperty", "value": 3}}, "GeoJSON"),
        ({"id": "urn:a:b", "type": "T", "p": {"type": "Gadget", "value": 1}}, "unknown type"),
        (
            {"id": "urn:a:b", "type": "T", "p": {"type": "Property", "value": 1, "observedAt": "noon"}},
            "ISO 8601",
        ),
        ({"id": "urn:a:b", "type": "T", "scope": "no-slash"}, "scope"),
    ],
)
async def test_bad_entities_are_refused(client: httpx.AsyncClient, body: dict, fragment: str) -> None:
    response = await create(client, body)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert fragment in response.json()["detail"]


async def test_malformed_json_and_media_types(client: httpx.AsyncClient) -> None:
    bad = await client.post(f"{BASE}/entities", content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("InvalidRequest")
    xml = await client.post(f"{BASE}/entities", content=b"<a/>", headers={"content-type": "application/xml"})
    assert xml.status_code == 415
    await create(client, flow())
    html = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001", headers={"accept": "text/html"}
    )
    assert html.status_code == 406


async def test_duplicate_and_missing(client: httpx.AsyncClient) -> None:
    assert (await create(client, flow())).status_code == 201
    again = await create(client, flow())
    assert again.status_code == 409
    assert again.json()["type"].endswith("AlreadyExists")
    missing = await client.get(f"{BASE}/entities/urn:ngsi-ld:X:none")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("ResourceNotFound")
    assert missing.headers["content-type"] == "application/json"  # NGSI-LD's ProblemDetails are JSON
    nowhere = await client.get(f"{BASE}/nowhere")
    assert (nowhere.status_code, nowhere.headers["content-type"]) == (404, "application/json")
    assert (await client.get(f"{BASE}/entities/not-a-uri")).status_code == 400
    assert (await client.delete(f"{BASE}/entities/urn:ngsi-ld:X:none")).status_code == 404


async def test_delete(client: httpx.AsyncClient) -> None:
    await create(client, flow())
    url = f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001"
    assert (await client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await create(client, flow())).status_code == 201  # the id is free again


async def test_append_update_partial_and_delete_attributes(client: httpx.AsyncClient) -> None:
    await create(client, flow())
    url = f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001"
    appended = await client.post(f"{url}/attrs", json={"occupancy": {"type": "Property", "value": 0.42}})
    assert appended.status_code == 204
    kept = await client.post(
        f"{url}/attrs",
        params={"options": "noOverwrite"},
        json={"occupancy": {"type": "Property", "value": 0.9}},
    )
    assert kept.status_code == 207
    assert kept.json()["notUpdated"][0]["attributeName"] == "occupancy"
    # PATCH …/attrs updates what exists and adds what does not (the conformance suite's 011_01_03);
    # a null for a missing attribute has nothing to delete and is reported
    updated = await client.patch(
        f"{url}/attrs",
        json={
            "intensity": {"type": "Property", "value": 1500},
            "laneCount": {"type": "Property", "value": 3},
            "ghost": {"type": "Property", "value": "urn:ngsi-ld:null"},
        },
    )
    assert updated.status_code == 207
    assert updated.json()["updated"] == ["intensity", "laneCount"]
    assert [item["attributeName"] for item in updated.json()["notUpdated"]] == ["ghost"]
    assert (await client.get(url)).json()["laneCount"] == {"type": "Property", "value": 3}
    partial = await client.patch(f"{url}/attrs/averageVehicleSpeed", json={"value": 41.0})
    assert partial.status_code == 204
    entity = (await client.get(url)).json()
    assert entity["occupancy"]["value"] == 0.42
    assert entity["intensity"] == {"type": "Property", "value": 1500}
    assert entity["averageVehicleSpeed"]["value"] == 41.0
    assert entity["averageVehicleSpeed"]["accuracy"]["value"] == 0.9  # partial update keeps the rest
    assert (await client.delete(f"{url}/attrs/occupancy")).status_code == 204
    assert (await client.delete(f"{url}/attrs/occupancy")).status_code == 404
    assert (await client.patch(f"{url}/attrs/ghost", json={"value": 1})).status_code == 404
    assert "occupancy" not in (await client.get(url)).json()


async def test_multi_instance_attributes(client: httpx.AsyncClient) -> None:
    body = flow(
        intensity=[
            {"type": "Property", "value": 1280},
            {"type": "Property", "value": 300, "datasetId": "urn:ngsi-ld:Dataset:bus-lane"},
        ]
    )
    await create(client, body)
    url = f"{BASE}/entities/{body['id']}"
    assert len((await client.get(url)).json()["intensity"]) == 2
    response = await client.delete(
        f"{url}/attrs/intensity", params={"datasetId": "urn:ngsi-ld:Dataset:bus-lane"}
    )
    assert response.status_code == 204
    assert (await client.get(url)).json()["intensity"] == {"type": "Property", "value": 1280}
    twice = flow("urn:ngsi-ld:T:x", p=[{"type": "Property", "value": 1}, {"type": "Property", "value": 2}])
    assert (await create(client, twice)).status_code == 400


async def test_replace_and_merge(client: httpx.AsyncClient) -> None:
    await create(client, flow())
    url = f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001"
    created = (await client.get(url, params={"options": "sysAttrs"})).json()["createdAt"]
    replaced = await client.put(
        url, json={"type": "TrafficFlowObserved", "intensity": {"type": "Property", "value": 9}}
    )
    assert replaced.status_code == 204
    after = (await client.get(url, params={"options": "sysAttrs"})).json()
    assert set(after) == {"id", "type", "intensity", "createdAt", "modifiedAt"}
    assert after["createdAt"] == created
    merged = await client.patch(
        url,
        json={
            "intensity": {"type": "Property", "value": 10},
            "congested": {"type": "Property", "value": True},
        },
        headers={"content-type": "application/merge-patch+json"},
    )
    assert merged.status_code == 204
    entity = (await client.get(url)).json()
    assert entity["intensity"]["value"] == 10
    assert entity["congested"]["value"] is True
    removed = await client.patch(url, json={"congested": "urn:ngsi-ld:null"})
    assert removed.status_code == 204
    assert "congested" not in (await client.get(url)).json()


async def test_query_by_type_attrs_q_and_pagination(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await create(
            client,
            flow(
                f"urn:ngsi-ld:TrafficFlowObserved:q{index}",
                intensity={"type": "Property", "value": index * 100},
            ),
        )
    await create(
        client,
        {
            "id": "urn:ngsi-ld:ParkingSpot:p1",
            "type": "ParkingSpot",
            "status": {"type": "Property", "value": "free"},
        },
    )
    flows = await client.get(f"{BASE}/entities", params={"type": "TrafficFlowObserved", "count": "true"})
    assert flows.status_code == 200
    assert flows.headers["ngsild-results-count"] == "5"
    assert [e["id"][-2:] for e in flows.json()] == ["q0", "q1", "q2", "q3", "q4"]
    busy = await client.get(
        f"{BASE}/entities",
        params={"type": "TrafficFlowObserved", "q": 'intensity>=200;laneDirection=="forward"'},
    )
    assert [e["id"][-2:] for e in busy.json()] == ["q2", "q3", "q4"]
    page = await client.get(
        f"{BASE}/entities", params={"type": "TrafficFlowObserved", "limit": 2, "offset": 2}
    )
    assert [e["id"][-2:] for e in page.json()] == ["q2", "q3"]
    parked = await client.get(f"{BASE}/entities", params={"attrs": "status"})
    assert [e["id"] for e in parked.json()] == ["urn:ngsi-ld:ParkingSpot:p1"]
    by_pattern = await client.get(
        f"{BASE}/entities", params={"idPattern": "q[34]$", "type": "TrafficFlowObserved"}
    )
    assert len(by_pattern.json()) == 2
    by_ids = await client.get(
        f"{BASE}/entities",
        params={
            "id": "urn:ngsi-ld:TrafficFlowObserved:q1,urn:ngsi-ld:ParkingSpot:p1",
            "type": "TrafficFlowObserved,ParkingSpot",
        },
    )
    assert len(by_ids.json()) == 2
    counted = await client.get(
        f"{BASE}/entities", params={"type": "ParkingSpot", "limit": 0, "count": "true"}
    )
    assert counted.json() == []
    assert counted.headers["ngsild-results-count"] == "1"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"id": "urn:a:b"},  # ids alone are not enough to query
        {"attrs": "id,type"},  # entity members, not attributes
        {"type": "T", "pick": "name", "omit": "name"},
        {"type": "T", "pick": "name", "attrs": "name"},
        {"type": "T", "pick": "name{"},
        {"type": "T", "pick": "name,,x"},
        {"type": "T", "q": "speed>"},
        {"type": "T", "limit": -1},
        {"type": "T", "limit": 0},
        {"type": "T", "idPattern": "("},
        {"type": "T", "georel": "near;maxDistance==10"},
        {"type": "T", "georel": "sideways", "geometry": "Point", "coordinates": "[113.6,34.7]"},
        {"type": "T", "options": "shiny"},
    ],
)
async def test_bad_queries(client: httpx.AsyncClient, params: dict) -> None:
    response = await client.get(f"{BASE}/entities", params=params)
    assert response.status_code == 400, response.text


async def test_too_many_results(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/entities", params={"type": "T", "limit": 5000})
    assert response.status_code == 403
    assert response.json()["type"].endswith("TooManyResults")


async def test_geo_query_near_zhengzhou_east_station(client: httpx.AsyncClient) -> None:
    await create(client, flow("urn:ngsi-ld:TrafficFlowObserved:erqi"))  # at Erqi Tower
    east = flow(
        "urn:ngsi-ld:TrafficFlowObserved:east",
        location={"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.7720, 34.7594]}},
    )
    await create(client, east)
    near = await client.get(
        f"{BASE}/entities",
        params={
            "type": "TrafficFlowObserved",
            "georel": "near;maxDistance==2000",
            "geometry": "Point",
            "coordinates": "[113.7700,34.7600]",
        },
    )
    assert [e["id"] for e in near.json()] == ["urn:ngsi-ld:TrafficFlowObserved:east"]
    inside = await client.get(
        f"{BASE}/entities",
        params={
            "type": "TrafficFlowObserved",
            "georel": "within",
            "geometry": "Polygon",
            "coordinates": "[[[113.6,34.7],[113.7,34.7],[113.7,34.8],[113.6,34.8],[113.6,34.7]]]",
        },
    )
    assert [e["id"] for e in inside.json()] == ["urn:ngsi-ld:TrafficFlowObserved:erqi"]
    features = await client.get(
        f"{BASE}/entities", params={"type": "TrafficFlowObserved"}, headers={"accept": "application/geo+json"}
    )
    assert features.json()["type"] == "FeatureCollection"
    assert features.json()["features"][0]["geometry"]["type"] == "Point"


async def _near(client: httpx.AsyncClient, lon: float, lat: float, **headers: str) -> list[str]:
    response = await client.get(
        f"{BASE}/entities",
        params={
            "type": "TrafficFlowObserved",
            "georel": "near;maxDistance==500",
            "geometry": "Point",
            "coordinates": f"[{lon},{lat}]",
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


def _at(lon: float, lat: float) -> dict:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


async def test_geo_queries_follow_entities_that_move_lose_their_location_or_go(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """The spatial prefilter (GiST on PostgreSQL, R*Tree on SQLite) stays in step with every write
    path: create, batch upsert, attribute patch and delete, per tenant."""
    one, two = "urn:ngsi-ld:TrafficFlowObserved:one", "urn:ngsi-ld:TrafficFlowObserved:two"
    erqi, east = (113.6653, 34.7566), (113.7720, 34.7594)
    await create(client, flow(one, location=_at(*erqi)))
    await create(client, flow(one, location=_at(*east)), **{"NGSILD-Tenant": "jinshui"})
    assert await _near(client, *erqi) == [one]
    assert await _near(client, *erqi, **{"NGSILD-Tenant": "jinshui"}) == []
    assert await _near(client, *east, **{"NGSILD-Tenant": "jinshui"}) == [one]

    moved = await client.post(f"{BASE}/entityOperations/upsert", json=[flow(one, location=_at(*east))])
    assert moved.status_code == 204, moved.text
    assert await _near(client, *erqi) == []
    assert await _near(client, *east) == [one]

    await create(client, flow(two, location=_at(*east)))
    patched = await client.patch(f"{BASE}/entities/{two}/attrs", json={"location": _at(*erqi)})
    assert patched.status_code == 204, patched.text
    assert await _near(client, *erqi) == [two]
    dropped = await client.delete(f"{BASE}/entities/{two}/attrs/location")
    assert dropped.status_code == 204, dropped.text
    assert await _near(client, *erqi) == []
    back = await client.post(f"{BASE}/entities/{two}/attrs", json={"location": _at(*erqi)})
    assert back.status_code == 204, back.text
    assert await _near(client, *erqi) == [two]

    assert (await client.delete(f"{BASE}/entities/{two}")).status_code == 204
    assert await _near(client, *erqi) == []
    assert await _near(client, *east) == [one]
    if database_url.startswith("sqlite"):
        # the R*Tree keys boxes by ids of their own, which VACUUM (free to renumber rowids) keeps
        path = database_url.split(":///", 1)[1]

        def vacuum() -> tuple[int, ...]:
            with contextlib.closing(sqlite3.connect(path, timeout=60)) as raw:
                raw.execute("VACUUM")
                return tuple(raw.execute("SELECT count(*) FROM broker_entity_rtree").fetchone())

        # in a thread: the hub's own consumers (the apps' write-backs) may hold the write lock, and
        # they finish their transaction on this event loop, which a blocking VACUUM would stop
        assert await asyncio.to_thread(vacuum) == (2,)
        assert await _near(client, *east) == [one]


async def test_tenants_are_isolated_and_created_on_first_write(client: httpx.AsyncClient) -> None:
    tenant = {"NGSILD-Tenant": "urn:ngsi-ld:tenant:jinshui"}
    reading = await client.get(f"{BASE}/entities/urn:ngsi-ld:T:a", headers=tenant)
    assert reading.status_code == 404
    assert reading.json()["type"].endswith("NonexistentTenant")
    assert (await create(client, flow(), **tenant)).status_code == 201
    assert (
        await client.get(f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001", headers=tenant)
    ).status_code == 200
    # the default tenant does not see it
    assert (await client.get(f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001")).status_code == 404
    # a district tenant of the hub is a broker tenant too
    assert (await create(client, flow(), **{"NGSILD-Tenant": "410100"})).status_code == 201


async def test_discovery(client: httpx.AsyncClient) -> None:
    await create(client, flow())
    await create(
        client,
        {
            "id": "urn:ngsi-ld:ParkingSpot:p1",
            "type": "ParkingSpot",
            "status": {"type": "Property", "value": "free"},
        },
    )
    types = (await client.get(f"{BASE}/types")).json()
    assert types["typeList"] == ["ParkingSpot", "TrafficFlowObserved"]
    detailed = (await client.get(f"{BASE}/types", params={"details": "true"})).json()
    assert detailed[0]["id"] == DEFAULT + "ParkingSpot"
    attributes = (await client.get(f"{BASE}/attributes")).json()["attributeList"]
    assert "intensity" in attributes
    assert "status" in attributes
    assert "location" in attributes


async def test_trailing_slash_and_missing_ids(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{BASE}/entities/", json=flow())).status_code == 201
    assert (await client.get(f"{BASE}/entities/", params={"type": "TrafficFlowObserved"})).status_code == 200
    for method, path in (("PATCH", "/entities/"), ("PUT", "/entities/"), ("POST", "/entities//attrs")):
        response = await client.request(method, f"{BASE}{path}", json={"type": "T"})
        assert response.status_code == 400, (method, path)
        assert "entity id is missing" in response.json()["detail"]


async def test_delete_paths_without_names(client: httpx.AsyncClient) -> None:
    await create(client, flow())
    no_attr = await client.delete(f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:zz-001/attrs/")
    assert no_attr.status_code == 405
    no_id = await client.delete(f"{BASE}/entities//attrs/intensity")
    assert no_id.status_code == 400


async def test_pick_with_core_members_keeps_every_entity(client: httpx.AsyncClient) -> None:
    await create(client, flow())
    await create(client, {"id": "urn:ngsi-ld:TrafficFlowObserved:bare", "type": "TrafficFlowObserved"})
    params = {"type": "TrafficFlowObserved"}
    by_name = await client.get(f"{BASE}/entities", params=params | {"pick": "intensity"})
    assert len(by_name.json()) == 1  # only entities that have a picked attribute
    with_id = await client.get(f"{BASE}/entities", params=params | {"pick": "id,intensity"})
    assert [set(e) for e in with_id.json()] == [{"id", "intensity"}, {"id"}]


async def test_order_by_members_directions_and_several_keys(client: httpx.AsyncClient) -> None:
    """orderBy (NGSI-LD 1.9): id, type, timestamps, attributes and their sub-attributes, each
    ascending or descending; entities lacking the member come last either way."""
    rows = [("c", "A", 3), ("a", "B", 1), ("b", "A", None)]
    for suffix, name, rank in rows:
        body: dict = {"id": f"urn:ngsi-ld:Building:{suffix}", "type": "Building"}
        body["name"] = {"type": "Property", "value": name}
        if rank is not None:
            body["name"]["rank"] = {"type": "Property", "value": rank}
        assert (await create(client, body)).status_code == 201

    async def order(by: str) -> list[str]:
        response = await client.get(f"{BASE}/entities", params={"type": "Building", "orderBy": by})
        assert response.status_code == 200, response.text
        return [e["id"].rsplit(":", 1)[1] for e in response.json()]

    assert await order("id") == ["a", "b", "c"]
    assert await order("id;desc") == ["c", "b", "a"]
    assert await order("createdAt") == ["c", "a", "b"]
    assert await order("name.rank") == ["a", "c", "b"]
    assert await order("name.rank;desc") == ["c", "a", "b"]
    assert await order("name;asc,id;desc") == ["c", "b", "a"]
    paged = await client.get(f"{BASE}/entities", params={"type": "Building", "orderBy": "id", "offset": 1})
    assert [e["id"][-1] for e in paged.json()] == ["b", "c"]
    refused = await client.get(f"{BASE}/entities", params={"type": "Building", "orderBy": "id;up"})
    assert refused.status_code == 400


@pytest.mark.parametrize("null", ["urn:ngsi-ld:null", {"@none": "urn:ngsi-ld:null"}])
async def test_a_null_observed_at_is_no_server_error(client: httpx.AsyncClient, null: object) -> None:
    """NGSI-LD's null in observedAt (either form) passes the member checks; the history row then
    has no observation time (a dict there raised a TypeError, and the string failed to parse)."""
    body = {
        "id": "urn:ngsi-ld:T:null-observed",
        "type": "T",
        "p": {"type": "Property", "value": 1, "observedAt": null},
    }
    response = await create(client, body)
    assert response.status_code in (201, 400), response.text
    merged = await client.patch(
        f"{BASE}/entities/urn:ngsi-ld:T:null-observed",
        json={"p": {"type": "Property", "value": 2, "observedAt": null}},
    )
    assert merged.status_code < 500, merged.text
