"""Security incidents: events grouped for a response, with a history of every step.

Functions take the session first and never commit. Every step is also a record of the audit chain.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.kit.errors import Conflict, NotFound
from cityhub.kit.time import utcnow
from cityhub.systems.security import audit
from cityhub.systems.security.models import SecurityEvent, SecurityIncident, SecurityIncidentStep

#: Allowed moves between states.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("contained", "closed"),
    "contained": ("open", "closed"),
    "closed": (),
}
OPEN_STATES = ("open", "contained")
SYSTEM = "system"


async def step(
    session: AsyncSession,
    incident: SecurityIncident,
    kind: str,
    *,
    actor: str,
    action: str | None = None,
    outcome: str | None = None,
    detail: dict[str, Any] | None = None,
) -> SecurityIncidentStep:
    """Add a line to the incident's history and the same to the audit chain."""
    row = SecurityIncidentStep(
        incident_id=incident.id,
        at=utcnow(),
        actor=actor,
        kind=kind,
        action=action,
        outcome=outcome,
        detail=detail or {},
    )
    session.add(row)
    incident.updated_at = row.at
    await session.flush()
    await audit.append(
        session,
        f"security.incident_{action or kind}",
        actor=actor,
        tenant_code=incident.tenant_code,
        detail={"incident": str(incident.id), "outcome": outcome} | (detail or {}),
    )
    return row


async def open_incident(
    session: AsyncSession,
    *,
    title: str,
    severity: str,
    actor: str,
    tenant: str | None,
    source: str | None = None,
    rule: str | None = None,
    assignee: str | None = None,
) -> SecurityIncident:
    now = utcnow()
    incident = SecurityIncident(
        id=uuid.uuid4(),
        title=title,
        state="open",
        severity=severity,
        rule=rule,
        source=source,
        tenant_code=tenant,
        assignee=assignee,
        opened_by=actor,
        events=0,
        opened_at=now,
        updated_at=now,
    )
    session.add(incident)
    await session.flush()
    await step(session, incident, "opened", actor=actor, detail={"title": title, "severity": severity})
    return incident


async def group_events(session: AsyncSession, events: Sequence[SecurityEvent]) -> None:
    """Open an incident for each high-severity event, or add it to the open one of its rule and
    source (a brute force from one address is one incident however often it is raised)."""
    for event in events:
        if event.severity != "high":
            continue
        incident = await session.scalar(
            select(SecurityIncident)
            .where(
                SecurityIncident.rule == event.kind,
                SecurityIncident.source.is_(None)
                if event.source is None
                else SecurityIncident.source == event.source,
                SecurityIncident.state.in_(OPEN_STATES),
            )
            .limit(1)
        )
        if incident is None:
            incident = await open_incident(
                session,
                title=f"{event.kind} from {event.source or 'an unknown source'}",
                severity=event.severity,
                actor=SYSTEM,
                tenant=event.tenant_code,
                source=event.source,
                rule=event.kind,
            )
        incident.events += 1
        await step(
            session,
            incident,
            "event",
            actor=SYSTEM,
            detail={"event": str(event.id), "kind": event.kind, "username": event.username},
        )


async def get(
    session: AsyncSession, incident_id: uuid.UUID, *, tenants: list[str] | None
) -> SecurityIncident:
    incident = await session.get(SecurityIncident, incident_id)
    if incident is None or (tenants is not None and incident.tenant_code not in tenants):
        raise NotFound(f"no incident {incident_id}")
    return incident


async def page(
    session: AsyncSession,
    *,
    tenants: list[str] | None,
    state: str | None,
    severity: str | None,
    rule: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[SecurityIncident], int]:
    query = select(SecurityIncident)
    if tenants is not None:
        query = query.where(SecurityIncident.tenant_code.in_(tenants))
    if state is not None:
        query = query.where(SecurityIncident.state == state)
    if severity is not None:
        query = query.where(SecurityIncident.severity == severity)
    if rule is not None:
        query = query.where(SecurityIncident.rule == rule)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(SecurityIncident.opened_at.desc(), SecurityIncident.id).limit(limit).offset(offset)
    )
    return rows.all(), int(total or 0)


async def history(session: AsyncSession, incident: SecurityIncident) -> Sequence[SecurityIncidentStep]:
    rows = await session.scalars(
        select(SecurityIncidentStep)
        .where(SecurityIncidentStep.incident_id == incident.id)
        .order_by(SecurityIncidentStep.at, SecurityIncidentStep.id)
    )
    return rows.all()


async def transition(
    session: AsyncSession, incident: SecurityIncident, to: str, *, actor: str, comment: str | None
) -> SecurityIncident:
    allowed = TRANSITIONS.get(incident.state, ())
    if to not in allowed:
        raise Conflict(
            f"an incident that is {incident.state} cannot become {to}; "
            f"allowed: {', '.join(allowed) or 'none'}",
            allowed=list(allowed),
        )
    before = incident.state
    incident.state = to
    incident.closed_at = utcnow() if to == "closed" else None
    await step(
        session, incident, "transition", actor=actor, detail={"from": before, "to": to, "comment": comment}
    )
    return incident
