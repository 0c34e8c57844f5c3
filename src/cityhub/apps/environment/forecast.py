"""24-hour AQI forecast per station: ridge regression on lagged AQI, time of day and week, and the
recent trend, one model per lead time (direct multi-step). Pure numpy, no I/O.

Features at the forecast origin t (the last observed hour), for lead time h:
the AQI at t, t-1, t-2, t-3, t-6, t-12, t-24 and t-168; the AQI of the target hour t+h one day
and one week before; the means
of the last 6 and 24 hours; the trend (t minus t-3); the hour of day of the target hour t+h as
sine and cosine of its first two harmonics; and a weekend flag for the target day. Features are
standardised with the training data's mean and spread; the ridge penalty keeps the 20-odd
coefficients stable on a few weeks of history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

HORIZON = 24
LAGS: tuple[int, ...] = (0, 1, 2, 3, 6, 12, 24, 168)
WARMUP = max(LAGS)
MIN_HISTORY_HOURS = WARMUP + 7 * 24  # a week beyond the longest lag
DEFAULT_PENALTY = 3.0

Array = npt.NDArray[np.float64]


class NotEnoughHistory(ValueError):
    def __init__(self, hours: int) -> None:
        super().__init__(
            f"a forecast needs {MIN_HISTORY_HOURS} hours of AQI history, the station has {hours}"
        )
        self.hours = hours


def fill_gaps(series: Array) -> Array:
    """Linear interpolation over missing hours (NaN); leading and trailing gaps take the nearest value."""
    y = np.asarray(series, dtype=np.float64)
    held = np.flatnonzero(~np.isnan(y))
    if len(held) == 0:
        return y
    return np.interp(np.arange(len(y)), held, y[held])


def features(y: Array, origins: npt.NDArray[np.int64], lead: int, hour0: int, weekday0: int) -> Array:
    """The feature matrix for forecasts from ``origins`` (indices into ``y``) ``lead`` hours ahead;
    ``hour0``/``weekday0``: local hour and weekday of index 0."""
    cols = [y[origins - lag] for lag in LAGS]
    cols.append(y[origins + lead - 24])  # the target hour one day before
    cols.append(y[origins + lead - 168])  # and one week before
    cum = np.concatenate(([0.0], np.cumsum(y)))
    cols.append((cum[origins + 1] - cum[origins - 5]) / 6)
    cols.append((cum[origins + 1] - cum[origins - 23]) / 24)
    cols.append(y[origins] - y[origins - 3])
    target = origins + lead + hour0
    hour = target % 24
    for k in (1, 2):
        cols.append(np.sin(2 * np.pi * k * hour / 24))
        cols.append(np.cos(2 * np.pi * k * hour / 24))
    weekday = (weekday0 + target // 24) % 7
    cols.append((weekday >= 5).astype(np.float64))
    return np.column_stack(cols)


@dataclass
class LeadModel:
    mean: Array
    scale: Array
    coef: Array
    intercept: float

    def predict(self, x: Array) -> Array:
        z: Array = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return z


def fit_ridge(x: Array, target: Array, penalty: float) -> LeadModel:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    intercept = float(target.mean())
    gram = z.T @ z + penalty * np.eye(z.shape[1])
    coef = np.linalg.solve(gram, z.T @ (target - intercept))
    return LeadModel(mean, scale, coef, intercept)


@dataclass
class AqiForecaster:
    """One ridge model per lead time 1..24, trained on one station's hourly AQI."""

    models: list[LeadModel]
    hour0: int
    weekday0: int

    @classmethod
    def train(cls, series: Array, start: datetime, *, penalty: float = DEFAULT_PENALTY) -> AqiForecaster:
        """``series``: hourly AQI (NaN where missing) from the local hour ``start``."""
        y = fill_gaps(series)
        held = int(np.count_nonzero(~np.isnan(np.asarray(series, dtype=np.float64))))
        if len(y) < MIN_HISTORY_HOURS or held < MIN_HISTORY_HOURS // 2:
            raise NotEnoughHistory(held)
        models = []
        for lead in range(1, HORIZON + 1):
            origins = np.arange(WARMUP, len(y) - lead)
            x = features(y, origins, lead, start.hour, start.weekday())
            models.append(fit_ridge(x, y[origins + lead], penalty))
        return cls(models, start.hour, start.weekday())

    def predict_from(self, series: Array, origin: int) -> Array:
        """The 24 values after index ``origin`` of ``series`` (same start as the training series)."""
        y = fill_gaps(series)
        at = np.array([origin], dtype=np.int64)
        out = [
            float(m.predict(features(y, at, lead, self.hour0, self.weekday0))[0])
            for lead, m in enumerate(self.models, start=1)
        ]
        clipped: Array = np.clip(np.asarray(out), 0, 500)
        return clipped

    def predict_many(self, series: Array, origins: npt.NDArray[np.int64], lead: int) -> Array:
        y = fill_gaps(series)
        x = features(y, origins, lead, self.hour0, self.weekday0)
        clipped: Array = np.clip(self.models[lead - 1].predict(x), 0, 500)
        return clipped


def forecast(series: Array, start: datetime) -> list[tuple[datetime, float]]:
    """Train on the whole series and forecast the 24 hours after its last hour."""
    model = AqiForecaster.train(series, start)
    values = model.predict_from(series, len(series) - 1)
    last = start + timedelta(hours=len(series) - 1)
    return [(last + timedelta(hours=k), round(float(v), 1)) for k, v in enumerate(values, start=1)]
