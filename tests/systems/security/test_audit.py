"""The audit chain: what goes in, that it verifies, and that tampering is found and named."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from cityhub.cli import app as cli
from cityhub.kit.db import create_engine, session_factory
from cityhub.systems.security import audit
from cityhub.systems.security.models import AuditRecord
from tests.conftest import BACKEND
from tests.systems.security.conftest import add_user, bearer

runner = CliRunner()


async def _records(app: FastAPI) -> list[AuditRecord]:
    async with app.state.hub.sessions() as session:
        return list((await session.scalars(select(AuditRecord).order_by(AuditRecord.seq))).all())


async def _write_some(app: FastAPI, client: httpx.AsyncClient) -> str:
    operator = await add_user(app, "410100", [("410100", "operator")])
    headers = await bearer(client, operator)
    for _ in range(3):
        response = await client.post(
            "/ngsi-ld/v1/entities",
            json={"id": f"urn:ngsi-ld:Sensor:{uuid.uuid4().hex}", "type": "Sensor"},
            headers=headers,
        )
        assert response.status_code == 201
    await client.post("/ngsi-ld/v1/entities", json={"id": "urn:ngsi-ld:Sensor:0", "type": "Sensor"})
    return operator.username


async def test_writes_logins_and_grants_are_recorded(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    operator = await _write_some(secure_app, sclient)
    await sclient.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": "ghost", "password": "Wrong-1234567"},
    )
    records = await _records(secure_app)
    actions = [r.action for r in records]
    assert actions.count("http.post") == 4
    assert "auth.login" in actions
    assert "auth.login_failed" in actions
    assert "security.user_created" in actions
    assert "security.role_granted" in actions
    posts = [r for r in records if r.action == "http.post"]
    assert [r.status for r in posts] == [201, 201, 201, 401]
    assert [r.actor for r in posts] == [operator] * 3 + ["anonymous"]
    assert posts[0].path == "/ngsi-ld/v1/entities"
    assert posts[0].tenant_code == "410100"
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    async with secure_app.state.hub.sessions() as session:
        result = await audit.verify(session)
    assert result.intact
    assert result.records == len(records)


async def test_the_database_refuses_updates_and_deletes(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    await _write_some(secure_app, sclient)
    engine = secure_app.state.hub.engine
    for statement in (
        "UPDATE audit_record SET actor = 'someone' WHERE seq = 2",
        "DELETE FROM audit_record WHERE seq = 2",
    ):
        with pytest.raises(DBAPIError):
            async with engine.begin() as connection:
                await connection.execute(text(statement))
    if BACKEND == "postgresql":
        with pytest.raises(DBAPIError):
            async with engine.begin() as connection:
                await connection.execute(text("TRUNCATE audit_record"))


async def _disable_guard(connection) -> None:
    """What someone with the database owner's rights does first."""
    if BACKEND == "postgresql":
        await connection.execute(text("ALTER TABLE audit_record DISABLE TRIGGER USER"))
    else:
        await connection.execute(text("DROP TRIGGER audit_record_no_update"))
        await connection.execute(text("DROP TRIGGER audit_record_no_delete"))


async def _cli(*args: str, database_url: str):
    """The real command, in a thread of its own (it runs its own event loop)."""
    return await asyncio.to_thread(runner.invoke, cli, list(args), env={"CITYHUB_DATABASE_URL": database_url})


async def _verify(database_url: str):
    return await _cli("audit", "verify", database_url=database_url)


@pytest.mark.parametrize(
    ("tamper", "named", "reason"),
    [
        ("UPDATE audit_record SET status = 200 WHERE seq = 5", 5, "content does not match"),
        ('UPDATE audit_record SET detail = \'{"user": "x"}\' WHERE seq = 2', 2, "content does not match"),
        ("DELETE FROM audit_record WHERE seq = 4", 4, "missing"),
        ("DELETE FROM audit_record WHERE seq >= 6", 6, "missing"),
    ],
)
async def test_tampering_is_found_and_the_first_broken_record_named(
    secure_app: FastAPI, sclient: httpx.AsyncClient, database_url: str, tamper: str, named: int, reason: str
) -> None:
    await _write_some(secure_app, sclient)
    intact = await _verify(database_url)
    assert intact.exit_code == 0, intact.output
    assert "audit chain intact" in intact.stdout
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await _disable_guard(connection)
            await connection.execute(text(tamper))
    finally:
        await engine.dispose()
    broken = await _verify(database_url)
    assert broken.exit_code == 1
    assert f"broken at record {named}" in broken.output
    assert reason in broken.output


