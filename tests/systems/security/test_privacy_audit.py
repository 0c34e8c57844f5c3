"""Reads of personal information that must leave a record: a cleared read that cannot be
audited is not answered, and what the console's live feed shows a cleared caller is audited."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select, text

from cityhub.app import create_app
from cityhub.hub.console import api as console_api
from cityhub.systems.security.models import AuditRecord
from tests.systems.security.conftest import add_user, bearer, client_for, secure_settings

KEY1 = "k1:" + base64.b64encode(b"1" * 32).decode()
PERSONAL = "personal.read"
PEOPLE = [
    ("王五", "13800000004"),
    ("张三", "13800000001"),
    ("赵六", "13800000006"),
    ("李四", "13800000002"),
    ("孙七", "13800000005"),
    ("周八", "13800000003"),
]


# sub-attribute values of a classified attribute: as personal as the attribute
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


async def _operator(app: FastAPI, http: httpx.AsyncClient) -> dict[str, str]:
    return await bearer(http, await add_user(app, "410100", [("410100", "operator")]))


async def _records(app: FastAPI) -> list[AuditRecord]:
    async with app.state.hub.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(AuditRecord).where(AuditRecord.action == PERSONAL).order_by(AuditRecord.seq)
                )
            ).all()
        )


# -- reads that cannot be audited ----------------------------------------------------------------


async def test_a_cleared_read_that_cannot_be_audited_is_not_answered(secure_app: FastAPI) -> None:
    async with client_for(secure_app) as http:
        writer = await _operator(secure_app, http)
        created = await http.post("/ngsi-ld/v1/entities", json=resident(1, *PEOPLE[0]), headers=writer)
        assert created.status_code == 201
        officer = await bearer(http, await add_user(secure_app, "410100", [("410100", "data_officer")]))
        viewer = await bearer(http, await add_user(secure_app, "410100", [("410100", "viewer")]))
        path = "/ngsi-ld/v1/entities/urn:ngsi-ld:Resident:1"
        # the audit chain cannot be written: its head is gone
        async with secure_app.state.hub.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE audit_head RENAME TO audit_head_away"))
        try:
            refused = await http.get(path, headers=officer)
            masked = await http.get(path, headers=viewer)  # nothing to audit: answered
            plain = await http.get(f"{path}?attrs=householdSize", headers=officer)
        finally:
            async with secure_app.state.hub.engine.begin() as connection:
                await connection.execute(text("ALTER TABLE audit_head_away RENAME TO audit_head"))
        assert refused.status_code == 503, refused.text
        assert refused.json()["type"] == "urn:cityhub:problem:audit-unavailable"
        for secret in PEOPLE[0]:
            assert secret not in refused.text
        assert masked.status_code == 200
        assert PEOPLE[0][1] not in masked.text
        assert plain.status_code == 200
        # the chain is back: the same read is answered, and its record written first
        answered = await http.get(path, headers=officer)
        assert answered.status_code == 200
        assert PEOPLE[0][1] in answered.text
    records = await _records(secure_app)
    assert len(records) == 1
    assert records[0].status == 200
    assert records[0].detail["entities"] == ["urn:ngsi-ld:Resident:1"]


# -- the console's live feed ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[tuple[str, FastAPI]]:
    """A secured hub listening on a real socket: streamed answers need one."""
    port = _free_port()
    application = create_app(secure_settings(database_url, data_keys=KEY1))
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}", application
    server.should_exit = True
    await task


async def _next_change(lines: AsyncIterator[str]) -> dict[str, Any]:
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "change":
            return dict(json.loads(line.removeprefix("data: ")))
    raise AssertionError("the stream ended")


async def _stream_records(app: FastAPI, count: int) -> list[AuditRecord]:
    """The live feed's personal.read records once there are ``count`` (written as the stream
    goes on, in the hub's own task)."""
    for _ in range(500):
        records = [r for r in await _records(app) if r.path == "/api/v1/console/stream"]
        if len(records) >= count:
            return records
        await asyncio.sleep(0.02)
    return [r for r in await _records(app) if r.path == "/api/v1/console/stream"]


async def test_what_a_live_feed_shows_unmasked_is_audited_per_interval(
    served: tuple[str, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, app = served
    monkeypatch.setattr(console_api, "AUDIT_INTERVAL", 0.0)  # every pass records what it gathered
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        writer = await _operator(app, http)
        officer_account = await add_user(app, "410100", [("410100", "data_officer")])
        officer = await bearer(http, officer_account)
        viewer = await bearer(http, await add_user(app, "410100", [("410100", "viewer")]))
        params = {"types": "Resident,Household"}
        tenant = {"NGSILD-Tenant": "410100"}
        async with (
            http.stream("GET", "/api/v1/console/stream", params=params, headers=officer | tenant) as cleared,
            http.stream("GET", "/api/v1/console/stream", params=params, headers=viewer | tenant) as masked,
        ):
            assert cleared.status_code == 200
            assert masked.status_code == 200
            cleared_lines, masked_lines = cleared.aiter_lines(), masked.aiter_lines()
            assert await anext(cleared_lines) == "retry: 3000"
            assert await anext(masked_lines) == "retry: 3000"
            for number in (1, 2):
                body = resident(number, *PEOPLE[number])
                assert (await http.post("/ngsi-ld/v1/entities", json=body, headers=writer)).status_code == 201
                shown = await _next_change(cleared_lines)
                assert shown["entity"]["phone"]["value"] == PEOPLE[number][1]
                hidden = await _next_change(masked_lines)
                assert PEOPLE[number][1] not in json.dumps(hidden)
            household = {
                "id": "urn:ngsi-ld:Household:1",
                "type": "Household",
                "size": {"type": "Property", "value": 3},
            }
            assert (
                await http.post("/ngsi-ld/v1/entities", json=household, headers=writer)
            ).status_code == 201
            assert (await _next_change(cleared_lines))["id"] == "urn:ngsi-ld:Household:1"
            records = await _stream_records(app, 2)
    assert [r.detail["entities"] for r in records] == [["urn:ngsi-ld:Resident:1"], ["urn:ngsi-ld:Resident:2"]]
    for record in records:
        assert record.actor == officer_account.username
        assert record.tenant_code == "410100"
        assert "phone" in record.detail["attributes"]
        for _, phone in PEOPLE:
            assert phone not in str(record.detail)
    # the viewer's stream and the unclassified Household wrote nothing
    assert len([r for r in await _records(app) if r.path == "/api/v1/console/stream"]) == 2
