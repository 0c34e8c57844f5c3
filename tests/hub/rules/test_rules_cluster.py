"""Two real hub processes sharing one database and one NATS stream: a rule made through one is
applied by both (each change evaluated once, by whichever process takes it), and the alert's
count says every change was seen once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bus.support import wait_until
from tests.conftest import NATS_URL
from tests.hub.rules.support import ALERTS, ENTITIES, RULES, air
from tests.processes import running_hub

pytestmark = [pytest.mark.nats, pytest.mark.slow]

STATION = "urn:ngsi-ld:AirQualityObserved:410102-cluster"


async def test_two_hubs_evaluate_each_change_once(database_url: str, stream: str, tmp_path: Path) -> None:
    common = {
        "CITYHUB_DATABASE_URL": database_url,
        "CITYHUB_BUS_URL": NATS_URL,
        "CITYHUB_BUS_STREAM": stream,
        "CITYHUB_OUTBOX_POLL_INTERVAL": "0.2",
    }
    with (
        running_hub(tmp_path, "hub-a", CITYHUB_INSTANCE_NAME="hub-a", **common) as hub_a,
        running_hub(tmp_path, "hub-b", CITYHUB_INSTANCE_NAME="hub-b", **common) as hub_b,
    ):
        async with httpx.AsyncClient(timeout=10) as http:
            definition = {
                "entity_type": "AirQualityObserved",
                "when": {"attr": "pm25", "op": ">", "value": 75},
            }
            response = await http.post(
                f"{hub_a.url}{RULES}", json={"definition": definition, "enabled": True}
            )
            assert response.status_code == 201, response.text
            rule = response.json()
            response = await http.post(f"{hub_b.url}{ENTITIES}", json=air(STATION, 80))
            assert response.status_code == 201, response.text
            for index, value in enumerate((81, 82, 83, 84, 85)):  # writes land on both hubs
                hub = (hub_a, hub_b)[index % 2]
                body = {"pm25": {"type": "Property", "value": value}}
                response = await http.patch(f"{hub.url}{ENTITIES}/{STATION}/attrs", json=body)
                assert response.status_code == 204, response.text
                await asyncio.sleep(0.3)

            async def alerts() -> list[dict[str, Any]]:
                items: list[dict[str, Any]] = (await http.get(f"{hub_b.url}{ALERTS}")).json()["items"]
                return items

            await wait_until(
                lambda: _counted(alerts, 6), timeout=30, what="one alert, bumped by every change once"
            )
            await asyncio.sleep(1.5)  # time for a wrong second evaluation to show
            [alert] = await alerts()
            assert alert["count"] == 6
            assert alert["value"] == 85
            status = (await http.get(f"{hub_a.url}{RULES}/{rule['id']}")).json()
            assert status["fire_count"] == 1


async def _counted(alerts: Any, count: int) -> bool:
    found = await alerts()
    return len(found) == 1 and found[0]["count"] == count
