"""Writers of one entity at the same time: each change is applied to what the one before it left,
so none is lost (a read-modify-write without a lock let the later writer put back what it read)."""

from __future__ import annotations

import asyncio

import httpx

JSON = {"Content-Type": "application/json"}
LAMP = "urn:ngsi-ld:Streetlight:lamp-1"
WRITERS = 12


async def _create(client: httpx.AsyncClient) -> None:
    lamp = {"id": LAMP, "type": "Streetlight", "status": {"type": "Property", "value": "ok"}}
    assert (await client.post("/ngsi-ld/v1/entities", json=lamp, headers=JSON)).status_code == 201


async def _patch(client: httpx.AsyncClient, index: int) -> int:
    """Adds attribute ``p{index}`` with a PATCH; the answer's status."""
    body = {f"p{index}": {"type": "Property", "value": index}}
    answer = await client.patch(f"/ngsi-ld/v1/entities/{LAMP}/attrs", json=body, headers=JSON)
    return answer.status_code


async def test_concurrent_attribute_appends_all_land(client: httpx.AsyncClient) -> None:
    await _create(client)

    async def append(index: int) -> int:
        body = {f"a{index}": {"type": "Property", "value": index}}
        return (await client.post(f"/ngsi-ld/v1/entities/{LAMP}/attrs", json=body, headers=JSON)).status_code

    assert await asyncio.gather(*(append(index) for index in range(WRITERS))) == [204] * WRITERS
    stored = (await client.get(f"/ngsi-ld/v1/entities/{LAMP}")).json()
    assert {f"a{index}" for index in range(WRITERS)} <= set(stored)


async def test_concurrent_batch_updates_and_patches_all_land(client: httpx.AsyncClient) -> None:
    await _create(client)

    async def batch(index: int) -> int:
        body = [{"id": LAMP, "type": "Streetlight", f"b{index}": {"type": "Property", "value": index}}]
        answer = await client.post("/ngsi-ld/v1/entityOperations/update", json=body, headers=JSON)
        return answer.status_code

    outcomes = await asyncio.gather(
        *(batch(index) for index in range(WRITERS)), *(_patch(client, index) for index in range(WRITERS))
    )
    assert outcomes == [204] * (2 * WRITERS)
    stored = (await client.get(f"/ngsi-ld/v1/entities/{LAMP}")).json()
    expected = {f"b{index}" for index in range(WRITERS)} | {f"p{index}" for index in range(WRITERS)}
    assert expected <= set(stored), sorted(expected - set(stored))


async def test_batches_naming_entities_in_opposite_orders_do_not_deadlock(client: httpx.AsyncClient) -> None:
    lamps = [f"urn:ngsi-ld:Streetlight:lamp-{name}" for name in "ab"]
    body = [{"id": lamp, "type": "Streetlight"} for lamp in lamps]
    assert (
        await client.post("/ngsi-ld/v1/entityOperations/create", json=body, headers=JSON)
    ).status_code == 201

    async def batch(index: int) -> int:
        order = lamps if index % 2 else lamps[::-1]
        body = [
            {"id": lamp, "type": "Streetlight", f"c{index}": {"type": "Property", "value": index}}
            for lamp in order
        ]
        for operation in ("update", "merge"):
            answer = await client.post(f"/ngsi-ld/v1/entityOperations/{operation}", json=body, headers=JSON)
            if answer.status_code != 204:
                return answer.status_code
        return 204

    assert await asyncio.gather(*(batch(index) for index in range(WRITERS))) == [204] * WRITERS
    for lamp in lamps:
        stored = (await client.get(f"/ngsi-ld/v1/entities/{lamp}")).json()
        assert {f"c{index}" for index in range(WRITERS)} <= set(stored)


async def test_concurrent_temporal_additions_and_patches_all_land(client: httpx.AsyncClient) -> None:
    # the temporal API adds an attribute it has not seen to the entity as well: written back
    # beside other writers of the entity, none of theirs is lost (nor its own)
    await _create(client)

    async def add(index: int) -> int:
        instance = {"type": "Property", "value": index, "observedAt": "2026-01-01T00:00:00Z"}
        body = {f"t{index}": [instance]}
        path = f"/ngsi-ld/v1/temporal/entities/{LAMP}/attrs"
        return (await client.post(path, json=body, headers=JSON)).status_code

    async def create(index: int) -> int:
        instance = {"type": "Property", "value": index, "observedAt": "2026-01-01T00:00:00Z"}
        body = {"id": LAMP, "type": "Streetlight", f"c{index}": [instance]}
        return (await client.post("/ngsi-ld/v1/temporal/entities", json=body, headers=JSON)).status_code

    outcomes = await asyncio.gather(
        *(add(index) for index in range(WRITERS)),
        *(create(index) for index in range(WRITERS)),
        *(_patch(client, index) for index in range(WRITERS)),
    )
    assert outcomes == [204] * (3 * WRITERS)
    stored = (await client.get(f"/ngsi-ld/v1/entities/{LAMP}")).json()
    expected = {f"{kind}{index}" for kind in "tcp" for index in range(WRITERS)}
    assert expected <= set(stored), sorted(expected - set(stored))


async def test_purges_of_some_attributes_and_patches_all_land(client: httpx.AsyncClient) -> None:
    # a purge that drops some attributes writes the rest back: beside other writers, theirs stay
    await _create(client)

    async def purge(index: int) -> int:
        body = {f"d{index}": {"type": "Property", "value": index}}
        await client.post(f"/ngsi-ld/v1/entities/{LAMP}/attrs", json=body, headers=JSON)
        params = {"type": "Streetlight", "drop": f"d{index}"}
        return (await client.delete("/ngsi-ld/v1/entities", params=params)).status_code

    outcomes = await asyncio.gather(
        *(purge(index) for index in range(WRITERS)), *(_patch(client, index) for index in range(WRITERS))
    )
    assert outcomes == [204] * (2 * WRITERS)
    stored = (await client.get(f"/ngsi-ld/v1/entities/{LAMP}")).json()
    assert {f"p{index}" for index in range(WRITERS)} <= set(stored)
    assert not {f"d{index}" for index in range(WRITERS)} & set(stored)
