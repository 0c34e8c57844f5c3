"""Averaging rules with data coverage, and the forecast model against persistence."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest

from cityhub.apps.environment import averages
from cityhub.apps.environment.aqi import Standard
from cityhub.apps.environment.forecast import MIN_HISTORY_HOURS, AqiForecaster, NotEnoughHistory, forecast

CST = timezone(timedelta(hours=8))


def test_hourly_means() -> None:
    t0 = datetime(2026, 11, 21, 8, tzinfo=UTC)
    hours = averages.hourly_means([(t0, 10), (t0 + timedelta(minutes=30), 20), (t0 + timedelta(hours=1), 5)])
    assert hours == {t0: 15.0, t0 + timedelta(hours=1): 5.0}


def _day_series(values: list[float | None]) -> dict[datetime, float]:
    start = datetime(2026, 11, 21, tzinfo=CST).astimezone(UTC)
    return {start + timedelta(hours=h): v for h, v in enumerate(values) if v is not None}


def test_24h_mean_needs_20_hours() -> None:
    day = date(2026, 11, 21)
    twenty = _day_series([10.0] * 20 + [None] * 4)
    assert averages.daily_items({"pm25": twenty}, day, CST)["pm25_24h"] == 10
    nineteen = _day_series([10.0] * 19 + [None] * 5)
    assert averages.daily_items({"pm25": nineteen}, day, CST)["pm25_24h"] is None


def test_daily_max_8h_o3_windows() -> None:
    values: list[float | None] = [50.0] * 24
    values[16:24] = [200.0] * 8  # the last window (16:00-24:00) is the highest
    items = averages.daily_items({"o3": _day_series(values)}, date(2026, 11, 21), CST)
    assert items["o3_8h"] == 200
    assert items["o3_1h"] == 200
    sparse: list[float | None] = [50.0 if h % 3 else None for h in range(24)]  # 16 hours
    assert averages.daily_items({"o3": _day_series(sparse)}, date(2026, 11, 21), CST)["o3_8h"] is None


def test_hourly_items_2012_take_rolling_means() -> None:
    t = datetime(2026, 11, 21, 12, tzinfo=UTC)
    o3 = {t - timedelta(hours=k): 100.0 + k for k in range(8)}
    items = averages.hourly_items({"o3": o3}, t, Standard.HJ633_2012)
    assert items["o3_1h"] == 100
    assert items["o3_8h"] == pytest.approx(103.5)
    assert "o3_8h" not in averages.hourly_items({"o3": o3}, t, Standard.HJ633_2026)


def _synthetic(hours: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    noise = np.zeros(hours)
    for k in range(1, hours):
        noise[k] = 0.9 * noise[k - 1] + rng.normal(0, 6)
    return np.clip(80 + 30 * np.sin(2 * np.pi * t / 24) + noise, 0, 500)


def test_forecast_beats_persistence_at_a_day_ahead() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    y = _synthetic(24 * 60, 1)
    cut = 24 * 45
    model = AqiForecaster.train(y[:cut], start)
    origins = np.arange(cut, len(y) - 24)
    model_err = np.mean(np.abs(model.predict_many(y, origins, 24) - y[origins + 24]))
    persistence_err = np.mean(np.abs(y[origins] - y[origins + 24]))
    assert model_err < persistence_err


def test_forecast_gives_24_hourly_values_and_needs_history() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    y = _synthetic(MIN_HISTORY_HOURS + 48, 2)
    out = forecast(y, start)
    assert len(out) == 24
    assert out[0][0] == start + timedelta(hours=len(y))
    assert all(0 <= v <= 500 for _, v in out)
    with pytest.raises(NotEnoughHistory):
        forecast(y[:100], start)
