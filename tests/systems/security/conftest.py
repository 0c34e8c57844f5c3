"""A hub with CITYHUB_AUTH_MODE=on, and helpers to make real users in its database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors
from cityhub.systems.security import service
from cityhub.systems.security.models import SecurityEvent, User
from cityhub.systems.security.schemas import UserCreate

PASSWORD = "Correct-Horse-42"
SECRET_KEY = "test-signing-key-" + "k" * 32


def secure_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "bus_url": "memory://",
        "instance_name": "test",
        "outbox_poll_interval": 0.05,
        "auth_mode": "on",
        "secret_key": SECRET_KEY,
        "rate_limit_per_minute": 0,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def security_overrides() -> dict[str, Any]:
    """Settings a test module changes (override this fixture)."""
    return {}


@pytest.fixture
async def secure_app(database_url: str, security_overrides: dict[str, Any]) -> AsyncIterator[FastAPI]:
    application = create_app(secure_settings(database_url, **security_overrides))
    async with application.router.lifespan_context(application):
        async with application.state.hub.sessions() as session, session.begin():
            for county in ("410102", "410105", "410122"):
                await ensure_tenant_with_ancestors(session, county)
            await ensure_tenant_with_ancestors(session, "410200")
        yield application


def client_for(app: FastAPI, source: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(source, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://hub")


@pytest.fixture
async def sclient(secure_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(secure_app) as http:
        yield http


@dataclass
class Account:
    user: User
    password: str
    totp_secret: str | None = None

    @property
    def username(self) -> str:
        return self.user.username


async def add_user(
    app: FastAPI,
    tenant: str,
    roles: list[tuple[str, str]] | None = None,
    *,
    username: str | None = None,
    kind: str = "person",
    platform_admin: bool = False,
    totp: bool = False,
    password: str = PASSWORD,
) -> Account:
    """A real account written through the security service, with roles as (tenant, role)."""
    name = username or f"u{uuid.uuid4().hex[:10]}"
    async with app.state.hub.sessions() as session, session.begin():
        user = await service.create_user(
            session,
            UserCreate(username=name, password=password, kind=kind),  # type: ignore[arg-type]
            tenant=tenant,
            actor="test",
            min_length=12,
            platform_admin=platform_admin,
        )
        for grant_tenant, role in roles or []:
            await service._add_grant(session, user, role, grant_tenant, actor="test")
        secret = None
        if totp:
            secret = await service.start_totp(session, user)
            user.totp_enabled = True
    return Account(user=user, password=password, totp_secret=secret)


async def token_for(
    client: httpx.AsyncClient, account: Account, *, code: str | None = None
) -> dict[str, Any]:
    form = {"grant_type": "password", "username": account.username, "password": account.password}
    if account.totp_secret is not None:
        form["totp"] = code or pyotp.TOTP(account.totp_secret).now()
    response = await client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 200, response.text
    return response.json()


async def bearer(client: httpx.AsyncClient, account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await token_for(client, account))['access_token']}"}


async def event_count(app: FastAPI, kind: str) -> int:
    """How many security events of ``kind`` the hub has stored."""
    async with app.state.hub.sessions() as session:
        found = await session.scalar(
            select(func.count()).select_from(SecurityEvent).where(SecurityEvent.kind == kind)
        )
        return int(found or 0)
