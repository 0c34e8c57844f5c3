"""The rule engine: from the broker's entity changes to alerts.

It consumes :class:`EntitiesChanged` as a shared bus consumer (in a cluster each change is
evaluated by one hub process). Each tenant's enabled rules are compiled once into closures
(:mod:`cityhub.hub.rules.conditions`) and indexed by entity type and by the attributes they read,
so a change evaluates only the rules it can affect; the index is rebuilt when the tenant's rules
change (a count and latest modification read with each event tell).

Per (rule, entity) state (:class:`RuleState`) holds a ``for`` window under way and whether the
rule is firing; it is written only when it changes, so a restart forgets nothing. Windows that
complete without a further change, silent entities (``absence``) and escalation of
unacknowledged alerts are the work of :meth:`RuleEngine.tick`, run periodically.

A rule whose evaluation raises is switched off with the reason stored (its status shows it) and
logged; the other rules of the change are evaluated as usual.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.bus import Event
from cityhub.bus.inbox import first_delivery
from cityhub.hub.broker import service as broker
from cityhub.hub.broker.events import EntitiesChanged
from cityhub.hub.broker.history import parse_duration
from cityhub.hub.broker.models import BrokerEntity, BrokerEntityType
from cityhub.hub.rules import service
from cityhub.hub.rules.conditions import Attrs, Check, Expand, compile_condition, value_of
from cityhub.hub.rules.models import RAISED, Alert, Rule, RuleState
from cityhub.kit.db import ALL_TENANTS, scope_to_tenant
from cityhub.kit.time import parse_datetime, utcnow

log = logging.getLogger(__name__)

CONSUMER = "rules-engine"
_NOTHING: Attrs = {}


@dataclass
class CompiledRule:
    rule_id: uuid.UUID
    name: str
    definition: dict[str, Any]
    entity_type: str  # expanded IRI
    ids: frozenset[str] | None
    check: Check | None  # None: an absence rule
    reads: frozenset[str]
    edge: bool
    hold: timedelta | None  # "for"
    absence: timedelta | None
    auto_resolve: bool
    attribute: str | None  # short name of the first attribute read, for messages
    attribute_iri: str | None


def compile_rule(rule_id: uuid.UUID, definition: dict[str, Any], expand: Expand) -> CompiledRule:
    """Compile a checked definition: names expanded, condition built, durations parsed, once."""
    check: Check | None = None
    reads: frozenset[str] = frozenset()
    edge = False
    first_iri: str | None = None
    if "when" in definition:
        compiled = compile_condition(definition["when"], expand)
        check, reads, edge, first_iri = (
            compiled.check,
            frozenset(compiled.reads),
            compiled.edge,
            compiled.first_attr,
        )
    attribute = None
    if "when" in definition:
        attribute = _first_name(definition["when"])
    ids = definition.get("entity_ids")
    return CompiledRule(
        rule_id=rule_id,
        name=definition.get("name") or definition["entity_type"],
        definition=definition,
        entity_type=expand(definition["entity_type"]),
        ids=frozenset(ids) if ids else None,
        check=check,
        reads=reads,
        edge=edge,
        hold=parse_duration(definition["for"]) if "for" in definition else None,
        absence=parse_duration(definition["absence"]) if "absence" in definition else None,
        auto_resolve=definition.get("auto_resolve", True),
        attribute=attribute,
        attribute_iri=first_iri,
    )


def _first_name(cond: dict[str, Any]) -> str | None:
    for key in ("attr", "path", "rate"):
        if key in cond:
            name: str = cond[key]
            return name
    if "geofence" in cond:
        return str(cond.get("attr", "location"))
    for key in ("all", "any"):
        if key in cond:
            for member in cond[key]:
                found = _first_name(member)
                if found:
                    return found
    if "not" in cond:
        return _first_name(cond["not"])
    return None


@dataclass
class _TypeRules:
    by_attr: dict[str, list[CompiledRule]] = field(default_factory=dict)
    on_any: list[CompiledRule] = field(default_factory=list)  # absence rules: any change counts


class RuleIndex:
    """A tenant's enabled rules by entity type IRI, then by attribute IRI read."""

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self.rules: dict[uuid.UUID, CompiledRule] = {}
        self.by_type: dict[str, _TypeRules] = {}
        for rule in rules:
            self.rules[rule.rule_id] = rule
            bucket = self.by_type.setdefault(rule.entity_type, _TypeRules())
            if rule.check is None:
                bucket.on_any.append(rule)
            for iri in rule.reads:
                bucket.by_attr.setdefault(iri, []).append(rule)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def candidates(self, change: dict[str, Any]) -> list[CompiledRule]:
        found: list[CompiledRule] = []
        for entity_type in change["types"]:
            bucket = self.by_type.get(entity_type)
            if bucket is None:
                continue
            found.extend(bucket.on_any)
            if change["op"] == "create":
                touched: Iterable[str] = change["entity"]["attrs"]
            else:
                touched = (*change["created"], *change["updated"], *change["deleted"])
            by_attr = bucket.by_attr
            seen: set[uuid.UUID] = set()
            for iri in touched:
                for rule in by_attr.get(iri, ()):
                    if rule.rule_id not in seen:
                        seen.add(rule.rule_id)
                        found.append(rule)
        return found


