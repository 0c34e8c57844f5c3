"""The registry: what applications contribute to the hub.

Applications register during their ``setup``; the hub closes the registry once every app is set up,
after which it is read-only (a late registration raises :class:`RegistryClosed`). Everything an app
adds is recorded with the app's name, so ``/api/v1/apps`` can say who contributed what.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.bus import Event, Handler
from cityhub.hub.dispatch.casetypes import ACTION_EFFECTS, CaseAction, CaseType, transitions_of
from cityhub.hub.rules.conditions import InvalidRule, check_definition
from cityhub.plugins.indicators import Indicator

__all__ = [
    "ACTION_EFFECTS",
    "AppRegistry",
    "CaseAction",
    "CaseType",
    "Consumer",
    "DuplicateRegistration",
    "EntityType",
    "IndicatorProvider",
    "IndicatorValue",
    "Registry",
    "RegistryClosed",
    "RouterEntry",
    "RuleTemplate",
    "transitions_of",
]


class RegistryClosed(RuntimeError):
    """Raised on registration after start-up: the hub's shape is fixed once it serves."""


class DuplicateRegistration(ValueError):
    pass


@dataclass(frozen=True)
class IndicatorValue:
    """One reading of an evaluation indicator for a tenant: a value with its unit and meaning."""

    indicator: Indicator
    value: float
    unit: str
    label_zh: str
    label_en: str


IndicatorProvider = Callable[[AsyncSession, str], Awaitable[IndicatorValue]]


@dataclass(frozen=True)
class RouterEntry:
    app: str
    router: APIRouter
    prefix: str
    #: route paths under ``prefix`` that take bodies larger than the hub's CITYHUB_MAX_BODY_BYTES,
    #: with their own limit (an upload endpoint that checks the size itself)
    body_limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EntityType:
    """An NGSI-LD entity type an application owns, with an optional JSON Schema for validation."""

    app: str
    name: str
    title_zh: str
    title_en: str
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class RuleTemplate:
    """A parameterised alert rule an application offers (its ``definition`` is the rule-engine JSON)."""

    app: str
    key: str
    title_zh: str
    title_en: str
    definition: dict[str, Any]


@dataclass(frozen=True)
class Consumer:
    app: str
    name: str
    event_types: tuple[type[Event], ...]
    handler: Handler
    shared: bool


@dataclass
class Registry:
    routers: list[RouterEntry] = field(default_factory=list)
    entity_types: dict[str, EntityType] = field(default_factory=dict)
    rule_templates: dict[str, RuleTemplate] = field(default_factory=dict)
    case_types: dict[str, CaseType] = field(default_factory=dict)
    indicator_providers: dict[Indicator, list[tuple[str, IndicatorProvider]]] = field(default_factory=dict)
    consumers: list[Consumer] = field(default_factory=list)
    closed: bool = False

    def close(self) -> None:
        self.closed = True

    def discard(self, app: str) -> None:
        """Forget everything ``app`` registered (its setup failed half-way)."""
        self.routers = [entry for entry in self.routers if entry.app != app]
        self.consumers = [consumer for consumer in self.consumers if consumer.app != app]
        for table in (self.entity_types, self.rule_templates, self.case_types):
            for key in [key for key, item in table.items() if item.app == app]:
                del table[key]
        for indicator in list(self.indicator_providers):
            kept = [(owner, fn) for owner, fn in self.indicator_providers[indicator] if owner != app]
            if kept:
                self.indicator_providers[indicator] = kept
            else:
                del self.indicator_providers[indicator]

    def for_app(self, app: str) -> AppRegistry:
        return AppRegistry(self, app)

    def contributions(self, app: str) -> dict[str, list[str]]:
        return {
            "routers": [entry.prefix for entry in self.routers if entry.app == app],
            "entity_types": sorted(n for n, t in self.entity_types.items() if t.app == app),
            "rule_templates": sorted(k for k, t in self.rule_templates.items() if t.app == app),
            "case_types": sorted(k for k, t in self.case_types.items() if t.app == app),
            "indicators": sorted(
                i.value
                for i, providers in self.indicator_providers.items()
                if any(a == app for a, _ in providers)
            ),
            "consumers": [c.name for c in self.consumers if c.app == app],
        }


