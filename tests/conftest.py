"""Shared fixtures.

The database under test is chosen by ``HUB_TEST_DATABASE`` (``sqlite``, the default, or
``postgresql``); the test command runs the suite once with each. Every test gets a database of its
own, made by the real migrations: once per run into a template (a file on SQLite, a template
database on PostgreSQL), then cloned per test, which is fast and leaves no state between tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.kit.db import create_engine

BACKEND = os.environ.get("HUB_TEST_DATABASE", "sqlite")
PG_ADMIN = os.environ.get("HUB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("HUB_TEST_NATS_URL", "nats://127.0.0.1:4222")
RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings of the developer's shell or .env must not leak into tests."""
    for key in list(os.environ):
        if key.startswith("CITYHUB_"):
            monkeypatch.delenv(key)
    monkeypatch.setattr(Settings, "model_config", {**Settings.model_config, "env_file": None})


def _pg_url(database: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def _pg_admin(*statements: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database to clone: a file path (SQLite) or a database name (PostgreSQL)."""
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("db") / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
        yield str(path)
        return
    name = f"cityhub_tpl_{RUN_ID}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    asyncio.run(_migrate(_pg_url(name)))
    yield name
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def _pg_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """A PostgreSQL database of this test alone (a copy of ``template`` if given), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"{clause}'))
    try:
        yield _pg_url(name)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(database_template: str, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database for this test alone."""
    if BACKEND == "sqlite":
        path = tmp_path / "hub.db"
        shutil.copyfile(database_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    with _pg_database("cityhub_t", template=database_template) as url:
        yield url


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, for migration tests."""
    if BACKEND == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    with _pg_database("cityhub_e") as url:
        yield url


def hub_settings(database_url: str, **overrides: Any) -> Settings:
    """The settings of a test hub on ``database_url`` (in-process bus, quick outbox), changed by
    ``overrides`` (a test module overriding the ``settings`` fixture)."""
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "bus_url": "memory://",
        "instance_name": "test",
        "outbox_poll_interval": 0.05,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return hub_settings(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """A started hub (lifespan run), stopped after the test."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        yield http


@pytest.fixture
async def stream() -> AsyncIterator[str]:
    """A JetStream stream name of this test alone on the shared NATS server, deleted afterwards."""
    from tests.bus.support import delete_stream, unique_stream

    name = unique_stream()
    yield name
    await delete_stream(NATS_URL, name)
