"""Duration windows, absence, escalation, suppression, geo-fence events, dry runs and templates,
through the running hub (the periodic checks run by calling the engine's tick with a later time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.broker import service as broker
from cityhub.hub.broker.events import EntitiesChanged, diff
from cityhub.hub.rules.models import RuleState
from cityhub.kit.db import ALL_TENANTS, scope_to_tenant
from cityhub.kit.time import isoformat, parse_datetime, utcnow
from cityhub.plugins.registry import RuleTemplate
from tests.bus.support import wait_until
from tests.hub.rules.support import ALERTS, RULES, add_rule, air, alerts, put_entity, wait_alerts

STATION = "urn:ngsi-ld:AirQualityObserved:410102-007"
HIGH = {"attr": "pm25", "op": ">", "value": 75}


async def _states(app: FastAPI, **where: Any) -> list[RuleState]:
    async with app.state.hub.sessions() as session:
        statement = select(RuleState).execution_options(**{ALL_TENANTS: True})
        rows = await session.scalars(statement.filter_by(**where))
        return list(rows)


async def test_a_for_window_fires_when_it_completes_and_survives_in_the_table(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    rule = await add_rule(client, {"entity_type": "AirQualityObserved", "when": HIGH, "for": "PT10M"})
    await put_entity(client, air(STATION, 80))
    [state] = await wait_until(lambda: _states(app), what="the window under way")
    assert state.since is not None
    assert not state.firing
    assert await alerts(client) == []

    await app.state.hub.rules.tick(now=utcnow() + timedelta(minutes=5))
    assert await alerts(client) == []  # not yet
    await app.state.hub.rules.tick(now=utcnow() + timedelta(minutes=11))
    [alert] = await alerts(client)
    assert parse_datetime(alert["raised_at"]) == state.since + timedelta(minutes=10)

    await put_entity(client, air(STATION, 20))
    await wait_alerts(client, "auto-resolve", lambda items: items[0]["state"] == "resolved")
    [state] = await _states(app)
    assert state.since is None
    assert not state.firing
    assert (await client.get(f"{RULES}/{rule['id']}")).json()["fire_count"] == 1


async def test_a_window_broken_before_it_completes_fires_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await add_rule(client, {"entity_type": "AirQualityObserved", "when": HIGH, "for": "PT10M"})
    await put_entity(client, air(STATION, 80))
    await wait_until(lambda: _states(app), what="the window under way")
    await put_entity(client, air(STATION, 10))

    async def cleared() -> bool:
        states = await _states(app)
        return bool(states) and states[0].since is None

    await wait_until(cleared, what="the window cleared")
    await app.state.hub.rules.tick(now=utcnow() + timedelta(hours=1))
    assert await alerts(client) == []


async def test_absence_fires_for_silent_entities_and_clears_when_they_speak(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    # a type no installed application writes to, so only these writes count as data
    await add_rule(client, {"entity_type": "RainGauge", "absence": "PT30M", "severity": "minor"})
    gauge = "urn:ngsi-ld:RainGauge:zz-1"

    def rain(entity_id: str, value: float) -> dict[str, Any]:
        return {"id": entity_id, "type": "RainGauge", "precipitation": {"type": "Property", "value": value}}

    await put_entity(client, rain(gauge, 10))
    await put_entity(client, rain(gauge + "-other", 10))
    await app.state.hub.rules.tick(now=utcnow() + timedelta(minutes=10))
    await app.state.hub.relay.drain()
    assert await alerts(client) == []
    await app.state.hub.rules.tick(now=utcnow() + timedelta(minutes=31))
    found = await alerts(client)
    assert sorted(a["entity_id"] for a in found) == [gauge, gauge + "-other"]
    await app.state.hub.rules.tick(now=utcnow() + timedelta(minutes=45))
    assert len(await alerts(client)) == 2  # silent still: no second alert

    # news of a creation that arrives only now (a slow or redelivering bus) is no sign of life
    async with app.state.hub.sessions() as session:
        scope_to_tenant(session, "410100")
        stored = await broker.stored_entities(session, [gauge])
    late = EntitiesChanged(tenant="410100", changes=[diff(None, stored[gauge])])
    await app.state.hub.rules.on_changes(late)
    assert len(await alerts(client, state="raised")) == 2

    await put_entity(client, rain(gauge, 11))
    resolved = await wait_alerts(
        client, "the alert of the entity that spoke resolved", lambda items: len(items) == 1, state="resolved"
    )
    assert resolved[0]["entity_id"] == gauge


async def test_suppression_after_resolve_counts_firings_and_raises_nothing(
    client: httpx.AsyncClient,
) -> None:
    rule = await add_rule(client, {"entity_type": "AirQualityObserved", "when": HIGH, "suppress": "PT1H"})
    await put_entity(client, air(STATION, 90))
    [alert] = await wait_alerts(client, "an alert", lambda items: len(items) == 1)
    assert (await client.post(f"{ALERTS}/{alert['id']}/resolve")).status_code == 200
    await put_entity(client, air(STATION, 95))

    async def suppressed() -> bool:
        status = (await client.get(f"{RULES}/{rule['id']}")).json()
        return bool(status["suppressed_count"] == 1)

    await wait_until(suppressed, what="a suppressed firing")
    assert len(await alerts(client)) == 1


@pytest.fixture
async def escalating(settings: Settings) -> AsyncIterator[FastAPI]:
    settings = settings.model_copy(update={"rules_escalation_minutes": {"major": 10.0, "critical": 0.0}})
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_unacknowledged_alerts_are_escalated_once(escalating: FastAPI) -> None:
    transport = httpx.ASGITransport(app=escalating)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        await add_rule(client, {"entity_type": "AirQualityObserved", "when": HIGH, "severity": "major"})
        await put_entity(client, air(STATION, 90))
        await put_entity(client, air(STATION + "-b", 90))
        [first, second] = await wait_alerts(client, "two alerts", lambda items: len(items) == 2)
        await client.post(f"{ALERTS}/{second['id']}/acknowledge")
        engine = escalating.state.hub.rules
        await engine.tick(now=utcnow() + timedelta(minutes=5))
        assert (await client.get(f"{ALERTS}/{first['id']}")).json()["severity"] == "major"
        await engine.tick(now=utcnow() + timedelta(minutes=11))
        escalated = (await client.get(f"{ALERTS}/{first['id']}")).json()
        assert escalated["severity"] == "critical"
        assert escalated["raised_severity"] == "major"
        assert escalated["escalated_at"] is not None
        assert (await client.get(f"{ALERTS}/{second['id']}")).json()["severity"] == "major"  # acknowledged
        await engine.tick(now=utcnow() + timedelta(hours=3))
        history = (await client.get(f"{ALERTS}/{first['id']}/history")).json()
        assert [e["kind"] for e in history["events"]] == ["raised", "escalated"]
        assert history["events"][1]["data"] == {"from": "major", "to": "critical"}

        async def told_again() -> bool:
            body = (await client.get(f"{ALERTS}/{first['id']}/history")).json()
            return sorted(d["notice"] for d in body["deliveries"]) == ["escalated", "raised"]

        await wait_until(told_again, what="channels told of the escalation")


SQUARE = {
    "type": "Polygon",
    "coordinates": [[[113.0, 34.0], [114.0, 34.0], [114.0, 35.0], [113.0, 35.0], [113.0, 34.0]]],
}


async def test_geofence_entering_raises_and_does_not_clear_by_itself(client: httpx.AsyncClient) -> None:
    definition = {
        "entity_type": "Vehicle",
        "when": {"geofence": SQUARE, "on": "enter"},
        "message_en": "{entity} entered the zone",
    }
    await add_rule(client, definition)
    bus = "urn:ngsi-ld:Vehicle:bus-1"

    def vehicle(lon: float) -> dict[str, Any]:
        return {
            "id": bus,
            "type": "Vehicle",
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, 34.5]}},
        }

    await put_entity(client, vehicle(112.5))
    await put_entity(client, vehicle(113.5))
    [alert] = await wait_alerts(client, "entered", lambda items: len(items) == 1)
    assert alert["message_en"] == f"{bus} entered the zone"
    await put_entity(client, vehicle(113.6))  # moving inside: not entering, not clearing
    await put_entity(client, vehicle(112.0))  # left
    await put_entity(client, vehicle(113.7))  # entered again: the open alert is bumped
    await wait_alerts(client, "bumped", lambda items: items[0]["count"] == 2)
    assert (await alerts(client))[0]["state"] == "raised"


async def _history(client: httpx.AsyncClient, entity_id: str, values: list[tuple[int, float]]) -> None:
    now = utcnow()
    readings = [
        {"type": "Property", "value": value, "observedAt": isoformat(now - timedelta(minutes=minutes))}
        for minutes, value in values
    ]
    entity = {"id": entity_id, "type": "AirQualityObserved", "pm25": readings}
    response = await client.post("/ngsi-ld/v1/temporal/entities", json=entity)
    assert response.status_code == 201, response.text


async def test_dry_run_says_when_a_rule_would_have_fired(client: httpx.AsyncClient) -> None:
    await _history(client, STATION, [(300, 50), (240, 80), (180, 90), (120, 40), (60, 100)])
    await _history(client, STATION + "-quiet", [(300, 10), (200, 12)])

    async def run(definition: dict[str, Any], **extra: Any) -> dict[str, Any]:
        response = await client.post(f"{RULES}/dry-run", json={"definition": definition, **extra})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    plain = await run({"entity_type": "AirQualityObserved", "when": HIGH})
    runs = {r["entity_id"]: r for r in plain["entities"]}
    assert plain["fired"] == 2
    episodes = runs[STATION]["episodes"]
    assert [e["value"] for e in episodes] == [80, 100]
    assert episodes[0]["cleared_at"] is not None
    assert episodes[1]["cleared_at"] is None
    assert runs[STATION]["evaluations"] == 5
    assert runs[STATION + "-quiet"]["episodes"] == []

    held = await run({"entity_type": "AirQualityObserved", "when": HIGH, "for": "PT90M"})
    assert held["fired"] == 1

    silent = await run({"entity_type": "AirQualityObserved", "absence": "PT90M"})
    runs = {r["entity_id"]: r["episodes"] for r in silent["entities"]}
    assert runs[STATION] == []
    # 100 minutes between its readings, then silent since the second: two episodes
    gap, silence = runs[STATION + "-quiet"]
    assert gap["cleared_at"] is not None
    assert silence["cleared_at"] is None

    window = {"start": isoformat(utcnow() - timedelta(minutes=90))}
    recent = await run({"entity_type": "AirQualityObserved", "when": HIGH}, **window)
    assert recent["fired"] == 1

    stored = await add_rule(
        client, {"entity_type": "AirQualityObserved", "when": HIGH, "entity_ids": [STATION]}, enabled=False
    )
    response = await client.post(f"{RULES}/{stored['id']}/dry-run")
    assert response.status_code == 200, response.text
    assert [r["entity_id"] for r in response.json()["entities"]] == [STATION]

    bad = await client.post(f"{RULES}/dry-run", json={"definition": {"entity_type": "X"}})
    assert bad.status_code == 400
    backwards = {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    response = await client.post(
        f"{RULES}/dry-run", json={"definition": {"entity_type": "X", "when": HIGH}, **backwards}
    )
    assert response.status_code == 400


TEMPLATE = {
    "entity_type": "AirQualityObserved",
    "when": {"attr": "pm25", "op": ">", "value": {"param": "threshold"}},
    "severity": "major",
    "params": {"threshold": {"type": "number", "default": 200, "title_zh": "阈值", "title_en": "Threshold"}},
}


async def test_rules_from_application_templates(client: httpx.AsyncClient, app: FastAPI) -> None:
    templates = app.state.hub.registry.rule_templates
    templates["pm25_high"] = RuleTemplate("environment", "pm25_high", "PM2.5 超标", "PM2.5 high", TEMPLATE)
    listed = {t["key"]: t for t in (await client.get(f"{RULES}/templates")).json()}
    assert listed["pm25_high"]["title_zh"] == "PM2.5 超标"
    assert listed["pm25_high"]["app"] == "environment"

    url = f"{RULES}/templates/pm25_high/instantiate"
    response = await client.post(
        url, json={"params": {"threshold": 60}, "overrides": {"name": "PM2.5 > 60"}, "enabled": True}
    )
    assert response.status_code == 201, response.text
    rule = response.json()
    assert rule["template_key"] == "pm25_high"
    assert rule["definition"]["when"]["value"] == 60
    assert rule["name"] == "PM2.5 > 60"
    await put_entity(client, air(STATION, 61))
    await wait_alerts(client, "the template's rule fired", lambda items: len(items) == 1)

    assert (await client.post(url, json={"params": {"threshold": "x"}})).status_code == 400
    assert (await client.post(url, json={"params": {"other": 1}})).status_code == 400
    assert (await client.post(url, json={"overrides": {"severity": "huge"}})).status_code == 400
    assert (await client.post(f"{RULES}/templates/nope/instantiate", json={})).status_code == 404


async def test_a_window_under_way_survives_a_restart(settings: Settings) -> None:
    first = create_app(settings)
    async with first.router.lifespan_context(first):
        transport = httpx.ASGITransport(app=first)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            await add_rule(client, {"entity_type": "AirQualityObserved", "when": HIGH, "for": "PT10M"})
            await put_entity(client, air(STATION, 80))
            await wait_until(lambda: _states(first), what="the window under way")
    second = create_app(settings)
    async with second.router.lifespan_context(second):
        await second.state.hub.rules.tick(now=utcnow() + timedelta(minutes=11))
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            [alert] = await alerts(client)
            assert alert["entity_id"] == STATION
            assert alert["value"] == 80


async def test_rate_of_change_and_sub_properties_through_the_broker(client: httpx.AsyncClient) -> None:
    gauge = "urn:ngsi-ld:WaterObserved:river-1"
    rising = {
        "name": "river rising",
        "entity_type": "WaterObserved",
        "when": {
            "all": [
                {"rate": "waterLevel", "per": "PT1H", "op": ">", "value": 0.5},
                {"path": "waterLevel.quality", "op": "==", "value": "good"},
            ]
        },
    }
    await add_rule(client, rising)

    def level(value: float, at: str, quality: str = "good") -> dict[str, Any]:
        reading = {"type": "Property", "value": value, "observedAt": at}
        return {
            "id": gauge,
            "type": "WaterObserved",
            "waterLevel": reading | {"quality": {"type": "Property", "value": quality}},
        }

    await put_entity(client, level(1.0, "2026-11-21T06:00:00Z"))
    await put_entity(client, level(1.3, "2026-11-21T07:00:00Z"))  # 0.3 an hour
    await put_entity(client, level(2.0, "2026-11-21T07:30:00Z", quality="suspect"))  # 1.4 an hour, suspect
    await put_entity(client, level(2.4, "2026-11-21T08:00:00Z"))  # 0.8 an hour, good
    [alert] = await wait_alerts(client, "rising fast", lambda items: len(items) == 1)
    assert alert["value"] == 2.4
    assert alert["count"] == 1
    assert alert["attribute"] == "waterLevel"
