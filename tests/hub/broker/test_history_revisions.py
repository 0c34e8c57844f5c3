"""The broker's count of history revised after the fact, per tenant and UTC day: live readings
leave it alone; late readings, instances added, changed or deleted through the temporal API do not.
Counted per entity: another entity's late readings revise its own days only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
from fastapi import FastAPI

from cityhub.plugins import entities, utcnow

BASE = "/ngsi-ld/v1"
SENSOR = "urn:ngsi-ld:Sensor:revisions"
T = {"NGSILD-Tenant": "410100"}


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _revisions(app: FastAPI, tenant: str = "410100") -> dict[date, int]:
    today = utcnow().date()
    async with app.state.hub.sessions() as session:
        found = await entities.history_revisions(session, tenant, today - timedelta(days=5), today)
    return found.get(SENSOR, {})


async def test_late_and_temporal_writes_revise_their_day(app: FastAPI, client: httpx.AsyncClient) -> None:
    now = utcnow()
    live = {"id": SENSOR, "type": "Sensor", "t": {"type": "Property", "value": 1, "observedAt": _stamp(now)}}
    assert (await client.post(f"{BASE}/entities", json=live, headers=T)).status_code == 201
    assert await _revisions(app) == {}

    past = now - timedelta(days=3)
    late = {"t": {"type": "Property", "value": 2, "observedAt": _stamp(past)}}
    assert (await client.post(f"{BASE}/entities/{SENSOR}/attrs", json=late, headers=T)).status_code == 204
    assert await _revisions(app) == {past.date(): 1}

    older = now - timedelta(days=4)
    added = {"t": [{"type": "Property", "value": 3, "observedAt": _stamp(older)}]}
    r = await client.post(f"{BASE}/temporal/entities/{SENSOR}/attrs", json=added, headers=T)
    assert r.status_code == 204
    assert await _revisions(app) == {past.date(): 1, older.date(): 1}

    found = await client.get(
        f"{BASE}/temporal/entities/{SENSOR}",
        params={"attrs": "t", "timerel": "before", "timeAt": _stamp(past - timedelta(hours=1))},
        headers=T,
    )
    (instance,) = found.json()["t"] if isinstance(found.json()["t"], list) else [found.json()["t"]]
    r = await client.delete(f"{BASE}/temporal/entities/{SENSOR}/attrs/t/{instance['instanceId']}", headers=T)
    assert r.status_code == 204
    assert await _revisions(app) == {past.date(): 1, older.date(): 2}
    assert await _revisions(app, "410000") == {}  # another tenant's days are its own
    async with app.state.hub.sessions() as session, session.begin():
        other = {"id": "urn:ngsi-ld:Sensor:other", "type": "Sensor", "t": late["t"]}
        await entities.write_entities(session, "410100", [other])
    async with app.state.hub.sessions() as session:
        found = await entities.history_revisions(session, "410100", past.date(), past.date())
    assert found == {SENSOR: {past.date(): 1}, "urn:ngsi-ld:Sensor:other": {past.date(): 1}}

    r = await client.delete(f"{BASE}/temporal/entities/{SENSOR}", headers=T)
    assert r.status_code == 204
    assert await _revisions(app) == {past.date(): 2, older.date(): 2}  # the live instance: none
