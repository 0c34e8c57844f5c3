"""GB 3838-2002 water classes and GB 3096-2008 noise compliance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityhub.apps.environment import noise, water


@pytest.mark.parametrize("item", list(water.LIMITS))
def test_each_class_limit_is_inclusive(item: str) -> None:
    for name, limit in zip(water.CLASSES, water.LIMITS[item], strict=False):
        got = water.item_class(item, limit)
        # equal limits (COD I/II at 15) give the better class
        assert water.rank(got) <= water.rank(name)


def test_item_classes() -> None:
    assert water.item_class("DO", 7.5) == "I"
    assert water.item_class("DO", 7.4) == "II"
    assert water.item_class("DO", 1.9) == "劣V"
    assert water.item_class("NH3-N", 0.51) == "III"
    assert water.item_class("NH3-N", 2.01) == "劣V"
    assert water.item_class("TP", 0.05) == "II"
    assert water.item_class("TP", 0.05, lake=True) == "III"
    assert water.item_class("pH", 9.5) == "劣V"


def test_sample_class_is_the_worst_item_and_names_it() -> None:
    found = water.classify({"DO": 8, "CODMn": 5, "NH3-N": 1.2, "TP": 0.05, "pH": 7.2})
    assert found.water_class == "IV"
    assert found.determining == ["NH3-N"]
    assert found.worse_than("III")
    assert not found.worse_than("IV")


def test_impossible_water_measures() -> None:
    with pytest.raises(water.ImpossibleMeasure):
        water.item_class("COD", -1)
    with pytest.raises(water.ImpossibleMeasure):
        water.item_class("pH", 15)


def test_measures_from_smart_data_model_attributes() -> None:
    assert water.measures_of({"O2": 6.5, "NH4": 0.3, "temperature": 12}) == {"DO": 6.5, "NH3-N": 0.3}


@given(a=st.floats(0, 50), b=st.floats(0, 50), item=st.sampled_from(["CODMn", "COD", "NH3-N", "TN", "TP"]))
def test_more_pollutant_never_a_better_class(a: float, b: float, item: str) -> None:
    lo, hi = sorted((a, b))
    assert water.rank(water.item_class(item, lo)) <= water.rank(water.item_class(item, hi))


def test_noise_limits_day_and_night() -> None:
    assert noise.comply("1", "day", 55).compliant
    night = noise.comply("1", "night", 47.3)
    assert (night.compliant, night.limit, night.excess) == (False, 45, 2.3)
    assert noise.limit("4a", "night") == 55
    assert noise.limit("4b", "night") == 60
    with pytest.raises(KeyError):
        noise.limit("5", "day")


def test_noise_periods() -> None:
    assert noise.period_of(datetime(2026, 5, 1, 6, 0, tzinfo=UTC)) == "day"
    assert noise.period_of(datetime(2026, 5, 1, 21, 59, tzinfo=UTC)) == "day"
    assert noise.period_of(datetime(2026, 5, 1, 22, 0, tzinfo=UTC)) == "night"
    assert noise.period_of(datetime(2026, 5, 1, 5, 59, tzinfo=UTC)) == "night"


def test_noise_energy_mean_and_lmax() -> None:
    assert noise.energy_mean([60, 60]) == pytest.approx(60)
    assert noise.energy_mean([50, 60]) == pytest.approx(57.4, abs=0.05)
    assert noise.night_lmax_ok("2", 65)
    assert not noise.night_lmax_ok("2", 65.1)
    with pytest.raises(noise.ImpossibleLevel):
        noise.comply("2", "day", -3)
