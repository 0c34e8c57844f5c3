from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityhub.kit.ids import new_id
from cityhub.kit.time import ensure_utc, isoformat, parse_datetime, utcnow


def test_utcnow_is_aware() -> None:
    assert utcnow().tzinfo is UTC


def test_naive_is_taken_as_utc_and_offsets_converted() -> None:
    naive = datetime(2026, 1, 1, 8)  # noqa: DTZ001
    assert ensure_utc(naive) == datetime(2026, 1, 1, 8, tzinfo=UTC)
    beijing = timezone(timedelta(hours=8))
    assert ensure_utc(datetime(2026, 1, 1, 8, tzinfo=beijing)) == datetime(2026, 1, 1, 0, tzinfo=UTC)


@given(st.datetimes(timezones=st.just(UTC)))
def test_iso_round_trip(moment: datetime) -> None:
    text = isoformat(moment)
    assert text.endswith("Z")
    assert parse_datetime(text) == moment


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_datetime("yesterday")


def test_ids_are_time_ordered_uuid7() -> None:
    ids = [new_id() for _ in range(200)]
    assert all(i.version == 7 for i in ids)
    assert len(set(ids)) == 200
    assert [i.bytes[:6] for i in ids] == sorted(i.bytes[:6] for i in ids)
