"""Case statistics and reference data for applications that report on the case workflow: cases
of a period or in given states, counts per state, the states that end a case, the tenant's
component categories, grid cells and working-hours clock, month bounds, department names, and
whether a division code is known. (Opening, reading and acting on cases: :mod:`cityhub.plugins.cases`.)

Every function takes a session scoped to the tenant (a request's ``DbSession`` after
``RequestTenant``, or ``scope_to_tenant``) and never commits. Cases come out as :class:`CaseView`
snapshots, not as the hub's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.dispatch import evaluation, reference, workflow
from cityhub.hub.dispatch.models import DispatchCase
from cityhub.hub.dispatch.schemas import DepartmentScore
from cityhub.hub.tenancy.models import Tenant
from cityhub.systems.security.models import Department
from cityhub.systems.standards import divisions

__all__ = [
    "DEFAULT_WEIGHTS",
    "MERGED",
    "WEIGHT_NAMES",
    "CaseView",
    "CategoryView",
    "DepartmentScore",
    "GridCellView",
    "WorkingClock",
    "case_counts",
    "category_names",
    "closed_states",
    "component_categories",
    "department_names",
    "evaluate",
    "find_cases",
    "grid_cells",
    "is_known_division",
    "month_bounds",
    "parse_weights",
    "working_clock",
]

WEIGHT_NAMES = evaluation.WEIGHT_NAMES
DEFAULT_WEIGHTS = evaluation.DEFAULT_WEIGHTS
#: The final state of a report linked to an earlier case (a duplicate).
MERGED = workflow.MERGED
parse_weights = evaluation.parse_weights


@dataclass(frozen=True)
class CaseView:
    id: str
    case_type: str
    state: str
    title: str
    category: str
    urgency: str
    source: str
    source_ref: str | None
    lon: float | None
    lat: float | None
    grid_cell: str | None
    district: str | None
    department: str | None
    department_tenant: str | None
    triage: bool
    duplicate_of: str | None
    stage: str | None
    due_at: datetime | None
    overdue: bool
    reworks: int
    extensions: int
    created_at: datetime
    dispatched_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class CategoryView:
    code: str
    kind: str
    major_code: str
    minor_code: str
    name_zh: str
    name_en: str
    active: bool


@dataclass(frozen=True)
class GridCellView:
    code: str
    district: str
    name: str | None


def _view(case: DispatchCase) -> CaseView:
    return CaseView(
        id=str(case.id),
        case_type=case.case_type,
        state=case.state,
        title=case.title,
        category=case.category_code,
        urgency=case.urgency,
        source=case.source,
        source_ref=case.source_ref,
        lon=case.lon,
        lat=case.lat,
        grid_cell=case.grid_code,
        district=case.district_code,
        department=case.department_code,
        department_tenant=case.department_tenant,
        triage=case.triage,
        duplicate_of=str(case.duplicate_of) if case.duplicate_of else None,
        stage=case.stage,
        due_at=case.due_at,
        overdue=case.overdue,
        reworks=case.reworks,
        extensions=case.extensions,
        created_at=case.created_at,
        dispatched_at=case.dispatched_at,
        closed_at=case.closed_at,
    )


async def find_cases(
    session: AsyncSession,
    *,
    case_type: str | None = None,
    states: Sequence[str] | None = None,
    overdue: bool | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    include_duplicates: bool = True,
    limit: int = 10_000,
) -> list[CaseView]:
    """Cases of the session's tenant, oldest first; ``created_to`` is exclusive."""
    statement = select(DispatchCase)
    if case_type is not None:
        statement = statement.where(DispatchCase.case_type == case_type)
    if states is not None:
        statement = statement.where(DispatchCase.state.in_(list(states)))
    if overdue is not None:
        statement = statement.where(DispatchCase.overdue.is_(overdue))
    if created_from is not None:
        statement = statement.where(DispatchCase.created_at >= created_from)
    if created_to is not None:
        statement = statement.where(DispatchCase.created_at < created_to)
    if not include_duplicates:
        statement = statement.where(DispatchCase.duplicate_of.is_(None))
    rows = await session.scalars(statement.order_by(DispatchCase.created_at, DispatchCase.id).limit(limit))
    return [_view(row) for row in rows]


async def case_counts(session: AsyncSession, *, case_type: str | None = None) -> dict[str, int]:
    """How many cases the tenant has in each state."""
    statement = select(DispatchCase.state, func.count()).group_by(DispatchCase.state)
    if case_type is not None:
        statement = statement.where(DispatchCase.case_type == case_type)
    return {state: int(count) for state, count in (await session.execute(statement)).all()}


def closed_states(session: AsyncSession, case_type: str) -> set[str]:
    """States of ``case_type`` in which the work is over: the terminal ones and those a close or a
    cancel leads to (``closed``, ``evaluated``, ``cancelled`` for ``urban_management``)."""
    kind = workflow.case_type(session, case_type)
    found = set(kind.terminal) | {a.target for a in kind.all_actions() if a.effect in ("close", "cancel")}
    return found | {MERGED}


async def component_categories(session: AsyncSession) -> list[CategoryView]:
    """The tenant's component 部件 categories (seeded with the hub's table on first use)."""
    return [
        CategoryView(c.code, c.kind, c.major_code, c.minor_code, c.name_zh, c.name_en, c.active)
        for c in await reference.list_categories(session, kind="component")
    ]


async def category_names(session: AsyncSession) -> dict[str, tuple[str, str]]:
    """Every category code of the tenant with its (zh, en) name."""
    return {c.code: (c.name_zh, c.name_en) for c in await reference.list_categories(session)}


async def grid_cells(session: AsyncSession) -> list[GridCellView]:
    cells, _ = await reference.list_grid_cells(session, district=None, limit=100_000, offset=0)
    return [GridCellView(c.code, c.district_code, c.name) for c in cells]


class WorkingClock:
    """The tenant's working-hours calendar, to tell how much working time a case has left."""

    def __init__(self, calendar: Any) -> None:
        self._calendar = calendar

    def minutes_left(self, due: datetime, now: datetime) -> float:
        """Working minutes from ``now`` to ``due``; negative when past due (the working minutes
        since)."""
        if due >= now:
            return float(self._calendar.between(now, due))
        return -float(self._calendar.between(due, now))


async def working_clock(session: AsyncSession) -> WorkingClock:
    return WorkingClock(await reference.working_calendar(session))


async def month_bounds(session: AsyncSession, period: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as [start, end) in UTC, the month taken in the tenant's calendar time zone."""
    calendar = await reference.working_calendar(session)
    return evaluation.month_bounds(period, calendar.zone)


async def evaluate(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    department: str | None = None,
) -> list[DepartmentScore]:
    """The department evaluation 综合评价 over [start, end) (see docs/dispatch.md)."""
    return await evaluation.evaluate(session, start, end, weights=weights, department=department)


async def department_names(
    session: AsyncSession, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The names of departments given as (tenant, code)."""
    wanted = set(pairs)
    if not wanted:
        return {}
    rows = await session.scalars(select(Department).where(Department.code.in_({code for _, code in wanted})))
    return {(d.tenant_code, d.code): d.name for d in rows if (d.tenant_code, d.code) in wanted}


async def is_known_division(session: AsyncSession, code: str) -> bool:
    """Whether ``code`` is a GB/T 2260 division the hub knows: in its division table, or a tenant."""
    if not divisions.is_valid_code(code):
        return False
    if divisions.lookup(code) is not None:
        return True
    return await session.get(Tenant, code) is not None
