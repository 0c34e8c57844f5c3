"""Device ingestion behind the guard: devices send with their service group's API key, people
provision with a token and a permission in the tenant ``fiware-service`` names."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from tests.hub.ingest.support import provision
from tests.systems.security.conftest import add_user, bearer, event_count

COUNTY = "410105"  # Jinshui District, Zhengzhou
SERVICE = {"fiware-service": COUNTY, "fiware-servicepath": "/jinshui"}
AIR = "urn:ngsi-ld:AirQualityObserved:air-001"


async def test_devices_send_with_their_key_and_provisioning_needs_a_permission_there(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    anonymous = await sclient.post("/iot/services", json={"services": []}, headers=SERVICE)
    assert anonymous.status_code == 401, anonymous.text

    stranger = await add_user(secure_app, "410102", [("410102", "operator")])  # another county
    refused = await sclient.post(
        "/iot/services", json={"services": []}, headers={**SERVICE, **await bearer(sclient, stranger)}
    )
    assert refused.status_code == 403, refused.text

    operator = await add_user(secure_app, COUNTY, [(COUNTY, "operator")])
    auth = await bearer(sclient, operator)
    await provision(sclient, headers={**SERVICE, **auth})

    sent = await sclient.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content="t|22.5|h|0.4")
    assert sent.status_code == 200, sent.text  # no token: the API key is the device's credential
    for _ in range(3):  # guessing keys: one security event a minute per key, every message a letter
        wrong = await sclient.post("/iot/d", params={"k": "guess", "i": "air-001"}, content="t|99")
        assert wrong.status_code == 404, wrong.text
        assert wrong.json()["reason"] == "unknown-apikey"
    await _settled(secure_app)
    assert await event_count(secure_app, "unknown_device_key") == 1

    stored = await sclient.get(f"/ngsi-ld/v1/entities/{AIR}", headers={"NGSILD-Tenant": COUNTY, **auth})
    assert stored.status_code == 200, stored.text
    assert stored.json()["temperature"]["value"] == 22.5
    # a key nobody provisioned names no tenant: its letter is kept in the hub's default tenant,
    # for those who may read there, not in the county's
    county = await sclient.get("/api/v1/ingest/dead-letters", headers={**SERVICE, **auth})
    assert county.status_code == 200, county.text
    assert county.json()["count"] == 0
    default = secure_app.state.hub.settings.default_tenant
    keeper = await add_user(secure_app, default, [(default, "operator")])
    kept = await sclient.get("/api/v1/ingest/dead-letters", headers=await bearer(sclient, keeper))
    assert kept.status_code == 200, kept.text
    assert [letter["reason"] for letter in kept.json()["deadLetters"]] == ["unknown-apikey"] * 3
    # polling for commands and answering them need no token either: the key is the credential
    polled = await sclient.get("/iot/d", params={"k": "k-air", "i": "air-001", "getCmd": "1"})
    assert (polled.status_code, polled.text) == (200, "")
    answer = await sclient.post("/iot/json/commands", params={"k": "k-air", "i": "air-001"}, json={"x": 1})
    assert answer.status_code == 404, answer.text
    assert answer.json()["reason"] == "unknown-command"  # no command waits; refused by the gateway


async def _settled(app: FastAPI) -> None:
    """Security events the gateway raised are written in the background: wait for them."""
    recording = app.state.hub.security._recording
    if recording:
        await asyncio.gather(*recording)


async def test_permission_is_checked_in_the_tenant_the_route_reads(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    """The broker reads NGSILD-Tenant only: a fiware-service header naming the caller's own county
    must not make the guard check there while the broker acts in the hub's default tenant. The
    ingest routes read fiware-service first: the guard checks in that tenant there."""
    county = await bearer(sclient, await add_user(secure_app, COUNTY, [(COUNTY, "operator")]))
    city = secure_app.state.hub.settings.default_tenant
    broker = await sclient.get("/ngsi-ld/v1/types", headers={"fiware-service": COUNTY, **county})
    assert broker.status_code == 403, broker.text  # the default tenant (the city) is not the county's
    own = await sclient.get("/ngsi-ld/v1/types", headers={"NGSILD-Tenant": COUNTY, **county})
    assert own.status_code == 200, own.text
    ingest = await sclient.get(
        "/iot/services", headers={"fiware-service": COUNTY, "NGSILD-Tenant": city, **county}
    )
    assert ingest.status_code == 200, ingest.text  # acts in the county, as fiware-service says
    other = await sclient.get(
        "/iot/services", headers={"fiware-service": city, "NGSILD-Tenant": COUNTY, **county}
    )
    assert other.status_code == 403, other.text
