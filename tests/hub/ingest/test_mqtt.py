"""The MQTT gateway and commands through the real Mosquitto on 127.0.0.1:1883, and HTTP-push
commands to a device's own endpoint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import httpx
import orjson
import pytest
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.config import Settings
from tests.hub.ingest.support import BASE, SERVICE, DeviceEndpoint, dead_letters, entity, provision, wait_for

MQTT_HOST = "127.0.0.1"
pytestmark = pytest.mark.mqtt


@pytest.fixture
async def mqtt_app(settings: Settings) -> AsyncIterator[FastAPI]:
    configured = settings.model_copy(
        update={
            "mqtt_url": f"mqtt://{MQTT_HOST}:1883",
            "mqtt_client_id": f"cityhub-test-{uuid.uuid4().hex[:12]}",
            "mqtt_session_expiry": 30,
        }
    )
    application = create_app(configured)
    async with application.router.lifespan_context(application):
        assert application.state.hub.mqtt.connected.is_set()
        yield application


@pytest.fixture
async def mqtt_client(mqtt_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mqtt_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        yield http


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_ultralight_and_json_over_mqtt(mqtt_client: httpx.AsyncClient) -> None:
    apikey = unique("k")
    await provision(mqtt_client, apikey=apikey, devices=[{"device_id": "air-001", "protocol": "IoTA-UL"}])
    air = "urn:ngsi-ld:AirQualityObserved:air-001"
    async with aiomqtt.Client(MQTT_HOST, 1883) as device:
        await device.publish(f"/{apikey}/air-001/attrs", b"t|18.5|h|0.3", qos=1)
        got = await wait_for(lambda: _value(mqtt_client, air, "temperature", 18.5))
        assert got["relativeHumidity"]["value"] == 0.3
        await device.publish(f"/{apikey}/air-001/attrs/p", b"41", qos=1)
        await wait_for(lambda: _value(mqtt_client, air, "pm25", 41))
        body = orjson.dumps({"t": 17.25, "TimeInstant": "2026-11-21T09:00:00Z"})
        await device.publish(f"/json/{apikey}/air-001/attrs", body, qos=1)
        got = await wait_for(lambda: _value(mqtt_client, air, "temperature", 17.25))
        assert got["temperature"]["observedAt"] == "2026-11-21T09:00:00Z"
        # refused: an unknown device, a malformed message, a value out of range
        await device.publish(f"/{apikey}/nobody/attrs", b"t|1", qos=1)
        await device.publish(f"/{apikey}/air-001/attrs", b"t|1|h", qos=1)
        await device.publish(f"/{apikey}/air-001/attrs", b"t|999", qos=1)
    letters = await wait_for(lambda: _letters(mqtt_client, 3))
    assert sorted(letter["reason"] for letter in letters) == [
        "invalid-payload",
        "unknown-device",
        "validation-failed",
    ]
    assert {letter["transport"] for letter in letters} == {"mqtt"}
    assert any(letter["source"] == f"/{apikey}/air-001/attrs" for letter in letters)
    history = await mqtt_client.get(
        f"{BASE}/temporal/entities/{air}",
        params={"attrs": "temperature"},
        headers={"NGSILD-Tenant": "smartcity"},
    )
    assert sorted(i["value"] for i in history.json()["temperature"]) == [17.25, 18.5]


async def test_unknown_apikey_over_mqtt_goes_to_the_default_tenant(mqtt_client: httpx.AsyncClient) -> None:
    apikey = unique("stranger")
    async with aiomqtt.Client(MQTT_HOST, 1883) as device:
        await device.publish(f"/{apikey}/x/attrs", b"t|1", qos=1)
    letters = await wait_for(lambda: _letters(mqtt_client, 1, tenant="410100", apikey=apikey))
    assert letters[0]["reason"] == "unknown-apikey"


async def test_command_over_mqtt_reaches_the_device_and_its_status_reaches_ok(
    mqtt_client: httpx.AsyncClient,
) -> None:
    apikey = unique("k")
    await provision(
        mqtt_client,
        apikey=apikey,
        entity_type="Streetlight",
        devices=[
            {"device_id": "lamp-7", "protocol": "IoTA-UL", "commands": [{"name": "dim", "type": "command"}]}
        ],
    )
    lamp = "urn:ngsi-ld:Streetlight:lamp-7"
    assert (await entity(mqtt_client, lamp))["dim_status"]["value"] == "UNKNOWN"
    async with aiomqtt.Client(MQTT_HOST, 1883) as device:
        await device.subscribe(f"/{apikey}/lamp-7/cmd", qos=1)
        response = await mqtt_client.patch(
            f"{BASE}/entities/{lamp}/attrs/dim",
            json={"type": "Property", "value": 40},
            headers={"NGSILD-Tenant": "smartcity"},
        )
        assert response.status_code == 204, response.text
        async with asyncio.timeout(20):
            message = await anext(aiter(device.messages))
        assert message.payload == b"lamp-7@dim|40"
        await wait_for(lambda: _status(mqtt_client, lamp, "DELIVERED"))
        await device.publish(f"/{apikey}/lamp-7/cmdexe", b"lamp-7@dim|dimmed to 40", qos=1)
        got = await wait_for(lambda: _status(mqtt_client, lamp, "OK"))
    assert got["dim_info"]["value"] == "dimmed to 40"
    commands = (await mqtt_client.get("/api/v1/ingest/devices/lamp-7/commands", headers=SERVICE)).json()
    assert [(c["name"], c["value"], c["status"]) for c in commands] == [("dim", 40, "OK")]
    # an answer nobody waits for is a dead letter
    async with aiomqtt.Client(MQTT_HOST, 1883) as device:
        await device.publish(f"/{apikey}/lamp-7/cmdexe", b"lamp-7@dim|again", qos=1)
    letters = await wait_for(lambda: _letters(mqtt_client, 1, reason="unknown-command"))
    assert letters[0]["device_id"] == "lamp-7"


async def test_command_by_http_push_and_expiry(client: httpx.AsyncClient, app: FastAPI) -> None:
    async with DeviceEndpoint(b"sign-1@show|ERROR: no such message") as endpoint:
        await provision(
            client,
            apikey="k-sign",
            entity_type="VariableMessageSign",
            devices=[
                {
                    "device_id": "sign-1",
                    "protocol": "IoTA-UL",
                    "transport": "HTTP",
                    "endpoint": endpoint.url,
                    "commands": [{"name": "show"}],
                },
                {"device_id": "valve-1", "protocol": "IoTA-JSON", "commands": [{"name": "open"}]},
            ],
        )
        sign = "urn:ngsi-ld:VariableMessageSign:sign-1"
        response = await client.patch(
            f"{BASE}/entities/{sign}/attrs/show",
            json={"type": "Property", "value": {"text": "慢行", "seconds": 30}},
            headers={"NGSILD-Tenant": "smartcity"},
        )
        assert response.status_code == 204
        assert (
            await asyncio.wait_for(endpoint.received.get(), 20) == "sign-1@show|text=慢行|seconds=30".encode()
        )
        got = await wait_for(lambda: _status(client, sign, "ERROR"))
        assert got["show_info"]["value"] == "ERROR: no such message"
    # no MQTT broker here, no endpoint: the command cannot go anywhere and is an error at once
    valve = "urn:ngsi-ld:VariableMessageSign:valve-1"
    await client.patch(
        f"{BASE}/entities/{valve}/attrs/open",
        json={"type": "Property", "value": True},
        headers={"NGSILD-Tenant": "smartcity"},
    )
    got = await wait_for(lambda: _status(client, valve, "ERROR"))
    assert "no MQTT broker" in got["open_info"]["value"]


async def test_commands_without_answer_expire(settings: Settings) -> None:
    configured = settings.model_copy(
        update={
            "mqtt_url": f"mqtt://{MQTT_HOST}:1883",
            "mqtt_client_id": f"cityhub-test-{uuid.uuid4().hex[:12]}",
            "mqtt_session_expiry": 30,
            "ingest_command_ttl": 0.5,
        }
    )
    application = create_app(configured)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            apikey = unique("k")
            await provision(
                client,
                apikey=apikey,
                entity_type="Streetlight",
                devices=[{"device_id": "lamp-9", "commands": [{"name": "dim"}]}],
            )
            lamp = "urn:ngsi-ld:Streetlight:lamp-9"
            await client.patch(
                f"{BASE}/entities/{lamp}/attrs/dim",
                json={"type": "Property", "value": 10},
                headers={"NGSILD-Tenant": "smartcity"},
            )
            got = await wait_for(lambda: _status(client, lamp, "EXPIRED"))
            assert got["dim_info"]["value"] == "no answer in time"


async def _value(client: httpx.AsyncClient, entity_id: str, name: str, value: object) -> dict | None:
    got = await entity(client, entity_id)
    return got if name in got and got[name]["value"] == value else None


async def _status(client: httpx.AsyncClient, entity_id: str, status: str) -> dict | None:
    got = await entity(client, entity_id)
    return got if got.get(next(k for k in got if k.endswith("_status")), {}).get("value") == status else None


async def _letters(
    client: httpx.AsyncClient, count: int, tenant: str = "smartcity", **params: str
) -> list | None:
    found = await dead_letters(client, tenant, **params)
    return found if len(found) >= count else None


async def test_bad_input_over_mqtt_never_stops_the_gateway(
    mqtt_client: httpx.AsyncClient, mqtt_app: FastAPI
) -> None:
    apikey = unique("k")
    await provision(mqtt_client, apikey=apikey, devices=[{"device_id": "air-001", "protocol": "IoTA-UL"}])
    async with aiomqtt.Client(MQTT_HOST, 1883) as device:
        await device.publish(f"/{apikey}/air-001/attrs", b"\xff\xfe\x00garbage", qos=1)
        await device.publish(f"/{apikey}/air-001/attrs", b"t|" + b"1" * 70_000, qos=1)
        await device.publish(f"/json/{apikey}/air-001/attrs", b'{"t": [1, 2', qos=1)
        await device.publish(f"/{apikey}/air-001/attrs/t", b"", qos=1)
        await device.publish(f"/{apikey}/air-001/attrs", b"t|19.5", qos=1)
        got = await wait_for(
            lambda: _value(mqtt_client, "urn:ngsi-ld:AirQualityObserved:air-001", "temperature", 19.5)
        )
    assert got["temperature"]["value"] == 19.5
    letters = await wait_for(lambda: _letters(mqtt_client, 4))
    assert sorted(letter["reason"] for letter in letters) == [
        "invalid-payload",
        "invalid-payload",
        "invalid-payload",
        "too-large",
    ]
    assert mqtt_app.state.hub.mqtt.connections == 1  # never reconnected: nothing crashed
