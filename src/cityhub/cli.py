"""The ``cityhub`` command."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cityhub import __version__, migrate
from cityhub.config import Settings, SettingsError, load_settings
from cityhub.kit.db import create_engine, session_factory, wait_for_database
from cityhub.kit.errors import HubError
from cityhub.kit.logs import configure_logging
from cityhub.sim.commands import demo_app

app = typer.Typer(help="CityHub · 新型智慧城市中枢平台", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema (migrations).", no_args_is_help=True)
apps_app = typer.Typer(help="Installed applications.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants: the administrative divisions on this hub.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apps_app, name="apps")
app.add_typer(tenants_app, name="tenants")
ingest_app = typer.Typer(help="Device ingestion: dead letters, bulk import.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
history_app = typer.Typer(help="Attribute history kept by the context broker.", no_args_is_help=True)
app.add_typer(history_app, name="history")
users_app = typer.Typer(help="User accounts (security).", no_args_is_help=True)
app.add_typer(users_app, name="users")
audit_app = typer.Typer(help="The audit log and its hash chain.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(demo_app, name="demo")

console = Console()
err = Console(stderr=True)
T = TypeVar("T")


#: The NGSI-LD core context's @vocab: where names that no @context defines expand to.
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as error:
        err.print(f"[bold red]configuration error:[/] {error}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _run(factory: Callable[[AsyncEngine], Awaitable[T]], settings: Settings) -> T:
    async def main() -> T:
        engine = create_engine(settings.database_url)
        try:
            return await factory(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


async def _wait(engine: AsyncEngine, settings: Settings) -> None:
    def report(attempt: int, delay: float, error: BaseException) -> None:
        err.print(
            f"[yellow]database not reachable[/] (try {attempt}/{settings.db_connect_attempts}: "
            f"{type(error).__name__}: {error}); retrying in {delay:.1f}s"
        )

    try:
        await wait_for_database(
            engine,
            attempts=settings.db_connect_attempts,
            max_delay=settings.db_retry_max_delay,
            on_retry=report,
        )
    except Exception as error:
        err.print(
            f"[bold red]database unreachable after {settings.db_connect_attempts} tries:[/] "
            f"{type(error).__name__}: {error}\n(check CITYHUB_DATABASE_URL)"
        )
        raise typer.Exit(3) from None


async def _upgrade(engine: AsyncEngine, target: str = "head", *, show: bool = True) -> list[str]:
    """Apply pending migrations one by one with a progress bar; returns those applied."""
    current = await migrate.current(engine)
    chain = migrate.revisions()
    if target != "head":
        chain = chain[: chain.index(target) + 1] if target in chain else chain
    pending = chain[chain.index(current) + 1 :] if current in chain else chain
    if not pending:
        return []
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
        transient=False,
    ) as progress:
        task = progress.add_task("migrating", total=len(pending))
        for revision in pending:
            progress.update(task, description=f"migrating to {revision}")
            await migrate.upgrade(engine, revision)
            progress.advance(task)
    return pending


async def _require_schema(engine: AsyncEngine) -> None:
    current = await migrate.current(engine)
    if current != migrate.head():
        err.print(
            f"[bold red]the database schema is at {current or 'nothing'}, not {migrate.head()}:[/] "
            "run `cityhub db upgrade` first"
        )
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the CityHub version."""
    console.print(f"CityHub {__version__}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [CITYHUB_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [CITYHUB_PORT].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply pending migrations before starting.")
    ] = True,
) -> None:
    """Start the hub: wait for the database, migrate, then serve HTTP."""
    import uvicorn

    settings = _settings()
    if workers > 1 and "instance_name" in settings.model_fields_set:
        err.print(
            "[bold red]configuration error:[/] CITYHUB_INSTANCE_NAME names one process; with "
            "--workers it would give every worker the same consumers. Leave it unset, or run one "
            "process per instance name."
        )
        raise typer.Exit(2)
    if workers > 1 and settings.bus_backend == "memory":
        err.print(
            "[yellow]warning:[/] several workers with the in-process bus: an event reaches only the "
            "consumers of the worker whose outbox relay sends it. Set CITYHUB_BUS_URL=nats://… so "
            "every worker's consumers see every event."
        )

    async def prepare(engine: AsyncEngine) -> list[str]:
        await _wait(engine, settings)
        return await _upgrade(engine) if migrate_first else []

    applied = _run(prepare, settings)
    if applied:
        err.print(f"applied migrations: {', '.join(applied)}", soft_wrap=True)
    uvicorn.run(
        "cityhub.app:create_app",
        factory=True,
        host=host if host is not None else settings.host,
        port=port if port is not None else settings.port,
        workers=workers,
        log_config=None,
        timeout_graceful_shutdown=15,
        server_header=False,
    )


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply pending migrations."""
    settings = _settings()

    async def run(engine: AsyncEngine) -> list[str]:
        await _wait(engine, settings)
        return await _upgrade(engine, revision)

    applied = _run(run, settings)
    console.print(f"applied {len(applied)} migration(s)" if applied else "database is up to date")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")]) -> None:
    """Revert migrations down to REVISION."""
    settings = _settings()
    _run(lambda engine: migrate.downgrade(engine, revision), settings)
    console.print(f"database at {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and whether it is behind the code."""
    settings = _settings()
    current = _run(migrate.current, settings)
    head = migrate.head()
    state = "up to date" if current == head else f"behind (head is {head})"
    console.print(f"{current or 'empty'} · {state}")
    if current != head:
        raise typer.Exit(1)


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the migration does.")],
    autogenerate: Annotated[bool, typer.Option(help="Diff the models against the database.")] = True,
) -> None:
    """Write a new migration file (for developers)."""
    settings = _settings()

    async def run(engine: AsyncEngine) -> None:
        async with engine.connect() as connection:
            await connection.run_sync(lambda sync: migrate.make_revision(sync, message, autogenerate))

    _run(run, settings)


