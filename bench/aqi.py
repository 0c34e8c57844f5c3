"""AQI computation throughput over hourly records: vectorised (numpy) against per record.

    .venv/bin/python bench/aqi.py [--records 1000000] [--standard HJ633-2026] [--seed 3]

Generates seeded hourly records (SO2, NO2, CO, O3 1h, PM10 and PM2.5 1h, about 0.5 % of them with
an impossible value), computes their hourly AQI with the environment app's vectorised
``aqi_array`` and, as the baseline in the same run, with ``compute_aqi`` record by record, checks
both give the same AQI for every record, and prints records per second for each and the ratio.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from cityhub.apps.environment.aqi import (
    REQUIRED,
    ImpossibleConcentration,
    Standard,
    aqi_array,
    compute_aqi,
)


def records(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = {
        "so2_1h": rng.gamma(2.0, 8.0, n),
        "no2_1h": rng.gamma(3.0, 12.0, n),
        "co_1h": rng.gamma(2.5, 0.4, n),
        "o3_1h": rng.gamma(3.0, 30.0, n),
        "o3_8h": rng.gamma(3.0, 25.0, n),
        "pm10_1h": rng.gamma(2.2, 40.0, n),
        "pm25_1h": rng.gamma(2.0, 25.0, n),
    }
    cols["pm10_24h"] = cols["pm10_1h"] * rng.uniform(0.8, 1.2, n)
    cols["pm25_24h"] = cols["pm25_1h"] * rng.uniform(0.8, 1.2, n)
    cols["so2_24h"] = cols["so2_1h"] * rng.uniform(0.8, 1.2, n)
    bad = rng.random(n) < 0.005
    cols["pm25_1h"][bad] = -5.0
    cols["pm25_24h"][bad] = -5.0
    return cols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--standard", default=Standard.HJ633_2026.value, choices=[s.value for s in Standard])
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    standard = Standard(args.standard)
    cols = records(args.records, args.seed)

    began = time.perf_counter()
    fast = aqi_array(cols, standard, "hour")
    vector_s = time.perf_counter() - began

    items = REQUIRED[(standard, "hour")] + (("so2_24h",) if standard is Standard.HJ633_2012 else ())
    rows = [
        dict(zip(items, values, strict=True))
        for values in zip(*(cols[i].tolist() for i in items), strict=True)
    ]
    began = time.perf_counter()
    slow = np.empty(args.records, dtype=np.int64)
    for k, row in enumerate(rows):
        try:
            slow[k] = compute_aqi(row, standard, "hour").aqi
        except ImpossibleConcentration:
            slow[k] = -1
    loop_s = time.perf_counter() - began

    mismatches = int(np.count_nonzero(fast != slow))
    print(f"{args.records:,} hourly records, {standard}, {int(np.count_nonzero(fast < 0)):,} refused")
    print(f"machine: {platform.machine()}, numpy {np.__version__}")
    print(f"vectorised: {vector_s:.3f} s, {args.records / vector_s:,.0f} records/s")
    print(f"per record (baseline): {loop_s:.3f} s, {args.records / loop_s:,.0f} records/s")
    print(f"ratio (vectorised/per record throughput): {loop_s / vector_s:.1f}")
    print(f"records whose AQI differs between the two: {mismatches}")


if __name__ == "__main__":
    main()
