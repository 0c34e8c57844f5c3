from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityhub.kit.ids import new_id, new_id_texts, new_ids
from cityhub.kit.jsondata import json_copy
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


def test_ids_in_bulk_are_uuid7_of_this_millisecond() -> None:
    before = new_id()
    ids = new_ids(5000)
    after = new_id()
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)  # a counter in the low bits: rows of one batch go in in key order
    assert before.bytes[:6] <= ids[0].bytes[:6] == ids[-1].bytes[:6] <= after.bytes[:6]
    assert new_ids(0) == []


def test_id_texts_are_the_same_ids_in_hex() -> None:
    before = new_id()
    texts = new_id_texts(3000)
    ids = [uuid.UUID(hex=text) for text in texts]
    assert texts == [i.hex for i in ids]  # 32 lowercase hex digits, as UUID.hex writes them
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == 3000
    assert ids == sorted(ids)
    assert before.bytes[:6] <= ids[0].bytes[:6]
    assert new_id_texts(0) == []


def test_json_copy_is_deep_and_keeps_what_orjson_cannot_encode() -> None:
    data = {"attrs": {"speed": [{"type": "Property", "value": 40.5, "tags": ["a"]}]}, "名": None}
    copied = json_copy(data)
    assert copied == data
    copied["attrs"]["speed"][0]["tags"].append("b")
    assert data["attrs"]["speed"][0]["tags"] == ["a"]
    huge = {"value": 2**70, "list": [1]}
    copied_huge = json_copy(huge)
    assert copied_huge == huge
    assert copied_huge["list"] is not huge["list"]
