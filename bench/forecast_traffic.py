"""Short-term speed forecast: the model against the historical-average baseline.

Generates a seeded, realistic speed series per segment (15-minute slots over five weeks: a daily
profile with morning and evening rush hours, lighter weekends, incidents that cut the speed for 30
to 120 minutes, and autocorrelated noise), fits on the first four weeks and reports the mean
absolute error at 15, 30 and 60 minutes on the fifth, for the model and for the baseline (the
profile alone), with their ratio.

    .venv/bin/python bench/forecast_traffic.py [--segments 50] [--seed 2026]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import numpy as np

from cityhub.apps.traffic.forecast import SLOTS_PER_DAY, STEP_MINUTES, SpeedSeries, evaluate, fit

DAYS = 35
TRAIN_DAYS = 28


def synthetic_series(rng: np.random.Generator, free_flow: float) -> np.ndarray:
    n = DAYS * SLOTS_PER_DAY
    hours = (np.arange(n) % SLOTS_PER_DAY) * STEP_MINUTES / 60  # local time: slot 0 is midnight
    day = np.arange(n) // SLOTS_PER_DAY
    weekend = ((day + 4) % 7) >= 5  # the series starts on a Friday
    depth_am, depth_pm = rng.uniform(0.35, 0.6), rng.uniform(0.3, 0.55)
    rush = depth_am * np.exp(-0.5 * ((hours - 8.0) / 0.9) ** 2) + depth_pm * np.exp(
        -0.5 * ((hours - 18.0) / 1.1) ** 2
    )
    rush = np.where(weekend, 0.4 * rush, rush) + 0.08 * np.exp(-0.5 * ((hours - 13) / 2.5) ** 2)
    speed = free_flow * (1 - rush)
    # incidents: about one every three days, 30-120 minutes, speed down by 30-70 %
    factor = np.ones(n)
    for _ in range(rng.poisson(DAYS / 3)):
        start = int(rng.integers(0, n))
        length = int(rng.integers(2, 9))
        factor[start : start + length] *= 1 - rng.uniform(0.3, 0.7)
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 0.04)
    return np.clip(speed * factor * (1 + noise), 2.0, free_flow * 1.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = datetime(2026, 10, 1, 16, 0, tzinfo=UTC)  # Friday 2 October, midnight in UTC+8
    totals: dict[int, list[tuple[float, float, int]]] = {}
    for _ in range(args.segments):
        values = synthetic_series(rng, float(rng.choice([40.0, 60.0, 80.0])))
        values[rng.random(len(values)) < 0.02] = np.nan  # detector gaps
        train = SpeedSeries(start, values[: TRAIN_DAYS * SLOTS_PER_DAY].copy())
        model = fit(train)
        for e in evaluate(model, SpeedSeries(start, values), TRAIN_DAYS * SLOTS_PER_DAY):
            totals.setdefault(e.horizon, []).append((e.model_mae, e.baseline_mae, e.samples))
    print(f"speed forecast, {args.segments} segments, {DAYS} days of 15-minute slots, seed {args.seed}")
    print(f"trained on {TRAIN_DAYS} days, tested on the last {DAYS - TRAIN_DAYS}")
    print(f"{'horizon':>8} {'model MAE':>10} {'baseline MAE':>13} {'ratio':>6}   (km/h)")
    for horizon, rows in sorted(totals.items()):
        weights = np.array([r[2] for r in rows], dtype=float)
        model_mae = float(np.average([r[0] for r in rows], weights=weights))
        base_mae = float(np.average([r[1] for r in rows], weights=weights))
        print(f"{horizon:>5} min {model_mae:>10.2f} {base_mae:>13.2f} {model_mae / base_mae:>6.2f}")


if __name__ == "__main__":
    main()
