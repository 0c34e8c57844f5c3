"""Open311 posting where the city requires a registered client key, and the per-address limit."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from cityhub.config import Settings
from cityhub.systems.security.policy import Permission, Requirement, requirement
from tests.hub.dispatch.support import city
from tests.hub.dispatch.test_open311 import post


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        bus_url="memory://",
        instance_name="test",
        outbox_poll_interval=0.05,
        open311_api_keys=["city-app-key"],
        open311_posts_per_minute=3,
    )


async def test_api_key_and_rate_limit(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    refused = await post(client)
    assert refused.status_code == 403
    assert refused.json()[0]["code"] == 403
    assert (await post(client, api_key="guessed")).status_code == 403
    answers = [
        await post(client, api_key="city-app-key", lat="34.771", long=str(113.651 + i * 0.001))
        for i in range(4)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert answers[-1].json()[0]["code"] == 429


def test_open311_is_public_to_the_guard() -> None:
    assert requirement("POST", "/open311/v2/requests.json") is None
    assert requirement("GET", "/open311/v2/requests/abc.xml") is None
    assert requirement("PUT", "/api/v1/open311/services/E0101") == Requirement(Permission.DATA_WRITE)