@apps_app.command("list")
def apps_list() -> None:
    """Applications installed through the ``cityhub.apps`` entry point."""
    from cityhub.plugins import discover

    settings = _settings()
    table = Table(title="CityHub applications")
    for column in ("name", "version", "title", "indicators", "requires", "state"):
        table.add_column(column)
    for item in discover(settings.apps_disabled):
        manifest = item.manifest
        state = "disabled" if item.disabled else ("[red]" + item.error + "[/]" if item.error else "ok")
        table.add_row(
            item.name,
            manifest.version if manifest else "-",
            f"{manifest.title_zh} · {manifest.title_en}" if manifest else "-",
            ", ".join(i.value for i in manifest.indicators) if manifest else "-",
            ", ".join(manifest.requires) if manifest else "-",
            state,
        )
    console.print(table)


@tenants_app.command("list")
def tenants_list() -> None:
    """Show the tenant tree."""
    from cityhub.hub.tenancy import service

    settings = _settings()

    async def run(engine: AsyncEngine) -> list[tuple[str, str, str, str]]:
        await _require_schema(engine)
        async with session_factory(engine)() as session:
            rows, _ = await service.list_tenants(session, limit=100_000)
            return [(r.code, r.name, r.level, r.parent_code or "") for r in rows]

    rows = _run(run, settings)
    table = Table(title="Tenants")
    for column in ("code", "name", "level", "parent"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@tenants_app.command("add")
def tenants_add(
    code: Annotated[str, typer.Argument(help="GB/T 2260 code, e.g. 410102.")],
    name: Annotated[str | None, typer.Option(help="Chinese name (default: from the code table).")] = None,
    name_en: Annotated[str | None, typer.Option(help="English name.")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent code (default: from the code).")] = None,
) -> None:
    """Add a tenant."""
    from cityhub.hub.tenancy import service
    from cityhub.hub.tenancy.schemas import TenantCreate

    settings = _settings()

    async def run(engine: AsyncEngine) -> str:
        await _require_schema(engine)
        async with session_factory(engine)() as session, session.begin():
            tenant = await service.create_tenant(
                session, TenantCreate(code=code, name=name, name_en=name_en, parent_code=parent)
            )
            return f"{tenant.code} {tenant.name} ({tenant.level})"

    try:
        console.print("added " + _run(run, settings))
    except HubError as error:
        err.print(f"[bold red]{error.title}:[/] {error.detail}")
        raise typer.Exit(1) from None
    except ValueError as error:
        err.print(f"[bold red]invalid input:[/] {error}")
        raise typer.Exit(1) from None


@history_app.command("downsample")
def history_downsample(
    older_than_days: Annotated[
        int, typer.Option(min=1, help="Downsample history observed before this many days ago.")
    ],
    period: Annotated[str, typer.Option(help="ISO 8601 period each kept instance stands for.")] = "PT1H",
    tenant: Annotated[str | None, typer.Option(help="NGSILD-Tenant name (default: every tenant).")] = None,
    entity_type: Annotated[
        str | None, typer.Option("--type", help="Entity type: a full IRI, or a name in the default @vocab.")
    ] = None,
) -> None:
    """Shrink old history to one instance per attribute and period (numbers averaged)."""
    from datetime import timedelta

    from rich.progress import Progress

    from cityhub.hub.broker import history, temporal
    from cityhub.kit.db import scope_to_tenant
    from cityhub.kit.time import utcnow

    settings = _settings()
    try:
        length = history.parse_duration(period)
    except HubError as error:
        err.print(f"[bold red]invalid period:[/] {error.detail}")
        raise typer.Exit(2) from None
    iri = entity_type if entity_type is None or ":" in entity_type else DEFAULT_VOCAB + entity_type
    before = utcnow() - timedelta(days=older_than_days)

    async def run(engine: AsyncEngine) -> temporal.Downsampled:
        await _require_schema(engine)
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("downsampling", total=None)
            async with session_factory(engine)() as session, session.begin():
                scope_to_tenant(session, tenant)
                return await temporal.downsample(
                    session,
                    before=before,
                    period=length,
                    entity_type=iri,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )

    outcome = _run(run, settings)
    console.print(
        f"{outcome.entities} entities: {outcome.read} instances before {before:%Y-%m-%d %H:%M} UTC, "
        f"{outcome.kept} kept"
    )


TenantOption = Annotated[
    str | None, typer.Option(help="Tenant (fiware-service); default CITYHUB_DEFAULT_TENANT.")
]


@ingest_app.command("dead-letters")
def ingest_dead_letters(
    tenant: TenantOption = None,
    device: Annotated[str | None, typer.Option(help="Only this device's letters.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only letters of this reason.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
) -> None:
    """Device messages the gateways refused, with their reasons."""
    from cityhub.hub.ingest import letters
    from cityhub.hub.ingest.measures import REASONS
    from cityhub.kit.db import scope_to_tenant

    settings = _settings()
    if reason is not None and reason not in REASONS:
        err.print(f"[bold red]unknown reason:[/] {reason} (one of {', '.join(REASONS)})")
        raise typer.Exit(2)

    async def run(engine: AsyncEngine) -> tuple[list[tuple[str, ...]], int]:
        await _require_schema(engine)
        async with session_factory(engine)() as session:
            scope_to_tenant(session, tenant or settings.default_tenant)
            rows, total = await letters.list_dead_letters(
                session, device_id=device, reason=reason, since=None, limit=limit, offset=0
            )
            return [
                (
                    f"{r.received_at:%Y-%m-%d %H:%M:%S}",
                    r.transport,
                    r.device_id or "-",
                    r.reason,
                    r.detail[:80],
                    r.payload[:40].replace("\n", "⏎"),
                )
                for r in rows
            ], total

    rows, total = _run(run, settings)
    table = Table(title=f"Dead letters ({len(rows)} of {total})")
    for column in ("received (UTC)", "transport", "device", "reason", "detail", "payload"):
        table.add_column(column, no_wrap=column in ("device", "reason"))
    for row in rows:
        table.add_row(*row)
    console.print(table)


@ingest_app.command("counts")
def ingest_counts(tenant: TenantOption = None) -> None:
    """Dead letters counted by device and reason."""
    from cityhub.hub.ingest import letters
    from cityhub.kit.db import scope_to_tenant

    settings = _settings()

    async def run(engine: AsyncEngine) -> list[tuple[str, str, str, str]]:
        await _require_schema(engine)
        async with session_factory(engine)() as session:
            scope_to_tenant(session, tenant or settings.default_tenant)
            found = await letters.dead_letter_counts(session)
            return [(d or "-", r, str(c), f"{last:%Y-%m-%d %H:%M:%S}") for d, r, c, last in found]

    rows = _run(run, settings)
    table = Table(title="Dead letters by device and reason")
    for column in ("device", "reason", "count", "last (UTC)"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@ingest_app.command("csv")
def ingest_csv(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file with a header row.")],
    apikey: Annotated[str, typer.Option(help="API key of the devices' service group (or device).")],
    device: Annotated[
        str | None, typer.Option(help="The device of every row (else a device_id column names it).")
    ] = None,
    time_column: Annotated[str, typer.Option(help="Column with each row's ISO 8601 time.")] = "TimeInstant",
) -> None:
    """Import historical observations: each row is one measure group of a provisioned device
    (columns are object_ids), written like a message from the device; refused rows become dead
    letters (transport csv)."""
    import csv
    import math

    from cityhub.hub.broker.context import ContextStore
    from cityhub.hub.ingest.gateway import Gateway, Limits
    from cityhub.systems.standards.datamodels import default_models

    settings = _settings()

    async def run(engine: AsyncEngine) -> tuple[int, int]:
        await _require_schema(engine)
        gateway = Gateway(
            session_factory(engine),
            default_models(),
            Limits(settings.ingest_max_payload_bytes, math.inf, 1),
            default_tenant=settings.default_tenant,
            batch_size=settings.ingest_batch_size,
        )
        contexts = ContextStore(preload=settings.broker_contexts)
        await gateway.start((await contexts.resolve(None)).expand)
        stored = refused = 0
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                total = sum(1 for _ in handle) - 1
                handle.seek(0)
                reader = csv.DictReader(handle)
                with Progress(
                    TextColumn("importing"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(),
                    console=err,
                ) as progress:
                    task = progress.add_task("rows", total=max(total, 0))
                    pending = []
                    for number, row in enumerate(reader, start=2):
                        device_id = device or row.pop("device_id", None) or ""
                        values = {
                            k: v for k, v in row.items() if k and v not in (None, "") and k != "device_id"
                        }
                        if time_column in values:
                            values["TimeInstant"] = values.pop(time_column)
                        payload = orjson.dumps(values)
                        pending.append(
                            await gateway.receive(
                                "csv", apikey, device_id, payload, fmt="JSON", source=f"{path.name}:{number}"
                            )
                        )
                        if len(pending) >= settings.ingest_batch_size:
                            stored, refused = await _settle(pending, stored, refused)
                            progress.advance(task, len(pending))
                            pending = []
                    stored, refused = await _settle(pending, stored, refused)
                    progress.advance(task, len(pending))
        finally:
            await gateway.stop()
            await contexts.aclose()
        return stored, refused

    stored, refused = _run(run, settings)
    console.print(f"{stored} row(s) stored, {refused} refused (see `cityhub ingest dead-letters --reason …`)")
    if refused:
        raise typer.Exit(1)


async def _settle(pending: list[asyncio.Future[Any]], stored: int, refused: int) -> tuple[int, int]:
    for outcome in await asyncio.gather(*pending):
        if outcome is None:
            stored += 1
        else:
            refused += 1
    return stored, refused


@users_app.command("create-admin")
def users_create_admin(
    username: Annotated[str, typer.Option(help="User name of the administrator.")],
    tenant: Annotated[str | None, typer.Option(help="Home tenant (default: CITYHUB_DEFAULT_TENANT).")] = None,
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Password (prompted)."),
    ] = "",
) -> None:
    """Create a platform administrator and enrol their second factor (TOTP).

    Prints the TOTP secret and otpauth URI once: add them to an authenticator app. Administrator
    permissions need a token obtained with a code from it."""
    from cityhub.hub.tenancy import service as tenancy
    from cityhub.systems.security import credentials
    from cityhub.systems.security import service as security
    from cityhub.systems.security.schemas import UserCreate

    settings = _settings()
    home = tenant or settings.default_tenant

    async def run(engine: AsyncEngine) -> str:
        await _require_schema(engine)
        async with session_factory(engine)() as session, session.begin():
            await tenancy.ensure_tenant_with_ancestors(session, home)
            user = await security.create_user(
                session,
                UserCreate(username=username, password=password, roles=["admin"]),
                tenant=home,
                actor="cli",
                min_length=settings.password_min_length,
                platform_admin=True,
            )
            secret = await security.start_totp(session, user)
            user.totp_enabled = True
            return secret

    try:
        secret = _run(run, settings)
    except HubError as error:
        err.print(f"[bold red]{error.title}:[/] {error.detail}")
        raise typer.Exit(1) from None
    except ValueError as error:
        err.print(f"[bold red]invalid input:[/] {error}")
        raise typer.Exit(1) from None
    console.print(f"created platform administrator {username} in tenant {home}")
    console.print(f"TOTP secret: {secret}")
    console.print(f"TOTP URI: {credentials.totp_uri(secret, username)}", soft_wrap=True)


@users_app.command("unlock")
def users_unlock(username: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Clear a lockout and the failure count."""
    from cityhub.systems.security import audit
    from cityhub.systems.security import service as security

    settings = _settings()

    async def run(engine: AsyncEngine) -> bool:
        await _require_schema(engine)
        async with session_factory(engine)() as session, session.begin():
            user = await security.user_by_name(session, username)
            if user is None:
                return False
            user.failed_logins = 0
            user.locked_until = None
            await audit.append(
                session,
                "security.user_unlocked",
                actor="cli",
                tenant_code=user.tenant_code,
                detail={"user": username},
            )
            return True

    if not _run(run, settings):
        err.print(f"[bold red]no user {username}[/]")
        raise typer.Exit(1)
    console.print(f"unlocked {username}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the audit chain; exit 1 naming the first broken record."""
    from cityhub.systems.security import audit

    settings = _settings()

    async def run(engine: AsyncEngine) -> audit.Verification:
        await _require_schema(engine)
        async with session_factory(engine)() as session:
            return await audit.verify(session)

    result = _run(run, settings)
    if result.intact:
        console.print(
            f"audit chain intact: {result.records} record(s), head {result.head_seq} {result.head_hash}"
        )
        return
    err.print(
        f"[bold red]audit chain broken at record {result.broken_seq}:[/] {result.reason} "
        f"({result.records} record(s) verified before it)"
    )
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (JSON lines).")],
    after: Annotated[int, typer.Option(min=0, help="Only records after this sequence number.")] = 0,
) -> None:
    """Write the audit records as JSON lines for auditors; the last line is the chain's head and
    the verification result."""
    import orjson

    from cityhub.systems.security import audit

    settings = _settings()

    async def run(engine: AsyncEngine) -> tuple[int, audit.Verification]:
        await _require_schema(engine)
        count = 0
        async with session_factory(engine)() as session:
            with output.open("wb") as sink:
                async for line in audit.export(session, after):
                    sink.write(line + b"\n")
                    count += 1
                result = await audit.verify(session)
                sink.write(
                    orjson.dumps(
                        {
                            "head_seq": result.head_seq,
                            "head_hash": result.head_hash,
                            "intact": result.intact,
                            "broken_seq": result.broken_seq,
                        }
                    )
                    + b"\n"
                )
        return count, result

    count, result = _run(run, settings)
    console.print(f"exported {count} record(s) to {output}; chain {'intact' if result.intact else 'BROKEN'}")


@audit_app.command("prune")
def audit_prune() -> None:
    """Remove records older than CITYHUB_AUDIT_RETENTION_DAYS (at least 180), keeping the chain
    verifiable from its new anchor."""
    from cityhub.systems.security import audit

    settings = _settings()

    async def run(engine: AsyncEngine) -> int:
        await _require_schema(engine)
        async with session_factory(engine)() as session, session.begin():
            return await audit.prune(session, retention_days=settings.audit_retention_days)

    console.print(f"pruned {_run(run, settings)} record(s)")


@app.command("backup")
def backup_command(
    directory: Annotated[Path, typer.Option("--dir", help="Folder the backup is written to.")] = Path(
        "var/backups"
    ),
    keep: Annotated[
        int, typer.Option(min=0, help="Keep this many newest backups in the folder (0: keep all).")
    ] = 0,
) -> None:
    """Back up the database: SQLite with its online backup API (the hub may keep running),
    PostgreSQL with pg_dump. Run it from a timer (cron, systemd) for scheduled backups."""
    from cityhub.systems.security import backup

    settings = _settings()
    try:
        path = backup.backup(settings.database_url, directory)
    except backup.BackupError as error:
        err.print(f"[bold red]backup failed:[/] {error}")
        raise typer.Exit(1) from None
    console.print(f"backup written: {path} ({path.stat().st_size} bytes)")
    if keep:
        for old in backup.prune(directory, keep):
            console.print(f"removed old backup {old.name}")


@app.command("restore")
def restore_command(
    source: Annotated[Path, typer.Argument(help="Backup file made by `cityhub backup`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Replace the database without asking.")] = False,
) -> None:
    """Replace the database with a backup. Stop every hub process first."""
    from cityhub.systems.security import backup

    settings = _settings()
    if not yes and not typer.confirm(f"replace the database at {settings.database_url} with {source}?"):
        raise typer.Exit(1)
    try:
        backup.restore(settings.database_url, source)
    except backup.BackupError as error:
        err.print(f"[bold red]restore failed:[/] {error}")
        raise typer.Exit(1) from None
    console.print(f"restored {source.name}")


@history_app.command("apply-retention")
def history_apply_retention() -> None:
    """Apply every tenant's standing retention policies once, with a progress bar per policy."""
    from rich.progress import Progress

    from cityhub.hub.retention.models import RetentionPolicy
    from cityhub.hub.retention.service import Progress as EntityProgress
    from cityhub.hub.retention.tasks import Applied, apply_all

    settings = _settings()

    async def run(engine: AsyncEngine) -> list[Applied]:
        await _require_schema(engine)
        with Progress(console=err, transient=True) as bar:

            def on_policy(number: int, total: int, policy: RetentionPolicy) -> EntityProgress:
                what = policy.entity_type or "every type"
                task = bar.add_task(f"policy {number}/{total}: {policy.tenant_code} · {what}", total=None)
                return lambda done, count: bar.update(task, completed=done, total=count)

            return await apply_all(session_factory(engine), on_policy=on_policy)

    applied = _run(run, settings)
    if not applied:
        console.print("no retention policies")
    for item in applied:
        what = item.entity_type or "every type"
        if item.outcome is None:
            console.print(f"{item.tenant} · {what}: skipped, another process is applying it")
            continue
        outcome = item.outcome
        console.print(
            f"{item.tenant} · {what}: {outcome.entities} entities, {outcome.read} old instances read, "
            f"{outcome.kept} kept, {outcome.dropped} dropped"
        )


def main() -> None:
    logging.captureWarnings(True)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
