"""Personal information where the broker's first protection left gaps: ordering by classified
attributes, and sub-attributes of classified attributes (masked, sealed, rotated)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from typer.testing import CliRunner

from cityhub.app import create_app
from cityhub.cli import app as cli
from cityhub.config import Settings
from tests.hub.broker.receiver import Receiver
from tests.systems.security.conftest import add_user, bearer, client_for

KEY1 = "k1:" + base64.b64encode(b"1" * 32).decode()
KEY2 = "k2:" + base64.b64encode(b"2" * 32).decode()
# (name, phone) in the order the residents are created: neither names nor phones are in order
PEOPLE = [
    ("王五", "13800000004"),
    ("张三", "13800000001"),
    ("赵六", "13800000006"),
    ("李四", "13800000002"),
    ("孙七", "13800000005"),
    ("周八", "13800000003"),
]
# sub-attribute values of a classified attribute: as personal as the attribute
SUB_PHONE = "13911112222"
SUB_NAME = "欧阳娜娜"
RESIDENT = "urn:ngsi-ld:Resident:sub-1"


@pytest.fixture
def security_overrides() -> dict[str, Any]:
    return {"data_keys": KEY1}


def resident(number: int, name: str, phone: str) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Resident:{number}",
        "type": "Resident",
        "name": {"type": "Property", "value": name},
        "phone": {"type": "Property", "value": phone, "observedAt": "2026-11-20T08:00:00Z"},
        "householdSize": {"type": "Property", "value": number},
    }


def with_sub_attributes() -> dict[str, Any]:
    return {
        "id": RESIDENT,
        "type": "Resident",
        "name": {"type": "Property", "value": "张三丰", "alias": {"type": "Property", "value": SUB_NAME}},
        "phone": {
            "type": "Property",
            "value": "13812345678",
            "observedAt": "2026-11-20T08:00:00Z",
            "backup": {
                "type": "Property",
                "value": SUB_PHONE,
                "note": {"type": "Property", "value": f"call {SUB_PHONE} after six"},
            },
        },
        "householdSize": {"type": "Property", "value": 3},
    }


async def _operator(app: FastAPI, http: httpx.AsyncClient) -> dict[str, str]:
    return await bearer(http, await add_user(app, "410100", [("410100", "operator")]))


# -- orderBy ---------------------------------------------------------------------------------


async def test_order_by_a_classified_attribute_reveals_nothing_without_clearance(secure_app: FastAPI) -> None:
    async with client_for(secure_app) as http:
        writer = await _operator(secure_app, http)
        for number, (name, phone) in enumerate(PEOPLE, 1):
            created = await http.post(
                "/ngsi-ld/v1/entities", json=resident(number, name, phone), headers=writer
            )
            assert created.status_code == 201, created.text
        viewer = await bearer(http, await add_user(secure_app, "410100", [("410100", "viewer")]))
        officer = await bearer(http, await add_user(secure_app, "410100", [("410100", "data_officer")]))
        created_order = [f"urn:ngsi-ld:Resident:{n}" for n in range(1, len(PEOPLE) + 1)]
        by_name = [f"urn:ngsi-ld:Resident:{n}" for _, n in sorted((p[0], i) for i, p in enumerate(PEOPLE, 1))]
        by_phone = [
            f"urn:ngsi-ld:Resident:{n}" for _, n in sorted((p[1], i) for i, p in enumerate(PEOPLE, 1))
        ]
        assert by_name != created_order
        assert by_phone != created_order
        for base in ("/ngsi-ld/v1/entities?type=Resident", "/ngsi-ld/v1/temporal/entities?type=Resident"):
            for key in ("name", "name;desc", "phone", "phone;desc"):
                # a caller without clearance: the broker's own order, whatever the direction
                seen = await http.get(f"{base}&orderBy={key}", headers=viewer)
                assert seen.status_code == 200, seen.text
                assert [e["id"] for e in seen.json()] == created_order, (base, key)
            # a data officer: by the values as written, sensitive ones (encrypted) included
            for key, expected in (("name", by_name), ("phone", by_phone), ("phone;desc", by_phone[::-1])):
                seen = await http.get(f"{base}&orderBy={key}", headers=officer)
                assert seen.status_code == 200, seen.text
                assert [e["id"] for e in seen.json()] == expected, (base, key)
        # a key on an attribute that is not classified orders for everyone
        seen = await http.get("/ngsi-ld/v1/entities?type=Resident&orderBy=householdSize;desc", headers=viewer)
        assert [e["id"] for e in seen.json()] == created_order[::-1]


# -- sub-attributes ----------------------------------------------------------------------------


async def test_sub_attributes_of_classified_attributes_are_masked_and_encrypted(secure_app: FastAPI) -> None:
    feed = secure_app.state.hub.console
    masked_feed = feed.open("410100", ["Resident"], clear=False)
    plain_feed = feed.open("410100", ["Resident"], clear=True)
    try:
        async with client_for(secure_app) as http:
            writer = await _operator(secure_app, http)
            created = await http.post("/ngsi-ld/v1/entities", json=with_sub_attributes(), headers=writer)
            assert created.status_code == 201, created.text
            # an update of another attribute leaves the sealed ones as they are (never sealed twice)
            patched = await http.patch(
                f"/ngsi-ld/v1/entities/{RESIDENT}/attrs",
                json={"householdSize": {"type": "Property", "value": 4}},
                headers=writer,
            )
            assert patched.status_code == 204, patched.text
            viewer = await bearer(http, await add_user(secure_app, "410100", [("410100", "viewer")]))
            officer = await bearer(http, await add_user(secure_app, "410100", [("410100", "data_officer")]))
            reads: list[tuple[str, str, Any]] = [
                ("GET", f"/ngsi-ld/v1/entities/{RESIDENT}", None),
                ("GET", f"/ngsi-ld/v1/entities/{RESIDENT}?format=concise", None),
                ("GET", "/ngsi-ld/v1/entities?type=Resident", None),
                (
                    "POST",
                    "/ngsi-ld/v1/entityOperations/query",
                    {"type": "Query", "entities": [{"type": "Resident"}]},
                ),
                ("GET", f"/ngsi-ld/v1/temporal/entities/{RESIDENT}", None),
                ("GET", "/ngsi-ld/v1/temporal/entities?type=Resident", None),
            ]
            for method, path, body in reads:
                shown = await http.request(method, path, json=body, headers=viewer)
                assert shown.status_code == 200, (path, shown.text)
                assert SUB_PHONE not in shown.text, path
                assert SUB_NAME not in shown.text, path
                assert "v1:k1:" not in shown.text, path
                assert "139****2222" in shown.text, path  # masked with the attribute's mask
                if "temporal" not in path:  # only phone has history (observedAt)
                    assert "欧阳**" in shown.text, path
                cleared = await http.request(method, path, json=body, headers=officer)
                assert cleared.status_code == 200, (path, cleared.text)
                assert SUB_PHONE in cleared.text, path
                assert f"call {SUB_PHONE} after six" in cleared.text, path
                if "temporal" not in path:
                    assert SUB_NAME in cleared.text, path
        await secure_app.state.hub.relay.drain()
        await asyncio.sleep(0.2)  # the in-process bus hands the events to the feed's consumer
        seen_masked = [masked_feed.queue.get_nowait() for _ in range(masked_feed.queue.qsize())]
        seen_plain = [plain_feed.queue.get_nowait() for _ in range(plain_feed.queue.qsize())]
    finally:
        feed.close(masked_feed)
        feed.close(plain_feed)
    assert seen_masked
    assert seen_plain
    for message in seen_masked:
        assert SUB_PHONE not in str(message)
        assert SUB_NAME not in str(message)
        assert "v1:k1:" not in str(message)
    assert SUB_PHONE in str(seen_plain[-1])
    async with secure_app.state.hub.engine.connect() as connection:
        stored = [str(row[0]) for row in await connection.execute(text("SELECT data FROM broker_entity"))]
        history = [
            str(row[0])
            for row in await connection.execute(text("SELECT data FROM broker_attribute_instance"))
        ]
    assert stored
    assert history
    for data in stored + history:
        assert SUB_PHONE not in data  # a sensitive attribute's sub-attributes are sealed too
    assert any(SUB_NAME in data for data in stored)  # personal, not sensitive: stored plain


def _settings(database_url: str, keys: str) -> Settings:
    return Settings(
        env="test", database_url=database_url, bus_url="memory://", instance_name="test", data_keys=keys
    )


async def test_notifications_mask_sub_attributes(database_url: str) -> None:
    application = create_app(_settings(database_url, KEY1))
    async with (
        application.router.lifespan_context(application),
        Receiver() as receiver,
        client_for(application) as http,
    ):
        body = {
            "type": "Subscription",
            "entities": [{"type": "Resident"}],
            "notification": {"endpoint": {"uri": receiver.url, "accept": "application/json"}},
        }
        assert (await http.post("/ngsi-ld/v1/subscriptions", json=body)).status_code == 201
        assert (await http.post("/ngsi-ld/v1/entities", json=with_sub_attributes())).status_code == 201
        received = await asyncio.wait_for(receiver.received.get(), timeout=30)
    shown = str(received.body)
    assert SUB_PHONE not in shown
    assert SUB_NAME not in shown
    assert "139****2222" in shown


async def _create_with_sub_attributes(database_url: str, keys: str) -> None:
    application = create_app(_settings(database_url, keys))
    async with application.router.lifespan_context(application), client_for(application) as http:
        assert (await http.post("/ngsi-ld/v1/entities", json=with_sub_attributes())).status_code == 201


async def _backup_phone(database_url: str, keys: str) -> Any:
    application = create_app(_settings(database_url, keys))
    async with application.router.lifespan_context(application), client_for(application) as http:
        shown = await http.get(f"/ngsi-ld/v1/entities/{RESIDENT}")
        assert shown.status_code == 200, shown.text
        return shown.json()["phone"]["backup"]


def test_rotation_reencrypts_sub_attributes(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_create_with_sub_attributes(database_url, KEY1))
    monkeypatch.setenv("CITYHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("CITYHUB_ENV", "test")
    monkeypatch.setenv("CITYHUB_DATA_KEYS", f"{KEY2},{KEY1}")
    outcome = CliRunner().invoke(cli, ["security", "rotate-data-key"])
    assert outcome.exit_code == 0, outcome.output
    backup = asyncio.run(_backup_phone(database_url, KEY2))  # k1 no longer held
    assert backup["value"] == SUB_PHONE
    assert backup["note"]["value"] == f"call {SUB_PHONE} after six"
