"""The hub process: wiring settings, storage, bus, outbox relay and applications into one FastAPI app.

Start-up order: default tenant → applications (setup, then the registry is closed, their consumers
subscribed and their routers mounted) → bus → outbox relay → notifier → device gateway, commands,
device health, MQTT gateway → scheduled backups → history retention task. Shutdown stops the
device side first (messages in hand are written), then the background tasks, drains the outbox one
last time, tears the apps down, then closes the bus, so a clean stop leaves no event behind.

Migrations are not run here: ``cityhub serve`` and ``cityhub db upgrade`` apply them once, before
any worker starts.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub import __version__
from cityhub.bus import Event, create_bus
from cityhub.bus.outbox import WAKE_KEY, OutboxRelay
from cityhub.config import Settings, get_settings
from cityhub.hub.broker import api as broker_api
from cityhub.hub.broker import protection
from cityhub.hub.broker.context import ContextStore
from cityhub.hub.broker.events import EntitiesChanged, RegistrationsChanged
from cityhub.hub.broker.notifier import CONSUMER as NOTIFY_CONSUMER
from cityhub.hub.broker.notifier import Notifier
from cityhub.hub.catalog import access as catalog_access
from cityhub.hub.catalog import api as catalog_api
from cityhub.hub.catalog.tasks import ExpiryTask
from cityhub.hub.console import api as console_api
from cityhub.hub.console.service import LiveFeed
from cityhub.hub.dispatch import alerts as dispatch_alerts
from cityhub.hub.dispatch import api as dispatch_api
from cityhub.hub.dispatch import open311 as open311_api
from cityhub.hub.dispatch import service as dispatch
from cityhub.hub.dispatch import workflow as dispatch_workflow
from cityhub.hub.dispatch.tasks import OverdueTask
from cityhub.hub.ingest import api as ingest_api
from cityhub.hub.ingest.commands import CONSUMER as COMMANDS_CONSUMER
from cityhub.hub.ingest.commands import Commands
from cityhub.hub.ingest.events import ProvisioningChanged
from cityhub.hub.ingest.gateway import Gateway, Limits
from cityhub.hub.ingest.health import HealthMonitor
from cityhub.hub.ingest.mqtt import MqttGateway
from cityhub.hub.ops import api as ops_api
from cityhub.hub.ops.metrics import HubMetrics, MetricsMiddleware, Sample
from cityhub.hub.retention import api as retention_api
from cityhub.hub.retention.tasks import RetentionTask
from cityhub.hub.rules import api as rules_api
from cityhub.hub.rules.channels import CONSUMER as ALERTS_CONSUMER
from cityhub.hub.rules.channels import Channels, SmtpSettings
from cityhub.hub.rules.engine import CONSUMER as RULES_CONSUMER
from cityhub.hub.rules.engine import RuleEngine
from cityhub.hub.rules.service import AlertNotice
from cityhub.hub.rules.tasks import RulesTask
from cityhub.hub.tenancy import api as tenancy_api
from cityhub.hub.tenancy import service as tenancy
from cityhub.kit.db import create_engine, session_factory
from cityhub.kit.errors import AlreadyExists
from cityhub.kit.logs import configure_logging
from cityhub.kit.periodic import Periodic
from cityhub.kit.web import (
    PROBLEM_MEDIA_TYPES,
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    install_error_handlers,
)
from cityhub.platform import HubPlatform
from cityhub.plugins import AppRunner, Registry, discover
from cityhub.systems.infrastructure import api as infrastructure_api
from cityhub.systems.security import api as security_api
from cityhub.systems.security.guard import AuditMiddleware, SecurityRuntime, declare_bearer, guard
from cityhub.systems.security.privacy import PersonalData, data_key_ring
from cityhub.systems.security.tasks import BackupSchedule
from cityhub.systems.standards.datamodels import InvalidModel, default_models, model_from_schema

log = logging.getLogger(__name__)


class Hub:
    """Everything one hub process holds; reachable from requests as ``request.app.state.hub``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url)
        self.bus = create_bus(
            settings.bus_url, stream=settings.bus_stream, instance_name=settings.instance_name
        )
        self.registry = Registry()
        #: full paths that take larger bodies than CITYHUB_MAX_BODY_BYTES (the applications' uploads),
        #: filled at start-up from the registry and read by the body limit middleware
        self.body_limits: dict[str, int] = {}
        dispatch_workflow.register_builtin(self.registry.case_types)
        dispatch_alerts.install()  # alerts whose rules ask for it open cases
        # Sessions wake the relay after a commit that added events (see cityhub.bus.outbox), and
        # know the case types (the registry's, filled by the apps at start) and dispatch options.
        self.sessions = session_factory(
            self.engine,
            **{
                WAKE_KEY: self._wake_relay,
                dispatch_workflow.CASE_TYPES_KEY: self.registry.case_types,
                dispatch.OPTIONS_KEY: dispatch.Options(
                    duplicate_radius_m=settings.dispatch_duplicate_radius_m
                ),
            },
        )
        self.relay: OutboxRelay = OutboxRelay(
            self.sessions,
            self.bus,
            poll_interval=settings.outbox_poll_interval,
            retention=timedelta(hours=settings.outbox_retention_hours),
        )
        self.contexts = ContextStore(
            preload=settings.broker_contexts, fetch_timeout=settings.broker_context_timeout
        )
        self.notifier = Notifier(
            self.sessions,
            self.contexts,
            default_tenant=settings.default_tenant,
            timeout=settings.broker_notification_timeout,
            attempts=settings.broker_notification_attempts,
            department_access=catalog_access.department_access,
        )
        self.ingest = Gateway(
            self.sessions,
            default_models(),
            Limits(
                max_payload_bytes=settings.ingest_max_payload_bytes,
                device_rate=settings.ingest_device_rate,
                device_burst=settings.ingest_device_burst,
            ),
            default_tenant=settings.default_tenant,
            batch_size=settings.ingest_batch_size,
            profile_ttl=settings.ingest_profile_ttl,
        )
        self.commands = Commands(
            self.sessions,
            self.ingest,
            ttl=settings.ingest_command_ttl,
            http_timeout=settings.ingest_command_timeout,
        )
        self.ingest.on_forget.append(self.commands.forget)
        self.health = HealthMonitor(
            self.sessions, lambda: self.ingest.expand, settings.ingest_health_interval
        )
        self.mqtt: MqttGateway | None = None
        if settings.mqtt_url:
            self.mqtt = MqttGateway(
                settings.mqtt_url,
                client_id=settings.mqtt_client_id or f"cityhub-{settings.instance_name}",
                receive_maximum=settings.mqtt_receive_maximum,
                session_expiry=settings.mqtt_session_expiry,
                gateway=self.ingest,
                on_command_result=self.commands.result,
            )
            self.commands.mqtt = self.mqtt
        #: Open live streams of the web console, fed by this process's own consumer.
        self.console = LiveFeed()
        self.retention = RetentionTask(self.sessions, settings.history_retention_interval)
        self.sharing_expiry = ExpiryTask(self.sessions)
        self.rules = RuleEngine(
            self.sessions,
            default_tenant=settings.default_tenant,
            escalation_minutes=settings.rules_escalation_minutes,
        )
        self.rules_task = RulesTask(self.rules, settings.rules_check_interval)
        self.channels = Channels(
            self.sessions,
            default_tenant=settings.default_tenant,
            mqtt_url=settings.rules_mqtt_url or settings.mqtt_url,
            smtp=(
                SmtpSettings(
                    host=settings.smtp_host,
                    port=settings.smtp_port,
                    username=settings.smtp_username,
                    password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                    sender=settings.smtp_sender,
                    starttls=settings.smtp_starttls,
                    timeout=settings.rules_delivery_timeout,
                )
                if settings.smtp_host
                else None
            ),
            attempts=settings.rules_delivery_attempts,
            timeout=settings.rules_delivery_timeout,
        )
        #: notices a dead process owed to alert channels, sent again
        self.owed_notices = Periodic(
            "owed alert notices", settings.rules_check_interval, self.channels.resend_owed
        )
        self.overdue = OverdueTask(self.sessions, settings.dispatch_overdue_interval)
        self.platform = HubPlatform(self.engine, self.bus, settings.instance_name)
        self.runner = AppRunner(self.registry, self.sessions, self.platform)
        self.metrics = HubMetrics()
        self.metrics.add_gauges(self._gauges)
        self._outbox_pending = 0.0
        #: Scheduled backups, when CITYHUB_BACKUP_DIR is set.
        self.backups: BackupSchedule | None = (
            BackupSchedule(
                settings.database_url,
                settings.backup_dir,
                interval=settings.backup_interval_hours * 3600,
                keep=settings.backup_keep,
            )
            if settings.backup_dir is not None
            else None
        )
        #: Access control, audit and security events; None when CITYHUB_AUTH_MODE is off.
        self.security: SecurityRuntime | None = (
            SecurityRuntime(settings, self.sessions, self.metrics.registry)
            if settings.auth_mode == "on"
            else None
        )
        if self.security is not None:
            self.ingest.on_unknown_key.append(self.security.unknown_device_key)
            self.ingest.on_disabled_key.append(self.security.disabled_device_key)
        #: Personal information in entities: classification from the data models, the data keys.
        self.personal_data = PersonalData(self.ingest.models, data_key_ring(settings))
        protection.install(self.personal_data)

    def _wake_relay(self) -> None:
        self.relay.wake()

    async def _on_changes(self, event: Event) -> None:
        if isinstance(event, RegistrationsChanged):
            await self.notifier.on_registrations(event)
            return
        assert isinstance(event, EntitiesChanged)
        await self.notifier.on_changes(event)

    async def _on_provisioning(self, event: Event) -> None:
        """Provisioning changed in some hub process: this one's gateway looks devices up again."""
        assert isinstance(event, ProvisioningChanged)
        if event.apikey is None:
            self.ingest.forget()
        else:
            self.ingest.forget_apikey(event.apikey)

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
        tune_gc()
        await self._ensure_default_tenant()
        await self._check_autovacuum()
        await self.runner.setup(discover(self.settings.apps_disabled))
        self.platform.statuses = self.runner.statuses
        self._register_data_models()
        self.personal_data.refresh()
        protection.install(self.personal_data)
        if self.personal_data.keys is None and self.personal_data.has_sensitive:
            if self.settings.env == "production":
                raise RuntimeError(
                    "CITYHUB_DATA_KEYS must be set in production: data models classify attributes as "
                    "sensitive, which are stored encrypted"
                )
            log.warning("CITYHUB_DATA_KEYS is not set: sensitive personal information cannot be written")
        self.bus.subscribe(NOTIFY_CONSUMER, [EntitiesChanged, RegistrationsChanged], self._on_changes)
        self.bus.subscribe(COMMANDS_CONSUMER, [EntitiesChanged], self.commands.on_changes)
        self.bus.subscribe(RULES_CONSUMER, [EntitiesChanged], self.rules.on_changes)
        self.bus.subscribe(ALERTS_CONSUMER, [AlertNotice], self.channels.on_notice)
        self.bus.subscribe("rules-stream", [AlertNotice], self.channels.on_local, shared=False)
        self.bus.subscribe("console-live-feed", [EntitiesChanged], self.console.on_changes, shared=False)
        self.bus.subscribe("ingest-profiles", [ProvisioningChanged], self._on_provisioning, shared=False)
        for consumer in self.registry.consumers:
            self.bus.subscribe(consumer.name, consumer.event_types, consumer.handler, shared=consumer.shared)
        for entry in self.registry.routers:
            app.include_router(entry.router, prefix=entry.prefix)
            self.body_limits.update({entry.prefix + path: size for path, size in entry.body_limits.items()})
        self.metrics.mount_prefixes = sorted((e.prefix for e in self.registry.routers), key=len, reverse=True)
        self.metrics.plain_paths = {
            path for path in (app.docs_url, app.redoc_url, app.openapi_url) if path is not None
        }
        app.openapi_schema = None
        await self.bus.start()
        await self.relay.start()
        await self.notifier.start()
        core = (await self.contexts.resolve(None)).expand
        await self.ingest.start(core)
        self.rules.start(core)
        await self.commands.start()
        await self.health.start()
        if self.mqtt is not None:
            await self.mqtt.start()
        if self.backups is not None:
            self.backups.start()
        await self.retention.start()
        await self.sharing_expiry.start()
        self.rules_task.start()
        self.owed_notices.start()
        await self.overdue.start()
        log.info(
            "CityHub %s up: database %s, bus %s, %d app(s)",
            __version__,
            self.platform.database_backend,
            self.bus.backend,
            sum(1 for status in self.runner.statuses if status.state == "running"),
        )

    async def stop(self) -> None:
        # Devices' messages in hand are written first; then the outbox drains, while the apps'
        # consumers can still handle what is sent.
        if self.mqtt is not None:
            await self.mqtt.stop()
        await self.health.stop()
        await self.commands.stop()
        await self.ingest.stop()
        if self.backups is not None:
            await self.backups.stop()
        await self.sharing_expiry.stop()
        await self.retention.stop()
        await self.rules_task.stop()
        await self.owed_notices.stop()
        await self.overdue.stop()
        await self.relay.stop()
        await self.notifier.stop()
        await self.runner.teardown()
        await self.bus.stop()
        await self.channels.aclose()
        await self.contexts.aclose()
        if self.security is not None:
            await self.security.aclose()
        await self.engine.dispose()
        log.info("CityHub stopped")

    def _register_data_models(self) -> None:
        """Applications' entity types with a schema become data models measures are checked against."""
        for entity_type in self.registry.entity_types.values():
            if entity_type.schema is None:
                continue
            try:
                self.ingest.models.register(model_from_schema(entity_type.name, entity_type.schema))
            except InvalidModel as error:
                log.error("app %s: %s; its measures are not validated", entity_type.app, error)

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
        yield (
            "cityhub_rule_evaluations",
            "Rule conditions this process evaluated since start.",
            {},
            float(self.rules.evaluations),
        )
        yield (
            "cityhub_alerts_raised",
            "Alerts this process raised since start.",
            {},
            float(self.rules.raised),
        )
        for name, value in (("sent", self.channels.sent), ("failed", self.channels.failed)):
            yield (
                "cityhub_alert_deliveries",
                "Alert notices this process delivered to channels since start, by outcome.",
                {"outcome": name},
                float(value),
            )
        yield (
            "cityhub_ingest_messages",
            "Device messages this process accepted since start.",
            {"outcome": "accepted"},
            float(self.ingest.accepted),
        )
        for reason, count in sorted(self.ingest.rejected.items()):
            yield (
                "cityhub_ingest_rejected",
                "Device messages this process refused since start, by dead-letter reason.",
                {"reason": reason},
                float(count),
            )
        yield (
            "cityhub_ingest_written",
            "Entity updates from devices this process wrote since start.",
            {},
            float(self.ingest.writer.written),
        )
        yield (
            "cityhub_ingest_batches",
            "Transactions the ingest writer committed since start (written / batches: batch size).",
            {},
            float(self.ingest.writer.batches),
        )
        yield (
            "cityhub_mqtt_connected",
            "1 while the MQTT gateway is connected (absent without CITYHUB_MQTT_URL).",
            {},
            1.0 if self.mqtt is not None and self.mqtt.connected.is_set() else 0.0,
        )
        for status in self.runner.statuses:
            yield (
                "cityhub_app_up",
                "1 if the application is running.",
                {"app": status.manifest.name},
                1.0 if status.state == "running" else 0.0,
            )


