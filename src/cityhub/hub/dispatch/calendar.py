"""Working time: the calendar time limits count on.

A calendar is data (kept per tenant, see ``PUT /api/v1/dispatch/calendar``)::

    {"timezone": "Asia/Shanghai", "weekdays": [1, 2, 3, 4, 5],
     "hours": [["09:00", "12:00"], ["13:00", "17:30"]],
     "holidays": ["2026-10-01", ...], "workdays": ["2026-10-10", ...]}

``weekdays`` are ISO numbers (Monday 1); a date in ``holidays`` is never worked, a date in
``workdays`` (a make-up working day 调休) is worked even on a weekend. Working minutes are counted
inside the day's ``hours`` in the calendar's time zone; instants are UTC-aware on both sides.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cityhub.kit.errors import BadRequestData
from cityhub.kit.time import ensure_utc

DEFAULT_CALENDAR: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "weekdays": [1, 2, 3, 4, 5],
    "hours": [["09:00", "12:00"], ["13:00", "17:30"]],
    "holidays": [],
    "workdays": [],
}

#: A due time further than this is refused: a calendar with almost no working time is a mistake.
_MAX_DAYS = 3 * 366


def _clock(text: Any, what: str) -> time:
    if not isinstance(text, str):
        raise BadRequestData(f"calendar {what}: {text!r} is not HH:MM")
    if text == "24:00":
        return time.max
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise BadRequestData(f"calendar {what}: {text!r} is not HH:MM") from None


def _day(text: Any, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise BadRequestData(f"calendar {what}: {text!r} is not a date YYYY-MM-DD") from None


@dataclass(frozen=True)
class WorkingCalendar:
    zone: ZoneInfo
    weekdays: frozenset[int]
    hours: tuple[tuple[time, time], ...]
    holidays: frozenset[date]
    workdays: frozenset[date]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> WorkingCalendar:
        """Check and read a calendar document; 400 naming what is wrong."""
        merged = DEFAULT_CALENDAR | data
        try:
            zone = ZoneInfo(str(merged["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise BadRequestData(f"calendar timezone {merged['timezone']!r} is unknown") from None
        weekdays = merged["weekdays"]
        if not isinstance(weekdays, list) or not all(isinstance(d, int) and 1 <= d <= 7 for d in weekdays):
            raise BadRequestData("calendar weekdays: a list of ISO weekday numbers 1 (Monday) to 7")
        spans = []
        for index, span in enumerate(merged["hours"]):
            if not isinstance(span, list | tuple) or len(span) != 2:
                raise BadRequestData(f"calendar hours[{index}]: a pair [start, end] of HH:MM")
            start, end = _clock(span[0], f"hours[{index}]"), _clock(span[1], f"hours[{index}]")
            if end <= start:
                raise BadRequestData(f"calendar hours[{index}]: the end must come after the start")
            spans.append((start, end))
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start < end:
                raise BadRequestData("calendar hours overlap")
        if not spans:
            raise BadRequestData("calendar hours: at least one working span")
        if not weekdays and not merged["workdays"]:
            raise BadRequestData("calendar: no working day at all (weekdays and workdays are empty)")
        return cls(
            zone,
            frozenset(weekdays),
            tuple(spans),
            frozenset(_day(d, "holidays") for d in merged["holidays"]),
            frozenset(_day(d, "workdays") for d in merged["workdays"]),
        )

    def is_working_day(self, day: date) -> bool:
        if day in self.holidays:
            return False
        return day in self.workdays or day.isoweekday() in self.weekdays

    def _spans(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(day):
            return []
        return [
            (
                datetime.combine(day, start, self.zone),
                datetime.combine(day, end, self.zone)
                if end != time.max
                else datetime.combine(day + timedelta(days=1), time.min, self.zone),
            )
            for start, end in self.hours
        ]

    def add(self, start: datetime, minutes: float) -> datetime:
        """The instant ``minutes`` working minutes after ``start`` (UTC)."""
        left = timedelta(minutes=minutes)
        local = ensure_utc(start).astimezone(self.zone)
        day = local.date()
        for _ in range(_MAX_DAYS):
            for span_start, span_end in self._spans(day):
                begin = max(span_start, local)
                if begin >= span_end:
                    continue
                available = span_end - begin
                if left <= available:
                    return ensure_utc(begin + left)
                left -= available
            day += timedelta(days=1)
        raise BadRequestData(f"the calendar has not {minutes} working minutes in {_MAX_DAYS} days")

    def between(self, start: datetime, end: datetime) -> float:
        """Working minutes from ``start`` to ``end`` (0 when ``end`` is not later)."""
        start, end = ensure_utc(start), ensure_utc(end)
        if end <= start:
            return 0.0
        day = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        total = timedelta()
        while day <= last:
            for span_start, span_end in self._spans(day):
                overlap = min(span_end, end) - max(span_start, start)
                if overlap > timedelta():
                    total += overlap
            day += timedelta(days=1)
        return total.total_seconds() / 60
