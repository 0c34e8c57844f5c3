"""The case workflow for code in the hub's process that holds a session of no particular tenant
(applications, through :mod:`cityhub.plugins.cases`): each function names the tenant to act in,
joins the caller's transaction, never commits, and leaves the session's tenant scope as it found
it. Cases come back as plain data (:class:`CaseRead`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.dispatch import evaluation, reference, service
from cityhub.hub.dispatch.schemas import CaseRead, CategoryRead, DepartmentScore
from cityhub.hub.dispatch.views import read_case
from cityhub.kit.db import in_tenant


async def open_case(
    session: AsyncSession,
    *,
    tenant: str,
    case_type: str,
    category_code: str,
    title: str,
    description: str,
    location: Mapping[str, Any] | None,
    urgency: str,
    source: str,
    source_ref: str | None,
    reporter: str | None = None,
) -> CaseRead:
    """Open a case as ``POST /api/v1/cases`` does (routing, triage, duplicates)."""
    with in_tenant(session, tenant):
        case = await service.open_case(
            session,
            tenant=tenant,
            case_type=case_type,
            category_code=category_code,
            title=title,
            description=description,
            location=location,
            urgency=urgency,
            source=source,
            source_ref=source_ref,
            reporter=reporter,
        )
        return read_case(session, case)


async def read_case_of(session: AsyncSession, tenant: str, case_id: str | uuid.UUID) -> CaseRead:
    with in_tenant(session, tenant):
        return read_case(session, await service.get_case(session, case_id))


async def find_cases(
    session: AsyncSession,
    tenant: str,
    *,
    state: str | None = None,
    category: str | None = None,
    department: str | None = None,
    district: str | None = None,
    grid_cell: str | None = None,
    overdue: bool | None = None,
    triage: bool | None = None,
    case_type: str | None = None,
    is_open: bool | None = None,
    opened_after: datetime | None = None,
    opened_before: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[CaseRead], int]:
    """Cases filtered as ``GET /api/v1/cases`` filters them, newest first, and how many match."""
    where = service.CaseFilter(
        state,
        category,
        department,
        district,
        grid_cell,
        overdue,
        triage,
        case_type,
        is_open=is_open,
        opened_after=opened_after,
        opened_before=opened_before,
    )
    with in_tenant(session, tenant):
        rows, total = await service.list_cases(session, where, limit=limit, offset=offset)
        return [read_case(session, row) for row in rows], total


async def take_action(
    session: AsyncSession,
    tenant: str,
    case_id: str | uuid.UUID,
    action: str,
    *,
    actor: str,
    note: str | None = None,
    department: str | None = None,
    department_tenant: str | None = None,
    extend_minutes: int | None = None,
) -> CaseRead:
    """A transition, as ``POST /api/v1/cases/{id}/transitions`` takes it (409 when not allowed)."""
    with in_tenant(session, tenant):
        case = await service.transition(
            session,
            case_id,
            action,
            actor=actor,
            note=note,
            department=department,
            department_tenant=department_tenant,
            extend_minutes=extend_minutes,
        )
        return read_case(session, case)


async def evaluate_departments(
    session: AsyncSession,
    tenant: str,
    start: datetime,
    end: datetime,
    *,
    weights: Sequence[float] | None = None,
) -> list[DepartmentScore]:
    """The department evaluation over ``[start, end)`` (see :mod:`cityhub.hub.dispatch.evaluation`)."""
    with in_tenant(session, tenant):
        return await evaluation.evaluate(session, start, end, weights=weights or evaluation.DEFAULT_WEIGHTS)


async def list_categories(
    session: AsyncSession, tenant: str, *, kind: str | None = None
) -> list[CategoryRead]:
    with in_tenant(session, tenant):
        return [CategoryRead.model_validate(c) for c in await reference.list_categories(session, kind=kind)]
