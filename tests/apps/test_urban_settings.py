"""The urban app's evaluation weights come from CITYHUB_APP_URBAN_WEIGHTS."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from cityhub.config import Settings
from tests.apps.test_urban import URBAN, known_month, this_month
from tests.conftest import hub_settings
from tests.hub.dispatch.support import ERQI, JINSHUI, city


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CITYHUB_APP_URBAN_WEIGHTS", "40,20,20,10,10")
    return hub_settings(database_url)


async def test_weights_from_the_apps_settings(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    await known_month(client)
    evaluation = (await client.get(f"{URBAN}/evaluation", params={"period": this_month()})).json()
    assert evaluation["weights"] == {
        "handling": 40,
        "on_time": 20,
        "rework": 20,
        "overdue": 10,
        "extension": 10,
    }
    scores = {line["department_tenant"]: line["score"] for line in evaluation["departments"]}
    assert scores == {JINSHUI: 85.0, ERQI: 40.0}  # 二七: 20·1 + 10·1 + 10·1
    sheet = (await client.get(f"{URBAN}/reports/{this_month()}", params={"format": "csv"})).text
    assert "40.0" in sheet
