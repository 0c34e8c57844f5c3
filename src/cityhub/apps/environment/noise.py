"""Environmental noise compliance per GB 3096-2008 (Leq in dB(A)). Pure calculation, no I/O.

Zone classes 0, 1, 2, 3, 4a, 4b each have a day and a night limit. Day is 06:00–22:00 local time
unless the local government sets other hours (the app's settings). At night the maximum sound level
may exceed the night limit by at most 15 dB for sporadic noise (10 dB for frequent noise; verify
against the standard's clause 5.4 — kept as data here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal

ZONES: tuple[str, ...] = ("0", "1", "2", "3", "4a", "4b")
#: (day, night) limits per zone class.
LIMITS: dict[str, tuple[float, float]] = {
    "0": (50, 40),
    "1": (55, 45),
    "2": (60, 50),
    "3": (65, 55),
    "4a": (70, 55),
    "4b": (70, 60),
}
NIGHT_LMAX_MARGIN = {"sporadic": 15.0, "frequent": 10.0}
DAY_START = time(6)
NIGHT_START = time(22)
MAX_LEVEL = 200.0  # dB(A): beyond any sound in air a sonometer can report

Period = Literal["day", "night"]


class ImpossibleLevel(ValueError):
    def __init__(self, name: str, value: float) -> None:
        super().__init__(f"{name}: {value!r} is not a possible sound level")


@dataclass(frozen=True)
class NoiseCompliance:
    zone: str
    period: Period
    level: float
    limit: float
    compliant: bool
    excess: float  # dB above the limit, 0 when compliant


def check_level(name: str, value: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 <= value <= MAX_LEVEL:
        raise ImpossibleLevel(name, value)
    return float(value)


def period_of(local: datetime, day_start: time = DAY_START, night_start: time = NIGHT_START) -> Period:
    t = local.time()
    return "day" if day_start <= t < night_start else "night"


def limit(zone: str, period: Period) -> float:
    if zone not in LIMITS:
        raise KeyError(zone)
    day, night = LIMITS[zone]
    return day if period == "day" else night


def comply(zone: str, period: Period, level: float) -> NoiseCompliance:
    level = check_level("LAeq", level)
    bound = limit(zone, period)
    excess = max(0.0, round(level - bound, 1))
    return NoiseCompliance(zone, period, level, bound, level <= bound, excess)


def night_lmax_ok(zone: str, lmax: float, kind: str = "sporadic") -> bool:
    """Whether a night-time maximum level stays within the night limit plus the allowed margin."""
    return check_level("LAmax", lmax) <= limit(zone, "night") + NIGHT_LMAX_MARGIN[kind]


def energy_mean(levels: Iterable[float]) -> float:
    """The equivalent continuous level of equal-length intervals: 10·lg(mean(10^(L/10)))."""
    values = [check_level("LAeq", v) for v in levels]
    if not values:
        raise ValueError("no levels")
    return 10 * math.log10(sum(10 ** (v / 10) for v in values) / len(values))
