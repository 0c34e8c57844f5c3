"""Personal information through the broker: masked for callers without clearance in every
representation, plain and audited for a data officer, encrypted where stored, rotatable keys."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import select, text
from typer.testing import CliRunner

from cityhub.app import create_app
from cityhub.cli import app as cli
from cityhub.config import DEV_DATA_KEYS, Settings
from cityhub.systems.security.models import AuditRecord
from tests.hub.broker.receiver import Receiver
from tests.systems.security.conftest import add_user, bearer, client_for

KEY1 = "k1:" + base64.b64encode(b"1" * 32).decode()
KEY2 = "k2:" + base64.b64encode(b"2" * 32).decode()
ID_CARD = "410105199001011234"
PHONE = "13812345678"
NAME = "张三丰"
RESIDENT = "urn:ngsi-ld:Resident:410105-0001"
PERSONAL = "personal.read"
SECRETS = (ID_CARD, PHONE, NAME, "花园路100号")


@pytest.fixture
def security_overrides() -> dict[str, Any]:
    return {"data_keys": KEY1}


def resident(number: int = 1) -> dict[str, Any]:
    return {
        "id": RESIDENT if number == 1 else f"urn:ngsi-ld:Resident:410105-{number:04d}",
        "type": "Resident",
        "name": {"type": "Property", "value": NAME},
        "idCardNumber": {"type": "Property", "value": ID_CARD},
        "phone": {"type": "Property", "value": PHONE},
        "address": {"type": "Property", "value": "河南省郑州市金水区花园路100号"},
        "householdSize": {"type": "Property", "value": 3},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.66, 34.77]}},
    }


async def _write(app: FastAPI, http: httpx.AsyncClient) -> None:
    writer = await add_user(app, "410100", [("410100", "operator")])
    response = await http.post("/ngsi-ld/v1/entities", json=resident(), headers=await bearer(http, writer))
    assert response.status_code == 201, response.text
    response = await http.post(
        "/ngsi-ld/v1/entityOperations/upsert", json=[resident(2)], headers=await bearer(http, writer)
    )
    assert response.status_code in (201, 204), response.text
    history = {
        "phone": [{"type": "Property", "value": PHONE, "observedAt": "2026-11-20T08:00:00Z"}],
        "householdSize": [{"type": "Property", "value": 4, "observedAt": "2026-11-20T08:00:00Z"}],
    }
    response = await http.post(
        f"/ngsi-ld/v1/temporal/entities/{RESIDENT}/attrs", json=history, headers=await bearer(http, writer)
    )
    assert response.status_code == 204, response.text


READS: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = [
    ("GET", f"/ngsi-ld/v1/entities/{RESIDENT}", None, {}),
    ("GET", f"/ngsi-ld/v1/entities/{RESIDENT}?options=keyValues", None, {}),
    ("GET", f"/ngsi-ld/v1/entities/{RESIDENT}?format=concise", None, {}),
    ("GET", f"/ngsi-ld/v1/entities/{RESIDENT}", None, {"Accept": "application/geo+json"}),
    ("GET", "/ngsi-ld/v1/entities?type=Resident", None, {}),
    ("GET", "/ngsi-ld/v1/entities?type=Resident&options=keyValues", None, {"Accept": "application/ld+json"}),
    ("GET", "/ngsi-ld/v1/entities?type=Resident", None, {"Accept": "application/geo+json"}),
    ("POST", "/ngsi-ld/v1/entityOperations/query", {"type": "Query", "entities": [{"type": "Resident"}]}, {}),
    ("GET", f"/ngsi-ld/v1/temporal/entities/{RESIDENT}", None, {}),
    ("GET", f"/ngsi-ld/v1/temporal/entities/{RESIDENT}?options=temporalValues", None, {}),
    ("GET", "/ngsi-ld/v1/temporal/entities?type=Resident", None, {}),
]


async def _read(
    http: httpx.AsyncClient, headers: dict[str, str], method: str, path: str, body: Any, extra: dict[str, str]
) -> str:
    response = await http.request(method, path, json=body, headers=headers | extra)
    assert response.status_code == 200, (path, response.text)
    return response.text


async def test_a_viewer_sees_personal_information_masked_in_every_representation(secure_app: FastAPI) -> None:
    async with client_for(secure_app) as http:
        await _write(secure_app, http)
        viewer = await add_user(secure_app, "410100", [("410100", "viewer")])
        headers = await bearer(http, viewer)
        for method, path, body, extra in READS:
            shown = await _read(http, headers, method, path, body, extra)
            for secret in SECRETS:
                assert secret not in shown, (path, secret)
            assert "138****5678" in shown, path
            assert "householdSize" in shown
            if "temporal" not in path:
                assert "410105********1234" in shown, path
                assert "张**" in shown, path
                assert "河南省郑州市金水区****" in shown, path
        async with secure_app.state.hub.sessions() as session:
            reads = (
                await session.scalars(select(AuditRecord).where(AuditRecord.action == "personal.read"))
            ).all()
        assert reads == []


async def test_a_data_officer_sees_plaintext_and_each_read_is_audited(secure_app: FastAPI) -> None:
    async with client_for(secure_app) as http:
        await _write(secure_app, http)
        officer = await add_user(secure_app, "410100", [("410100", "data_officer")])
        headers = await bearer(http, officer)
        for method, path, body, extra in READS:
            shown = await _read(http, headers, method, path, body, extra)
            assert PHONE in shown, path
            if "temporal" not in path:
                assert ID_CARD in shown, path
        async with secure_app.state.hub.sessions() as session:
            reads = (
                await session.scalars(
                    select(AuditRecord).where(AuditRecord.action == "personal.read").order_by(AuditRecord.seq)
                )
            ).all()
        assert len(reads) == len(READS)
        first = reads[0]
        assert first.actor == officer.username
        assert first.tenant_code == "410100"
        assert first.detail["entities"] == [RESIDENT]
        assert {"idCardNumber", "phone", "name", "address"} <= set(first.detail["attributes"])
        for record in reads:
            for secret in SECRETS:
                assert secret not in str(record.detail)
        # a read of attributes that are not classified reveals nothing and is not audited
        response = await http.get(f"/ngsi-ld/v1/entities/{RESIDENT}?attrs=householdSize", headers=headers)
        assert response.status_code == 200
        async with secure_app.state.hub.sessions() as session:
            count = len(
                (
                    await session.scalars(select(AuditRecord).where(AuditRecord.action == "personal.read"))
                ).all()
            )
        assert count == len(READS)


async def test_aggregates_of_classified_attributes_need_clearance(secure_app: FastAPI) -> None:
    path = f"/ngsi-ld/v1/temporal/entities/{RESIDENT}?options=aggregatedValues&aggrMethods=totalCount,max"
    async with client_for(secure_app) as http:
        await _write(secure_app, http)
        viewer = await add_user(secure_app, "410100", [("410100", "viewer")])
        officer = await add_user(secure_app, "410100", [("410100", "data_officer")])
        seen = (await http.get(path, headers=await bearer(http, viewer))).json()
        assert "householdSize" in seen
        assert "phone" not in seen
        seen = (await http.get(path, headers=await bearer(http, officer))).json()
        assert "householdSize" in seen
        assert "phone" in seen


async def test_q_cannot_probe_masked_values_without_clearance(secure_app: FastAPI) -> None:
    async with client_for(secure_app) as http:
        await _write(secure_app, http)
        viewer = await add_user(secure_app, "410100", [("410100", "viewer")])
        officer = await add_user(secure_app, "410100", [("410100", "data_officer")])
        for q, viewer_sees, officer_sees in (
            (f'name=="{NAME}"', 0, 2),  # personal: stored plain, comparable with clearance only
            ("name", 0, 2),
            (f'phone=="{PHONE}"', 0, 0),  # sensitive: encrypted, never comparable
            ("householdSize==3", 2, 2),
        ):
            for account, expected in ((viewer, viewer_sees), (officer, officer_sees)):
                response = await http.get(
                    f"/ngsi-ld/v1/entities?type=Resident&q={q}", headers=await bearer(http, account)
                )
                assert response.status_code == 200
                assert len(response.json()) == expected, (q, account.username)


async def test_clearance_is_held_per_tenant(secure_app: FastAPI) -> None:
    async with client_for(secure_app) as http:
        await _write(secure_app, http)
        elsewhere = await add_user(secure_app, "410100", [("410100", "viewer"), ("410200", "data_officer")])
        response = await http.get(f"/ngsi-ld/v1/entities/{RESIDENT}", headers=await bearer(http, elsewhere))
        assert response.status_code == 200
        assert ID_CARD not in response.text
        assert "410105********1234" in response.text


async def test_sensitive_values_are_stored_encrypted(secure_app: FastAPI) -> None:
    async with client_for(secure_app) as http:
        await _write(secure_app, http)
    async with secure_app.state.hub.engine.connect() as connection:
        stored = [str(row[0]) for row in await connection.execute(text("SELECT data FROM broker_entity"))]
        history = [
            str(row[0])
            for row in await connection.execute(text("SELECT data FROM broker_attribute_instance"))
        ]
    assert len(stored) == 2
    for data in stored + history:
        assert ID_CARD not in data
        assert PHONE not in data
    assert all("v1:k1:" in data for data in stored)
    assert any("v1:k1:" in data for data in history)
    assert any(NAME in data for data in stored)  # personal, not sensitive: masked when shown, stored plain


async def test_the_consoles_live_feed_masks_for_callers_without_clearance(secure_app: FastAPI) -> None:
    feed = secure_app.state.hub.console
    masked = feed.open("410100", ["Resident"], clear=False)
    plain = feed.open("410100", ["Resident"], clear=True)
    try:
        async with client_for(secure_app) as http:
            await _write(secure_app, http)
        await secure_app.state.hub.relay.drain()
        await asyncio.sleep(0.2)  # the in-process bus hands the events to the feed's consumer
        seen_masked = [masked.queue.get_nowait() for _ in range(masked.queue.qsize())]
        seen_plain = [plain.queue.get_nowait() for _ in range(plain.queue.qsize())]
    finally:
        feed.close(masked)
        feed.close(plain)
    assert seen_masked
    assert len(seen_masked) == len(seen_plain)
    for message in seen_masked:
        for secret in SECRETS:
            assert secret not in str(message), (secret, message)
        assert "v1:k1:" not in str(message)  # nor the stored ciphertext
    first = next(m["entity"] for m in seen_plain if m["id"] == RESIDENT and m["entity"])
    assert first["phone"]["value"] == PHONE  # decrypted for a cleared caller
    assert first["name"]["value"] == NAME


def _settings(database_url: str, keys: str) -> Settings:
    return Settings(
        env="test", database_url=database_url, bus_url="memory://", instance_name="test", data_keys=keys
    )


async def test_auth_off_shows_everything_and_q_cannot_compare_encrypted_values(database_url: str) -> None:
    application = create_app(_settings(database_url, KEY1))
    async with application.router.lifespan_context(application), client_for(application) as http:
        assert (await http.post("/ngsi-ld/v1/entities", json=resident())).status_code == 201
        shown = (await http.get(f"/ngsi-ld/v1/entities/{RESIDENT}?options=keyValues")).json()
        assert shown["idCardNumber"] == ID_CARD
        assert shown["name"] == NAME
        found = await http.get(f'/ngsi-ld/v1/entities?type=Resident&q=phone=="{PHONE}"')
        assert found.status_code == 200
        assert found.json() == []
        found = await http.get(f'/ngsi-ld/v1/entities?type=Resident&q=name=="{NAME}"')
        assert [e["id"] for e in found.json()] == [RESIDENT]


async def _create(database_url: str, keys: str) -> None:
    application = create_app(_settings(database_url, keys))
    async with application.router.lifespan_context(application), client_for(application) as http:
        assert (await http.post("/ngsi-ld/v1/entities", json=resident())).status_code == 201


async def _shown(database_url: str, keys: str) -> httpx.Response:
    application = create_app(_settings(database_url, keys))
    async with application.router.lifespan_context(application), client_for(application) as http:
        return await http.get(f"/ngsi-ld/v1/entities/{RESIDENT}?options=keyValues")


async def _stored(database_url: str, keys: str) -> list[str]:
    application = create_app(_settings(database_url, keys))
    engine = application.state.hub.engine
    async with application.router.lifespan_context(application), engine.connect() as connection:
        return [str(row[0]) for row in await connection.execute(text("SELECT data FROM broker_entity"))]


def test_rotation_reencrypts_and_a_missing_key_is_a_clear_error(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_create(database_url, KEY1))
    # the new key first, the old one still held: old values read before rotation
    assert asyncio.run(_shown(database_url, f"{KEY2},{KEY1}")).json()["idCardNumber"] == ID_CARD
    monkeypatch.setenv("CITYHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("CITYHUB_ENV", "test")
    monkeypatch.setenv("CITYHUB_DATA_KEYS", f"{KEY2},{KEY1}")
    outcome = CliRunner().invoke(cli, ["security", "rotate-data-key", "--batch", "1"])
    assert outcome.exit_code == 0, outcome.output
    assert "re-encrypted under k2" in outcome.output
    again = CliRunner().invoke(cli, ["security", "rotate-data-key"])
    assert again.exit_code == 0
    assert "0 value(s) re-encrypted" in again.output
    for data in asyncio.run(_stored(database_url, KEY2)):
        assert "v1:k1:" not in data
        assert "v1:k2:" in data
    assert asyncio.run(_shown(database_url, KEY2)).json()["phone"] == PHONE
    # a key given under the right id but with other material: a clear problem, nothing shown
    wrong = asyncio.run(_shown(database_url, "k2:" + base64.b64encode(b"9" * 32).decode()))
    assert wrong.status_code == 500
    assert wrong.json()["type"].endswith("data-key")
    assert "k2" in wrong.json()["detail"]
    assert PHONE not in wrong.text
    monkeypatch.setenv("CITYHUB_DATA_KEYS", "k3:" + base64.b64encode(b"3" * 32).decode())
    unknown = CliRunner().invoke(cli, ["security", "rotate-data-key"])
    assert unknown.exit_code == 1
    assert "k2" in unknown.output
    assert RESIDENT in unknown.output


async def test_notifications_carry_masked_values(database_url: str) -> None:
    application = create_app(_settings(database_url, KEY1))
    async with (
        application.router.lifespan_context(application),
        Receiver() as receiver,
        client_for(application) as http,
    ):
        body = {
            "id": "urn:ngsi-ld:Subscription:residents",
            "type": "Subscription",
            "entities": [{"type": "Resident"}],
            "notification": {"endpoint": {"uri": receiver.url, "accept": "application/json"}},
        }
        assert (await http.post("/ngsi-ld/v1/subscriptions", json=body)).status_code == 201
        assert (await http.post("/ngsi-ld/v1/entities", json=resident())).status_code == 201
        received = await asyncio.wait_for(receiver.received.get(), timeout=30)
    shown = str(received.body)
    for secret in SECRETS:
        assert secret not in shown
    assert "410105********1234" in shown
    assert "138****5678" in shown


async def test_production_refuses_to_start_without_data_keys(database_url: str) -> None:
    production = Settings(
        env="production",
        database_url=database_url,
        bus_url="memory://",
        instance_name="test",
        secret_key="production-signing-key-" + "p" * 32,
    )
    application = create_app(production)
    with pytest.raises(RuntimeError, match="CITYHUB_DATA_KEYS"):
        async with application.router.lifespan_context(application):
            pass


def test_production_refuses_the_development_data_key(database_url: str) -> None:
    with pytest.raises(ValidationError, match="development key"):
        Settings(
            env="production",
            database_url=database_url,
            secret_key="production-signing-key-" + "p" * 32,
            data_keys=DEV_DATA_KEYS,
        )
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(env="test", database_url=database_url, data_keys="k1:" + base64.b64encode(b"x").decode())
    assert Settings(env="development", database_url=database_url).data_key_ring == DEV_DATA_KEYS
    assert Settings(env="test", database_url=database_url).data_key_ring is None
