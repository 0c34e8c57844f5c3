"""24-hour AQI forecast: the environment app's ridge model against the persistence baseline.

    .venv/bin/python bench/forecast_aqi.py [--stations 6] [--days 120] [--train 0.7] [--seed 7]

Generates seeded hourly PM2.5 series for several stations (seasonal level, diurnal cycle with
morning and evening peaks, weekday/weekend cycle, multi-day pollution episodes that build up and
clear with a front, autocorrelated noise, a few missing hours), turns them into hourly AQI with
the app's own HJ 633-2026 scoring, trains one forecaster per station on the first part of its
series and forecasts from every hour of the rest. Prints MAE and RMSE at 1, 6, 12 and 24 hours
ahead for the model and for persistence (the last observed AQI), and the ratio model/persistence.
"""

from __future__ import annotations

import argparse
import platform
from datetime import UTC, datetime

import numpy as np

from cityhub.apps.environment.aqi import Standard, iaqi_array
from cityhub.apps.environment.forecast import WARMUP, AqiForecaster

LEADS = (1, 6, 12, 24)


def station_series(rng: np.random.Generator, hours: int, start: datetime) -> np.ndarray:
    t = np.arange(hours)
    local_hour = (start.hour + t) % 24
    weekday = (start.weekday() + (start.hour + t) // 24) % 7
    level = rng.uniform(35, 60) * (1 + 0.35 * np.cos(2 * np.pi * t / (24 * 365)))  # winter high
    diurnal = 1 + 0.22 * np.exp(-((local_hour - 8) ** 2) / 6) + 0.3 * np.exp(-((local_hour - 21) ** 2) / 8)
    diurnal -= 0.2 * np.exp(-((local_hour - 15) ** 2) / 10)  # afternoon mixing
    weekly = np.where(weekday >= 5, 0.88, 1.04)
    episodes = np.zeros(hours)
    at = int(rng.integers(24, 24 * 6))
    while at < hours:
        build = int(rng.integers(36, 120))
        peak = rng.uniform(0.8, 2.6)
        clear = int(rng.integers(6, 18))
        ramp = np.concatenate((np.linspace(0, peak, build), np.linspace(peak, 0, clear)))
        end = min(hours, at + len(ramp))
        episodes[at:end] += ramp[: end - at]
        at = end + int(rng.integers(24 * 3, 24 * 12))
    noise = np.zeros(hours)
    shocks = rng.normal(0, 0.12, hours)
    for k in range(1, hours):
        noise[k] = 0.85 * noise[k - 1] + shocks[k]
    pm25 = np.maximum(2.0, level * diurnal * weekly * (1 + episodes) * np.exp(noise))
    aqi = iaqi_array("pm25_1h", pm25, Standard.HJ633_2026)
    aqi[rng.random(hours) < 0.01] = np.nan  # a station misses about 1 % of its hours
    return aqi


def errors(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    ok = ~np.isnan(truth)
    diff = pred[ok] - truth[ok]
    return float(np.mean(np.abs(diff))), float(np.sqrt(np.mean(diff**2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=6)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--train", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    hours = args.days * 24
    cut = int(hours * args.train)
    model_pred: dict[int, list[np.ndarray]] = {lead: [] for lead in LEADS}
    naive_pred: dict[int, list[np.ndarray]] = {lead: [] for lead in LEADS}
    truth: dict[int, list[np.ndarray]] = {lead: [] for lead in LEADS}
    for _ in range(args.stations):
        series = station_series(rng, hours, start)
        model = AqiForecaster.train(series[:cut], start)
        filled = np.copy(series)
        for lead in LEADS:
            origins = np.arange(max(cut, WARMUP), hours - lead)
            model_pred[lead].append(model.predict_many(filled, origins, lead))
            last = series[origins]
            # persistence: the last observed value (the one before, when this hour is missing)
            prev = series[origins - 1]
            naive_pred[lead].append(np.where(np.isnan(last), prev, last))
            truth[lead].append(series[origins + lead])

    print(f"stations {args.stations}, {args.days} days hourly, trained on the first {args.train:.0%}")
    print(f"machine: {platform.machine()} {platform.processor() or ''}, numpy {np.__version__}")
    print(
        f"{'lead':>5} {'model MAE':>10} {'model RMSE':>11} {'persist MAE':>12} {'persist RMSE':>13} "
        f"{'MAE ratio':>10} {'RMSE ratio':>11}"
    )
    for lead in LEADS:
        true = np.concatenate(truth[lead])
        pm, pr = errors(np.concatenate(model_pred[lead]), true)
        naive = np.concatenate(naive_pred[lead])
        keep = ~np.isnan(naive)
        nm, nr = errors(naive[keep], true[keep])
        print(f"{lead:>4}h {pm:>10.2f} {pr:>11.2f} {nm:>12.2f} {nr:>13.2f} {pm / nm:>10.3f} {pr / nr:>11.3f}")


if __name__ == "__main__":
    main()
