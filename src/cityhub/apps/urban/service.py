"""The urban management centre's views of the case workflow: the supervision and command centres'
queues, grid-cell statistics and the department evaluation, for one tenant, over the
``urban_management`` case type (GB/T 30428)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.plugins import BadRequestData, casestats, utcnow

CASE_TYPE = "urban_management"

#: Each centre's queues: name → (zh, en, the case states it holds, only overdue cases).
QUEUES: dict[str, dict[str, tuple[str, str, tuple[str, ...], bool]]] = {
    "supervision": {
        "to_file": ("待立案", "to file", ("collected",), False),
        "to_verify": ("待核查", "to verify", ("feedback",), False),
        "to_evaluate": ("待评价", "to evaluate", ("closed",), False),
    },
    "command": {
        "to_dispatch": ("待派遣", "to dispatch", ("filed",), False),
        "extension_requests": ("延期申请", "extension requests", ("extension_requested",), False),
        "overdue": ("超期案件", "overdue", (), True),
    },
}
CENTRES = {"supervision": ("监督中心", "supervision centre"), "command": ("指挥中心", "command centre")}


def _item(case: casestats.CaseView, clock: casestats.WorkingClock, now: datetime) -> dict[str, Any]:
    return {
        "id": case.id,
        "title": case.title,
        "state": case.state,
        "category": case.category,
        "urgency": case.urgency,
        "grid_cell": case.grid_cell,
        "district": case.district,
        "department": case.department,
        "department_tenant": case.department_tenant,
        "due_at": case.due_at,
        "overdue": case.overdue,
        "minutes_left": round(clock.minutes_left(case.due_at, now), 1) if case.due_at else None,
        "created_at": case.created_at,
    }


async def queues(session: AsyncSession, *, limit: int) -> dict[str, Any]:
    """Each centre's queues with their count and the first ``limit`` cases, the most pressing
    (least working time left) first."""
    now = utcnow()
    clock = await casestats.working_clock(session)
    ended = casestats.closed_states(session, CASE_TYPE)
    answer: dict[str, Any] = {}
    for centre, named in QUEUES.items():
        lines: dict[str, Any] = {}
        for name, (zh, en, states, overdue_only) in named.items():
            if overdue_only:
                found = [
                    c
                    for c in await casestats.find_cases(session, case_type=CASE_TYPE, overdue=True)
                    if c.state not in ended
                ]
            else:
                found = await casestats.find_cases(session, case_type=CASE_TYPE, states=states)
            found.sort(key=lambda c: (c.due_at is None, c.due_at or now, c.created_at))
            lines[name] = {
                "title_zh": zh,
                "title_en": en,
                "count": len(found),
                "items": [_item(c, clock, now) for c in found[:limit]],
            }
        answer[centre] = {"title_zh": CENTRES[centre][0], "title_en": CENTRES[centre][1], "queues": lines}
    return answer


async def period_bounds(
    session: AsyncSession, period: str | None, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    if period is not None:
        if start is not None or end is not None:
            raise BadRequestData("give period, or from and to, not both")
        return await casestats.month_bounds(session, period)
    if start is None or end is None:
        raise BadRequestData("give period=YYYY-MM, or from and to")
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequestData("from and to need a time zone offset (or Z)")
    if end <= start:
        raise BadRequestData("to must come after from")
    return start, end


@dataclass
class CellTally:
    cases: int = 0
    reports: int = 0
    categories: Counter[str] | None = None


async def grid_statistics(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    top: int,
    found: list[casestats.CaseView] | None = None,
) -> dict[str, Any]:
    """Cases opened in [start, end) per grid cell and category; ``reports`` counts the linked
    duplicates too. Hot spots: the ``top`` cells with most casestats."""
    if found is None:
        found = await casestats.find_cases(session, case_type=CASE_TYPE, created_from=start, created_to=end)
    cells = {c.code: c for c in await casestats.grid_cells(session)}
    names = await casestats.category_names(session)
    tallies: dict[str | None, CellTally] = {}
    by_category: Counter[str] = Counter()
    for case in found:
        tally = tallies.setdefault(case.grid_cell, CellTally(categories=Counter()))
        tally.reports += 1
        if case.duplicate_of is None:
            assert tally.categories is not None
            tally.cases += 1
            tally.categories[case.category] += 1
            by_category[case.category] += 1
    lines: list[dict[str, Any]] = []
    for code, tally in tallies.items():
        cell = cells.get(code) if code else None
        lines.append(
            {
                "grid_cell": code,
                "district": cell.district if cell else None,
                "name": cell.name if cell else None,
                "cases": tally.cases,
                "reports": tally.reports,
                "categories": dict(sorted((tally.categories or Counter()).items())),
            }
        )
    lines.sort(key=lambda line: (-line["cases"], line["grid_cell"] or "~"))
    return {
        "start": start,
        "end": end,
        "cases": sum(by_category.values()),
        "reports": len(found),
        "cells": lines,
        "hot_spots": [line for line in lines if line["grid_cell"] is not None and line["cases"]][:top],
        "categories": [
            {
                "category": code,
                "name_zh": names.get(code, ("", ""))[0],
                "name_en": names.get(code, ("", ""))[1],
                "cases": n,
            }
            for code, n in sorted(by_category.items(), key=lambda item: (-item[1], item[0]))
        ],
    }


async def evaluation(
    session: AsyncSession, start: datetime, end: datetime, weights: Sequence[float]
) -> list[dict[str, Any]]:
    scores = await casestats.evaluate(session, start, end, weights=weights)
    names = await casestats.department_names(session, ((s.department_tenant, s.department) for s in scores))
    lines = []
    for score in sorted(scores, key=lambda s: (-(s.score or 0), s.department_tenant, s.department)):
        line = score.model_dump()
        line["name"] = names.get((score.department_tenant, score.department))
        lines.append(line)
    return lines


async def monthly(
    session: AsyncSession, tenant: str, period: str, weights: Sequence[float]
) -> dict[str, Any]:
    """Everything the monthly report shows."""
    start, end = await casestats.month_bounds(session, period)
    found = await casestats.find_cases(session, case_type=CASE_TYPE, created_from=start, created_to=end)
    statistics = await grid_statistics(session, start, end, top=10, found=found)
    own = [c for c in found if c.duplicate_of is None]
    closed = casestats.closed_states(session, CASE_TYPE) - {casestats.MERGED, "cancelled"}
    by_source = Counter(c.source for c in own)
    return {
        "tenant": tenant,
        "period": period,
        "start": start,
        "end": end,
        "weights": dict(zip(casestats.WEIGHT_NAMES, weights, strict=True)),
        "summary": {
            "cases": len(own),
            "reports": len(found),
            "duplicates": len(found) - len(own),
            "closed": sum(1 for c in own if c.state in closed),
            "cancelled": sum(1 for c in own if c.state == "cancelled"),
            "overdue": sum(1 for c in own if c.overdue),
            "by_source": dict(sorted(by_source.items())),
        },
        "statistics": statistics,
        "departments": await evaluation(session, start, end, weights),
    }
