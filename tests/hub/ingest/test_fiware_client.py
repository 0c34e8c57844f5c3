"""An existing FIWARE-style client, unmodified: the provisioning requests, measures and command
exchange of FIWARE's own IoT Agent (UltraLight) tutorial, byte for byte, against CityHub."""

from __future__ import annotations

import asyncio

import httpx

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
