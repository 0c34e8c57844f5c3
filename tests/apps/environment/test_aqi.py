"""HJ 633 AQI: the standards' worked examples, every breakpoint, the version differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityhub.apps.environment.aqi import (
    BREAKPOINTS,
    IAQI_LEVELS,
    REQUIRED,
    ImpossibleConcentration,
    MissingPollutants,
    Standard,
    aqi_array,
    category,
    compute_aqi,
    iaqi,
)

S12, S26 = Standard.HJ633_2012, Standard.HJ633_2026


def test_worked_example_one() -> None:
    day = {"pm25_24h": 80, "pm10_24h": 120, "no2_24h": 60, "so2_24h": 20, "co_24h": 1.2, "o3_8h": 110}
    r12 = compute_aqi({**day, "o3_1h": 110}, S12, "day")
    assert (r12.aqi, r12.primary_pollutants) == (107, ["PM2.5"])
    assert r12.exceeding == ["pm25_24h"]
    r26 = compute_aqi(day, S26, "day")
    assert (r26.aqi, r26.primary_pollutants, r26.exceeding) == (119, ["PM2.5"], None)
    assert r26.category.label_zh == "轻度污染"


def test_worked_example_two() -> None:
    day = {"pm25_24h": 65, "pm10_24h": 130, "so2_24h": 100, "no2_24h": 0, "co_24h": 0, "o3_8h": 0}
    r12 = compute_aqi({**day, "o3_1h": 0}, S12, "day")
    assert (r12.aqi, r12.category.label_zh, r12.primary_pollutants) == (90, "良", ["PM10"])
    r26 = compute_aqi(day, S26, "day")
    assert (r26.aqi, r26.category.label_zh, r26.primary_pollutants) == (105, "轻度污染", ["PM2.5"])


@pytest.mark.parametrize("standard", list(Standard))
def test_every_breakpoint_scores_its_level(standard: Standard) -> None:
    for item, table in BREAKPOINTS[standard].items():
        for bp, level in zip(table, IAQI_LEVELS, strict=False):
            assert iaqi(item, bp, standard) == level, (item, bp)


def test_iaqi_is_rounded_up() -> None:
    assert iaqi("pm25_24h", 35.1, S12) == 51  # 50.125 -> 51
    assert iaqi("pm25_24h", 75, S12) == 100
    assert iaqi("pm10_24h", 120, S26) == 100
    assert iaqi("pm10_24h", 120, S12) == 85


def test_2026_rounds_concentrations_first() -> None:
    assert iaqi("pm25_24h", 35.4, S26) == 50  # 35 after rounding
    assert iaqi("pm25_24h", 35.4, S12) == 51
    assert iaqi("co_24h", 2.04, S26) == 50  # 2.0 mg/m3
    assert iaqi("co_24h", 2.04, S12) == 51


def test_beyond_short_tables() -> None:
    assert iaqi("so2_1h", 801, S26) == 200
    assert iaqi("o3_8h", 900, S26) == 300
    assert iaqi("so2_1h", 801, S12) is None
    hour = {"so2_1h": 900, "so2_24h": 120, "no2_1h": 10, "co_1h": 1, "o3_1h": 900, "o3_8h": 850}
    hour |= {"pm10_24h": 10, "pm25_24h": 10}
    r = compute_aqi(hour, S12, "hour")
    assert r.iaqi["so2_1h"] == iaqi("so2_24h", 120, S12)
    assert r.iaqi["o3_8h"] == iaqi("o3_1h", 900, S12)


def test_beyond_full_tables_is_500() -> None:
    assert iaqi("pm25_24h", 800, S26) == 500


def test_missing_pollutants_are_named() -> None:
    with pytest.raises(MissingPollutants) as caught:
        compute_aqi({"pm25_24h": 50, "pm10_24h": 60}, S26, "day")
    assert caught.value.missing == ["so2_24h", "no2_24h", "co_24h", "o3_8h"]
    with pytest.raises(MissingPollutants) as caught:
        compute_aqi({"so2_1h": 900, "no2_1h": 1, "co_1h": 1, "o3_1h": 1, "o3_8h": 1,
                     "pm10_24h": 1, "pm25_24h": 1}, S12, "hour")  # fmt: skip
    assert caught.value.missing == ["so2_24h"]


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, 20_000.0])
def test_impossible_concentrations_are_refused(value: float) -> None:
    with pytest.raises(ImpossibleConcentration):
        iaqi("pm25_24h", value, S26)


def test_categories_and_colours() -> None:
    assert [category(a).level for a in (0, 50, 51, 100, 101, 150, 151, 200, 201, 300, 301, 500)] == [
        1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
    ]  # fmt: skip
    assert category(120).colour == "#FF7E00"
    assert category(250).rgb == (153, 0, 76)


def test_no_primary_pollutant_when_excellent_and_ties_name_all() -> None:
    zero = dict.fromkeys(REQUIRED[(S26, "day")], 0.0)
    assert compute_aqi(zero, S26, "day").primary == []
    tie = zero | {"pm25_24h": 60, "pm10_24h": 120}
    assert compute_aqi(tie, S26, "day").primary_pollutants == ["PM10", "PM2.5"]


concentration = st.floats(min_value=0, max_value=1200, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(a=concentration, b=concentration, standard=st.sampled_from(list(Standard)),
       item=st.sampled_from(["pm25_24h", "pm10_24h", "no2_1h", "co_24h", "o3_1h", "so2_24h"]))  # fmt: skip
def test_iaqi_is_monotonic(a: float, b: float, standard: Standard, item: str) -> None:
    lo, hi = sorted((a, b))
    if item.startswith("co"):
        lo, hi = lo / 20, hi / 20
    low, high = iaqi(item, lo, standard), iaqi(item, hi, standard)
    assert low is not None
    assert high is not None
    assert 0 <= low <= high <= 500


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.lists(st.floats(min_value=0, max_value=900, allow_nan=False), min_size=9, max_size=9),
                  min_size=1, max_size=20),
    standard=st.sampled_from(list(Standard)),
    period=st.sampled_from(["hour", "day"]),
)  # fmt: skip
def test_vectorised_equals_per_record(rows: list[list[float]], standard: Standard, period: str) -> None:
    items = ["so2_1h", "so2_24h", "no2_1h", "no2_24h", "co_1h", "co_24h", "o3_1h", "o3_8h", "pm25_24h"]
    cols = {
        item: np.array([r[k] / (10 if item.startswith("co") else 1) for r in rows])
        for k, item in enumerate(items)
    }
    cols |= {
        "pm10_24h": cols["pm25_24h"] * 1.5,
        "pm10_1h": cols["pm25_24h"] * 1.6,
        "pm25_1h": cols["pm25_24h"] * 1.1,
    }
    fast = aqi_array(cols, standard, period)  # type: ignore[arg-type]
    for k in range(len(rows)):
        row = {item: float(values[k]) for item, values in cols.items()}
        assert fast[k] == compute_aqi(row, standard, period).aqi  # type: ignore[arg-type]


def test_vectorised_refuses_impossible_records() -> None:
    cols = {item: np.array([10.0, 10.0]) for item in REQUIRED[(S26, "hour")]}
    cols["pm25_1h"] = np.array([-3.0, 10.0])
    assert aqi_array(cols, S26, "hour").tolist()[0] == -1


@settings(max_examples=150, deadline=None)
@given(
    base=st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), min_size=7, max_size=7),
    bump=st.floats(min_value=0, max_value=300, allow_nan=False),
    which=st.integers(min_value=0, max_value=6),
    standard=st.sampled_from(list(Standard)),
)
def test_aqi_never_falls_when_one_concentration_rises(
    base: list[float], bump: float, which: int, standard: Standard
) -> None:
    items = REQUIRED[(standard, "day")]
    day = {item: base[k] / (10 if item.startswith("co") else 1) for k, item in enumerate(items)}
    item = items[which % len(items)]
    raised = {**day, item: day[item] + bump}
    if standard is Standard.HJ633_2012:  # a day's highest hour is never below its highest 8 hours
        day["o3_1h"] = max(day["o3_1h"], day["o3_8h"])
        raised["o3_1h"] = max(raised["o3_1h"], raised["o3_8h"], day["o3_1h"])
    before = compute_aqi(day, standard, "day")
    after = compute_aqi(raised, standard, "day")
    assert after.aqi >= before.aqi
    assert after.aqi == max(after.iaqi.values())
    assert after.category.low <= after.aqi