@dataclass
class Outcome:
    """One evaluation: the rule's condition held (``truth``) for an entity at ``at``."""

    rule: CompiledRule
    entity_id: str
    truth: bool
    at: datetime
    entity: dict[str, Any]


def evaluate(
    index: RuleIndex, changes: Sequence[dict[str, Any]]
) -> tuple[list[Outcome], dict[uuid.UUID, str]]:
    """Evaluate the rules each change can affect; failures by rule id (with the error's text)."""
    outcomes: list[Outcome] = []
    failed: dict[uuid.UUID, str] = {}
    for change in changes:
        entity = change["entity"]
        if entity is None:
            continue  # deleted
        candidates = index.candidates(change)
        if not candidates:
            continue
        entity_id = change["id"]
        attrs = entity["attrs"]
        previous = change.get("previous") or _NOTHING
        at = parse_datetime(change["at"])
        for rule in candidates:
            if rule.ids is not None and entity_id not in rule.ids:
                continue
            if rule.rule_id in failed:
                continue
            if rule.check is None:
                outcomes.append(Outcome(rule, entity_id, True, at, entity))
                continue
            try:
                truth = rule.check(attrs, previous)
            except Exception as error:
                failed[rule.rule_id] = f"{type(error).__name__}: {error}"
                continue
            outcomes.append(Outcome(rule, entity_id, truth, at, entity))
    return outcomes, failed


def _window_over(state: RuleState, rule: CompiledRule, now: datetime) -> bool:
    return state.since is not None and rule.hold is not None and state.since + rule.hold <= now


