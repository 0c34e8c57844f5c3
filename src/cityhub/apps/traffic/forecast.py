"""Short-term speed forecast per segment at 15, 30 and 60 minutes.

The model: a time-of-day profile (mean speed per 15-minute slot, weekdays and weekends apart), plus
a linear regression, one per horizon, of the future deviation from the profile on the last three
deviations. Far ahead the regression fades to the profile; near, it carries what is happening now
(an incident, an early rush hour). The baseline it is judged against is the profile alone: the
historical average for that slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

STEP_MINUTES = 15
HORIZONS_MINUTES = (15, 30, 60)
LAGS = 3
SLOTS_PER_DAY = 24 * 60 // STEP_MINUTES
#: The day type (weekday, weekend) is the local one: China Standard Time.
LOCAL_OFFSET = timedelta(hours=8)
_RIDGE = 1e-3


@dataclass
class SpeedSeries:
    """Speeds on a regular grid of ``STEP_MINUTES`` slots from ``start``; NaN where nothing was seen."""

    start: datetime
    values: npt.NDArray[np.float64]

    def time_of(self, index: int) -> datetime:
        return self.start + timedelta(minutes=STEP_MINUTES * index)


def _slot_floor(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    minutes = (t.hour * 60 + t.minute) // STEP_MINUTES * STEP_MINUTES
    return t.replace(hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0)


def resample(points: Iterable[tuple[datetime, float]], *, end: datetime | None = None) -> SpeedSeries:
    """Mean speed per slot of the (time, speed) observations; the last slot is the one of ``end``
    (default: the last observation)."""
    pts = sorted((t, float(v)) for t, v in points if v is not None)
    if not pts:
        raise ValueError("no observations")
    start = _slot_floor(pts[0][0])
    last = _slot_floor(end or pts[-1][0])
    n = int((last - start) / timedelta(minutes=STEP_MINUTES)) + 1
    total = np.zeros(max(n, 1))
    count = np.zeros(max(n, 1))
    for t, v in pts:
        i = int((t - start) / timedelta(minutes=STEP_MINUTES))
        if 0 <= i < n:
            total[i] += v
            count[i] += 1
    with np.errstate(invalid="ignore"):
        values = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return SpeedSeries(start, values)


def _slot_keys(series: SpeedSeries) -> npt.NDArray[np.int64]:
    """Profile key of every slot: day type (0 weekday, 1 weekend) × SLOTS_PER_DAY + slot of day."""
    n = len(series.values)
    local0 = series.start + LOCAL_OFFSET
    first_slot = (local0.hour * 60 + local0.minute) // STEP_MINUTES
    idx = np.arange(n) + first_slot
    day = idx // SLOTS_PER_DAY
    weekday = (local0.weekday() + day) % 7
    return np.where(weekday >= 5, 1, 0) * SLOTS_PER_DAY + idx % SLOTS_PER_DAY


@dataclass
class ForecastModel:
    profile: npt.NDArray[np.float64]  # 2 × SLOTS_PER_DAY, NaN-free
    coefficients: dict[int, npt.NDArray[np.float64]]  # horizon → LAGS weights and an intercept
    observations: int

    def expected(self, series: SpeedSeries) -> npt.NDArray[np.float64]:
        """The profile's speed for every slot of ``series`` (the historical-average baseline)."""
        return self.profile.reshape(-1)[_slot_keys(series)]

    def predict(self, series: SpeedSeries, index: int | None = None) -> dict[int, float]:
        """Speeds at each horizon after slot ``index`` (default: the last slot) of ``series``."""
        i = len(series.values) - 1 if index is None else index
        horizon_steps = max(HORIZONS_MINUTES) // STEP_MINUTES
        extended = SpeedSeries(
            series.start, np.append(series.values[: i + 1], np.full(horizon_steps, np.nan))
        )
        expected = self.expected(extended)
        deviation = extended.values - expected
        lags = _recent(deviation, i)
        result = {}
        for h in HORIZONS_MINUTES:
            k = h // STEP_MINUTES
            coef = self.coefficients.get(h)
            delta = float(np.dot(coef[:LAGS], lags) + coef[LAGS]) if coef is not None else 0.0
            result[h] = max(0.0, float(expected[i + k]) + delta)
        return result


