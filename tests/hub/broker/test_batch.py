"""Batch operations, purge and type/attribute details on a started hub (SQLite or PostgreSQL)."""

from __future__ import annotations

import httpx

BASE = "/ngsi-ld/v1"


def spot(index: int, status: str = "free") -> dict:
    return {
        "id": f"urn:ngsi-ld:ParkingSpot:zz-{index}",
        "type": "ParkingSpot",
        "status": {"type": "Property", "value": status},
    }


async def get(client: httpx.AsyncClient, index: int) -> httpx.Response:
    return await client.get(f"{BASE}/entities/urn:ngsi-ld:ParkingSpot:zz-{index}")


async def test_create_all_or_report_each(client: httpx.AsyncClient) -> None:
    created = await client.post(f"{BASE}/entityOperations/create", json=[spot(1), spot(2)])
    assert created.status_code == 201
    assert created.json() == ["urn:ngsi-ld:ParkingSpot:zz-1", "urn:ngsi-ld:ParkingSpot:zz-2"]
    broken = {"id": "urn:ngsi-ld:ParkingSpot:zz-4", "type": "ParkingSpot", "status": {"type": "Property"}}
    mixed = await client.post(f"{BASE}/entityOperations/create", json=[spot(2), spot(3), broken])
    assert mixed.status_code == 207
    body = mixed.json()
    assert body["success"] == ["urn:ngsi-ld:ParkingSpot:zz-3"]
    assert {e["entityId"]: e["error"]["status"] for e in body["errors"]} == {
        "urn:ngsi-ld:ParkingSpot:zz-2": 409,
        "urn:ngsi-ld:ParkingSpot:zz-4": 400,
    }
    assert (await get(client, 4)).status_code == 404  # the failed entity left nothing behind


async def test_upsert_replace_and_update(client: httpx.AsyncClient) -> None:
    first = await client.post(f"{BASE}/entityOperations/upsert", json=[spot(1)])
    assert first.status_code == 201
    extra = spot(1, "occupied") | {"level": {"type": "Property", "value": -1}}
    replaced = await client.post(f"{BASE}/entityOperations/upsert", json=[extra])
    assert replaced.status_code == 204
    again = await client.post(
        f"{BASE}/entityOperations/upsert", params={"options": "update"}, json=[spot(1, "free")]
    )
    assert again.status_code == 204
    entity = (await get(client, 1)).json()
    assert entity["status"]["value"] == "free"
    assert entity["level"]["value"] == -1  # update keeps what it was not given
    replace_only = await client.post(f"{BASE}/entityOperations/upsert", json=[spot(1)])
    assert replace_only.status_code == 204
    assert "level" not in (await get(client, 1)).json()


