"""The demo command against a real hub process, and the MQTT transport through the real Mosquitto."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from cityhub.app import create_app
from cityhub.cli import app as cli
from cityhub.config import Settings
from cityhub.sim.city import build_city
from cityhub.sim.runner import MqttSender, Simulator
from cityhub.sim.seed import entity_id, seed
from cityhub.sim.streams import Conditions
from tests.processes import running_hub

CITY = "410100"


@pytest.mark.slow
def test_demo_command_seeds_and_streams_into_a_running_hub(tmp_path: Path, database_url: str) -> None:
    runner = CliRunner()
    with running_hub(tmp_path, "hub", CITYHUB_DATABASE_URL=database_url) as hub:
        result = runner.invoke(
            cli,
            [
                "demo",
                "--url",
                hub.url,
                "--duration",
                "15m",
                "--speed",
                "0",
                "--start",
                "2026-11-23T00:00:00Z",
            ],
            env={},
        )
        assert result.exit_code == 0, result.output
        assert "310 devices" in result.output
        assert "0 failed" in result.output
        lot = build_city(42).of_kind("parking")[0]
        got = httpx.get(f"{hub.url}/ngsi-ld/v1/entities/{entity_id(lot)}", headers={"NGSILD-Tenant": CITY})
        assert got.json()["occupancy"]["observedAt"] >= "2026-11-23T00:10:00Z"
        again = runner.invoke(cli, ["demo", "seed", "--url", hub.url], env={})
        assert again.exit_code == 0, again.output
        assert "all there already" in again.output
        bad = runner.invoke(cli, ["demo", "run", "--url", hub.url, "--duration", "soon"], env={})
        assert bad.exit_code == 2
        assert "a duration reads like" in bad.output


@pytest.fixture
async def mqtt_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(
        update={
            "mqtt_url": "mqtt://127.0.0.1:1883",
            "mqtt_client_id": f"cityhub-test-{uuid.uuid4().hex[:12]}",
        }
    )
    application: FastAPI = create_app(configured)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            yield http


@pytest.mark.mqtt
async def test_streams_over_mqtt(mqtt_client: httpx.AsyncClient) -> None:
    city = build_city(42)
    await seed(mqtt_client, city)
    start = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    async with MqttSender("mqtt://127.0.0.1:1883") as sender:
        simulator = Simulator(
            city, sender, seed=42, start=start, speed=0, conditions=Conditions(0, 0), kinds=["air"]
        )
        tally = await simulator.run(timedelta(hours=1))
    assert tally.messages == len(city.of_kind("air"))
    station = city.of_kind("air")[-1]
    last = max(
        m.readings[-1]["TimeInstant"]
        for m in simulator.messages(start - timedelta(seconds=1), start + timedelta(hours=1))
        if m.device_id == station.device_id
    )
    async with asyncio.timeout(20):
        while True:
            got = await mqtt_client.get(
                f"/ngsi-ld/v1/entities/{entity_id(station)}", headers={"NGSILD-Tenant": CITY}
            )
            if got.json().get("pm25", {}).get("observedAt") == last:
                break
            await asyncio.sleep(0.1)
    with pytest.raises(ValueError, match="mqtt://"):
        MqttSender("http://127.0.0.1:1883")
