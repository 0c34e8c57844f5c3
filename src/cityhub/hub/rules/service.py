"""Rules and alerts over storage. Functions take a session scoped to the rule's tenant (the
broker tenant name) and never commit.

**Alert lifecycle**: raised → acknowledged → resolved (raised → resolved too). The dedup key is
the rule id and the entity id: while an alert of a key is open (raised or acknowledged), a new
firing bumps its ``count`` and ``last_seen_at``. After it is resolved, firings within the rule's
``suppress`` window raise nothing; they are counted on the rule (``suppressed_count``).

Each alert is also the NGSI-LD entity ``urn:ngsi-ld:Alert:<id>`` (type ``Alert``, after the Smart
Data Models one), written through the broker's write path in the same transaction as the row, so
subscribers and the cockpit see alerts as they see any entity. Channels are told after commit:
the alert's notices are bus events (:class:`AlertNotice`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.bus import Event, enqueue
from cityhub.hub.broker import changes
from cityhub.hub.broker import service as broker
from cityhub.hub.broker.history import parse_duration
from cityhub.hub.rules.conditions import SEVERITIES, Expand, check_definition, instantiate
from cityhub.hub.rules.models import (
    ACKNOWLEDGED,
    NEXT_STATES,
    RAISED,
    RESOLVED,
    Alert,
    AlertDelivery,
    AlertEvent,
    Rule,
    RuleState,
)
from cityhub.hub.rules.schemas import AlertQuery
from cityhub.kit.db import locked
from cityhub.kit.errors import HubError, NotFound
from cityhub.kit.time import isoformat, utcnow

#: How the entity of an alert is named.
ALERT_ENTITY_PREFIX = "urn:ngsi-ld:Alert:"
OPEN_STATES = (RAISED, ACKNOWLEDGED)


class InvalidTransition(HubError):
    status = 409
    type = "urn:cityhub:problem:invalid-transition"
    title = "Invalid alert state transition"


class AlertNotice(Event):
    """Something channels are told of: an alert ``raised``, ``escalated`` or ``resolved``."""

    event_type = "rules.alert_notice"

    alert_id: uuid.UUID
    notice: str


#: Called in the raising transaction with the session (scoped to the alert's tenant) and the new
#: alert, after its row and entity are written: the case workflow opens a case here when the
#: alert's ``open_case`` asks for one (and sets ``alert.case_id``). A hook that raises rolls the
#: raising back.
AlertRaised = Callable[[AsyncSession, Alert], Awaitable[None]]
on_alert_raised: list[AlertRaised] = []


# -- rules --------------------------------------------------------------------------------------------


def _key(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"no {what} {text}") from None


async def create_rule(
    session: AsyncSession,
    definition: dict[str, Any],
    *,
    enabled: bool = False,
    template_key: str | None = None,
    params: dict[str, Any] | None = None,
) -> Rule:
    check_definition(definition)
    rule = Rule(
        name=definition.get("name") or definition["entity_type"],
        entity_type=definition["entity_type"],
        definition=definition,
        template_key=template_key,
        params=params,
        enabled=enabled,
        fire_count=0,
        suppressed_count=0,
    )
    session.add(rule)
    await session.flush()
    return rule


def from_template(
    template: dict[str, Any], params: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """A rule definition from a template, its parameters and members given instead of the
    template's (name, entity_ids, channels, severity…)."""
    rule = instantiate(template, params) | overrides
    check_definition(rule)
    return rule


async def list_rules(session: AsyncSession) -> list[Rule]:
    return list(await session.scalars(select(Rule).order_by(Rule.created_at, Rule.rule_id)))


async def get_rule(session: AsyncSession, rule_id: str) -> Rule:
    found = (await session.scalars(select(Rule).where(Rule.rule_id == _key(rule_id, "rule")))).first()
    if found is None:
        raise NotFound(f"no rule {rule_id}")
    return found


async def replace_rule(session: AsyncSession, rule_id: str, definition: dict[str, Any]) -> Rule:
    check_definition(definition)
    rule = await get_rule(session, rule_id)
    rule.definition = definition
    rule.name = definition.get("name") or definition["entity_type"]
    rule.entity_type = definition["entity_type"]
    rule.modified_at = utcnow()
    await session.execute(delete(RuleState).where(RuleState.rule_id == rule.rule_id))
    await session.flush()
    return rule