async def test_update_merge_and_delete(client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/entityOperations/create", json=[spot(1), spot(2)])
    updated = await client.post(
        f"{BASE}/entityOperations/update", json=[spot(1, "occupied"), spot(9, "occupied")]
    )
    assert updated.status_code == 207
    assert updated.json()["success"] == ["urn:ngsi-ld:ParkingSpot:zz-1"]
    merged = await client.post(
        f"{BASE}/entityOperations/merge",
        json=[{"id": "urn:ngsi-ld:ParkingSpot:zz-2", "status": "urn:ngsi-ld:null", "charging": True}],
    )
    assert merged.status_code == 204
    two = (await get(client, 2)).json()
    assert "status" not in two
    assert two["charging"]["value"] is True
    deleted = await client.post(
        f"{BASE}/entityOperations/delete",
        json=["urn:ngsi-ld:ParkingSpot:zz-1", "urn:ngsi-ld:ParkingSpot:zz-7"],
    )
    assert deleted.status_code == 207
    assert deleted.json()["errors"][0]["entityId"] == "urn:ngsi-ld:ParkingSpot:zz-7"
    assert (await get(client, 1)).status_code == 404


async def test_batch_input_errors(client: httpx.AsyncClient) -> None:
    not_list = await client.post(f"{BASE}/entityOperations/create", json=spot(1))
    assert not_list.status_code == 400
    assert not_list.json()["type"].endswith("InvalidRequest")
    assert (await client.post(f"{BASE}/entityOperations/create", json=[])).status_code == 400
    too_many = [spot(i) for i in range(1001)]
    assert (await client.post(f"{BASE}/entityOperations/create", json=too_many)).status_code == 400


async def test_purge_by_type_and_keep(client: httpx.AsyncClient) -> None:
    spots = [spot(i) | {"level": {"type": "Property", "value": i}} for i in range(3)]
    await client.post(f"{BASE}/entityOperations/create", json=spots)
    kept = await client.delete(f"{BASE}/entities", params={"type": "ParkingSpot", "keep": "status"})
    assert kept.status_code == 204
    assert "level" not in (await get(client, 0)).json()
    purged = await client.delete(f"{BASE}/entities", params={"type": "ParkingSpot", "q": 'status=="free"'})
    assert purged.status_code == 204
    assert (await get(client, 0)).status_code == 404
    assert (await client.delete(f"{BASE}/entities", params={"type": "ParkingSpot"})).status_code == 404
    assert (await client.delete(f"{BASE}/entities")).status_code == 400


async def test_type_and_attribute_details(client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/entityOperations/create", json=[spot(1), spot(2)])
    info = (await client.get(f"{BASE}/types/ParkingSpot")).json()
    assert info["entityCount"] == 2
    assert info["attributeDetails"][0]["attributeName"] == "status"
    assert info["attributeDetails"][0]["attributeTypes"] == ["Property"]
    expanded = await client.get(f"{BASE}/types/https://uri.etsi.org/ngsi-ld/default-context/ParkingSpot")
    assert expanded.json()["typeName"] == "ParkingSpot"
    attribute = (await client.get(f"{BASE}/attributes/status")).json()
    assert (attribute["attributeCount"], attribute["typeNames"]) == (2, ["ParkingSpot"])
    assert (await client.get(f"{BASE}/types/Nothing")).status_code == 404
    listed = await client.get(f"{BASE}/types/")  # a trailing slash lists, it names no type
    assert listed.json()["typeList"] == ["ParkingSpot"]


async def test_upsert_same_id_twice_and_changed_types(client: httpx.AsyncClient) -> None:
    first, second = spot(1), spot(1, "occupied") | {"type": ["ParkingSpot", "ChargingPoint"]}
    response = await client.post(f"{BASE}/entityOperations/upsert", json=[first, second])
    assert response.status_code == 201
    entity = (await get(client, 1)).json()
    assert entity["status"]["value"] == "occupied"
    assert entity["type"] == ["ParkingSpot", "ChargingPoint"]
    charging = await client.get(f"{BASE}/entities", params={"type": "ChargingPoint"})
    assert [e["id"] for e in charging.json()] == ["urn:ngsi-ld:ParkingSpot:zz-1"]
    retyped = await client.post(f"{BASE}/entityOperations/upsert", json=[spot(1)])
    assert retyped.status_code == 204
    assert (await client.get(f"{BASE}/entities", params={"type": "ChargingPoint"})).json() == []
    duplicate = await client.post(f"{BASE}/entityOperations/create", json=[spot(5), spot(5)])
    assert duplicate.status_code == 207
    assert duplicate.json()["success"] == ["urn:ngsi-ld:ParkingSpot:zz-5"]


async def test_upserts_keep_the_type_rows_that_queries_by_type_read(client: httpx.AsyncClient) -> None:
    """Upserts of known entities write no type rows unless the types changed; every path that
    changes them, the same id twice in one batch included, leaves the entity findable by type."""

    async def of_type(name: str) -> list[str]:
        response = await client.get(f"{BASE}/entities", params={"type": name})
        return [e["id"] for e in response.json()]

    ids = ["urn:ngsi-ld:ParkingSpot:zz-1", "urn:ngsi-ld:ParkingSpot:zz-2"]
    assert (await client.post(f"{BASE}/entityOperations/upsert", json=[spot(1), spot(2)])).status_code == 201
    for options in ({}, {"options": "update"}):  # the same types again, replaced then updated
        same = await client.post(
            f"{BASE}/entityOperations/upsert", params=options, json=[spot(1, "occupied"), spot(2)]
        )
        assert same.status_code == 204
        assert await of_type("ParkingSpot") == ids
    # replaced by another type, then back to the first, in one batch: the stored types are as before
    away_and_back = [spot(1) | {"type": "ChargingPoint"}, spot(1)]
    assert (await client.post(f"{BASE}/entityOperations/upsert", json=away_and_back)).status_code == 204
    assert await of_type("ParkingSpot") == ids
    assert await of_type("ChargingPoint") == []
    # an update adds a type
    grown = spot(2) | {"type": "ChargingPoint"}
    response = await client.post(
        f"{BASE}/entityOperations/upsert", params={"options": "update"}, json=[grown]
    )
    assert response.status_code == 204
    assert await of_type("ChargingPoint") == [ids[1]]
    assert await of_type("ParkingSpot") == ids


async def test_delete_same_id_twice_and_unknown_parameters(client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/entityOperations/create", json=[spot(1)])
    twice = await client.post(
        f"{BASE}/entityOperations/delete",
        json=["urn:ngsi-ld:ParkingSpot:zz-1", "urn:ngsi-ld:ParkingSpot:zz-1"],
    )
    assert twice.status_code == 207  # the second deletion finds nothing
    assert twice.json()["success"] == ["urn:ngsi-ld:ParkingSpot:zz-1"]
    for method, path in (("GET", "/types"), ("DELETE", "/entities"), ("POST", "/entities")):
        response = await client.request(
            method, f"{BASE}{path}", params={"type": "T", "colour": "red"}, json=spot(2)
        )
        assert response.status_code == 400, (method, path)
        assert response.json()["type"].endswith("InvalidRequest")


async def test_purge_by_scope(client: httpx.AsyncClient) -> None:
    scoped = spot(1) | {"scope": "/Zhengzhou/Jinshui"}
    await client.post(f"{BASE}/entityOperations/create", json=[scoped, spot(2)])
    assert (await client.delete(f"{BASE}/entities", params={"scopeQ": "/Zhengzhou/#"})).status_code == 204
    assert (await get(client, 1)).status_code == 404
    assert (await get(client, 2)).status_code == 200
