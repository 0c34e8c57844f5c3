"""Overdue cases: a case past its stage's due time is marked, recorded in its history and
escalated (flag and bus event) once per stage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.bus import enqueue
from cityhub.hub.dispatch.entity import write_entities
from cityhub.hub.dispatch.events import CaseEscalated
from cityhub.hub.dispatch.models import DispatchCase
from cityhub.hub.dispatch.service import SYSTEM_ACTOR, record_history
from cityhub.kit.db import ALL_TENANTS, take_write_lock
from cityhub.kit.time import isoformat, utcnow

# -- overdue ----------------------------------------------------------------------------------------


async def overdue_tenants(session: AsyncSession, now: datetime) -> list[str]:
    """Tenants with a case past due not yet marked, on an unscoped session."""
    rows = await session.scalars(
        select(DispatchCase.tenant_code)
        .where(DispatchCase.due_at < now, DispatchCase.overdue.is_(False))
        .distinct()
        .execution_options(**{ALL_TENANTS: True})
    )
    return sorted(rows)


async def mark_overdue(session: AsyncSession, *, now: datetime | None = None) -> list[DispatchCase]:
    """Mark the tenant's cases whose stage is past due: a history row, the escalation flag and a
    :class:`CaseEscalated` event, once per stage (a new stage or an extension clears them)."""
    now = now or utcnow()
    statement = select(DispatchCase).where(
        DispatchCase.due_at.is_not(None), DispatchCase.due_at < now, DispatchCase.overdue.is_(False)
    )
    # Two hub processes never escalate a case twice: PostgreSQL locks the rows (another process
    # skips them); SQLite's write lock is taken first, so the read sees the other's commit.
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    else:
        await take_write_lock(session, DispatchCase)
    rows = list(await session.scalars(statement))
    for case in rows:
        assert case.due_at is not None
        assert case.stage is not None
        case.overdue = True
        case.escalated_at = now
        if case.stage == "handling":
            case.handling_overdue = True
        case.updated_at = now
        record_history(
            session,
            case,
            actor=SYSTEM_ACTOR,
            action="overdue",
            from_state=case.state,
            to_state=case.state,
            at=now,
            data={"stage": case.stage, "due_at": isoformat(case.due_at)},
        )
        enqueue(
            session,
            CaseEscalated(
                tenant=case.tenant_code,
                case_id=str(case.id),
                stage=case.stage,
                due_at=case.due_at,
                department=case.department_code,
                district=case.district_code,
            ),
        )
    await session.flush()
    await write_entities(session, rows)
    return rows