def _declare_bearer(app: FastAPI) -> None:
    describe = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare_bearer(describe())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


#: Container allocations between two young-generation garbage collections (Python's default is
#: 700). A batch write decodes, expands and diffs tens of thousands of small dicts and lists that
#: all live until its commit; at 700 they are scanned again and again and soon promoted, which
#: sets off full collections over every object of the process: half the CPU of a 1,000-entity
#: upsert went to the collector. At 10,000, two clients' batches in flight still set off five
#: collections per batch (about 15% of its CPU); at 50,000, about one, half that time in all (each
#: scans more: a pause of some tens of milliseconds). The older generations keep Python's ratios.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect less often: see :data:`GC_YOUNG_THRESHOLD`. Memory held by cyclic garbage grows
    by at most that many containers; reference counting frees everything else as before."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG_THRESHOLD, young), middle, old)


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
        # With auth on, every route (the broker's, the hub's, every application's, mounted now or
        # at start-up) runs the guard before its own dependencies: access control in one place.
        dependencies=[Depends(guard)] if hub.security is not None else None,
    )
    app.state.hub = hub
    app.state.security = hub.security
    app.state.sessions = hub.sessions
    app.state.default_tenant = settings.default_tenant
    app.state.tenant_resolver = hub.resolve_tenant
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, larger=hub.body_limits)
    if hub.security is not None:
        app.add_middleware(AuditMiddleware, runtime=hub.security)
    app.add_middleware(MetricsMiddleware, metrics=hub.metrics)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.env == "production")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Link", "NGSILD-Tenant", "Accept"],
            expose_headers=["Location", "Link", "NGSILD-Tenant", "NGSILD-Results-Count"],
            allow_credentials=False,
            max_age=600,
        )
    app.include_router(ops_api.router)
    app.include_router(tenancy_api.router)
    app.include_router(broker_api.router)
    app.include_router(ingest_api.router)
    app.include_router(infrastructure_api.router)
    if hub.security is not None:
        for router in security_api.ROUTERS:
            app.include_router(router)
        _declare_bearer(app)
    else:
        # departments own cases (dispatch routing): with auth off they are managed like any data
        app.include_router(security_api.departments_router)
    app.include_router(retention_api.router)
    app.include_router(catalog_api.router)
    for router in (*rules_api.ROUTERS, *dispatch_api.ROUTERS, dispatch_alerts.router):
        app.include_router(router)
    for router in open311_api.ROUTERS:
        app.include_router(router)
    app.include_router(console_api.router)
    # The console's files answer what no route matches, the apps' routes mounted at start-up included.
    app.router.default = console_api.ConsoleFiles(
        settings.console_dir or console_api.default_console_dir(), app.router.default
    )
    # ETSI GS CIM 009 answers errors as ProblemDetails in application/json
    setattr(app.state, PROBLEM_MEDIA_TYPES, {broker_api.router.prefix + "/": "application/json"})
    return app
