"""The speed forecast: resampling, the time-of-day profile, and beating the profile near term."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cityhub.apps.traffic.forecast import (
    SLOTS_PER_DAY,
    SpeedSeries,
    evaluate,
    fit,
    forecast_times,
    resample,
)

START = datetime(2026, 11, 1, 16, 0, tzinfo=UTC)  # Monday 2 November, midnight in UTC+8


def daily_series(days: int, seed: int) -> np.ndarray:
    """A morning dip every day, and a long slowdown (an incident) every other day at a random time."""
    rng = np.random.default_rng(seed)
    slot = np.arange(days * SLOTS_PER_DAY)
    hours = (slot % SLOTS_PER_DAY) / 4
    speed = 50 - 25 * np.exp(-0.5 * ((hours - 8) / 1.0) ** 2)
    for day in range(0, days, 2):
        at = day * SLOTS_PER_DAY + int(rng.integers(0, SLOTS_PER_DAY - 12))
        speed[at : at + 10] *= 0.4
    return speed + rng.normal(0, 1.0, len(speed))


def test_resample_to_slots() -> None:
    t0 = datetime(2026, 11, 2, 0, 7, tzinfo=UTC)
    series = resample([(t0, 30.0), (t0 + timedelta(minutes=5), 40.0), (t0 + timedelta(minutes=40), 20.0)])
    assert series.start == datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    assert series.values[0] == 35.0
    assert np.isnan(series.values[1])
    assert series.values[3] == 20.0
    with pytest.raises(ValueError, match="no observations"):
        resample([])


def test_profile_learns_the_morning_dip() -> None:
    model = fit(SpeedSeries(START, daily_series(14, 1)))
    weekday = model.profile[0]
    assert weekday[8 * 4] < 30 < 45 < weekday[14 * 4]  # 08:00 slow, 14:00 free
    assert model.observations == 14 * SLOTS_PER_DAY


def test_model_beats_the_historical_average_near_term() -> None:
    values = daily_series(28, 2)
    model = fit(SpeedSeries(START, values[: 21 * SLOTS_PER_DAY]))
    by_horizon = {e.horizon: e for e in evaluate(model, SpeedSeries(START, values), 21 * SLOTS_PER_DAY)}
    assert set(by_horizon) == {15, 30, 60}
    assert by_horizon[15].model_mae < 0.8 * by_horizon[15].baseline_mae
    assert by_horizon[15].model_mae <= by_horizon[60].model_mae


def test_predict_carries_an_ongoing_slowdown() -> None:
    values = daily_series(14, 3)
    model = fit(SpeedSeries(START, values))
    now = 14 * SLOTS_PER_DAY - 1  # 23:45 local on the last day: free flow expected
    jammed = values.copy()
    jammed[now - 2 : now + 1] = 15.0
    free = model.predict(SpeedSeries(START, values), now)
    slow = model.predict(SpeedSeries(START, jammed), now)
    assert slow[15] < free[15] - 10
    assert slow[15] < slow[60]  # the slowdown is expected to clear
    assert list(forecast_times(START + timedelta(minutes=7))) == [15, 30, 60]
