"""No message acknowledged to a device is lost when the MQTT broker restarts, nor while the hub
itself is down: a Mosquitto of this test's own (with persistence, as a production broker runs) is
stopped and started again under the hub, then the hub is stopped and started again."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.config import Settings
from tests.hub.ingest.support import BASE, provision, wait_for
from tests.processes import free_port

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
THING = "urn:ngsi-ld:Thing:counter-1"


class Mosquitto:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "user root\n"  # started as root, Mosquitto would drop to a user who cannot write here
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
        )
        self.log = workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                ["mosquitto", "-c", str(self.config)], stdout=output, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)  # Mosquitto saves its store and exits
        self.process.wait(timeout=20)
        self.process = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        if broker.process is not None:
            broker.process.kill()
            broker.process.wait(timeout=10)


@contextlib.asynccontextmanager
async def hub(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            yield application, client


async def publish(port: int, topic: str, values: range) -> list[int]:
    """Publish ``values`` with QoS 1 from a device; those the MQTT broker acknowledged."""
    async with asyncio.timeout(30):
        while True:  # the broker may still be starting
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", port, identifier=f"dev-{uuid.uuid4().hex[:8]}"
                ) as device:
                    acknowledged = []
                    for value in values:
                        stamp = f"2026-11-21T00:{value // 60:02d}:{value % 60:02d}Z"
                        await device.publish(topic, f"{stamp}|c|{value}".encode(), qos=1)
                        acknowledged.append(value)
                    return acknowledged
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


async def stored(client: httpx.AsyncClient) -> set[int]:
    response = await client.get(
        f"{BASE}/temporal/entities/{THING}", params={"attrs": "count"}, headers={"NGSILD-Tenant": "smartcity"}
    )
    if response.status_code != 200:
        return set()
    return {instance["value"] for instance in response.json().get("count", [])}


async def test_broker_restart_and_hub_restart_lose_nothing(settings: Settings, mosquitto: Mosquitto) -> None:
    configured = settings.model_copy(
        update={
            "mqtt_url": f"mqtt://127.0.0.1:{mosquitto.port}",
            "mqtt_client_id": f"cityhub-restart-{uuid.uuid4().hex[:8]}",
            "mqtt_session_expiry": 600,
            "ingest_device_rate": 10_000.0,
            "ingest_device_burst": 10_000,
        }
    )
    topic = "/k-count/counter-1/attrs"
    acknowledged: list[int] = []
    async with hub(configured) as (application, client):
        await provision(
            client,
            apikey="k-count",
            entity_type="Thing",
            devices=[
                {
                    "device_id": "counter-1",
                    "protocol": "IoTA-UL",
                    "attributes": [{"object_id": "c", "name": "count", "type": "Integer"}],
                }
            ],
        )
        acknowledged += await publish(mosquitto.port, topic, range(0, 40))
        mosquitto.stop()  # whatever the hub had not acknowledged yet, Mosquitto keeps
        mosquitto.start()
        acknowledged += await publish(mosquitto.port, topic, range(40, 80))
        await asyncio.wait_for(application.state.hub.mqtt.connected.wait(), 30)
        await wait_for(lambda: _all(client, set(range(80))), timeout=60)
        assert application.state.hub.mqtt.connections >= 2
    # the hub is down: Mosquitto keeps what the device sends for the hub's session
    acknowledged += await publish(mosquitto.port, topic, range(80, 120))
    async with hub(configured) as (_, client):
        found = await wait_for(lambda: _all(client, set(range(120))), timeout=60)
    assert acknowledged == list(range(120))
    assert found == set(range(120))


async def _all(client: httpx.AsyncClient, wanted: set[int]) -> set[int] | None:
    found = await stored(client)
    return found if wanted <= found else None


async def test_the_hub_starts_and_takes_http_without_its_mqtt_broker(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}", "mqtt_client_id": "cityhub-nobroker"}
    )
    async with hub(configured) as (application, client):
        assert not application.state.hub.mqtt.connected.is_set()
        await provision(client)
        response = await client.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content="t|20")
        assert response.status_code == 200, response.text
        assert "cityhub_mqtt_connected 0.0" in (await client.get("/metrics")).text
