"""The demo city on a hub with CITYHUB_AUTH_MODE=on: seeding needs credentials, devices do not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.sim.city import build_city
from cityhub.sim.runner import HttpSender, Simulator
from cityhub.sim.seed import SeedError, authenticate, entity_id, seed
from cityhub.sim.streams import Conditions
from tests.systems.security.conftest import PASSWORD, add_user, client_for, secure_settings, token_for


@pytest.fixture
async def secure_app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(secure_settings(database_url))
    async with application.router.lifespan_context(application):
        yield application


async def test_seeding_with_a_token_and_streaming_with_api_keys(secure_app: FastAPI) -> None:
    city = build_city(42)
    async with client_for(secure_app) as anonymous:
        with pytest.raises(SeedError, match="401"):
            await seed(anonymous, city)
    # creating tenants takes a platform administrator with a second factor
    chief = await add_user(secure_app, "410100", platform_admin=True, totp=True)
    async with client_for(secure_app) as admin:
        await authenticate(admin, token=(await token_for(admin, chief))["access_token"])
        report = await seed(admin, city)
        assert report.tenants == 12
        assert report.devices == len(city.sensors)
        assert (report.departments, report.categories, report.not_allowed) == (7, 2, ())
        async with client_for(secure_app) as devices:  # no token: devices have their API keys
            simulator = Simulator(
                city,
                HttpSender(devices),
                seed=42,
                start=datetime(2026, 11, 23, tzinfo=UTC),
                speed=0,
                conditions=Conditions(0, 0),
                kinds=["water"],
            )
            tally = await simulator.run(timedelta(hours=2))
        assert tally.refused == tally.failed == 0
        section = city.of_kind("water")[0]
        got = await admin.get(
            f"/ngsi-ld/v1/entities/{entity_id(section)}", headers={"NGSILD-Tenant": "410100"}
        )
        assert got.status_code == 200, got.text
        assert got.json()["pH"]["observedAt"] >= "2026-11-23T01:00:00Z"
    # a system account with client credentials and an operator's role in the city checks the
    # seeded city again (nothing to do)
    system = await add_user(secure_app, "410100", [("410100", "operator")], kind="client")
    async with client_for(secure_app) as wrong:
        with pytest.raises(SeedError, match="401"):
            await authenticate(wrong, client_id=system.username, client_secret="not-the-secret")
    async with client_for(secure_app) as operator:
        await authenticate(operator, client_id=system.username, client_secret=PASSWORD)
        assert not (await seed(operator, city)).changed()
