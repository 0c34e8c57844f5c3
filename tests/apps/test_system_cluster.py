"""Two real hub processes sharing one database and one NATS stream: each platform event is counted
once by the system app's shared consumer, and seen by the broadcast consumer of both processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.bus.support import wait_until
from tests.conftest import NATS_URL
from tests.processes import running_hub

DISTRICTS = ("410102", "410103", "410104", "410105", "410106", "410108")

pytestmark = [pytest.mark.nats, pytest.mark.slow]


async def test_shared_and_broadcast_consumers_across_two_hubs(
    database_url: str, stream: str, tmp_path: Path
) -> None:
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
            for index, code in enumerate(DISTRICTS):  # writes land on both hubs
                hub = (hub_a, hub_b)[index % 2]
                response = await http.post(f"{hub.url}/api/v1/tenants", json={"code": code})
                assert response.status_code == 201, response.text

            async def feed(hub_url: str, code: str) -> list[str]:
                body = (
                    await http.get(f"{hub_url}/api/v1/system/events", headers={"NGSILD-Tenant": code})
                ).json()
                return [event["event_type"] for event in body["events"]]

            async def tally(code: str) -> list[tuple[str, int]]:
                body = (
                    await http.get(f"{hub_a.url}/api/v1/system/status", headers={"NGSILD-Tenant": code})
                ).json()
                return [(line["event_type"], line["count"]) for line in body["activity"]]

            async def all_seen() -> bool:
                for code in DISTRICTS:
                    for hub in (hub_a, hub_b):
                        if await feed(hub.url, code) != ["tenant.created"]:
                            return False
                    if await tally(code) != [("tenant.created", 1)]:
                        return False
                return True

            await wait_until(all_seen, timeout=30, what="every event in both feeds and in the tally")
            await asyncio.sleep(1.5)  # time for a wrong second delivery to show
            for code in DISTRICTS:
                assert await tally(code) == [("tenant.created", 1)]
                assert await feed(hub_a.url, code) == ["tenant.created"]
                assert await feed(hub_b.url, code) == ["tenant.created"]
