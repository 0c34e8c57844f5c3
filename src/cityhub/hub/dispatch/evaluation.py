"""Department evaluation 综合评价 over a period.

The cases counted for a department are those first dispatched to it (``dispatched_at``) within
the period ``[start, end)``, the department being the one responsible now. Of those N cases:

- handled: verified and closed (``closed_at``) before the period's end;
- on time: handled, and never past the handling stage's due time (overdue marking or a report of
  the work done after the due time);
- reworked: sent back at least once after a failed verification;
- overdue: past the handling stage's due time at least once;
- extended: granted at least one extension.

Each rate is its count divided by N (None when N is 0). The score is
``w1·handling + w2·on_time + w3·(1 − rework) + w4·(1 − overdue) + w5·(1 − extension)`` with the
published weights 30/20/20/20/10 by default, so it runs from 0 to the weights' sum (100).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.dispatch.models import DispatchCase
from cityhub.hub.dispatch.schemas import DepartmentScore
from cityhub.kit.errors import BadRequestData
from cityhub.kit.time import ensure_utc

WEIGHT_NAMES = ("handling", "on_time", "rework", "overdue", "extension")
DEFAULT_WEIGHTS = (30.0, 20.0, 20.0, 20.0, 10.0)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_bounds(period: str, zone: object) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as [first instant, first instant of the next month) in the calendar's zone."""
    found = _MONTH.match(period)
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise BadRequestData(f"period {period!r} is not a month YYYY-MM")
    year, month = int(found.group(1)), int(found.group(2))
    nxt = (year + 1, 1) if month == 12 else (year, month + 1)
    try:
        start = datetime(year, month, 1, tzinfo=zone)  # type: ignore[arg-type]
        end = datetime(nxt[0], nxt[1], 1, tzinfo=zone)  # type: ignore[arg-type]
        return ensure_utc(start), ensure_utc(end)
    except (ValueError, OverflowError):
        raise BadRequestData(f"period {period!r} is out of range") from None


def parse_weights(text: str | None) -> tuple[float, ...]:
    if text is None:
        return DEFAULT_WEIGHTS
    try:
        weights = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise BadRequestData("weights: five numbers separated by commas, e.g. 30,20,20,20,10") from None
    if len(weights) != 5 or any(w < 0 for w in weights):
        raise BadRequestData(
            "weights: five non-negative numbers (handling, on-time, rework, overdue, extension)"
        )
    return weights


@dataclass
class _Tally:
    dispatched: int = 0
    handled: int = 0
    on_time: int = 0
    reworked: int = 0
    overdue: int = 0
    extended: int = 0


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


async def evaluate(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    department: str | None = None,
) -> list[DepartmentScore]:
    if end <= start:
        raise BadRequestData("the period's end must come after its start")
    statement = select(DispatchCase).where(
        DispatchCase.dispatched_at >= start,
        DispatchCase.dispatched_at < end,
        DispatchCase.department_code.is_not(None),
    )
    if department is not None:
        statement = statement.where(DispatchCase.department_code == department)
    tallies: dict[tuple[str, str], _Tally] = {}
    for case in await session.scalars(statement):
        assert case.department_tenant is not None
        assert case.department_code is not None
        tally = tallies.setdefault((case.department_tenant, case.department_code), _Tally())
        tally.dispatched += 1
        handled = case.closed_at is not None and case.closed_at < end
        tally.handled += handled
        tally.on_time += handled and not case.handling_overdue
        tally.reworked += case.reworks > 0
        tally.overdue += case.handling_overdue
        tally.extended += case.extensions > 0
    scores = []
    for (owner, code), t in sorted(tallies.items()):
        n = t.dispatched
        rates = (
            _rate(t.handled, n),
            _rate(t.on_time, n),
            _rate(t.reworked, n),
            _rate(t.overdue, n),
            _rate(t.extended, n),
        )
        score = None
        if n:
            h, o, r, v, e = (x or 0.0 for x in rates)
            w = weights
            score = round(w[0] * h + w[1] * o + w[2] * (1 - r) + w[3] * (1 - v) + w[4] * (1 - e), 2)
        scores.append(
            DepartmentScore(
                department=code,
                department_tenant=owner,
                dispatched=n,
                handled=t.handled,
                on_time=t.on_time,
                reworked=t.reworked,
                overdue=t.overdue,
                extended=t.extended,
                handling_rate=rates[0],
                on_time_rate=rates[1],
                rework_rate=rates[2],
                overdue_rate=rates[3],
                extension_rate=rates[4],
                score=score,
            )
        )
    return scores
