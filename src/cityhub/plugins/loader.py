"""Finding applications (entry-point group ``cityhub.apps``), ordering them by dependency, and
running their lifecycle."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.plugins.lifecycle import AppContext, AppStatus, HubApp, Platform
from cityhub.plugins.manifest import Manifest
from cityhub.plugins.registry import Registry

ENTRY_POINT_GROUP = "cityhub.apps"
log = logging.getLogger(__name__)


class AppLoadError(Exception):
    pass


@dataclass
class Discovered:
    """An installed application as found through its entry point, before it runs."""

    entry_point: str
    app_class: type[HubApp] | None
    manifest: Manifest | None
    error: str | None = None
    disabled: bool = False

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else self.entry_point


def _load(entry: EntryPoint) -> Discovered:
    try:
        target = entry.load()
    except Exception as error:
        return Discovered(entry.name, None, None, f"import failed: {error!r}")
    if not (isinstance(target, type) and issubclass(target, HubApp)):
        return Discovered(entry.name, None, None, f"{entry.value} is not a HubApp subclass")
    manifest = getattr(target, "manifest", None)
    if not isinstance(manifest, Manifest):
        return Discovered(entry.name, target, None, "class has no Manifest")
    if manifest.name != entry.name:
        return Discovered(
            entry.name, target, manifest, f"entry point {entry.name!r} differs from manifest name"
        )
    return Discovered(entry.name, target, manifest)


def discover(disabled: list[str] | tuple[str, ...] = ()) -> list[Discovered]:
    """Every installed app, valid or not, in dependency order (invalid ones last)."""
    found = [_load(entry) for entry in entry_points(group=ENTRY_POINT_GROUP)]
    for item in found:
        item.disabled = item.name in disabled
    return order(found)


def order(found: list[Discovered]) -> list[Discovered]:
    """Topological order by ``requires``; an app whose requirement is missing, disabled, invalid or
    part of a cycle gets an error instead of a place."""
    by_name = {d.name: d for d in found if d.error is None and d.manifest is not None}
    ordered: list[Discovered] = []
    visiting: set[str] = set()
    placed: set[str] = set()

    def visit(item: Discovered, chain: tuple[str, ...]) -> bool:
        if item.name in placed:
            return True
        if item.name in visiting:
            item.error = "dependency cycle: " + " -> ".join((*chain, item.name))
            return False
        assert item.manifest is not None
        visiting.add(item.name)
        for required in item.manifest.requires:
            dependency = by_name.get(required)
            if dependency is None:
                item.error = f"requires {required!r}, which is not installed or not valid"
            elif dependency.disabled and not item.disabled:
                item.error = f"requires {required!r}, which is disabled"
            elif not visit(dependency, (*chain, item.name)):
                item.error = item.error or f"requires {required!r}, which cannot load"
            if item.error:
                break
        visiting.discard(item.name)
        if item.error:
            return False
        placed.add(item.name)
        ordered.append(item)
        return True

    for item in sorted(by_name.values(), key=lambda d: d.name):
        visit(item, ())
    return ordered + [d for d in found if d not in ordered]


@dataclass
class AppRunner:
    """Sets up the enabled, valid apps in order and tears them down in reverse."""

    registry: Registry
    sessions: async_sessionmaker[AsyncSession]
    platform: Platform
    teardown_timeout: float = 10.0
    statuses: list[AppStatus] = field(default_factory=list)
    _running: list[HubApp] = field(default_factory=list)

    async def setup(self, found: list[Discovered]) -> None:
        failed: set[str] = set()
        for item in found:
            manifest = item.manifest
            if manifest is None:
                self.statuses.append(AppStatus(_placeholder(item.entry_point), "invalid", item.error))
                continue
            if item.disabled:
                self.statuses.append(AppStatus(manifest, "disabled"))
                continue
            blocked = [name for name in manifest.requires if name in failed]
            if item.error or blocked or item.app_class is None:
                error = item.error or f"requires {blocked[0]!r}, which failed"
                self.statuses.append(AppStatus(manifest, "invalid", error))
                failed.add(manifest.name)
                continue
            try:
                settings = (
                    manifest.settings_model(_env_prefix=manifest.settings_prefix())
                    if (manifest.settings_model)
                    else None
                )
                app = item.app_class()
                context = AppContext(
                    manifest=manifest,
                    registry=self.registry.for_app(manifest.name),
                    settings=settings,
                    sessions=self.sessions,
                    platform=self.platform,
                    log=logging.getLogger(f"cityhub.apps.{manifest.name}"),
                )
                await app.setup(context)
            except Exception as error:
                log.exception("app %s failed to set up", manifest.name)
                self.registry.discard(manifest.name)
                self.statuses.append(AppStatus(manifest, "failed", repr(error)))
                failed.add(manifest.name)
                continue
            self._running.append(app)
            self.statuses.append(AppStatus(manifest, "running"))
            log.info("app %s %s set up", manifest.name, manifest.version)
        self.registry.close()

    async def teardown(self) -> None:
        while self._running:
            app = self._running.pop()
            try:
                await asyncio.wait_for(app.teardown(), timeout=self.teardown_timeout)
            except Exception:
                log.exception("app %s failed to tear down", app.manifest.name)


def _placeholder(entry_point: str) -> Manifest:
    safe = "".join(c if c.isalnum() else "_" for c in entry_point.lower()) or "unknown"
    if not safe[0].isalpha():
        safe = "x" + safe
    return Manifest(name=safe[:40].ljust(2, "_"), version="0.0", title_zh=entry_point, title_en=entry_point)
