"""Working time on the calendar: spans, lunch breaks, weekends, holidays, make-up working days."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cityhub.hub.dispatch.calendar import WorkingCalendar
from cityhub.kit.errors import BadRequestData

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)


@pytest.fixture
def calendar() -> WorkingCalendar:
    # National Day 2026: 1–7 October off, Saturday 10 October worked
    holidays = [f"2026-10-0{d}" for d in range(1, 8)]
    return WorkingCalendar.from_data({"holidays": holidays, "workdays": ["2026-10-10"]})


def test_minutes_within_one_span(calendar: WorkingCalendar) -> None:
    assert calendar.add(local(2026, 11, 23, 9, 0), 30) == local(2026, 11, 23, 9, 30)


def test_the_lunch_break_does_not_count(calendar: WorkingCalendar) -> None:
    assert calendar.add(local(2026, 11, 23, 11, 30), 60) == local(2026, 11, 23, 13, 30)
    assert calendar.between(local(2026, 11, 23, 11, 30), local(2026, 11, 23, 13, 30)) == 60


def test_evening_and_weekend_carry_to_monday(calendar: WorkingCalendar) -> None:
    friday = local(2026, 11, 20, 17, 0)
    assert calendar.add(friday, 60) == local(2026, 11, 23, 9, 30)
    # a report on Saturday night starts counting on Monday morning
    assert calendar.add(local(2026, 11, 21, 22, 0), 10) == local(2026, 11, 23, 9, 10)


def test_holidays_skip_and_make_up_days_count(calendar: WorkingCalendar) -> None:
    before = local(2026, 9, 30, 17, 0)
    # 30 Sep 17:00–17:30, then 1–7 Oct off, 8 Oct from 09:00
    assert calendar.add(before, 60) == local(2026, 10, 8, 9, 30)
    assert calendar.add(local(2026, 10, 9, 17, 0), 60) == local(2026, 10, 10, 9, 30)  # a Saturday, worked
    assert not calendar.is_working_day(local(2026, 10, 1).date())
    assert calendar.is_working_day(local(2026, 10, 10).date())


def test_a_full_working_day_is_seven_and_a_half_hours(calendar: WorkingCalendar) -> None:
    assert calendar.between(local(2026, 11, 23, 0, 0), local(2026, 11, 24, 0, 0)) == 450
    assert calendar.add(local(2026, 11, 23, 9, 0), 450) == local(2026, 11, 23, 17, 30)
    assert calendar.add(local(2026, 11, 23, 9, 0), 451) == local(2026, 11, 24, 9, 1)


def test_results_are_utc() -> None:
    result = WorkingCalendar.from_data({}).add(datetime(2026, 11, 23, 1, 0, tzinfo=UTC), 1)
    assert result.tzinfo == UTC
    assert result == datetime(2026, 11, 23, 1, 1, tzinfo=UTC)  # 09:01 in Shanghai


@pytest.mark.parametrize(
    "data",
    [
        {"timezone": "Mars/Olympus"},
        {"weekdays": [0]},
        {"hours": [["09:00"]]},
        {"hours": [["12:00", "09:00"]]},
        {"hours": [["09:00", "12:00"], ["11:00", "13:00"]]},
        {"hours": []},
        {"holidays": ["2026-13-01"]},
        {"hours": [["nine", "ten"]]},
        {"weekdays": []},
    ],
)
def test_bad_calendars_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(BadRequestData):
        WorkingCalendar.from_data(data)