async def test_a_recomputed_record_still_breaks_the_link_to_the_next(
    secure_app: FastAPI, sclient: httpx.AsyncClient, database_url: str
) -> None:
    """Rewriting a record and its own hash does not help: the next record points at the old hash."""
    await _write_some(secure_app, sclient)
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            record = await session.get(AuditRecord, 3)
            assert record is not None
            forged = audit.chain_hash(
                record.prev_hash,
                record.seq,
                record.at,
                record.action,
                "someone-else",
                record.tenant_code,
                record.source,
                record.method,
                record.path,
                record.status,
                record.detail,
            )
        async with engine.begin() as connection:
            await _disable_guard(connection)
            await connection.execute(
                text("UPDATE audit_record SET actor = 'someone-else', hash = :hash WHERE seq = 3"),
                {"hash": forged},
            )
    finally:
        await engine.dispose()
    broken = await _verify(database_url)
    assert broken.exit_code == 1
    assert "broken at record 4" in broken.output
    assert "previous-hash" in broken.output


async def test_export_lines_recompute_to_the_chain(
    secure_app: FastAPI, sclient: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    await _write_some(secure_app, sclient)
    output = tmp_path / "audit.jsonl"
    result = await _cli("audit", "export", "--output", str(output), database_url=database_url)
    assert result.exit_code == 0, result.output
    *lines, head = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    assert head["intact"] is True
    previous = "0" * 64
    from cityhub.kit.time import parse_datetime

    for line in lines:
        assert line["prev_hash"] == previous
        again = audit.chain_hash(
            line["prev_hash"],
            line["seq"],
            parse_datetime(line["at"]),
            line["action"],
            line["actor"],
            line["tenant_code"],
            line["source"],
            line["method"],
            line["path"],
            line["status"],
            line["detail"],
        )
        assert again == line["hash"]
        previous = line["hash"]
    assert previous == head["head_hash"]


async def test_pruning_moves_the_anchor_and_the_rest_still_verifies(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    await _write_some(secure_app, sclient)
    async with secure_app.state.hub.sessions() as session, session.begin():
        # nothing is older than the retention period yet
        assert await audit.prune(session, retention_days=180) == 0
        # a retention of "now" (only reachable from code; settings refuse under 180 days) removes all
        removed = await audit.prune(session, retention_days=-1)
    assert removed > 0
    await _write_some(secure_app, sclient)
    async with secure_app.state.hub.sessions() as session:
        result = await audit.verify(session)
    assert result.intact, result.reason
    assert result.records == len(await _records(secure_app))


async def test_audit_api_is_scoped_and_needs_the_second_factor(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    await _write_some(secure_app, sclient)
    county_admin = await add_user(secure_app, "410102", [("410102", "admin")], totp=True)
    headers = await bearer(sclient, county_admin) | {"NGSILD-Tenant": "410102"}
    page = await sclient.get("/api/v1/audit/records", headers=headers)
    assert page.status_code == 200, page.text
    assert {item["tenant_code"] for item in page.json()["items"]} <= {"410102"}
    assert (
        await sclient.get("/api/v1/audit/records", headers=headers | {"NGSILD-Tenant": "410100"})
    ).status_code == 403
    assert (await sclient.get("/api/v1/audit/verify", headers=headers)).status_code == 403
    platform = await add_user(secure_app, "410100", platform_admin=True, totp=True)
    verified = await sclient.get("/api/v1/audit/verify", headers=await bearer(sclient, platform))
    assert verified.status_code == 200
    assert verified.json()["intact"] is True
    no_mfa = await add_user(secure_app, "410100", [("410100", "auditor")])
    assert (
        await sclient.get("/api/v1/audit/records", headers=await bearer(sclient, no_mfa))
    ).status_code == 403


async def test_audit_records_filter_by_time(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    platform = await bearer(sclient, await add_user(secure_app, "410100", platform_admin=True, totp=True))
    every = (await sclient.get("/api/v1/audit/records", headers=platform)).json()["items"]
    assert every
    for since in ("2000-01-01T00:00:00", "2000-01-01T00:00:00Z", "2000-01-01T08:00:00+08:00"):
        page = await sclient.get("/api/v1/audit/records", params={"since": since}, headers=platform)
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) == len(every)
    future = await sclient.get(
        "/api/v1/audit/records", params={"since": "2999-01-01T00:00:00"}, headers=platform
    )
    assert future.json()["items"] == []
