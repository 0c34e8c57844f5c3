"""The rule engine end to end through the hub: entity changes on the bus raise, bump and resolve
alerts; alert lifecycle and history; rules that fail are disabled; per tenant. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.rules import service
from cityhub.hub.rules.models import Alert
from cityhub.kit.db import current_tenant, scope_to_tenant
from cityhub.systems.security.policy import Permission, requirement
from tests.bus.support import wait_until
from tests.hub.rules.support import ALERTS, ENTITIES, RULES, add_rule, air, alerts, put_entity, wait_alerts

STATION = "urn:ngsi-ld:AirQualityObserved:410102-001"
PM25_HIGH = {
    "name": "PM2.5 high",
    "entity_type": "AirQualityObserved",
    "when": {"attr": "pm25", "op": ">", "value": 75},
    "severity": "major",
    "message_zh": "{entity} PM2.5 超标：{value}",
    "message_en": "{entity} PM2.5 high: {value}",
}


async def test_firing_raises_one_alert_bumps_it_and_resolves_when_clear(client: httpx.AsyncClient) -> None:
    rule = await add_rule(client, PM25_HIGH)
    await put_entity(client, air(STATION, 80))
    raised = await wait_alerts(client, "an alert", lambda items: len(items) == 1)
    alert = raised[0]
    assert alert["state"] == "raised"
    assert alert["severity"] == "major"
    assert alert["entity_id"] == STATION
    assert alert["rule_id"] == rule["id"]
    assert alert["message_en"] == f"{STATION} PM2.5 high: 80"
    assert alert["message_zh"] == f"{STATION} PM2.5 超标：80"
    assert alert["next_states"] == ["acknowledged", "resolved"]

    await put_entity(client, air(STATION, 95))
    await wait_alerts(client, "the alert bumped", lambda items: items[0]["count"] == 2)
    assert len(await alerts(client)) == 1  # a repeated firing is never a second alert

    await put_entity(client, air(STATION, 30))
    resolved = await wait_alerts(client, "auto-resolve", lambda items: items[0]["state"] == "resolved")
    assert resolved[0]["resolved_by"] == "rule engine"

    # the alert is an NGSI-LD entity too, with its state and source
    response = await client.get(f"{ENTITIES}/{alert['alert_entity']}")
    assert response.status_code == 200, response.text
    entity = response.json()
    assert entity["type"] == "Alert"
    assert entity["alertState"]["value"] == "resolved"
    assert entity["severity"]["value"] == "major"
    assert entity["alertSource"]["object"] == STATION
    assert entity["location"]["value"]["coordinates"] == [113.62, 34.75]

    status = (await client.get(f"{RULES}/{rule['id']}")).json()
    assert status["fire_count"] == 1
    assert status["open_alerts"] == 0

    # firing again after resolve raises a new alert (no suppression on this rule)
    await put_entity(client, air(STATION, 99))
    await wait_alerts(client, "a second alert", lambda items: len(items) == 2)
    metrics = (await client.get("/metrics")).text
    assert "cityhub_alerts_raised 2.0" in metrics
    assert 'cityhub_alert_deliveries{outcome="failed"} 0.0' in metrics


async def test_lifecycle_transitions_comments_and_history(client: httpx.AsyncClient) -> None:
    await add_rule(client, PM25_HIGH)
    await put_entity(client, air(STATION, 120))
    alert = (await wait_alerts(client, "an alert", lambda items: len(items) == 1))[0]
    url = f"{ALERTS}/{alert['id']}"

    acknowledged = await client.post(f"{url}/acknowledge", json={"note": "on it"})
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["state"] == "acknowledged"
    again = await client.post(f"{url}/acknowledge")
    assert again.status_code == 409
    assert again.json()["allowed"] == ["resolved"]
    assert "resolved" in again.json()["detail"]

    commented = await client.post(f"{url}/comments", json={"note": "crew sent"})
    assert commented.status_code == 201
    resolved = await client.post(f"{url}/resolve")
    assert resolved.json()["state"] == "resolved"
    final = await client.post(f"{url}/resolve")
    assert final.status_code == 409
    assert final.json()["allowed"] == []

    history = (await client.get(f"{url}/history")).json()
    assert [e["kind"] for e in history["events"]] == ["raised", "acknowledged", "comment", "resolved"]
    assert history["events"][1]["note"] == "on it"
    await wait_until(
        lambda: _delivered(client, url), what="the in-app channel logged for raised and resolved"
    )

    assert (await client.get(f"{ALERTS}/not-an-id")).status_code == 404
    assert (await client.post(f"{ALERTS}/{alert['id']}/comments", json={"note": ""})).status_code == 400


async def _delivered(client: httpx.AsyncClient, url: str) -> bool:
    deliveries = (await client.get(f"{url}/history")).json()["deliveries"]
    return sorted(d["notice"] for d in deliveries if d["ok"]) == ["raised", "resolved"]


async def test_alert_list_filters_and_pages(client: httpx.AsyncClient) -> None:
    await add_rule(client, PM25_HIGH)
    await add_rule(
        client,
        PM25_HIGH
        | {"name": "very high", "severity": "critical", "when": {"attr": "pm25", "op": ">", "value": 150}},
    )
    for number, value in enumerate((80, 90, 200)):
        await put_entity(client, air(f"{STATION}-{number}", value))
    await wait_alerts(client, "four alerts", lambda items: len(items) == 4)
    assert len(await alerts(client, severity="critical")) == 1
    assert len(await alerts(client, severity=["critical", "major"])) == 4
    assert len(await alerts(client, entity=f"{STATION}-2")) == 2
    page = (await client.get(ALERTS, params={"limit": 3, "offset": 2})).json()
    assert page["total"] == 4
    assert len(page["items"]) == 2
    assert len(await alerts(client, state="acknowledged")) == 0
    assert len(await alerts(client, since="2000-01-01T00:00:00Z", until="2001-01-01T00:00:00Z")) == 0
    bad = await client.get(ALERTS, params={"state": "open"})
    assert bad.status_code == 400
    assert "raised" in bad.json()["detail"]
    assert (await client.get(ALERTS, params={"limit": 0})).status_code == 400


async def test_a_rule_that_fails_is_disabled_with_its_reason(client: httpx.AsyncClient) -> None:
    failing = await add_rule(client, PM25_HIGH)
    other = await add_rule(client, PM25_HIGH | {"name": "exists", "when": {"attr": "pm25", "op": "exists"}})
    await put_entity(client, air(STATION, "very high"))  # a string against a number

    async def disabled() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"{RULES}/{failing['id']}")).json()
        return body if not body["enabled"] else None

    status = await wait_until(disabled, what="the failing rule disabled")
    assert "evaluation failed" in status["disabled_reason"]
    assert "'>' not supported" in status["last_error"]
    # the engine went on: the other rule of the same change raised its alert
    await wait_alerts(client, "the other rule's alert", lambda items: len(items) == 1)
    assert (await client.get(f"{RULES}/{other['id']}")).json()["enabled"] is True

    # switched on again, it runs
    assert (await client.post(f"{RULES}/{failing['id']}/enable")).json()["disabled_reason"] is None
    await put_entity(client, air(STATION + "-b", 100))
    await wait_alerts(client, "its alert", lambda items: len(items) == 1, rule=failing["id"])


async def test_rules_and_alerts_belong_to_their_tenant(client: httpx.AsyncClient) -> None:
    county = {"NGSILD-Tenant": "410102"}
    response = await client.post(RULES, json={"definition": PM25_HIGH, "enabled": True}, headers=county)
    assert response.status_code == 201
    await put_entity(client, air(STATION, 80))  # default tenant: no rule there
    response = await client.post(ENTITIES, json=air(STATION, 81), headers=county)
    assert response.status_code == 201

    async def county_alerts() -> list[Any]:
        items: list[Any] = (await client.get(ALERTS, headers=county)).json()["items"]
        return items

    found = await wait_until(county_alerts, what="the county's alert")
    assert found[0]["tenant"] == "410102"
    assert found[0]["value"] == 81
    assert await alerts(client) == []
    assert (await client.get(RULES)).json()["total"] == 0
    assert (await client.get(f"{ALERTS}/{found[0]['id']}")).status_code == 404


async def test_rule_crud_and_bad_definitions(client: httpx.AsyncClient, app: FastAPI) -> None:
    created = await add_rule(client, PM25_HIGH, enabled=False)
    assert created["enabled"] is False
    assert created["name"] == "PM2.5 high"
    replaced = await client.put(
        f"{RULES}/{created['id']}", json={"definition": PM25_HIGH | {"name": "PM2.5 above 75"}}
    )
    assert replaced.json()["name"] == "PM2.5 above 75"
    assert (await client.post(f"{RULES}/{created['id']}/enable")).json()["enabled"] is True
    disabled = (await client.post(f"{RULES}/{created['id']}/disable")).json()
    assert disabled["enabled"] is False
    assert (await client.get(RULES)).json()["total"] == 1
    assert (await client.delete(f"{RULES}/{created['id']}")).status_code == 204
    assert (await client.get(f"{RULES}/{created['id']}")).status_code == 404

    bad_cases = [
        ({"when": {"attr": "pm25", "op": ">", "value": 1}}, "entity_type"),
        (PM25_HIGH | {"when": {"attr": "pm25", "op": "~", "value": 1}}, "when.op"),
        (PM25_HIGH | {"when": {"all": []}}, "when"),
        (PM25_HIGH | {"when": {"any": [{"attr": "a", "op": "between", "value": [1]}]}}, "when.any[0].value"),
        (PM25_HIGH | {"for": "two hours"}, "for"),
        (PM25_HIGH | {"severity": "urgent"}, "severity"),
        (PM25_HIGH | {"channels": ["pager:123"]}, "channels[0]"),
        (PM25_HIGH | {"channels": ["webhook:ftp://x"]}, "channels[0]"),
        (PM25_HIGH | {"when": {"geofence": {"type": "Point", "coordinates": [1, 2]}}}, "when.geofence"),
        (PM25_HIGH | {"absence": "PT1H"}, "absence"),
        (PM25_HIGH | {"colour": "red"}, "colour"),
    ]
    for definition, named in bad_cases:
        response = await client.post(RULES, json={"definition": definition})
        assert response.status_code == 400, (definition, response.text)
        assert named in response.json()["detail"], (named, response.json()["detail"])
    assert (await client.post(RULES, json={"definition": "x"})).status_code == 400
    assert (await client.get(f"{RULES}/nope")).status_code == 404


async def test_the_raised_hook_runs_in_the_raising_transaction(client: httpx.AsyncClient) -> None:
    seen: list[tuple[str | None, str]] = []

    async def open_case(session: AsyncSession, alert: Alert) -> None:
        seen.append((current_tenant(session), alert.entity_id))
        if alert.open_case is not None:
            alert.case_id = f"case-{alert.open_case['category']}"

    service.on_alert_raised.append(open_case)
    try:
        await add_rule(client, PM25_HIGH | {"open_case": {"category": "environment"}})
        await put_entity(client, air(STATION, 80))
        [alert] = await wait_alerts(client, "an alert", lambda items: len(items) == 1)
    finally:
        service.on_alert_raised.remove(open_case)
    assert seen == [(alert["tenant"], STATION)]
    assert alert["open_case"] == {"category": "environment"}
    assert alert["case_id"] == "case-environment"


async def test_alert_notices_stream_as_server_sent_events(client: httpx.AsyncClient, app: FastAPI) -> None:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, what="the HTTP server")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http,
            http.stream("GET", f"{ALERTS}/stream") as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == ": connected"
            await add_rule(client, PM25_HIGH)
            await put_entity(client, air(STATION, 80))
            received = [line async for line in _until_data(lines)]
            assert received[0] == "event: raised"
            notice = orjson.loads(received[1].removeprefix("data: "))
            [alert] = await alerts(client)
            assert notice == {"tenant": alert["tenant"], "alert": alert["id"], "notice": "raised"}
    finally:
        server.should_exit = True
        await serving


async def _until_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    async for line in lines:
        if line.startswith(("event:", "data:")):
            yield line
            if line.startswith("data:"):
                return


async def test_out_of_range_input_is_a_400(client: httpx.AsyncClient) -> None:
    assert (await client.get(ALERTS, params={"offset": 2**70})).status_code == 400
    assert (await client.get(ALERTS, params={"since": "2026-01-01T00:00:00"})).status_code == 400
    naive = {"definition": PM25_HIGH, "start": "2026-01-01T00:00:00"}
    response = await client.post(f"{RULES}/dry-run", json=naive)
    assert response.status_code == 400
    assert "start" in response.json()["detail"]
    for member, value in (
        ("name", "x" * 201),
        ("entity_type", "T" * 1025),
        ("channels", ["webhook:http://" + "a" * 2000]),
    ):
        response = await client.post(RULES, json={"definition": PM25_HIGH | {member: value}})
        assert response.status_code == 400, (member, response.text)


async def test_the_database_keeps_one_open_alert_per_key(app: FastAPI) -> None:
    def alert(state: str) -> Alert:
        return Alert(
            dedup_key="rule|urn:x",
            entity_id="urn:x",
            entity_type="T",
            state=state,
            severity="info",
            raised_severity="info",
            message_zh="",
            message_en="",
            reading={},
            channels=[],
            count=1,
        )

    async with app.state.hub.sessions() as session, session.begin():
        scope_to_tenant(session, "410100")
        session.add_all([alert("resolved"), alert("resolved"), alert("raised")])
    with pytest.raises(IntegrityError):
        async with app.state.hub.sessions() as session, session.begin():
            scope_to_tenant(session, "410100")
            session.add(alert("acknowledged"))


def test_dry_runs_only_read_so_readers_may_run_them() -> None:
    for path in ("/api/v1/rules/dry-run", "/api/v1/rules/7d0c6c7e-0000-4000-8000-000000000000/dry-run"):
        needed = requirement("POST", path)
        assert needed is not None
        assert needed.permission is Permission.DATA_READ
    assert requirement("POST", "/api/v1/rules").permission is Permission.DATA_WRITE  # type: ignore[union-attr]
    assert requirement("POST", "/api/v1/rules/x/y/dry-run").permission is Permission.DATA_WRITE  # type: ignore[union-attr]


async def test_acting_on_an_alert_at_once_takes_each_step_once(client: httpx.AsyncClient) -> None:
    # operators acknowledging, then resolving, one alert at the same time: each step is taken
    # once, the others are judged on the state it left (409), and the history says so
    await add_rule(client, PM25_HIGH)
    await put_entity(client, air(STATION, 120))
    alert = (await wait_alerts(client, "an alert", lambda items: len(items) == 1))[0]
    url = f"{ALERTS}/{alert['id']}"
    for step in ("acknowledge", "resolve"):
        answers = await asyncio.gather(*(client.post(f"{url}/{step}") for _ in range(8)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] + [409] * 7, (step, [a.text for a in answers if a.status_code != 409])
    history = (await client.get(f"{url}/history")).json()
    kinds = [event["kind"] for event in history["events"]]
    assert (kinds.count("acknowledged"), kinds.count("resolved")) == (1, 1), kinds
