"""Context source registration subscriptions (clause 5.11) on a started hub (SQLite or PostgreSQL):
the resource, and csourceNotifications delivered over real HTTP to a local receiver."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.hub.broker.receiver import Receiver

BASE = "/ngsi-ld/v1"
SUBS = f"{BASE}/csourceSubscriptions"
REGS = f"{BASE}/csourceRegistrations"
BAD_REQUEST = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
INVALID_REQUEST = "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"
NOT_FOUND = "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


def csource_subscription(url: str = "http://127.0.0.1:9/notify", **extra: Any) -> dict[str, Any]:
    notification = {"endpoint": {"uri": url, "accept": "application/json"}} | extra.pop("notification", {})
    return {
        "id": f"urn:ngsi-ld:Subscription:{uuid.uuid4()}",
        "type": "Subscription",
        "entities": [{"type": "AirQualityObserved"}],
        "notification": notification,
        **extra,
    }


def registration(name: str, *entity_types: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:ContextSourceRegistration:{name}",
        "type": "ContextSourceRegistration",
        "information": [
            {"entities": [{"type": t}], "propertyNames": ["pm25", "no2"]} for t in entity_types or ("Noise",)
        ],
        "endpoint": f"http://{name}.example:8000",
        **extra,
    }


async def subscribe(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> str:
    response = await client.post(SUBS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(body["id"])


async def register(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> str:
    response = await client.post(REGS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(body["id"])


async def notification_status(client: httpx.AsyncClient, sub_id: str, sent: int) -> dict[str, Any]:
    """The subscription's notification member once ``sent`` notifications were counted (the
    counters are written just after the receiver answered)."""
    got: dict[str, Any] = {}
    for _ in range(200):
        got = (await client.get(f"{SUBS}/{sub_id}")).json()["notification"]
        if got.get("timesSent") == sent:
            break
        await asyncio.sleep(0.05)
    return got


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


# -- the resource ------------------------------------------------------------------------------------


async def test_create_retrieve_query_update_delete(client: httpx.AsyncClient) -> None:
    body = csource_subscription(watchedAttributes=["pm25"], description="air quality sources")
    response = await client.post(SUBS, json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{SUBS}/{body['id']}"
    got = (await client.get(f"{SUBS}/{body['id']}")).json()
    assert got == body | {"status": "active"}  # no notificationTrigger: it concerns entities
    assert (await client.post(SUBS, json=body)).status_code == 409

    second = csource_subscription()
    await subscribe(client, second)
    listed = (await client.get(SUBS)).json()
    assert [s["id"] for s in listed] == [body["id"], second["id"]]
    page = await client.get(SUBS, params={"limit": 1, "offset": 1, "count": "true"})
    assert [s["id"] for s in page.json()] == [second["id"]]
    assert page.headers["ngsild-results-count"] == "2"

    changed = await client.patch(f"{SUBS}/{body['id']}", json={"isActive": False, "watchedAttributes": None})
    assert changed.status_code == 204, changed.text
    got = (await client.get(f"{SUBS}/{body['id']}")).json()
    assert got["status"] == "paused"
    assert "watchedAttributes" not in got

    assert (await client.delete(f"{SUBS}/{body['id']}")).status_code == 204
    gone = await client.get(f"{SUBS}/{body['id']}")
    assert gone.status_code == 404
    assert gone.json()["type"] == NOT_FOUND


async def test_an_id_is_made_when_none_is_given(client: httpx.AsyncClient) -> None:
    body = csource_subscription()
    del body["id"]
    response = await client.post(SUBS, json=body)
    assert response.status_code == 201
    location = response.headers["location"]
    assert location.startswith(f"{SUBS}/urn:ngsi-ld:Subscription:")
    assert (await client.get(location)).status_code == 200


async def test_names_are_shown_in_the_readers_context(client: httpx.AsyncClient) -> None:
    context = {"@context": {"Air": "https://example.org/city#AirQualityObserved"}}
    body = csource_subscription(entities=[{"type": "Air"}])
    await subscribe(client, body | context, **{"Content-Type": "application/ld+json"})
    got = (await client.get(f"{SUBS}/{body['id']}")).json()
    assert got["entities"] == [{"type": "https://example.org/city#AirQualityObserved"}]


async def test_the_two_kinds_do_not_see_each_other(client: httpx.AsyncClient) -> None:
    csource = csource_subscription()
    await subscribe(client, csource)
    entities = csource_subscription()
    assert (await client.post(f"{BASE}/subscriptions", json=entities)).status_code == 201

    assert [s["id"] for s in (await client.get(SUBS)).json()] == [csource["id"]]
    assert [s["id"] for s in (await client.get(f"{BASE}/subscriptions")).json()] == [entities["id"]]
    for url in (f"{SUBS}/{entities['id']}", f"{BASE}/subscriptions/{csource['id']}"):
        assert (await client.get(url)).status_code == 404
        assert (await client.patch(url, json={"isActive": False})).status_code == 404
        assert (await client.delete(url)).status_code == 404
    # one id names one subscription, whatever its kind
    assert (await client.post(SUBS, json=entities)).status_code == 409


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "CsourceSubscription"}, "Subscription"),
        ({"notification": None}, "notification"),
        ({"q": "pm25>"}, "q"),
        ({"watchedAttributes": []}, "watchedAttributes"),
        ({"entities": None}, "entities or watchedAttributes"),
        ({"expiresAt": "2018-08-01T22:07:00Z"}, "future"),
        ({"notificationTrigger": ["entityCreated"]}, "notificationTrigger"),
        ({"csf": "mode==inclusive"}, "csf"),
        ({"timeInterval": 0}, "timeInterval"),
        ({"temporalQ": {"timerel": "after"}}, "timeAt"),
        ({"temporalQ": {"timerel": "after", "timeAt": "2020-01-01T00:00:00Z", "timeproperty": "x"}}, "time"),
        ({"geoQ": {"georel": "near;maxDistance==10", "geometry": "Point"}}, "geoQ"),
        (
            {"notification": {"endpoint": {"uri": "http://x.example/n", "accept": "application/geo+json"}}},
            "geo",
        ),
        ({"notification": {"endpoint": {"uri": "http://x.example/n"}, "attributes": ["pm25"]}}, "attributes"),
        ({"notification": {"format": "keyValues"}}, "endpoint"),
        ({"timesSent": 3}, "cannot be set"),
    ],
)
async def test_invalid_subscriptions_are_refused(
    client: httpx.AsyncClient, change: dict[str, Any], message: str
) -> None:
    body = {k: v for k, v in (csource_subscription() | change).items() if v is not None}
    response = await client.post(SUBS, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == BAD_REQUEST
    assert message in response.json()["detail"]


async def test_invalid_updates_and_ids_are_refused(client: httpx.AsyncClient) -> None:
    sub_id = await subscribe(client, csource_subscription())
    bad = await client.patch(f"{SUBS}/{sub_id}", json={"type": None})
    assert (bad.status_code, bad.json()["type"]) == (400, BAD_REQUEST)
    bad = await client.patch(f"{SUBS}/{sub_id}", json={"notification": {"format": "keyValues"}})
    assert (bad.status_code, bad.json()["type"]) == (400, BAD_REQUEST)
    broken = await client.patch(
        f"{SUBS}/{sub_id}", content=b'{"isActive": false,,}', headers={"Content-Type": "application/json"}
    )
    assert (broken.status_code, broken.json()["type"]) == (400, INVALID_REQUEST)
    # without a Content-Type the body is examined: not JSON is a bad request, JSON still needs the type
    undeclared = await client.patch(f"{SUBS}/{sub_id}", content=b'{"isActive": false,,}')
    assert (undeclared.status_code, undeclared.json()["type"]) == (400, INVALID_REQUEST)
    assert (await client.patch(f"{SUBS}/{sub_id}", content=b'{"isActive": false}')).status_code == 415
    for method in ("GET", "PATCH", "DELETE"):
        response = await client.request(method, f"{SUBS}/invalidUri", json={"isActive": False})
        assert (response.status_code, response.json()["type"]) == (400, BAD_REQUEST)
        unknown = await client.request(
            method, f"{SUBS}/urn:ngsi-ld:Subscription:none", json={"isActive": False}
        )
        assert (unknown.status_code, unknown.json()["type"]) == (404, NOT_FOUND)
    for params in ({"limit": -5}, {"offset": -1}):
        response = await client.get(SUBS, params=params)
        assert (response.status_code, response.json()["type"]) == (400, BAD_REQUEST)


# -- notifications -----------------------------------------------------------------------------------


async def test_registration_changes_notify_with_their_reason(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    sub_id = await subscribe(client, csource_subscription(receiver.url))
    await register(client, registration("noise", "NoiseLevelObserved"))  # does not match
    reg_id = await register(client, registration("air", "AirQualityObserved", "WaterQualityObserved"))

    created = await receiver.next()
    assert created.headers["content-type"] == "application/json"
    assert "ngsi-ld-core-context" in created.headers["link"]
    body = created.body
    assert body["type"] == "ContextSourceNotification"
    assert body["id"].startswith("urn:ngsi-ld:Notification:")
    assert body["subscriptionId"] == sub_id
    assert "notifiedAt" in body
    assert body["triggerReason"] == "newlyMatching"
    [shown] = body["data"]
    assert shown["id"] == reg_id
    assert shown["endpoint"] == "http://air.example:8000"
    # only the RegistrationInfo that matched
    assert shown["information"] == [
        {"entities": [{"type": "AirQualityObserved"}], "propertyNames": ["pm25", "no2"]}
    ]

    assert (
        await client.patch(f"{REGS}/{reg_id}", json={"endpoint": "http://air2.example"})
    ).status_code == 204
    updated = await receiver.next()
    assert updated.body["triggerReason"] == "updated"
    assert updated.body["data"][0]["endpoint"] == "http://air2.example"

    away = {"information": [{"entities": [{"type": "WaterQualityObserved"}]}]}
    assert (await client.patch(f"{REGS}/{reg_id}", json=away)).status_code == 204
    gone = await receiver.next()
    assert gone.body["triggerReason"] == "noLongerMatching"
    assert gone.body["data"][0]["id"] == reg_id

    back = {"information": [{"entities": [{"type": "AirQualityObserved"}]}]}
    assert (await client.patch(f"{REGS}/{reg_id}", json=back)).status_code == 204
    assert (await receiver.next()).body["triggerReason"] == "newlyMatching"

    assert (await client.delete(f"{REGS}/{reg_id}")).status_code == 204
    deleted = await receiver.next()
    assert deleted.body["triggerReason"] == "noLongerMatching"
    assert deleted.body["data"][0]["id"] == reg_id

    status = await notification_status(client, sub_id, 5)
    assert status["timesSent"] == 5
    assert status["status"] == "ok"
    assert "lastSuccess" in status
    assert "lastNotification" in status
    assert "lastFailure" not in status


async def test_creation_and_update_answer_with_what_matches_now(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    air = await register(client, registration("air", "AirQualityObserved"))
    water = await register(client, registration("water", "WaterQualityObserved"))
    sub_id = await subscribe(client, csource_subscription(receiver.url))
    first = await receiver.next()
    assert first.body["triggerReason"] == "newlyMatching"
    assert [r["id"] for r in first.body["data"]] == [air]

    both = {"entities": [{"type": "WaterQualityObserved"}, {"type": "AirQualityObserved"}]}
    assert (await client.patch(f"{SUBS}/{sub_id}", json=both)).status_code == 204
    second = await receiver.next()
    assert second.body["triggerReason"] == "newlyMatching"
    assert sorted(r["id"] for r in second.body["data"]) == sorted([air, water])

    # a registration written after the subscription comes once, with its own notification
    later = await register(client, registration("later", "AirQualityObserved"))
    third = await receiver.next()
    assert [r["id"] for r in third.body["data"]] == [later]
    assert await receiver.nothing(1.0)
    assert (await notification_status(client, sub_id, 3))["timesSent"] == 3


async def test_watched_attributes_and_entity_ids(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        client,
        csource_subscription(
            receiver.url,
            entities=[{"type": "AirQualityObserved", "id": "urn:ngsi-ld:AirQualityObserved:zz-001"}],
            watchedAttributes=["o3"],
        ),
    )
    await register(client, registration("pm", "AirQualityObserved"))  # pm25 and no2: not watched
    other = registration("other-id", "AirQualityObserved")
    other["information"] = [
        {"entities": [{"type": "AirQualityObserved", "id": "urn:ngsi-ld:AirQualityObserved:zz-002"}]}
    ]
    await register(client, other)
    pattern = registration("pattern", "AirQualityObserved")
    pattern["information"] = [
        {"entities": [{"type": "AirQualityObserved", "idPattern": ".*zz-00[0-9]$"}], "propertyNames": ["o3"]}
    ]
    pattern_id = await register(client, pattern)
    got = await receiver.next()
    assert [r["id"] for r in got.body["data"]] == [pattern_id]


async def test_geo_temporal_and_q(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        client,
        csource_subscription(
            receiver.url,
            geoQ={"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": [113.66, 34.75]},
            temporalQ={"timerel": "after", "timeAt": "2026-01-01T00:00:00Z", "timeproperty": "observedAt"},
            q='dataProvider=="Jinshui EPB"',
        ),
    )
    near = {"type": "Point", "coordinates": [113.661, 34.75]}
    interval = {"startAt": "2026-06-01T00:00:00Z"}
    provider = {"dataProvider": "Jinshui EPB"}
    far = registration("far", "AirQualityObserved", location={"type": "Point", "coordinates": [114.3, 34.8]})
    await register(client, far | {"observationInterval": interval} | provider)
    old = registration("old", "AirQualityObserved", location=near)
    past = {"startAt": "2020-01-01T00:00:00Z", "endAt": "2021-01-01T00:00:00Z"}
    await register(client, old | {"observationInterval": past} | provider)
    await register(client, registration("other", "AirQualityObserved", location=near, dataProvider="Erqi"))
    await register(client, registration("timeless", "AirQualityObserved", location=near) | provider)
    wanted = registration("wanted", "AirQualityObserved", location=near, observationInterval=interval)
    wanted_id = await register(client, wanted | provider)
    got = await receiver.next()
    assert [r["id"] for r in got.body["data"]] == [wanted_id]
    assert got.body["data"][0]["dataProvider"] == "Jinshui EPB"


async def test_paused_expired_and_tenants(client: httpx.AsyncClient, receiver: Receiver) -> None:
    sub_id = await subscribe(client, csource_subscription(receiver.url, isActive=False))
    await register(client, registration("paused", "AirQualityObserved"))
    tenant = {"NGSILD-Tenant": "zhongyuan"}
    await register(client, registration("elsewhere", "AirQualityObserved"), **tenant)
    assert await receiver.nothing(1.0)
    assert (await client.patch(f"{SUBS}/{sub_id}", json={"isActive": True})).status_code == 204
    again = await receiver.next()  # the answer to the change: what matches now, in this tenant
    assert [r["id"] for r in again.body["data"]] == [registration("paused")["id"]]
    assert "ngsild-tenant" not in again.headers

    other = csource_subscription(receiver.url)
    other["notification"]["endpoint"]["accept"] = "application/ld+json"
    await subscribe(client, other, **tenant)
    first = await receiver.next()
    assert first.headers["ngsild-tenant"] == "zhongyuan"
    assert first.headers["content-type"] == "application/ld+json"
    assert "ngsi-ld-core-context" in str(first.body["@context"])
    assert [r["id"] for r in first.body["data"]] == [registration("elsewhere")["id"]]


async def test_time_interval_notifies_periodically(client: httpx.AsyncClient, receiver: Receiver) -> None:
    reg_id = await register(client, registration("air", "AirQualityObserved"))
    sub_id = await subscribe(client, csource_subscription(receiver.url, timeInterval=1))
    for _ in range(2):
        got = await receiver.next()
        assert [r["id"] for r in got.body["data"]] == [reg_id]
    await client.delete(f"{SUBS}/{sub_id}")


async def test_failures_are_counted(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.status = 500
    await register(client, registration("air", "AirQualityObserved"))
    sub_id = await subscribe(client, csource_subscription(receiver.url))
    status = await notification_status(client, sub_id, 1)
    assert status["timesSent"] == 1
    assert status["timesFailed"] == 1
    assert status["status"] == "failed"
    assert "lastFailure" in status
    assert "lastSuccess" not in status
