"""The hub's error answers for what only the database write finds wrong (kit.web's handler of
unstorable values), through a real endpoint."""

from __future__ import annotations

import httpx


async def test_an_integer_beyond_64_bits_is_a_bad_request_not_a_server_error(
    client: httpx.AsyncClient,
) -> None:
    # the standard library reads the body's number; the JSON column's encoder cannot hold it
    body = {
        "services": [
            {
                "apikey": "k-big",
                "entity_type": "Thing",
                "static_attributes": [{"name": "n", "type": "Number", "value": 2**70}],
            }
        ]
    }
    response = await client.post("/iot/services", json=body, headers={"fiware-service": "smartcity"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/")
    problem = response.json()
    assert problem["type"].endswith("BadRequestData")
    assert "cannot be stored" in problem["detail"]
    # nothing of it was kept, and the same request with a storable number succeeds
    listed = await client.get("/iot/services", headers={"fiware-service": "smartcity"})
    assert listed.json()["count"] == 0
    body["services"][0]["static_attributes"] = [{"name": "n", "type": "Number", "value": 2**62}]
    assert (
        await client.post("/iot/services", json=body, headers={"fiware-service": "smartcity"})
    ).status_code == 201
