"""The hub process: wiring settings, storage, bus, outbox relay and applications into one FastAPI app.

Start-up order: default tenant → applications (setup, then the registry is closed, their consumers
subscribed and their routers mounted) → bus → outbox relay → notifier → history retention task.
Shutdown stops the retention task, drains the outbox one last time, tears the apps down, then
closes the bus, so a clean stop leaves no event behind.

Migrations are not run here: ``cityhub serve`` and ``cityhub db upgrade`` apply them once, before
any worker starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub import __version__
from cityhub.bus import Event, create_bus
from cityhub.bus.outbox import WAKE_KEY, OutboxRelay
from cityhub.config import Settings, get_settings
from cityhub.hub.broker import api as broker_api
from cityhub.hub.broker.context import ContextStore
from cityhub.hub.broker.events import EntitiesChanged, RegistrationsChanged
from cityhub.hub.broker.notifier import CONSUMER as NOTIFY_CONSUMER
from cityhub.hub.broker.notifier import Notifier
from cityhub.hub.ops import api as ops_api
from cityhub.hub.ops.metrics import HubMetrics, MetricsMiddleware, Sample
from cityhub.hub.retention import api as retention_api
from cityhub.hub.retention.tasks import RetentionTask
from cityhub.hub.tenancy import api as tenancy_api
from cityhub.hub.tenancy import service as tenancy
from cityhub.kit.db import create_engine, session_factory
from cityhub.kit.errors import AlreadyExists
from cityhub.kit.logs import configure_logging
from cityhub.kit.web import PROBLEM_MEDIA_TYPES, BodyLimitMiddleware, install_error_handlers
from cityhub.platform import HubPlatform
from cityhub.plugins import AppRunner, Registry, discover

log = logging.getLogger(__name__)


class Hub:
    """Everything one hub process holds; reachable from requests as ``request.app.state.hub``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url)
        self.bus = create_bus(
            settings.bus_url, stream=settings.bus_stream, instance_name=settings.instance_name
        )
        # Sessions wake the relay after a commit that added events (see cityhub.bus.outbox).
        self.sessions = session_factory(self.engine, **{WAKE_KEY: self._wake_relay})
        self.relay: OutboxRelay = OutboxRelay(
            self.sessions,
            self.bus,
            poll_interval=settings.outbox_poll_interval,
            retention=timedelta(hours=settings.outbox_retention_hours),
        )
        self.registry = Registry()
        self.contexts = ContextStore(
            preload=settings.broker_contexts, fetch_timeout=settings.broker_context_timeout
        )
        self.notifier = Notifier(
            self.sessions,
            self.contexts,
            default_tenant=settings.default_tenant,
            timeout=settings.broker_notification_timeout,
            attempts=settings.broker_notification_attempts,
        )
        self.retention = RetentionTask(self.sessions, settings.history_retention_interval)
        self.platform = HubPlatform(self.engine, self.bus, settings.instance_name)
        self.runner = AppRunner(self.registry, self.sessions, self.platform)
        self.metrics = HubMetrics()
        self.metrics.add_gauges(self._gauges)
        self._outbox_pending = 0.0

    def _wake_relay(self) -> None:
        self.relay.wake()

    async def _on_changes(self, event: Event) -> None:
        if isinstance(event, RegistrationsChanged):
            await self.notifier.on_registrations(event)
            return
        assert isinstance(event, EntitiesChanged)
        await self.notifier.on_changes(event)

    async def _check_autovacuum(self) -> None:
        """Without autovacuum, PostgreSQL never reclaims updated rows nor learns table statistics
        by itself; the broker refreshes the statistics of its bulk tables, nothing reclaims rows."""
        if self.engine.dialect.name != "postgresql":
            return
        async with self.engine.connect() as connection:
            setting = (await connection.exec_driver_sql("SHOW autovacuum")).scalar()
        if setting != "on":
            log.warning(
                "autovacuum is off on this PostgreSQL server: updated rows are never reclaimed; turn it on"
            )

    async def start(self, app: FastAPI) -> None:
        await self._ensure_default_tenant()
        await self._check_autovacuum()
        await self.runner.setup(discover(self.settings.apps_disabled))
        self.platform.statuses = self.runner.statuses
        self.bus.subscribe(NOTIFY_CONSUMER, [EntitiesChanged, RegistrationsChanged], self._on_changes)
        for consumer in self.registry.consumers:
            self.bus.subscribe(consumer.name, consumer.event_types, consumer.handler, shared=consumer.shared)
        for entry in self.registry.routers:
            app.include_router(entry.router, prefix=entry.prefix)
        self.metrics.mount_prefixes = sorted((e.prefix for e in self.registry.routers), key=len, reverse=True)
        self.metrics.plain_paths = {
            path for path in (app.docs_url, app.redoc_url, app.openapi_url) if path is not None
        }
        app.openapi_schema = None
        await self.bus.start()
        await self.relay.start()
        await self.notifier.start()
        await self.retention.start()
        log.info(
            "CityHub %s up: database %s, bus %s, %d app(s)",
            __version__,
            self.platform.database_backend,
            self.bus.backend,
            sum(1 for status in self.runner.statuses if status.state == "running"),
        )

    async def stop(self) -> None:
        await self.retention.stop()
        # Drain first, while the apps' consumers can still handle what is sent.
        await self.relay.stop()
        await self.notifier.stop()
        await self.runner.teardown()
        await self.bus.stop()
        await self.contexts.aclose()
        await self.engine.dispose()
        log.info("CityHub stopped")

    async def _ensure_default_tenant(self) -> None:
        """Create the default tenant on first start. Several workers may race to do it: a loser
        (its insert collides, or it finds a row that appeared meanwhile) tries again and then sees
        the winner's rows."""
        attempts = 5
        for attempt in range(1, attempts + 1):
            try:
                async with self.sessions() as session, session.begin():
                    created = await tenancy.ensure_tenant_with_ancestors(
                        session, self.settings.default_tenant
                    )
            except (IntegrityError, AlreadyExists):
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.05 * attempt)
                continue
            for tenant in created:
                log.info("created tenant %s %s", tenant.code, tenant.name)
            return

    async def resolve_tenant(self, session: AsyncSession, code: str) -> None:
        await tenancy.require_active(session, code)

    async def refresh_gauges(self) -> None:
        self._outbox_pending = float(await self.relay.pending())

    def _gauges(self) -> Iterable[Sample]:
        yield (
            "cityhub_info",
            "Version and backends of this hub process.",
            {
                "version": __version__,
                "database": self.platform.database_backend,
                "bus": self.bus.backend,
            },
            1.0,
        )
        yield ("cityhub_outbox_pending", "Committed events not yet on the bus.", {}, self._outbox_pending)
        for name, value in (
            ("published", self.bus.stats.published),
            ("delivered", self.bus.stats.delivered),
            ("failed", self.bus.stats.failed),
        ):
            yield (
                "cityhub_bus_events",
                "Events through this process's bus since start.",
                {"outcome": name},
                float(value),
            )
        for name, value in (("sent", self.notifier.sent), ("failed", self.notifier.failed)):
            yield (
                "cityhub_notifications",
                "Notifications this process tried to deliver since start, by outcome.",
                {"outcome": name},
                float(value),
            )
        for status in self.runner.statuses:
            yield (
                "cityhub_app_up",
                "1 if the application is running.",
                {"app": status.manifest.name},
                1.0 if status.state == "running" else 0.0,
            )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    hub = Hub(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start(app)
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(
        title="CityHub",
        version=__version__,
        description="新型智慧城市中枢平台 · the new-type smart city hub",
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.sessions = hub.sessions
    app.state.default_tenant = settings.default_tenant
    app.state.tenant_resolver = hub.resolve_tenant
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=hub.metrics)
    app.include_router(ops_api.router)
    app.include_router(tenancy_api.router)
    app.include_router(broker_api.router)
    app.include_router(retention_api.router)
    # ETSI GS CIM 009 answers errors as ProblemDetails in application/json
    setattr(app.state, PROBLEM_MEDIA_TYPES, {broker_api.router.prefix + "/": "application/json"})
    return app
