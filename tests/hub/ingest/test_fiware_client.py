"""An existing FIWARE-style client, unmodified: the provisioning requests, measures and command
exchange of FIWARE's own IoT Agent (UltraLight) tutorials, byte for byte, against CityHub: over
HTTP (push commands to the device's endpoint, and a device that polls for them), over MQTT through
the real Mosquitto on 127.0.0.1:1883, and a group that autoprovisions its devices."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import httpx
import pytest
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.config import Settings
from tests.hub.ingest.support import BASE, DeviceEndpoint, wait_for

HEADERS = {"Content-Type": "application/json", "fiware-service": "openiot", "fiware-servicepath": "/"}
APIKEY = "4jggokgpepnvsb2uv4s40d59ov"


async def test_the_fiware_tutorial_works_unchanged(client: httpx.AsyncClient) -> None:
    group = """{
 "services": [
   {
     "apikey":      "4jggokgpepnvsb2uv4s40d59ov",
     "cbroker":     "http://orion:1026",
     "entity_type": "Thing",
     "resource":    "/iot/d"
   }
 ]
}"""
    response = await client.post("/iot/services", content=group, headers=HEADERS)
    assert response.status_code == 201, response.text
    sensor = """{
 "devices": [
   {
     "device_id":   "motion001",
     "entity_name": "urn:ngsi-ld:Motion:001",
     "entity_type": "Motion",
     "timezone":    "Europe/Berlin",
     "attributes": [
       { "object_id": "c", "name": "count", "type": "Integer" }
     ],
     "static_attributes": [
       { "name":"refStore", "type": "Relationship", "value": "urn:ngsi-ld:Store:001"}
     ]
   }
 ]
}"""
    response = await client.post("/iot/devices", content=sensor, headers=HEADERS)
    assert response.status_code == 201, response.text
    response = await client.post(
        f"/iot/d?k={APIKEY}&i=motion001", content="c|1", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 200, response.text
    motion = await client.get(f"{BASE}/entities/urn:ngsi-ld:Motion:001", headers={"NGSILD-Tenant": "openiot"})
    assert motion.status_code == 200, motion.text
    body = motion.json()
    assert body["type"] == "Motion"
    assert body["count"]["value"] == 1
    assert body["refStore"] == {"type": "Relationship", "object": "urn:ngsi-ld:Store:001"}

    async with DeviceEndpoint(b"bell001@ring| ring OK") as bell:
        actuator = """{
  "devices": [
    {
      "device_id": "bell001",
      "entity_name": "urn:ngsi-ld:Bell:001",
      "entity_type": "Bell",
      "protocol": "PDI-IoTA-UltraLight",
      "transport": "HTTP",
      "endpoint": "http://iot-sensors:3001/iot/bell001",
      "commands": [
        { "name": "ring", "type": "command" }
       ],
       "static_attributes":[
         {"name":"refStore", "type": "Relationship","value": "urn:ngsi-ld:Store:001"}
      ]
    }
  ]
}""".replace("http://iot-sensors:3001/iot/bell001", bell.url)  # the tutorial's device, here
        response = await client.post("/iot/devices", content=actuator, headers=HEADERS)
        assert response.status_code == 201, response.text
        response = await client.patch(
            f"{BASE}/entities/urn:ngsi-ld:Bell:001/attrs/ring",
            json={"type": "Property", "value": ""},
            headers={"NGSILD-Tenant": "openiot"},
        )
        assert response.status_code == 204, response.text
        assert await asyncio.wait_for(bell.received.get(), 20) == b"bell001@ring|"

        async def rang() -> dict | None:
            got = await client.get(
                f"{BASE}/entities/urn:ngsi-ld:Bell:001", headers={"NGSILD-Tenant": "openiot"}
            )
            entity = got.json()
            return entity if entity["ring_status"]["value"] == "OK" else None

        entity = await wait_for(rang)
    assert entity["ring_info"]["value"] == " ring OK"
    listed = (await client.get("/iot/devices", headers=HEADERS)).json()
    assert {d["device_id"] for d in listed["devices"]} == {"motion001", "bell001"}


# -- over MQTT, a polling device, autoprovisioning --------------------------------------------------

#: What a dummy device sends: no fiware headers, only its key and id (as FIWARE's devices do).
PLAIN = {"Content-Type": "text/plain"}
NGSI = {"NGSILD-Tenant": "openiot"}


@pytest.fixture
async def mqtt_hub(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(
        update={
            "mqtt_url": "mqtt://127.0.0.1:1883",
            "mqtt_client_id": f"cityhub-test-{uuid.uuid4().hex[:12]}",
            "mqtt_session_expiry": 30,
        }
    )
    application: FastAPI = create_app(configured)
    async with application.router.lifespan_context(application):
        assert application.state.hub.mqtt.connected.is_set()
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            yield http


async def _attribute(client: httpx.AsyncClient, entity_id: str, name: str, value: object) -> dict | None:
    got = await client.get(f"{BASE}/entities/{entity_id}", headers=NGSI)
    if got.status_code != 200:
        return None
    entity = got.json()
    return entity if name in entity and entity[name].get("value") == value else None


@pytest.mark.mqtt
async def test_the_fiware_mqtt_tutorial_works_unchanged(mqtt_hub: httpx.AsyncClient) -> None:
    client = mqtt_hub
    apikey = f"4jggokgpepnvsb2uv4s40d59ov{uuid.uuid4().hex[:6]}"  # the tutorial's key, unique per run
    group = """{
 "services": [
   {
     "apikey":      "APIKEY",
     "cbroker":     "http://orion:1026",
     "entity_type": "Thing",
     "resource":    ""
   }
 ]
}""".replace("APIKEY", apikey)
    response = await client.post("/iot/services", content=group, headers=HEADERS)
    assert response.status_code == 201, response.text
    devices = """{
 "devices": [
   {
     "device_id":   "motion001",
     "entity_name": "urn:ngsi-ld:Motion:001",
     "entity_type": "Motion",
     "protocol":    "PDI-IoTA-UltraLight",
     "transport":   "MQTT",
     "timezone":    "Europe/Berlin",
     "attributes": [
       { "object_id": "c", "name": "count", "type": "Integer" }
     ],
     "static_attributes": [
       { "name":"refStore", "type": "Relationship", "value": "urn:ngsi-ld:Store:001"}
     ]
   },
   {
     "device_id": "bell001",
     "entity_name": "urn:ngsi-ld:Bell:001",
     "entity_type": "Bell",
     "protocol": "PDI-IoTA-UltraLight",
     "transport": "MQTT",
     "commands": [
       { "name": "ring", "type": "command" }
     ],
     "static_attributes":[
       {"name":"refStore", "type": "Relationship","value": "urn:ngsi-ld:Store:001"}
     ]
   }
 ]
}"""
    response = await client.post("/iot/devices", content=devices, headers=HEADERS)
    assert response.status_code == 201, response.text
    async with aiomqtt.Client("127.0.0.1", 1883) as device:
        # mosquitto_pub -t "/<apikey>/motion001/attrs" -m "c|1"; and the /ul/ prefixed topic
        await device.publish(f"/{apikey}/motion001/attrs", b"c|1")
        await wait_for(lambda: _attribute(client, "urn:ngsi-ld:Motion:001", "count", 1))
        await device.publish(f"/ul/{apikey}/motion001/attrs", b"c|2", qos=1)
        await wait_for(lambda: _attribute(client, "urn:ngsi-ld:Motion:001", "count", 2))
        # the bell listens on its cmd topic and answers on cmdexe
        await device.subscribe(f"/{apikey}/bell001/cmd", qos=1)
        response = await client.patch(
            f"{BASE}/entities/urn:ngsi-ld:Bell:001/attrs/ring",
            json={"type": "Property", "value": ""},
            headers=NGSI,
        )
        assert response.status_code == 204, response.text
        async with asyncio.timeout(20):
            message = await anext(aiter(device.messages))
        assert message.topic.value == f"/{apikey}/bell001/cmd"
        assert message.payload == b"bell001@ring|"
        await wait_for(lambda: _attribute(client, "urn:ngsi-ld:Bell:001", "ring_status", "DELIVERED"))
        await device.publish(f"/{apikey}/bell001/cmdexe", b"bell001@ring| ring OK", qos=1)
        bell = await wait_for(lambda: _attribute(client, "urn:ngsi-ld:Bell:001", "ring_status", "OK"))
    assert bell["ring_info"]["value"] == " ring OK"


async def test_a_fiware_polling_device_and_an_autoprovisioning_group(client: httpx.AsyncClient) -> None:
    apikey = "1068318794"
    group = """{
  "services": [
    {
      "apikey": "1068318794",
      "cbroker": "http://orion:1026",
      "entity_type": "Thing",
      "resource": "/iot/d",
      "protocol": "PDI-IoTA-UltraLight",
      "transport": "HTTP",
      "autoprovision": true,
      "attributes": [
        { "object_id": "c", "name": "count", "type": "Integer" }
      ]
    }
  ]
}"""
    response = await client.post("/iot/services", content=group, headers=HEADERS)
    assert response.status_code == 201, response.text
    # a lamp without an endpoint: the IoT Agent's polling device
    lamp = """{
  "devices": [
    {
      "device_id": "lamp001",
      "entity_name": "urn:ngsi-ld:Lamp:001",
      "entity_type": "Lamp",
      "protocol": "PDI-IoTA-UltraLight",
      "transport": "HTTP",
      "commands": [
        {"name": "on", "type": "command"},
        {"name": "off", "type": "command"}
      ],
      "attributes": [
        {"object_id": "s", "name": "state", "type":"Text"},
        {"object_id": "l", "name": "luminosity", "type":"Integer"}
      ]
    }
  ]
}"""
    response = await client.post("/iot/devices", content=lamp, headers=HEADERS)
    assert response.status_code == 201, response.text
    response = await client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Lamp:001/attrs/on", json={"type": "Property", "value": ""}, headers=NGSI
    )
    assert response.status_code == 204, response.text
    await wait_for(lambda: _attribute(client, "urn:ngsi-ld:Lamp:001", "on_status", "PENDING"))
    # the device's loop: measures with getCmd=1, the command comes back in the answer
    response = await client.post(f"/iot/d?k={apikey}&i=lamp001&getCmd=1", content="s|OFF|l|0", headers=PLAIN)
    assert response.status_code == 200, response.text
    assert response.text == "lamp001@on|"
    await wait_for(lambda: _attribute(client, "urn:ngsi-ld:Lamp:001", "on_status", "DELIVERED"))
    response = await client.post(f"/iot/d?k={apikey}&i=lamp001", content="lamp001@on| on OK", headers=PLAIN)
    assert response.status_code == 200, response.text
    lamp_entity = await wait_for(lambda: _attribute(client, "urn:ngsi-ld:Lamp:001", "on_status", "OK"))
    assert lamp_entity["on_info"]["value"] == " on OK"
    assert lamp_entity["state"]["value"] == "OFF"
    # nothing pending now: an empty answer
    response = await client.get(f"/iot/d?k={apikey}&i=lamp001&getCmd=1")
    assert (response.status_code, response.text) == (200, "")
    # a motion sensor nobody provisioned: the group provisions it on its first measure
    response = await client.post(f"/iot/d?k={apikey}&i=motion009", content="c|4", headers=PLAIN)
    assert response.status_code == 200, response.text
    motion = await wait_for(lambda: _attribute(client, "urn:ngsi-ld:Thing:motion009", "count", 4))
    assert motion["type"] == "Thing"
    listed = (await client.get("/iot/devices", headers=HEADERS)).json()
    assert {d["device_id"] for d in listed["devices"]} == {"lamp001", "motion009"}
