"""Subscriptions and notifications on a started hub (SQLite or PostgreSQL), delivered over real HTTP
to a local receiver and over MQTT through the real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.broker.models import BrokerNotification
from tests.hub.broker.receiver import Receiver

BASE = "/ngsi-ld/v1"
BAD_REQUEST = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
MQTT_HOST = "127.0.0.1"


def station(n: int = 1, pm25: float = 35.0, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:zz-{n:03d}",
        "type": "AirQualityObserved",
        "pm25": {"type": "Property", "value": pm25, "unitCode": "GQ"},
        "no2": {"type": "Property", "value": 20},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.66, 34.75]}},
        **extra,
    }


def subscription(url: str, **extra: Any) -> dict[str, Any]:
    notification = {"endpoint": {"uri": url, "accept": "application/json"}} | extra.pop("notification", {})
    return {
        "id": f"urn:ngsi-ld:Subscription:{uuid.uuid4()}",
        "type": "Subscription",
        "entities": [{"type": "AirQualityObserved"}],
        "notification": notification,
        **extra,
    }


async def subscribe(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> str:
    response = await client.post(f"{BASE}/subscriptions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(body["id"])


async def patch_attr(
    client: httpx.AsyncClient, entity_id: str, attrs: dict[str, Any], **headers: str
) -> None:
    response = await client.patch(f"{BASE}/entities/{entity_id}/attrs", json=attrs, headers=headers)
    assert response.status_code == 204, response.text


@contextlib.asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A hub of the test's own (for tests that tune it or restart it) and a client for it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            yield app, client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


# -- the subscription resource ---------------------------------------------------------------------


async def test_create_retrieve_and_defaults(client: httpx.AsyncClient, receiver: Receiver) -> None:
    body = subscription(receiver.url, q="pm25>75", description="PM2.5 over the limit")
    response = await client.post(f"{BASE}/subscriptions", json=body)
    assert response.status_code == 201
    assert response.headers["location"] == f"{BASE}/subscriptions/{body['id']}"
    got = (await client.get(f"{BASE}/subscriptions/{body['id']}")).json()
    assert got["status"] == "active"
    assert got["q"] == "pm25>75"
    assert got["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]
    assert got["notification"]["endpoint"] == body["notification"]["endpoint"]
    assert "timesSent" not in got["notification"]  # shown once something was sent
    again = await client.post(f"{BASE}/subscriptions", json=body)
    assert again.status_code == 409


async def test_an_id_is_made_when_none_is_given(client: httpx.AsyncClient, receiver: Receiver) -> None:
    body = subscription(receiver.url)
    del body["id"]
    response = await client.post(f"{BASE}/subscriptions", json=body)
    assert response.status_code == 201
    location = response.headers["location"]
    assert location.startswith(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:")
    assert (await client.get(location)).status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "Sub"}, "Subscription"),
        ({"notification": None}, "notification"),
        ({"notification": {"endpoint": {"uri": "ftp://x/y"}}}, "http(s) or mqtt(s)"),
        ({"notification": {"endpoint": {"uri": "http://x/y", "accept": "text/plain"}}}, "accept"),
        ({"throttling": -1}, "throttling"),
        ({"timeInterval": 5, "watchedAttributes": ["pm25"]}, "timeInterval"),
        ({"expiresAt": "2001-01-01T00:00:00Z"}, "future"),
        ({"expiresAt": "tomorrow"}, "date-time"),
        ({"status": "paused"}, "cannot be set"),
        ({"q": "pm25>>"}, ""),
        ({"entities": [{"id": "urn:ngsi-ld:X:1"}]}, "type"),
        ({"entities": [{"type": "A", "idPattern": "(["}]}, "idPattern"),
        ({"notificationTrigger": ["whenever"]}, "notificationTrigger"),
        ({"isActive": "yes"}, "isActive"),
        ({"geoQ": {"georel": "near;maxDistance==10", "geometry": "Point"}}, "geoQ"),
        ({"colour": "red"}, "unknown"),
    ],
)
async def test_invalid_subscriptions_are_refused(
    client: httpx.AsyncClient, change: dict[str, Any], message: str
) -> None:
    body = subscription("http://127.0.0.1:9/notify")
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = await client.post(f"{BASE}/subscriptions", json=body)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == BAD_REQUEST
    assert message in problem["detail"]


async def test_pick_and_attributes_exclude_each_other(client: httpx.AsyncClient) -> None:
    body = subscription("http://127.0.0.1:9/n", notification={"attributes": ["pm25"], "pick": ["id"]})
    assert (await client.post(f"{BASE}/subscriptions", json=body)).status_code == 400


async def test_malformed_and_unknown(client: httpx.AsyncClient) -> None:
    bad = await client.post(
        f"{BASE}/subscriptions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert (await client.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:none")).status_code == 404
    assert (await client.get(f"{BASE}/subscriptions/not-a-uri")).status_code == 400
    assert (await client.delete(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:none")).status_code == 404
    assert (await client.delete(f"{BASE}/subscriptions/")).status_code == 405


async def test_query_pages_with_links_and_count(client: httpx.AsyncClient, receiver: Receiver) -> None:
    ids = [await subscribe(client, subscription(receiver.url)) for _ in range(3)]
    page = await client.get(f"{BASE}/subscriptions", params={"limit": 1, "offset": 1, "count": "true"})
    assert page.status_code == 200
    assert [s["id"] for s in page.json()] == ids[1:2]
    assert page.headers["ngsild-results-count"] == "3"
    assert 'offset=0>;rel="prev"' in page.headers["link"]
    assert 'offset=2>;rel="next"' in page.headers["link"]
    assert [s["id"] for s in (await client.get(f"{BASE}/subscriptions")).json()] == ids
    assert (await client.get(f"{BASE}/subscriptions", params={"limit": 5000})).status_code == 403


async def test_update_replaces_members_and_is_validated(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    sub_id = await subscribe(client, subscription(receiver.url))
    url = f"{BASE}/subscriptions/{sub_id}"
    assert (await client.patch(url, json={"isActive": False, "q": "no2>10"})).status_code == 204
    got = (await client.get(url)).json()
    assert got["status"] == "paused"
    assert got["q"] == "no2>10"
    # a notification without its endpoint is not a notification
    refused = await client.patch(url, json={"notification": {"format": "keyValues"}})
    assert refused.status_code == 400
    assert (await client.patch(url, json={"q": None})).status_code == 204
    assert "q" not in (await client.get(url)).json()
    assert (
        await client.patch(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:x", json={"q": "a>1"})
    ).status_code == 404
    merge_patch = await client.patch(
        url, content=b'{"q": "no2>20"}', headers={"content-type": "application/merge-patch+json"}
    )
    assert merge_patch.status_code == 204
    assert (await client.get(url)).json()["q"] == "no2>20"


async def test_only_entities_are_answered_in_geojson(client: httpx.AsyncClient, receiver: Receiver) -> None:
    """406 before anything is looked up: the answer does not depend on whether the id exists."""
    sub_id = await subscribe(client, subscription(receiver.url))
    geo = {"accept": "application/geo+json"}
    for path in (f"subscriptions/{sub_id}", "subscriptions/urn:ngsi-ld:Subscription:x", "temporal/entities"):
        refused = await client.get(f"{BASE}/{path}", headers=geo, params={"type": "AirQualityObserved"})
        assert refused.status_code == 406, path
        assert refused.json()["type"].endswith("/NotAcceptable")
    assert (await client.get(f"{BASE}/entities", headers=geo, params={"type": "X"})).status_code == 200


async def test_delete_and_tenants_are_isolated(client: httpx.AsyncClient, receiver: Receiver) -> None:
    sub_id = await subscribe(client, subscription(receiver.url), **{"NGSILD-Tenant": "zhongyuan"})
    assert (await client.get(f"{BASE}/subscriptions/{sub_id}")).status_code == 404
    other = await client.get(f"{BASE}/subscriptions/{sub_id}", headers={"NGSILD-Tenant": "zhongyuan"})
    assert other.status_code == 200
    gone = await client.delete(f"{BASE}/subscriptions/{sub_id}", headers={"NGSILD-Tenant": "zhongyuan"})
    assert gone.status_code == 204
    assert (
        await client.get(f"{BASE}/subscriptions/{sub_id}", headers={"NGSILD-Tenant": "zhongyuan"})
    ).status_code == 404


# -- notifications -----------------------------------------------------------------------------------


async def test_creation_and_update_notify(client: httpx.AsyncClient, receiver: Receiver) -> None:
    sub_id = await subscribe(client, subscription(receiver.url))
    assert (await client.post(f"{BASE}/entities", json=station())).status_code == 201
    first = await receiver.next()
    assert first.headers["content-type"] == "application/json"
    assert "ngsi-ld-core-context" in first.headers["link"]
    assert first.body["type"] == "Notification"
    assert first.body["subscriptionId"] == sub_id
    assert first.body["id"].startswith("urn:ngsi-ld:Notification:")
    assert first.body["data"] == [station()]
    await patch_attr(client, station()["id"], {"pm25": {"type": "Property", "value": 80}})
    second = await receiver.next()
    assert second.body["data"][0]["pm25"]["value"] == 80
    got = (await client.get(f"{BASE}/subscriptions/{sub_id}")).json()["notification"]
    for _ in range(50):  # the counters are written just after the receiver answered
        if got.get("timesSent") == 2:
            break
        await asyncio.sleep(0.05)
        got = (await client.get(f"{BASE}/subscriptions/{sub_id}")).json()["notification"]
    assert got["timesSent"] == 2
    assert got["status"] == "ok"
    assert "lastSuccess" in got


async def test_flat_join_sends_linked_entities_after_the_changed_one(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    district = {
        "id": "urn:ngsi-ld:District:410105",
        "type": "District",
        "name": {"type": "Property", "value": "金水区"},
    }
    assert (await client.post(f"{BASE}/entities", json=district)).status_code == 201
    body = subscription(receiver.url, notification={"join": "flat"})
    await subscribe(client, body)
    located = station(refDistrict={"type": "Relationship", "object": district["id"]})
    assert (await client.post(f"{BASE}/entities", json=located)).status_code == 201
    notified = (await receiver.next()).body["data"]
    assert [item["id"] for item in notified] == [located["id"], district["id"]]
    assert notified[1]["name"]["value"] == "金水区"


async def test_watched_attributes_q_and_format(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        client,
        subscription(
            receiver.url,
            watchedAttributes=["pm25"],
            q="pm25>75",
            notification={"format": "keyValues", "attributes": ["pm25"]},
        ),
    )
    await client.post(f"{BASE}/entities", json=station())  # pm25 35: q does not match
    await patch_attr(client, station()["id"], {"no2": {"type": "Property", "value": 90}})  # not watched
    assert await receiver.nothing(1.0)
    await patch_attr(client, station()["id"], {"pm25": {"type": "Property", "value": 120}})
    got = await receiver.next()
    assert got.body["data"] == [{"id": station()["id"], "type": "AirQualityObserved", "pm25": 120}]


async def test_ld_json_notifications_carry_the_context(client: httpx.AsyncClient, receiver: Receiver) -> None:
    body = subscription(receiver.url)
    body["notification"]["endpoint"]["accept"] = "application/ld+json"
    body["notification"]["endpoint"]["receiverInfo"] = [{"key": "X-Auth-Token", "value": "s3cret"}]
    await subscribe(client, body, **{"NGSILD-Tenant": "zhongyuan"})
    await client.post(f"{BASE}/entities", json=station(), headers={"NGSILD-Tenant": "zhongyuan"})
    got = await receiver.next()
    assert got.headers["content-type"] == "application/ld+json"
    assert got.headers["x-auth-token"] == "s3cret"
    assert got.headers["ngsild-tenant"] == "zhongyuan"
    assert "ngsi-ld-core-context" in str(got.body["@context"])
    assert got.body["data"][0]["@context"] == got.body["@context"]


async def test_show_changes_gives_previous_values(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await client.post(f"{BASE}/entities", json=station())
    await subscribe(client, subscription(receiver.url, notification={"showChanges": True}))
    await patch_attr(client, station()["id"], {"pm25": {"type": "Property", "value": 99}})
    got = await receiver.next()
    pm25 = got.body["data"][0]["pm25"]
    assert (pm25["value"], pm25["previousValue"]) == (99, 35.0)


async def test_deletions_notify_when_asked(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await client.post(f"{BASE}/entities", json=station())
    await subscribe(
        client,
        subscription(receiver.url, notificationTrigger=["attributeDeleted", "entityDeleted"]),
    )
    await patch_attr(client, station()["id"], {"pm25": {"type": "Property", "value": 1}})
    assert await receiver.nothing(0.8)  # an update is not a deletion
    gone = await client.delete(f"{BASE}/entities/{station()['id']}/attrs/no2")
    assert gone.status_code == 204
    attr = await receiver.next()
    assert attr.body["data"][0]["no2"] == {"type": "Property", "value": "urn:ngsi-ld:null"}
    assert (await client.delete(f"{BASE}/entities/{station()['id']}")).status_code == 204
    entity = await receiver.next()
    assert entity.body["data"][0]["id"] == station()["id"]
    assert "deletedAt" in entity.body["data"][0]


async def test_batch_changes_arrive_in_one_notification(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(client, subscription(receiver.url, notification={"format": "keyValues"}))
    batch = [station(n) for n in range(1, 6)]
    assert (await client.post(f"{BASE}/entityOperations/upsert", json=batch)).status_code == 201
    got = await receiver.next()
    assert sorted(e["id"] for e in got.body["data"]) == sorted(e["id"] for e in batch)


async def test_paused_expired_and_throttled(client: httpx.AsyncClient, receiver: Receiver) -> None:
    sub_id = await subscribe(client, subscription(receiver.url, isActive=False))
    await client.post(f"{BASE}/entities", json=station())
    assert await receiver.nothing(0.8)
    await client.patch(f"{BASE}/subscriptions/{sub_id}", json={"isActive": True, "throttling": 60})
    await patch_attr(client, station()["id"], {"pm25": {"type": "Property", "value": 50}})
    await receiver.next()
    await patch_attr(client, station()["id"], {"pm25": {"type": "Property", "value": 51}})
    assert await receiver.nothing(0.8)  # within the throttling period
    soon = (datetime.now(UTC) + timedelta(seconds=0.5)).isoformat()
    await client.patch(f"{BASE}/subscriptions/{sub_id}", json={"throttling": 0, "expiresAt": soon})
    await asyncio.sleep(0.6)
    assert (await client.get(f"{BASE}/subscriptions/{sub_id}")).json()["status"] == "expired"
    await patch_attr(client, station()["id"], {"pm25": {"type": "Property", "value": 52}})
    assert await receiver.nothing(0.8)


async def test_failed_deliveries_are_retried_and_counted(settings: Settings, receiver: Receiver) -> None:
    async with started(settings) as (app, client):
        app.state.hub.notifier.first_retry = 0.2
        receiver.status = 503
        sub_id = await subscribe(client, subscription(receiver.url))
        await client.post(f"{BASE}/entities", json=station())
        for _ in range(100):
            if receiver.attempts >= 2:
                break
            await asyncio.sleep(0.05)
        assert receiver.attempts >= 2  # refused, then tried again
        failed = (await client.get(f"{BASE}/subscriptions/{sub_id}")).json()["notification"]
        assert failed["status"] == "failed"
        assert failed["timesFailed"] >= 1
        assert "lastFailure" in failed
        receiver.status = 200
        got = await receiver.next()
        assert got.body["data"][0]["id"] == station()["id"]


async def test_a_hanging_endpoint_does_not_hold_up_others(settings: Settings) -> None:
    tuned = settings.model_copy(update={"broker_notification_timeout": 30.0})
    async with Receiver(hang=True) as dead, Receiver() as alive, started(tuned) as (_, client):
        await subscribe(client, subscription(dead.url))
        await subscribe(client, subscription(alive.url))
        for n in range(1, 4):
            assert (await client.post(f"{BASE}/entities", json=station(n))).status_code == 201
        ids: list[str] = []
        while len(ids) < 3:  # in up to three notifications: those queued together go as one
            ids += [entity["id"] for entity in (await alive.next()).body["data"]]
        assert sorted(ids) == [station(n)["id"] for n in range(1, 4)]
        assert dead.attempts == 1  # still waiting on its first notification


async def owed(app: FastAPI, count: int) -> None:
    """Wait until ``count`` notifications are queued (or on their way)."""
    for _ in range(200):
        async with app.state.hub.sessions() as session:
            if await session.scalar(select(func.count()).select_from(BrokerNotification)) == count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} notifications never queued")


async def times_sent(client: httpx.AsyncClient, sub_id: str, expected: int) -> dict[str, Any]:
    """The subscription's notification status once ``expected`` notifications are counted."""
    got: dict[str, Any] = {}
    for _ in range(100):  # the counters are written just after the receiver answered
        got = (await client.get(f"{BASE}/subscriptions/{sub_id}")).json()["notification"]
        if got.get("timesSent") == expected:
            break
        await asyncio.sleep(0.05)
    return got


