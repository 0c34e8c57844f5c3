"""The restore drill: back up, wipe, restore, and find every table as it was."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from fastapi import FastAPI
from typer.testing import CliRunner

from cityhub import migrate
from cityhub.app import create_app
from cityhub.cli import app as cli
from cityhub.kit.db import create_engine, session_factory
from cityhub.systems.security import audit, backup
from tests.conftest import BACKEND
from tests.systems.security.conftest import add_user, bearer, client_for, secure_settings, token_for

runner = CliRunner()


async def _cli(database_url: str, *args: str):
    return await asyncio.to_thread(runner.invoke, cli, list(args), env={"CITYHUB_DATABASE_URL": database_url})


async def _fill(app: FastAPI) -> str:
    """Users, roles, entities with history, audit records: a little of every kind of row."""
    async with client_for(app) as http:
        operator = await add_user(app, "410102", [("410102", "operator")])
        headers = await bearer(http, operator) | {"NGSILD-Tenant": "410102"}
        for number in range(20):
            entity_id = f"urn:ngsi-ld:Sensor:{uuid.uuid4().hex}"
            created = await http.post(
                "/ngsi-ld/v1/entities",
                json={"id": entity_id, "type": "Sensor", "no2": {"type": "Property", "value": number}},
                headers=headers,
            )
            assert created.status_code == 201
            patched = await http.patch(
                f"/ngsi-ld/v1/entities/{entity_id}/attrs",
                json={"no2": {"type": "Property", "value": number + 0.5}},
                headers=headers,
            )
            assert patched.status_code == 204
    return operator.username


async def test_restore_drill(database_url: str, tmp_path: Path) -> None:
    app = create_app(secure_settings(database_url))
    async with app.router.lifespan_context(app):
        async with app.state.hub.sessions() as session, session.begin():
            from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors

            await ensure_tenant_with_ancestors(session, "410102")
        username = await _fill(app)
    # The hub is stopped first so that nothing changes between the fingerprints and the backup (its
    # outbox relay would mark events published meanwhile); the backup itself works online as well.
    made = await _cli(database_url, "backup", "--dir", str(tmp_path / "backups"))
    assert made.exit_code == 0, made.output
    engine = create_engine(database_url)
    try:
        before = await backup.fingerprints(engine)
        assert before["broker_entity"].rows == 20
        assert before["audit_record"].rows > 40
        await backup.wipe(engine)
        assert await backup.fingerprints(engine) == {}
    finally:
        await engine.dispose()
    (file,) = (tmp_path / "backups").iterdir()
    restored = await _cli(database_url, "restore", str(file), "--yes")
    assert restored.exit_code == 0, restored.output
    engine = create_engine(database_url)
    try:
        after = await backup.fingerprints(engine)
        assert after == before, {t for t in before if before[t] != after.get(t)}
        assert await migrate.current(engine) == migrate.head()
        async with session_factory(engine)() as session:
            assert (await audit.verify(session)).intact
    finally:
        await engine.dispose()
    # and the hub runs on it: the same people log in
    app = create_app(secure_settings(database_url))
    async with app.router.lifespan_context(app), client_for(app) as http:
        from cityhub.systems.security import service
        from tests.systems.security.conftest import PASSWORD, Account

        async with app.state.hub.sessions() as session:
            user = await service.user_by_name(session, username)
        assert user is not None
        await token_for(http, Account(user=user, password=PASSWORD))
    verified = await _cli(database_url, "audit", "verify")
    assert verified.exit_code == 0, verified.output


async def test_backups_are_kept_to_the_number_asked(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    for _ in range(3):
        made = await _cli(database_url, "backup", "--dir", str(folder), "--keep", "2")
        assert made.exit_code == 0, made.output
    kept = sorted(p.name for p in folder.iterdir())
    assert len(kept) == 2
    assert all(name.startswith("cityhub-") for name in kept)


async def test_a_backup_of_the_other_kind_is_refused(database_url: str, tmp_path: Path) -> None:
    other = tmp_path / ("cityhub-x.pgdump" if BACKEND == "sqlite" else "cityhub-x.sqlite3")
    other.write_bytes(b"not a backup")
    refused = await _cli(database_url, "restore", str(other), "--yes")
    assert refused.exit_code == 1
    assert "is not a" in refused.output
    missing = await _cli(database_url, "restore", str(tmp_path / "nothing.sqlite3"), "--yes")
    assert missing.exit_code == 1
