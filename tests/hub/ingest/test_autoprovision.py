"""Autoprovisioning: a service group with ``autoprovision: true`` provisions an unknown device on its
first valid message; without the flag the message stays an ``unknown-device`` dead letter."""

from __future__ import annotations

import asyncio

import httpx

from tests.hub.ingest.support import SERVICE, dead_letters, entity, provision

NOISE = [{"object_id": "l", "name": "LAeq", "type": "Number", "unitCode": "2N"}]


async def test_first_valid_message_provisions_the_device(client: httpx.AsyncClient) -> None:
    await provision(
        client,
        apikey="k-noise",
        entity_type="NoiseLevelObserved",
        attributes=NOISE,
        static_attributes=[{"name": "source", "type": "Text", "value": "district network"}],
        commands=[{"name": "calibrate", "type": "command"}],
        autoprovision=True,
        expected_interval=300,
        devices=[],
    )
    groups = (await client.get("/iot/services", headers=SERVICE)).json()["services"]
    assert [g["autoprovision"] for g in groups] == [True]
    # an unknown device's malformed first message provisions nothing
    bad = await client.post("/iot/d", params={"k": "k-noise", "i": "noise-42"}, content="l|55|x")
    assert bad.status_code == 400
    assert (await client.get("/iot/devices/noise-42", headers=SERVICE)).status_code == 404
    # a valid one does, and is stored
    response = await client.post("/iot/d", params={"k": "k-noise", "i": "noise-42"}, content="l|55.2")
    assert response.status_code == 200, response.text
    device = (await client.get("/iot/devices/noise-42", headers=SERVICE)).json()
    assert device["entity_name"] == "urn:ngsi-ld:NoiseLevelObserved:noise-42"
    assert device["entity_type"] == "NoiseLevelObserved"
    assert device["service_path"] == "/jinshui"
    assert device["apikey"] == "k-noise"
    assert device["expected_interval"] == 300
    assert device["last_seen_at"] is not None
    noise = await entity(client, "urn:ngsi-ld:NoiseLevelObserved:noise-42")
    assert noise["LAeq"]["value"] == 55.2
    assert noise["LAeq"]["unitCode"] == "2N"
    assert noise["source"]["value"] == "district network"  # the group's static attribute
    assert noise["calibrate_status"]["value"] == "UNKNOWN"  # and its command
    assert noise["scope"] == "/jinshui"
    described = await entity(client, "urn:ngsi-ld:Device:noise-42")
    assert described["controlledAsset"]["object"] == "urn:ngsi-ld:NoiseLevelObserved:noise-42"
    # later messages go to the device as provisioned
    response = await client.post("/iot/d", params={"k": "k-noise", "i": "noise-42"}, content="l|60")
    assert response.status_code == 200, response.text
    assert (await entity(client, "urn:ngsi-ld:NoiseLevelObserved:noise-42"))["LAeq"]["value"] == 60
    # several first messages at once from a new device: one device, every message stored
    answers = await asyncio.gather(
        *(
            client.post("/iot/d", params={"k": "k-noise", "i": "noise-43"}, content=f"l|{40 + n}")
            for n in range(5)
        )
    )
    assert [a.status_code for a in answers] == [200] * 5
    listed = (await client.get("/iot/devices", headers=SERVICE)).json()
    assert sorted(d["device_id"] for d in listed["devices"]) == ["noise-42", "noise-43"]
    history = await client.get(
        "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:NoiseLevelObserved:noise-43",
        params={"attrs": "LAeq"},
        headers={"NGSILD-Tenant": "smartcity"},
    )
    assert sorted(i["value"] for i in history.json()["LAeq"]) == [40, 41, 42, 43, 44]
    # a device id that cannot name a device is not provisioned
    odd = await client.post("/iot/d", params={"k": "k-noise", "i": "a b"}, content="l|50")
    assert odd.status_code == 404
    assert odd.json()["reason"] == "unknown-device"


async def test_without_the_flag_an_unknown_device_stays_a_dead_letter(client: httpx.AsyncClient) -> None:
    await provision(client, apikey="k-strict", entity_type="NoiseLevelObserved", attributes=NOISE, devices=[])
    response = await client.post("/iot/d", params={"k": "k-strict", "i": "noise-9"}, content="l|50")
    assert response.status_code == 404
    assert response.json()["reason"] == "unknown-device"
    assert (await client.get("/iot/devices/noise-9", headers=SERVICE)).status_code == 404
    letters = await dead_letters(client, device_id="noise-9")
    assert [letter["reason"] for letter in letters] == ["unknown-device"]
    # switched on later, by the IoT Agent's group update
    response = await client.put(
        "/iot/services", params={"apikey": "k-strict"}, json={"autoprovision": True}, headers=SERVICE
    )
    assert response.status_code == 204, response.text
    response = await client.post("/iot/d", params={"k": "k-strict", "i": "noise-9"}, content="l|50")
    assert response.status_code == 200, response.text
    assert (await client.get("/iot/devices/noise-9", headers=SERVICE)).status_code == 200
    # and off again: other unknown devices are refused once more
    response = await client.put(
        "/iot/services", params={"apikey": "k-strict"}, json={"autoprovision": False}, headers=SERVICE
    )
    assert response.status_code == 204
    response = await client.post("/iot/d", params={"k": "k-strict", "i": "noise-10"}, content="l|50")
    assert response.status_code == 404