class AppRegistry:
    """The registry as one application sees it: every entry is stamped with the app's name."""

    def __init__(self, registry: Registry, app: str) -> None:
        self._registry = registry
        self.app = app

    def _check_open(self) -> None:
        if self._registry.closed:
            raise RegistryClosed(f"app {self.app!r} registered after start-up; register in setup()")

    def add_router(
        self, router: APIRouter, *, prefix: str, body_limits: Mapping[str, int] | None = None
    ) -> None:
        """Mount ``router`` under ``prefix`` (e.g. ``/api/v1/system``). ``body_limits`` names the
        router's paths (e.g. ``{"/network": 512 * 2**20}``) whose requests may exceed the hub's body
        limit, up to their own; the endpoint then reads the body with that limit in mind."""
        self._check_open()
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError("prefix must start with '/' and not end with one")
        if any(entry.prefix == prefix for entry in self._registry.routers):
            raise DuplicateRegistration(f"prefix {prefix} already mounted")
        limits = dict(body_limits or {})
        if any(not path.startswith("/") or size <= 0 for path, size in limits.items()):
            raise ValueError("body_limits maps paths starting with '/' to positive sizes")
        self._registry.routers.append(RouterEntry(self.app, router, prefix, limits))

    def add_entity_type(
        self, name: str, *, title_zh: str, title_en: str, schema: dict[str, Any] | None = None
    ) -> None:
        self._check_open()
        if name in self._registry.entity_types:
            raise DuplicateRegistration(f"entity type {name} already registered")
        self._registry.entity_types[name] = EntityType(self.app, name, title_zh, title_en, schema)

    def add_rule_template(
        self, key: str, *, title_zh: str, title_en: str, definition: dict[str, Any]
    ) -> None:
        """A rule template: a rule definition whose values may be ``{"param": name}``, with the
        parameters declared in its ``params`` (see docs/rules.md). It is checked here: a template
        that cannot make a valid rule raises ValueError saying what is wrong."""
        self._check_open()
        if key in self._registry.rule_templates:
            raise DuplicateRegistration(f"rule template {key} already registered")
        try:
            check_definition(definition, template=True)
        except InvalidRule as error:
            raise ValueError(f"rule template {key}: {error.detail}") from None
        self._registry.rule_templates[key] = RuleTemplate(self.app, key, title_zh, title_en, definition)

    def add_case_type(
        self,
        key: str,
        *,
        title_zh: str,
        title_en: str,
        initial: str,
        transitions: dict[str, Sequence[str]] | None = None,
        actions: Sequence[CaseAction] = (),
        terminal: Sequence[str] = (),
        stages: dict[str, str] | None = None,
        state_titles: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        """Register a case workflow: give ``transitions``, or ``actions`` (the transitions follow
        from them), or both (each action must be one of the transitions)."""
        self._check_open()
        if key in self._registry.case_types:
            raise DuplicateRegistration(f"case type {key} already registered")
        if transitions is None and not actions:
            raise ValueError(f"case type {key}: give its transitions or its actions")
        frozen = (
            {state: tuple(targets) for state, targets in transitions.items()}
            if transitions is not None
            else transitions_of(actions)
        )
        self._registry.case_types[key] = CaseType(
            self.app,
            key,
            title_zh,
            title_en,
            initial,
            frozen,
            tuple(actions),
            tuple(terminal),
            dict(stages or {}),
            dict(state_titles or {}),
        )

    def add_indicator_provider(self, indicator: Indicator, provider: IndicatorProvider) -> None:
        self._check_open()
        self._registry.indicator_providers.setdefault(indicator, []).append((self.app, provider))

    def subscribe(
        self,
        name: str,
        event_types: Sequence[type[Event]],
        handler: Handler,
        *,
        shared: bool = True,
    ) -> None:
        """Consume events; ``shared`` as in :class:`cityhub.bus.Subscription`. The consumer is named
        ``<app>-<name>`` on the bus."""
        self._check_open()
        full = f"{self.app}-{name}"
        if any(c.name == full for c in self._registry.consumers):
            raise DuplicateRegistration(f"consumer {full} already registered")
        self._registry.consumers.append(Consumer(self.app, full, tuple(event_types), handler, shared))