async def test_notifications_queued_meanwhile_go_as_one(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """While a subscriber takes its time, its next notifications queue up; they then go in one
    notification with all their entities, in order, and count as one."""
    receiver.hold = asyncio.Event()
    sub_id = await subscribe(client, subscription(receiver.url, notification={"format": "keyValues"}))
    assert (await client.post(f"{BASE}/entities", json=station(1))).status_code == 201
    for _ in range(100):
        if receiver.attempts:
            break
        await asyncio.sleep(0.05)
    assert receiver.attempts == 1  # the first one is on its way, held by the subscriber
    for pm25 in (40, 41, 42):
        await patch_attr(client, station(1)["id"], {"pm25": {"type": "Property", "value": pm25}})
    assert (await client.post(f"{BASE}/entities", json=station(2))).status_code == 201
    await owed(app, 5)  # the one on its way and four queued behind it
    receiver.hold.set()
    first = await receiver.next()
    assert [e["pm25"] for e in first.body["data"]] == [35.0]
    second = await receiver.next()
    assert [(e["id"], e["pm25"]) for e in second.body["data"]] == [
        (station(1)["id"], 40),
        (station(1)["id"], 41),
        (station(1)["id"], 42),
        (station(2)["id"], 35.0),
    ]
    assert second.body["subscriptionId"] == sub_id
    assert second.body["id"] != first.body["id"]
    assert receiver.attempts == 2
    assert (await times_sent(client, sub_id, 2))["timesSent"] == 2
    await owed(app, 0)


async def test_a_merged_notification_refused_is_retried_whole(settings: Settings, receiver: Receiver) -> None:
    async with started(settings) as (app, client):
        app.state.hub.notifier.first_retry = 0.3
        receiver.hold = asyncio.Event()
        sub_id = await subscribe(client, subscription(receiver.url))
        assert (await client.post(f"{BASE}/entities", json=station(1))).status_code == 201
        for _ in range(100):
            if receiver.attempts:
                break
            await asyncio.sleep(0.05)
        for n in (2, 3):
            assert (await client.post(f"{BASE}/entities", json=station(n))).status_code == 201
        await owed(app, 3)
        receiver.status = 503  # the held one and the merged one behind it are refused
        receiver.hold.set()
        for _ in range(100):
            if receiver.attempts >= 2:
                break
            await asyncio.sleep(0.05)
        failed = await times_sent(client, sub_id, 2)
        assert (failed["timesSent"], failed["timesFailed"]) == (2, 2)
        receiver.status = 200
        ids: list[str] = []
        while len(ids) < 3:
            ids += [entity["id"] for entity in (await receiver.next()).body["data"]]
        assert sorted(ids) == [station(n)["id"] for n in (1, 2, 3)]
        await owed(app, 0)


async def test_selection_follows_subscription_changes(client: httpx.AsyncClient, receiver: Receiver) -> None:
    """Which subscriptions select an entity is remembered per entity; a subscription made or
    changed after the entity was last matched still sees its next change."""
    body = subscription(receiver.url, notification={"format": "keyValues"})
    body["entities"] = [{"type": "AirQualityObserved", "idPattern": ":zz-001$"}]
    sub_id = await subscribe(client, body)
    assert (await client.post(f"{BASE}/entities", json=station(2))).status_code == 201
    assert (await client.post(f"{BASE}/entities", json=station(1))).status_code == 201
    assert [e["id"] for e in (await receiver.next()).body["data"]] == [station(1)["id"]]
    assert await receiver.nothing(0.5)  # station 2 is not its business
    changed = {"entities": [{"type": "AirQualityObserved", "idPattern": ":zz-002$"}]}
    assert (await client.patch(f"{BASE}/subscriptions/{sub_id}", json=changed)).status_code == 204
    await patch_attr(client, station(1)["id"], {"pm25": {"type": "Property", "value": 1}})
    await patch_attr(client, station(2)["id"], {"pm25": {"type": "Property", "value": 2}})
    got = await receiver.next()
    assert [(e["id"], e["pm25"]) for e in got.body["data"]] == [(station(2)["id"], 2)]
    other = await subscribe(client, subscription(receiver.url, notification={"format": "keyValues"}))
    await patch_attr(client, station(1)["id"], {"pm25": {"type": "Property", "value": 3}})
    got = await receiver.next()
    assert (got.body["subscriptionId"], got.body["data"][0]["pm25"]) == (other, 3)
    assert await receiver.nothing(0.5)


async def test_time_interval_sends_the_matching_entities(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await client.post(f"{BASE}/entities", json=station(1, pm25=90))
    await client.post(f"{BASE}/entities", json=station(2, pm25=10))
    await subscribe(client, subscription(receiver.url, timeInterval=1, q="pm25>50"))
    first = await receiver.next()
    assert [e["id"] for e in first.body["data"]] == [station(1)["id"]]
    second = await receiver.next(timeout=5)
    assert second.body["subscriptionId"] == first.body["subscriptionId"]


async def test_time_interval_is_kept(client: httpx.AsyncClient, receiver: Receiver) -> None:
    """A run is claimed before it is made, so it comes once per interval, not once per sweep."""
    await client.post(f"{BASE}/entities", json=station(1))
    await subscribe(client, subscription(receiver.url, timeInterval=2))
    await receiver.next()
    await asyncio.sleep(3)  # the notifier sweeps every second
    assert receiver.received.qsize() <= 1


async def test_owed_notifications_survive_a_restart(settings: Settings) -> None:
    """A notification queued while its endpoint is down is sent by the next hub process."""
    async with Receiver() as probe:
        url = probe.url  # a port that nobody listens on once the probe is closed
    async with started(settings) as (app, client):
        await subscribe(client, subscription(url))
        await client.post(f"{BASE}/entities", json=station())
        for _ in range(100):
            async with app.state.hub.sessions() as session:
                owed = await session.scalar(select(func.count()).select_from(BrokerNotification))
            if owed:
                break
            await asyncio.sleep(0.05)
        assert owed == 1
    port = int(url.split(":")[2].split("/")[0])
    server = Receiver()
    server._port = port
    server._server = await asyncio.start_server(server._serve, "127.0.0.1", port)
    try:
        again = create_app(settings)
        async with again.router.lifespan_context(again):
            again.state.hub.notifier.wake()
            got = await server.next(timeout=15)
            assert got.body["data"][0]["id"] == station()["id"]
    finally:
        await server.__aexit__()


async def test_a_stop_gives_up_the_leases_of_deliveries_it_cut_short(settings: Settings) -> None:
    """A process stopped while a notification is on its way gives up that row's lease, so the
    next process sends it at once rather than when the lease ends (a minute later)."""
    async with Receiver(hang=True) as receiver:
        async with started(settings) as (_app, client):
            await subscribe(client, subscription(receiver.url))
            await client.post(f"{BASE}/entities", json=station())
            for _ in range(200):
                if receiver.attempts:
                    break
                await asyncio.sleep(0.05)
            assert receiver.attempts == 1  # on its way, and the subscriber does not answer
        receiver.hang = False
        again = create_app(settings)
        async with again.router.lifespan_context(again):
            got = await receiver.next(timeout=20)
            assert got.body["data"][0]["id"] == station()["id"]
        assert receiver.attempts == 2


@pytest.mark.mqtt
async def test_mqtt_notifications_through_mosquitto(client: httpx.AsyncClient) -> None:
    topic = f"cityhub/test/{uuid.uuid4().hex}"
    body = subscription(f"mqtt://{MQTT_HOST}:1883/{topic}")
    body["notification"]["endpoint"]["notifierInfo"] = [{"key": "MQTT-QoS", "value": "1"}]
    async with aiomqtt.Client(MQTT_HOST, 1883) as mqtt:
        await mqtt.subscribe(topic, qos=1)
        sub_id = await subscribe(client, body)
        await client.post(f"{BASE}/entities", json=station())
        async with asyncio.timeout(10):
            message = await anext(aiter(mqtt.messages))
    payload = orjson.loads(bytes(message.payload))  # type: ignore[arg-type]
    assert payload["metadata"]["Content-Type"] == "application/json"
    assert payload["body"]["subscriptionId"] == sub_id
    assert payload["body"]["data"][0]["id"] == station()["id"]
    assert message.qos == 1


async def test_nothing_is_queued_without_subscriptions(app: FastAPI, client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/entities", json=station())
    await app.state.hub.relay.drain()
    async with app.state.hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(BrokerNotification)) == 0


async def test_entity_deletion_with_sys_attrs_and_changes(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    named = station(name={"type": "LanguageProperty", "languageMap": {"zh": "金水", "en": "Jinshui"}})
    await client.post(f"{BASE}/entities", json=named)
    body = subscription(
        receiver.url,
        notificationTrigger=["entityDeleted"],
        notification={"sysAttrs": True, "showChanges": True},
    )
    await subscribe(client, body)
    await client.delete(f"{BASE}/entities/{named['id']}")
    gone = (await receiver.next()).body["data"][0]
    assert {"id", "type", "createdAt", "modifiedAt", "deletedAt"} <= set(gone)
    assert gone["name"] == {
        "type": "LanguageProperty",
        "previousLanguageMap": {"zh": "金水", "en": "Jinshui"},
        "languageMap": "urn:ngsi-ld:null",
    }
    assert gone["pm25"]["previousValue"] == 35.0


async def test_names_are_shown_in_the_readers_context(client: httpx.AsyncClient, receiver: Receiver) -> None:
    body = subscription(receiver.url, watchedAttributes=["pm25"])
    body["@context"] = {"pm25": "https://smartdatamodels.org/pm25"}
    response = await client.post(
        f"{BASE}/subscriptions", content=orjson.dumps(body), headers={"content-type": "application/ld+json"}
    )
    assert response.status_code == 201, response.text
    plain = (await client.get(f"{BASE}/subscriptions/{body['id']}")).json()
    assert plain["watchedAttributes"] == ["https://smartdatamodels.org/pm25"]
    assert plain["entities"] == [{"type": "AirQualityObserved"}]  # the core context's @vocab both ways