class RuleEngine:
    """Rule evaluation for one hub process; see the module docstring."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        default_tenant: str,
        escalation_minutes: dict[str, float] | None = None,
    ) -> None:
        self.sessions = sessions
        self.default_tenant = default_tenant
        self.escalation_minutes = escalation_minutes or {}
        self.expand: Expand = lambda name: name
        self._indexes: dict[str, tuple[tuple[int, datetime | None], RuleIndex]] = {}
        self.evaluations = 0
        self.raised = 0

    def start(self, expand: Expand) -> None:
        """``expand`` turns short names into IRIs (the NGSI-LD core @context's)."""
        self.expand = expand

    def compile(self, rule_id: uuid.UUID, definition: dict[str, Any]) -> CompiledRule:
        return compile_rule(rule_id, definition, self.expand)

    async def index(self, session: AsyncSession, tenant: str) -> RuleIndex:
        """The tenant's enabled rules, compiled (again only if they changed)."""
        mark = await service.fingerprint(session)
        cached = self._indexes.get(tenant)
        if cached is not None and cached[0] == mark:
            return cached[1]
        compiled = []
        for rule in await session.scalars(select(Rule).where(Rule.enabled.is_(True))):
            try:
                compiled.append(self.compile(rule.rule_id, rule.definition))
            except Exception as error:  # a definition valid when stored, no longer compilable
                log.error("rule %s (%s) does not compile: %s; disabled", rule.rule_id, tenant, error)
                await service.disable_for_error(session, rule.rule_id, f"{type(error).__name__}: {error}")
                mark = await service.fingerprint(session)
        index = RuleIndex(compiled)
        self._indexes[tenant] = (mark, index)
        return index

    async def on_changes(self, event: Event) -> None:
        assert isinstance(event, EntitiesChanged)
        tenant = event.tenant or self.default_tenant
        cached = self._indexes.get(tenant)
        if cached is not None and not cached[1]:
            # a tenant known to have no enabled rules (bulk writes, mostly): one read outside any
            # transaction (one round trip, not BEGIN, the read and COMMIT) says whether that holds
            async with self.sessions() as session:
                await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                scope_to_tenant(session, tenant)
                if await service.fingerprint(session) == cached[0]:
                    return
        async with self.sessions() as session, session.begin():
            scope_to_tenant(session, tenant)
            index = await self.index(session, tenant)
            if not index:
                return
            outcomes, failed = evaluate(index, event.changes)
            # a change no rule concerns (most of them) costs no receipt
            if not (outcomes or failed) or not await first_delivery(session, CONSUMER, event):
                return
            self.evaluations += len(outcomes)
            for rule_id, reason in failed.items():
                log.error("rule %s of tenant %s failed and is disabled: %s", rule_id, tenant, reason)
                await service.disable_for_error(session, rule_id, reason)
            await self.apply(session, outcomes)

    async def apply(self, session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
        """Turn evaluations into state changes and alerts (in the caller's transaction)."""
        if not outcomes:
            return
        known = await service.states(session, [(o.rule.rule_id, o.entity_id) for o in outcomes])
        for outcome in outcomes:
            rule = outcome.rule
            key = (rule.rule_id, outcome.entity_id)
            state = known.get(key)
            if rule.check is None:  # absence rule: the entity spoke, unless this is news of
                # the last change before the silence (an event delivered late): not newer than it
                if state is not None and state.firing and (state.since is None or outcome.at > state.since):
                    state.firing = False
                    state.updated_at = utcnow()
                    await self._clear(session, rule, outcome.entity_id, outcome.at)
                continue
            if rule.edge:
                if outcome.truth:
                    await self._fire(session, rule, outcome.entity_id, outcome.entity, outcome.at)
                continue
            if outcome.truth:
                if state is None:
                    state = RuleState(rule_id=rule.rule_id, entity_id=outcome.entity_id, since=outcome.at)
                    state.firing = False
                    session.add(state)
                    known[key] = state
                elif state.since is None:
                    state.since = outcome.at
                    state.updated_at = utcnow()
                since = state.since or outcome.at
                if rule.hold is None or outcome.at - since >= rule.hold:
                    await self._fire(session, rule, outcome.entity_id, outcome.entity, outcome.at)
                    if not state.firing:
                        state.firing = True
                        state.updated_at = utcnow()
            elif state is not None and (state.since is not None or state.firing):
                was_firing = state.firing
                state.since = None
                state.firing = False
                state.updated_at = utcnow()
                if was_firing:
                    await self._clear(session, rule, outcome.entity_id, outcome.at)

    async def _fire(
        self, session: AsyncSession, rule: CompiledRule, entity_id: str, entity: dict[str, Any], at: datetime
    ) -> None:
        firing = service.Firing(
            rule_id=rule.rule_id,
            name=rule.name,
            definition=rule.definition,
            entity_id=entity_id,
            entity_type=rule.definition["entity_type"],
            entity=entity,
            at=at,
            attribute=rule.attribute,
            value=value_of(entity["attrs"], rule.attribute_iri),
        )
        if await service.fire(session, firing, self.expand) is not None:
            self.raised += 1

    async def _clear(self, session: AsyncSession, rule: CompiledRule, entity_id: str, at: datetime) -> None:
        if not rule.auto_resolve:
            return
        key = service.dedup_key(rule.rule_id, entity_id)
        alert = await service.open_alert(session, key, for_update=True)
        if alert is not None:
            await service.resolve(
                session, alert, None, "the condition cleared", self.expand, automatic=True, at=at
            )

    # -- periodic work -----------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> None:
        """Complete ``for`` windows nothing changed since, fire absence rules for silent
        entities, escalate alerts left unacknowledged."""
        now = now or utcnow()
        async with self.sessions() as session:
            tenants = list(
                await session.scalars(
                    select(Rule.tenant_code)
                    .where(Rule.enabled.is_(True))
                    .distinct()
                    .execution_options(**{ALL_TENANTS: True})
                )
            )
        for tenant in tenants:
            async with self.sessions() as session, session.begin():
                scope_to_tenant(session, tenant)
                index = await self.index(session, tenant)
                await self._windows(session, index, now)
                await self._absences(session, index, now)
        await self._escalate(now)

    async def _windows(self, session: AsyncSession, index: RuleIndex, now: datetime) -> None:
        held = [rule for rule in index.rules.values() if rule.hold is not None and not rule.edge]
        if not held:
            return
        rows = await session.scalars(
            select(RuleState).where(
                RuleState.rule_id.in_([r.rule_id for r in held]),
                RuleState.firing.is_(False),
                RuleState.since.is_not(None),
            )
        )
        due = [row for row in rows if _window_over(row, index.rules[row.rule_id], now)]
        if not due:
            return
        entities = await broker.stored_entities(session, list({row.entity_id for row in due}))
        for row in due:
            rule = index.rules[row.rule_id]
            entity = entities.get(row.entity_id)
            if entity is None or rule.check is None:
                continue
            try:
                truth = rule.check(entity["attrs"], _NOTHING)
            except Exception as error:
                await service.disable_for_error(session, rule.rule_id, f"{type(error).__name__}: {error}")
                continue
            if not truth:
                row.since = None
                row.updated_at = now
                continue
            assert row.since is not None
            assert rule.hold is not None
            await self._fire(session, rule, row.entity_id, entity, row.since + rule.hold)
            row.firing = True
            row.updated_at = now

    async def _absences(self, session: AsyncSession, index: RuleIndex, now: datetime) -> None:
        for rule in index.rules.values():
            if rule.absence is None:
                continue
            typed = select(BrokerEntityType.entity_id).where(BrokerEntityType.type == rule.entity_type)
            statement = select(BrokerEntity.entity_id, BrokerEntity.modified_at, BrokerEntity.data).where(
                BrokerEntity.entity_id.in_(typed), BrokerEntity.modified_at < now - rule.absence
            )
            if rule.ids is not None:
                statement = statement.where(BrokerEntity.entity_id.in_(rule.ids))
            silent = (await session.execute(statement.limit(1000))).all()
            if not silent:
                continue
            known = await service.states(session, [(rule.rule_id, row[0]) for row in silent])
            for entity_id, modified_at, data in silent:
                state = known.get((rule.rule_id, entity_id))
                if state is not None and state.firing:
                    continue
                if state is None:
                    state = RuleState(rule_id=rule.rule_id, entity_id=entity_id, since=modified_at)
                    session.add(state)
                state.since = modified_at  # the last change before the silence
                state.firing = True
                state.updated_at = now
                firing = service.Firing(
                    rule_id=rule.rule_id,
                    name=rule.name,
                    definition=rule.definition,
                    entity_id=entity_id,
                    entity_type=rule.definition["entity_type"],
                    entity=data,
                    at=modified_at + rule.absence,
                    attribute="modifiedAt",
                    value=data.get("modifiedAt"),
                )
                if await service.fire(session, firing, self.expand) is not None:
                    self.raised += 1

    async def _escalate(self, now: datetime) -> None:
        minutes = self.escalation_minutes
        if not any(value > 0 for value in minutes.values()):
            return
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Alert)
                .where(Alert.state == RAISED, Alert.escalated_at.is_(None))
                .execution_options(**{ALL_TENANTS: True})
            )
            due = [
                (alert.tenant_code, alert.alert_id) for alert in rows if service.overdue(alert, minutes, now)
            ]
        for tenant, alert_id in due:
            async with self.sessions() as session, session.begin():
                scope_to_tenant(session, tenant)
                alert = await service.get_alert(session, str(alert_id))
                if alert.state == RAISED and alert.escalated_at is None:
                    await service.escalate(session, alert, self.expand)
