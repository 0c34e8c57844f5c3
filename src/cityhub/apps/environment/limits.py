"""Smaller compliance checks with their limits as data: ambient gamma radiation, soil pollutants,
construction-site dust (PM10), key energy users' consumption per unit of output, and key pollution
sources against their emission limits. Pure calculation, no I/O.

The values marked "verify" were not read from the standards' texts; they are data to correct:

- soil: risk screening values for farmland ("other" column) of GB 15618-2018, mg/kg, by soil pH
  band ≤5.5, 5.5–6.5, 6.5–7.5, >7.5 (verify);
- gamma dose rate: an investigation level of 200 nGy/h above which a reading is looked into
  (local practice, verify);
- construction-site PM10: the app setting ``dust_pm10_limit`` (local rules differ by city).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

SOIL_SCREENING: dict[str, tuple[float, float, float, float]] = {
    "Cd": (0.3, 0.3, 0.3, 0.6),
    "Hg": (1.3, 1.8, 2.4, 3.4),
    "As": (40, 40, 30, 25),
    "Pb": (70, 90, 120, 170),
    "Cr": (150, 150, 200, 250),
    "Cu": (50, 50, 100, 100),
    "Ni": (60, 70, 100, 190),
    "Zn": (200, 200, 250, 300),
}
GAMMA_INVESTIGATION_NGY_H = 200.0


class ImpossibleValue(ValueError):
    def __init__(self, name: str, value: float) -> None:
        super().__init__(f"{name}: {value!r} is not a possible value")
        self.name = name


def _check(name: str, value: float, *, positive: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ImpossibleValue(name, value)
    return float(value)


@dataclass(frozen=True)
class Exceedance:
    item: str
    value: float
    limit: float
    ratio: float  # value / limit

    @property
    def exceeded(self) -> bool:
        return self.value > self.limit


def against(limits: Mapping[str, float], values: Mapping[str, float]) -> list[Exceedance]:
    """Each measured item against its limit (items without a limit are left out)."""
    found = []
    for item, value in values.items():
        if item not in limits:
            continue
        v = _check(item, value)
        bound = _check(f"{item} limit", limits[item], positive=True)
        found.append(Exceedance(item, v, bound, round(v / bound, 3)))
    return found


def soil_limits(ph: float) -> dict[str, float]:
    if not 0 <= _check("pH", ph) <= 14:
        raise ImpossibleValue("pH", ph)
    band = 0 if ph <= 5.5 else 1 if ph <= 6.5 else 2 if ph <= 7.5 else 3
    return {item: values[band] for item, values in SOIL_SCREENING.items()}


def soil(ph: float, values: Mapping[str, float]) -> list[Exceedance]:
    unknown = [item for item in values if item not in SOIL_SCREENING]
    if unknown:
        raise KeyError(", ".join(unknown))
    return against(soil_limits(ph), values)


def radiation(gamma_ngy_h: float) -> Exceedance:
    return against({"gammaDoseRate": GAMMA_INVESTIGATION_NGY_H}, {"gammaDoseRate": gamma_ngy_h})[0]


def site_dust(pm10: float, limit: float) -> Exceedance:
    return against({"pm10": limit}, {"pm10": pm10})[0]


@dataclass(frozen=True)
class EnergyUse:
    consumption_tce: float
    output: float
    intensity: float  # tce per unit of output
    quota: float | None
    within_quota: bool | None


def energy_use(consumption_tce: float, output: float, quota: float | None = None) -> EnergyUse:
    """A key energy user's consumption (tonnes of coal equivalent) per unit of output, against its
    quota per unit when it has one."""
    c = _check("consumption", consumption_tce)
    o = _check("output", output, positive=True)
    intensity = round(c / o, 6)
    if quota is None:
        return EnergyUse(c, o, intensity, None, None)
    q = _check("quota", quota, positive=True)
    return EnergyUse(c, o, intensity, q, intensity <= q)
