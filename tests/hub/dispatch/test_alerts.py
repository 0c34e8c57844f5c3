"""From a sensor reading to a closed case: a rule fires, its alert opens a case, the case is routed
by its location, handled, verified, closed and counted in the department's evaluation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from cityhub.kit.time import isoformat, utcnow
from tests.hub.dispatch.support import CASES, DISPATCH, IN_JINSHUI, JINSHUI, act, city
from tests.hub.rules.support import ALERTS, add_rule, air, put_entity, wait_alerts

STATION = "urn:ngsi-ld:AirQualityObserved:jinshui-1"


def _pm25_rule(**extra: Any) -> dict[str, Any]:
    return {
        "name": "PM2.5 high",
        "entity_type": "AirQualityObserved",
        "when": {"attr": "pm25", "op": ">", "value": 75},
        "severity": "major",
        "message_zh": "{entity} PM2.5 超标:{value}",
        "auto_resolve": False,
        **extra,
    }


def _in_jinshui(pm25: float) -> dict[str, Any]:
    lon, lat = IN_JINSHUI["coordinates"]
    return air(STATION, pm25, lon=lon, lat=lat)


async def test_a_reading_over_a_rule_ends_as_a_closed_evaluated_case(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    await add_rule(client, _pm25_rule(open_case={"category": "E0101"}))
    await put_entity(client, _in_jinshui(40))
    await put_entity(client, _in_jinshui(120))
    found = await wait_alerts(
        client, "an alert with its case", lambda items: bool(items and items[0]["case_id"])
    )
    alert = found[0]

    case = (await client.get(f"{CASES}/{alert['case_id']}")).json()
    assert case["source"] == "alert"
    assert case["source_ref"] == alert["id"]
    assert case["urgency"] == "urgent"  # a major alert
    assert case["title"].endswith("PM2.5 超标:120")
    assert case["location"] == IN_JINSHUI  # the station's place, through the Alert entity
    assert (case["district"], case["department_tenant"], case["department"]) == (JINSHUI, JINSHUI, "urban")

    for action in ("file", "dispatch", "accept", "feedback", "verify"):
        response = await act(client, case["id"], action, actor="centre")
        assert response.status_code == 200, response.text
    assert response.json()["state"] == "closed"

    history = (await client.get(f"{ALERTS}/{alert['id']}/history")).json()
    assert [e["kind"] for e in history["events"]][:2] == ["raised", "case_opened"]

    now = utcnow()
    window = {"from": isoformat(now - timedelta(hours=1)), "to": isoformat(now + timedelta(hours=1))}
    evaluation = (await client.get(f"{DISPATCH}/evaluation", params=window)).json()
    (jinshui,) = [d for d in evaluation["departments"] if d["department_tenant"] == JINSHUI]
    assert (jinshui["dispatched"], jinshui["handled"], jinshui["on_time"]) == (1, 1, 1)


async def test_an_alert_opens_a_case_by_hand_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    await add_rule(client, _pm25_rule())
    await put_entity(client, _in_jinshui(150))
    (alert,) = await wait_alerts(client, "an alert", lambda items: len(items) == 1)
    assert alert["case_id"] is None

    unnamed = await client.post(f"{ALERTS}/{alert['id']}/case")
    assert unnamed.status_code == 400
    assert "category" in unnamed.json()["detail"]
    opened = await client.post(
        f"{ALERTS}/{alert['id']}/case", json={"category": "E0101", "urgency": "normal"}
    )
    assert opened.status_code == 201, opened.text
    assert opened.headers["Location"] == f"{CASES}/{opened.json()['id']}"
    assert opened.json()["urgency"] == "normal"
    again = await client.post(f"{ALERTS}/{alert['id']}/case", json={"category": "E0101"})
    assert again.status_code == 409
    assert again.json()["case"] == opened.json()["id"]
    shown = (await client.get(f"{ALERTS}/{alert['id']}")).json()
    assert shown["case_id"] == opened.json()["id"]
    unknown = await client.post(
        f"{ALERTS}/00000000-0000-0000-0000-000000000000/case", json={"category": "E0101"}
    )
    assert unknown.status_code == 404


async def test_a_rule_asking_for_an_unknown_case_type_still_raises_its_alert(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    await add_rule(client, _pm25_rule(open_case={"category": "E0101", "case_type": "no-such-workflow"}))
    await put_entity(client, _in_jinshui(200))
    (alert,) = await wait_alerts(client, "an alert", lambda items: len(items) == 1)
    assert alert["case_id"] is None
    history = (await client.get(f"{ALERTS}/{alert['id']}/history")).json()
    refused = [e for e in history["events"] if e["kind"] == "case_refused"]
    assert refused
    assert "no-such-workflow" in refused[0]["note"]
    assert (await client.get(CASES)).json()["total"] == 0
