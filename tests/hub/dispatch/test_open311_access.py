"""Open311 posting where the city requires a registered client key, and the per-address limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.systems.security.policy import Permission, Requirement, requirement
from tests.conftest import hub_settings
from tests.hub.dispatch.support import city
from tests.hub.dispatch.test_open311 import post
from tests.systems.security.conftest import add_user, client_for, secure_settings, token_for


@pytest.fixture
def settings(database_url: str) -> Settings:
    return hub_settings(database_url, open311_api_keys=["city-app-key"], open311_posts_per_minute=3)


async def test_api_key_and_rate_limit(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    refused = await post(client)
    assert refused.status_code == 403
    assert refused.json()[0]["code"] == 403
    assert (await post(client, api_key="guessed")).status_code == 403
    # the limit counts per minute of the clock: 2 × 3 + 1 posts meet it even across a minute's end
    answers = [
        await post(client, api_key="city-app-key", lat="34.771", long=str(113.651 + i * 0.001))
        for i in range(7)
    ]
    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [201, 201, 201]
    assert 429 in statuses, statuses
    assert answers[statuses.index(429)].json()[0]["code"] == 429


def test_open311_is_public_to_the_guard() -> None:
    assert requirement("POST", "/open311/v2/requests.json") is None
    assert requirement("GET", "/open311/v2/requests/abc.xml") is None
    assert requirement("PUT", "/api/v1/open311/services/E0101") == Requirement(Permission.DATA_WRITE)


@pytest.fixture
async def secure_app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(secure_settings(database_url, open311_posts_per_minute=2))
    async with application.router.lifespan_context(application):
        yield application


async def test_citizens_need_no_account_when_access_control_is_on(secure_app: FastAPI) -> None:
    account = await add_user(secure_app, "410100", [("410100", "operator")], username="centre-operator")
    async with client_for(secure_app) as staff, client_for(secure_app, "203.0.113.9") as citizen:
        staff.headers["Authorization"] = f"Bearer {(await token_for(staff, account))['access_token']}"
        await city(secure_app, staff)
        assert (await citizen.get("/api/v1/cases")).status_code == 401
        assert (await citizen.get("/open311/v2/services.json")).status_code == 200
        answers = [
            await post(citizen, lat="34.771", long=str(113.651 + i * 0.001), description=f"第{i}处")
            for i in range(5)  # 2 × 2 + 1: the limit is met even across a minute's end
        ]
        statuses = [a.status_code for a in answers]
        assert statuses[:2] == [201, 201]
        assert 429 in statuses, statuses
        request_id = answers[0].json()[0]["service_request_id"]
        shown = await citizen.get(f"/open311/v2/requests/{request_id}.json")
        assert shown.status_code == 200
        assert shown.json()[0]["status"] == "open"
        history = (await staff.get(f"/api/v1/cases/{request_id}/history")).json()
        assert history[0]["actor"] == "citizen"