async def delete_rule(session: AsyncSession, rule_id: str) -> None:
    rule = await get_rule(session, rule_id)
    await session.execute(delete(RuleState).where(RuleState.rule_id == rule.rule_id))
    await session.delete(rule)


async def set_enabled(session: AsyncSession, rule_id: str, enabled: bool) -> Rule:
    rule = await get_rule(session, rule_id)
    rule.enabled = enabled
    if enabled:
        rule.disabled_reason = None
    else:
        rule.disabled_reason = "disabled through the API"
        await session.execute(delete(RuleState).where(RuleState.rule_id == rule.rule_id))
    rule.modified_at = utcnow()
    await session.flush()
    return rule


async def disable_for_error(session: AsyncSession, rule_id: uuid.UUID, reason: str) -> None:
    """Switch a rule off because evaluating it failed; the reason is shown in its status."""
    now = utcnow()
    await session.execute(
        update(Rule)
        .where(Rule.rule_id == rule_id)
        .values(
            enabled=False,
            disabled_reason=f"evaluation failed: {reason}",
            last_error=reason,
            last_error_at=now,
            modified_at=now,
        )
    )


async def fingerprint(session: AsyncSession) -> tuple[int, datetime | None]:
    """What changes whenever the tenant's rules do (created, changed, switched, deleted)."""
    row = (await session.execute(select(func.count(), func.max(Rule.modified_at)).select_from(Rule))).one()
    return int(row[0]), row[1]


