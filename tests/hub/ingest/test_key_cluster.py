"""Two real hub processes sharing one database and one NATS stream: a device key disabled (the
incident response action's storage step, taken here by a third party, neither hub) is refused by
both hubs once the bus brings the change, though each had the key's provisioning cached for an
hour."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cityhub.hub.ingest import service as ingest_service
from cityhub.kit.db import create_engine, session_factory
from tests.bus.support import wait_until
from tests.conftest import NATS_URL
from tests.hub.ingest.support import provision
from tests.processes import running_hub

pytestmark = [pytest.mark.nats, pytest.mark.slow]


async def test_a_disabled_key_is_refused_by_every_hub(database_url: str, stream: str, tmp_path: Path) -> None:
    common = {
        "CITYHUB_DATABASE_URL": database_url,
        "CITYHUB_BUS_URL": NATS_URL,
        "CITYHUB_BUS_STREAM": stream,
        "CITYHUB_OUTBOX_POLL_INTERVAL": "0.2",
        # far longer than the test: only the bus can make a hub forget what it cached
        "CITYHUB_INGEST_PROFILE_TTL": "3600",
    }
    with (
        running_hub(tmp_path, "hub-a", CITYHUB_INSTANCE_NAME="hub-a", **common) as hub_a,
        running_hub(tmp_path, "hub-b", CITYHUB_INSTANCE_NAME="hub-b", **common) as hub_b,
    ):
        async with httpx.AsyncClient(timeout=10) as http:
            async with httpx.AsyncClient(base_url=hub_a.url, timeout=10) as on_a:
                await provision(on_a)

            async def send(hub_url: str) -> int:
                response = await http.post(
                    f"{hub_url}/iot/json", params={"k": "k-air", "i": "air-001"}, json={"t": 20}
                )
                return response.status_code

            for hub in (hub_a, hub_b):  # each hub has the key's provisioning cached now
                assert await send(hub.url) == 200

            engine = create_engine(database_url)
            try:
                async with session_factory(engine)() as session, session.begin():
                    assert await ingest_service.set_apikey_disabled(
                        session, "smartcity", "k-air", disabled=True
                    )
            finally:
                await engine.dispose()

            for hub in (hub_a, hub_b):

                async def refused(url: str = hub.url) -> bool:
                    return await send(url) == 403

                await wait_until(refused, timeout=30, what=f"{hub.url} to refuse the disabled key")
