"""The application lifecycle: a manifest, an async ``setup`` and an async ``teardown``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.plugins.manifest import AppSettings, Manifest
from cityhub.plugins.registry import AppRegistry


@dataclass(frozen=True)
class TenantInfo:
    code: str
    name: str
    name_en: str | None
    level: str
    parent_code: str | None
    children: tuple[str, ...]


@dataclass(frozen=True)
class EventCounts:
    pending: int
    published_last_24h: int


@dataclass(frozen=True)
class AppStatus:
    manifest: Manifest
    state: str
    error: str | None = None


class Platform(Protocol):
    """What the hub tells applications about itself."""

    version: str
    instance_name: str
    started_at: datetime

    @property
    def database_backend(self) -> str: ...

    @property
    def bus_backend(self) -> str: ...

    async def readiness(self) -> dict[str, str]: ...

    async def tenant(self, session: AsyncSession, code: str) -> TenantInfo: ...

    async def tenant_subtree(self, session: AsyncSession, code: str) -> list[str]: ...

    async def event_counts(self, session: AsyncSession, tenant: str) -> EventCounts: ...

    def apps(self) -> list[AppStatus]: ...


@dataclass(frozen=True)
class AppContext:
    manifest: Manifest
    registry: AppRegistry
    settings: AppSettings | None
    sessions: async_sessionmaker[AsyncSession]
    platform: Platform
    log: logging.Logger


class HubApp:
    """Base class of every application. Subclasses set ``manifest`` and override the hooks.

    ``setup`` registers routers, entity types, consumers and the rest through ``ctx.registry`` and
    may start background work; ``teardown`` stops that work. Both are awaited by the hub in
    dependency order (teardown in reverse).
    """

    manifest: ClassVar[Manifest]

    async def setup(self, ctx: AppContext) -> None:
        """Register what the app contributes; called once at start-up."""

    async def teardown(self) -> None:
        """Release what ``setup`` started; called once at shutdown."""