async def open_counts(session: AsyncSession, rule_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not rule_ids:
        return {}
    rows = await session.execute(
        select(Alert.rule_id, func.count())
        .where(Alert.rule_id.in_(rule_ids), Alert.state.in_(OPEN_STATES))
        .group_by(Alert.rule_id)
    )
    return {rule_id: count for rule_id, count in rows.all() if rule_id is not None}


# -- alerts -----------------------------------------------------------------------------------------------


@dataclass
class Firing:
    """A rule fired for an entity: what an alert needs."""

    rule_id: uuid.UUID
    name: str
    definition: dict[str, Any]
    entity_id: str
    entity_type: str
    entity: dict[str, Any] | None  # stored (expanded) entity, for its location
    at: datetime
    attribute: str | None  # short name
    value: Any


def dedup_key(rule_id: uuid.UUID, entity_id: str) -> str:
    return f"{rule_id}|{entity_id}"


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _message(template: str | None, default: str, firing: Firing) -> str:
    values = _Blank(
        entity=firing.entity_id, attr=firing.attribute or "", value=firing.value, rule=firing.name
    )
    try:
        return (template or default).format_map(values)
    except (ValueError, IndexError, AttributeError):
        return template or default


async def open_alert(session: AsyncSession, key: str, *, for_update: bool = False) -> Alert | None:
    """The open alert of ``key``, if any. ``for_update``: locked, as for :func:`get_alert`."""
    statement = select(Alert).where(Alert.dedup_key == key, Alert.state.in_(OPEN_STATES))
    statement = statement.order_by(Alert.raised_at.desc()).limit(1)
    if for_update:
        statement = await locked(session, Alert, statement)
    return (await session.scalars(statement)).first()


async def fire(session: AsyncSession, firing: Firing, expand: Expand) -> Alert | None:
    """The rule fired: bump the open alert of its key, or raise one unless suppressed. Returns the
    alert raised, None otherwise."""
    key = dedup_key(firing.rule_id, firing.entity_id)
    found = await open_alert(session, key)
    if found is not None:
        found.count += 1
        found.last_seen_at = max(found.last_seen_at, firing.at)
        found.reading = {"value": firing.value}
        return None
    suppress = firing.definition.get("suppress")
    if suppress:
        window = parse_duration(suppress)
        last = (
            await session.scalars(
                select(Alert.resolved_at)
                .where(Alert.dedup_key == key, Alert.state == RESOLVED)
                .order_by(Alert.resolved_at.desc())
                .limit(1)
            )
        ).first()
        if last is not None and firing.at < last + window:
            await session.execute(
                update(Rule)
                .where(Rule.rule_id == firing.rule_id)
                .values(suppressed_count=Rule.suppressed_count + 1)
            )
            return None
    definition = firing.definition
    alert = Alert(
        rule_id=firing.rule_id,
        dedup_key=key,
        entity_id=firing.entity_id,
        entity_type=firing.entity_type,
        state=RAISED,
        severity=definition.get("severity", "warning"),
        raised_severity=definition.get("severity", "warning"),
        message_zh=_message(definition.get("message_zh"), "{rule}：{entity} {attr} = {value}", firing),
        message_en=_message(definition.get("message_en"), "{rule}: {entity} {attr} = {value}", firing),
        attribute=firing.attribute,
        reading={"value": firing.value},
        channels=list(definition.get("channels", ["in-app"])),
        count=1,
        raised_at=firing.at,
        last_seen_at=firing.at,
        open_case=definition.get("open_case"),
    )
    session.add(alert)
    await session.flush()
    session.add(
        AlertEvent(alert_id=alert.alert_id, at=firing.at, kind="raised", data={"value": firing.value})
    )
    await session.execute(
        update(Rule)
        .where(Rule.rule_id == firing.rule_id)
        .values(fire_count=Rule.fire_count + 1, last_fired_at=firing.at)
    )
    await write_alert_entity(
        session, alert, expand, source=firing.entity, category=definition.get("category")
    )
    for hook in on_alert_raised:
        await hook(session, alert)
    enqueue(session, AlertNotice(tenant=alert.tenant_code, alert_id=alert.alert_id, notice="raised"))
    return alert


async def get_alert(session: AsyncSession, alert_id: str, *, for_update: bool = False) -> Alert:
    """The alert; 404 if there is none. ``for_update``: the caller moves it to another state, so
    it is locked until the commit and a second such caller is judged on the state the first left
    (``kit.db.locked``)."""
    key = _key(alert_id, "alert")
    statement = select(Alert).where(Alert.alert_id == key)
    if for_update:
        statement = await locked(session, Alert, statement)
    found = (await session.scalars(statement)).first()
    if found is None:
        raise NotFound(f"no alert {alert_id}")
    return found


def _move(alert: Alert, to: str) -> None:
    allowed = NEXT_STATES[alert.state]
    if to not in allowed:
        names = ", ".join(allowed) if allowed else "none (it is resolved)"
        raise InvalidTransition(
            f"alert {alert.alert_id} is {alert.state}; it cannot become {to}. Allowed next states: {names}",
            allowed=list(allowed),
        )
    alert.state = to


async def acknowledge(
    session: AsyncSession, alert: Alert, actor: str | None, note: str | None, expand: Expand
) -> Alert:
    _move(alert, ACKNOWLEDGED)
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by = actor
    session.add(AlertEvent(alert_id=alert.alert_id, kind="acknowledged", actor=actor, note=note))
    await write_alert_entity(session, alert, expand)
    return alert


async def resolve(
    session: AsyncSession,
    alert: Alert,
    actor: str | None,
    note: str | None,
    expand: Expand,
    *,
    automatic: bool = False,
    at: datetime | None = None,
) -> Alert:
    _move(alert, RESOLVED)
    alert.resolved_at = at or utcnow()
    alert.resolved_by = actor if not automatic else "rule engine"
    kind = "auto-resolved" if automatic else "resolved"
    session.add(AlertEvent(alert_id=alert.alert_id, at=alert.resolved_at, kind=kind, actor=actor, note=note))
    await write_alert_entity(session, alert, expand)
    enqueue(session, AlertNotice(tenant=alert.tenant_code, alert_id=alert.alert_id, notice="resolved"))
    return alert


async def comment(session: AsyncSession, alert: Alert, actor: str | None, note: str) -> AlertEvent:
    event = AlertEvent(alert_id=alert.alert_id, kind="comment", actor=actor, note=note)
    session.add(event)
    await session.flush()
    return event


def escalated(severity: str) -> str:
    index = SEVERITIES.index(severity) if severity in SEVERITIES else 0
    return SEVERITIES[min(index + 1, len(SEVERITIES) - 1)]


async def escalate(session: AsyncSession, alert: Alert, expand: Expand) -> None:
    """Raise the severity of an alert left unacknowledged one step, once, and tell its channels again."""
    before = alert.severity
    alert.severity = escalated(before)
    alert.escalated_at = utcnow()
    session.add(
        AlertEvent(alert_id=alert.alert_id, kind="escalated", data={"from": before, "to": alert.severity})
    )
    await write_alert_entity(session, alert, expand)
    enqueue(session, AlertNotice(tenant=alert.tenant_code, alert_id=alert.alert_id, notice="escalated"))


async def list_alerts(session: AsyncSession, query: AlertQuery) -> tuple[list[Alert], int]:
    where: list[ColumnElement[bool]] = []
    if query.state:
        where.append(Alert.state.in_(query.state))
    if query.severity:
        where.append(Alert.severity.in_(query.severity))
    if query.entity_id:
        where.append(Alert.entity_id == query.entity_id)
    if query.rule_id:
        where.append(Alert.rule_id == _key(query.rule_id, "rule"))
    if query.since:
        where.append(Alert.raised_at >= query.since)
    if query.until:
        where.append(Alert.raised_at < query.until)
    total = await session.scalar(select(func.count()).select_from(Alert).where(*where))
    rows = await session.scalars(
        select(Alert)
        .where(*where)
        .order_by(Alert.raised_at.desc(), Alert.alert_id)
        .limit(query.limit)
        .offset(query.offset)
    )
    return list(rows), int(total or 0)


async def alert_history(session: AsyncSession, alert: Alert) -> list[AlertEvent]:
    rows = await session.scalars(
        select(AlertEvent)
        .where(AlertEvent.alert_id == alert.alert_id)
        .order_by(AlertEvent.at, AlertEvent.kind)
    )
    return list(rows)


async def deliveries(session: AsyncSession, alert: Alert) -> list[AlertDelivery]:
    rows = await session.scalars(
        select(AlertDelivery).where(AlertDelivery.alert_id == alert.alert_id).order_by(AlertDelivery.at)
    )
    return list(rows)


# -- the alert as an NGSI-LD entity --------------------------------------------------------------------------


def alert_entity_id(alert: Alert) -> str:
    return f"{ALERT_ENTITY_PREFIX}{alert.alert_id}"


def _prop(value: Any) -> list[dict[str, Any]]:
    return [{"type": "Property", "value": value}]


async def write_alert_entity(
    session: AsyncSession,
    alert: Alert,
    expand: Expand,
    *,
    source: dict[str, Any] | None = None,
    category: str | None = None,
) -> None:
    """Create or update the alert's entity (same transaction as the row)."""
    entity_id = alert_entity_id(alert)
    stored = (await broker.stored_entities(session, [entity_id], for_update=True)).get(entity_id)
    now = isoformat(utcnow())
    attrs: dict[str, list[dict[str, Any]]] = {
        expand("severity"): _prop(alert.severity),
        expand("alertState"): _prop(alert.state),
        expand("description"): [
            {"type": "LanguageProperty", "languageMap": {"zh": alert.message_zh, "en": alert.message_en}}
        ],
    }
    if alert.state == RESOLVED and alert.resolved_at is not None:
        attrs[expand("validTo")] = _prop(isoformat(alert.resolved_at))
    if stored is None:
        attrs |= {
            expand("category"): _prop(category or "rule"),
            expand("subCategory"): _prop(alert.entity_type),
            expand("alertSource"): [{"type": "Relationship", "object": alert.entity_id}],
            expand("dateIssued"): _prop(isoformat(alert.raised_at)),
            expand("validFrom"): _prop(isoformat(alert.raised_at)),
        }
        if alert.rule_id is not None:
            attrs[expand("rule")] = _prop(str(alert.rule_id))
        location = (source or {}).get("attrs", {}).get(expand("location"))
        if location:
            point = {k: v for k, v in location[0].items() if k in ("type", "value")}
            attrs[expand("location")] = [point]
        entity: dict[str, Any] = {"id": entity_id, "type": [expand("Alert")], "attrs": attrs}
        changes.stamp(entity, now, created=True)
        await broker.write_many(session, [entity], before={})
        return
    current = broker.writable(stored)
    current["attrs"].update(attrs)
    changes.stamp(current, now)
    await broker.write_many(session, [current], before={entity_id: stored})


# -- per (rule, entity) state ------------------------------------------------------------------------


async def states(
    session: AsyncSession, pairs: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], RuleState]:
    """The states of these (rule, entity) pairs that exist, read by entity (a change's entities
    have few states, while the rules it was evaluated against may be hundreds)."""
    if not pairs:
        return {}
    wanted = set(pairs)
    entities = {entity for _, entity in pairs}
    rows = await session.scalars(select(RuleState).where(RuleState.entity_id.in_(entities)))
    return {key: row for row in rows if (key := (row.rule_id, row.entity_id)) in wanted}


def overdue(alert: Alert, minutes: dict[str, float], now: datetime) -> bool:
    limit = minutes.get(alert.severity)
    return limit is not None and limit > 0 and alert.raised_at + timedelta(minutes=limit) <= now