def _recent(deviation: npt.NDArray[np.float64], i: int) -> npt.NDArray[np.float64]:
    """The last LAGS deviations up to slot i, newest first; a missing one repeats the newer one
    (0, the profile itself, for the newest when it is missing)."""
    out = np.zeros(LAGS)
    for lag in range(LAGS):
        j = i - lag
        if 0 <= j < len(deviation) and np.isfinite(deviation[j]):
            out[lag] = deviation[j]
        elif lag > 0:
            out[lag] = out[lag - 1]
    return out


def fit(series: SpeedSeries) -> ForecastModel:
    """The profile from all observed slots and, per horizon, least squares (lightly ridged) on every
    slot where the lags and the target are all observed."""
    keys = _slot_keys(series)
    values = series.values
    seen = np.isfinite(values)
    if not seen.any():
        raise ValueError("no observations")
    sums = np.bincount(keys[seen], weights=values[seen], minlength=2 * SLOTS_PER_DAY)
    counts = np.bincount(keys[seen], minlength=2 * SLOTS_PER_DAY)
    profile = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).reshape(2, SLOTS_PER_DAY)
    profile = _fill_profile(profile, float(values[seen].mean()))
    deviation = values - profile.reshape(-1)[keys]
    coefficients: dict[int, npt.NDArray[np.float64]] = {}
    n = len(values)
    for h in HORIZONS_MINUTES:
        k = h // STEP_MINUTES
        rows = np.arange(LAGS - 1, n - k)
        if len(rows) == 0:
            continue
        x = np.stack([deviation[rows - lag] for lag in range(LAGS)] + [np.ones(len(rows))], axis=1)
        y = deviation[rows + k]
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
        if ok.sum() < 4 * (LAGS + 1):
            continue
        x, y = x[ok], y[ok]
        coefficients[h] = np.asarray(
            np.linalg.solve(x.T @ x + _RIDGE * len(y) * np.eye(LAGS + 1), x.T @ y), dtype=np.float64
        )
    return ForecastModel(profile, coefficients, int(seen.sum()))


def _fill_profile(profile: npt.NDArray[np.float64], mean: float) -> npt.NDArray[np.float64]:
    """Slots never observed take the other day type's value, else the nearest observed slot of the
    day, else the overall mean."""
    out = profile.copy()
    for day_type in (0, 1):
        row = out[day_type]
        other = profile[1 - day_type]
        row[~np.isfinite(row)] = other[~np.isfinite(row)]
        known = np.flatnonzero(np.isfinite(row))
        if len(known) == 0:
            row[:] = mean
            continue
        missing = np.flatnonzero(~np.isfinite(row))
        if len(missing):
            # circular nearest observed slot
            dist = np.abs(missing[:, None] - known[None, :])
            dist = np.minimum(dist, SLOTS_PER_DAY - dist)
            row[missing] = row[known[np.argmin(dist, axis=1)]]
    return out


@dataclass(frozen=True)
class Evaluation:
    horizon: int
    model_mae: float
    baseline_mae: float
    samples: int


def evaluate(model: ForecastModel, series: SpeedSeries, first: int) -> list[Evaluation]:
    """Mean absolute error of the model and of the historical-average baseline on every slot of
    ``series`` from ``first`` whose target is observed (the model only sees slots up to the one
    it forecasts from)."""
    expected = model.expected(series)
    deviation = series.values - expected
    n = len(series.values)
    results = []
    for h in HORIZONS_MINUTES:
        k = h // STEP_MINUTES
        coef = model.coefficients.get(h)
        errors_model: list[float] = []
        errors_base: list[float] = []
        for i in range(first, n - k):
            target = series.values[i + k]
            if not np.isfinite(target):
                continue
            delta = (
                float(np.dot(coef[:LAGS], _recent(deviation, i)) + coef[LAGS]) if coef is not None else 0.0
            )
            errors_model.append(abs(max(0.0, expected[i + k] + delta) - target))
            errors_base.append(abs(expected[i + k] - target))
        results.append(
            Evaluation(h, float(np.mean(errors_model)), float(np.mean(errors_base)), len(errors_model))
        )
    return results


def forecast_times(now: datetime, horizons: Sequence[int] = HORIZONS_MINUTES) -> dict[int, datetime]:
    base = _slot_floor(now)
    return {h: base + timedelta(minutes=h) for h in horizons}
