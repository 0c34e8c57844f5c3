"""Surface water class per GB 3838-2002 (basic items, mg/L). Pure calculation, no I/O.

Each item is classed I–V by the first class whose limit it meets (dissolved oxygen: at least the
limit; the others: at most); an item beyond class V is 劣V. A sample's class is its worst item's
class, and that item is named. pH must lie within 6–9 for every class (outside: 劣V). Total
phosphorus has its own limits for lakes and reservoirs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

CLASSES: tuple[str, ...] = ("I", "II", "III", "IV", "V", "劣V")
CLASS_EN: dict[str, str] = {"劣V": "worse than V"}

#: Limits per item for classes I..V; DO is a minimum, the rest maxima.
LIMITS: dict[str, tuple[float, ...]] = {
    "DO": (7.5, 6, 5, 3, 2),
    "CODMn": (2, 4, 6, 10, 15),
    "COD": (15, 15, 20, 30, 40),
    "BOD5": (3, 3, 4, 6, 10),
    "NH3-N": (0.15, 0.5, 1.0, 1.5, 2.0),
    "TP": (0.02, 0.1, 0.2, 0.3, 0.4),
    "TN": (0.2, 0.5, 1.0, 1.5, 2.0),
}
TP_LAKE: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.2)
MINIMUM_ITEMS = frozenset({"DO"})
PH_RANGE = (6.0, 9.0)

#: Entity attributes each item is read from (Smart Data Models names first).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "DO": ("O2", "dissolvedOxygen"),
    "CODMn": ("CODMn", "permanganateIndex"),
    "COD": ("COD",),
    "BOD5": ("BOD5", "BOD"),
    "NH3-N": ("NH3N", "NH4"),
    "TP": ("TP", "totalPhosphorus"),
    "TN": ("TN", "totalNitrogen"),
    "pH": ("pH",),
}
LAKE_TYPES = frozenset({"lake", "reservoir"})


class ImpossibleMeasure(ValueError):
    def __init__(self, item: str, value: float) -> None:
        super().__init__(f"{item}: {value!r} is not a possible measure")
        self.item = item
        self.value = value


@dataclass(frozen=True)
class WaterClass:
    water_class: str  # I..V or 劣V
    determining: list[str]  # the item(s) that set it
    by_item: dict[str, str]

    def worse_than(self, target: str) -> bool:
        return rank(self.water_class) > rank(target)


def rank(water_class: str) -> int:
    if water_class not in CLASSES:
        raise ValueError(f"{water_class!r} is not a water class ({', '.join(CLASSES)})")
    return CLASSES.index(water_class)


def item_class(item: str, value: float, *, lake: bool = False) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ImpossibleMeasure(item, value)
    if item == "pH":
        if not 0 <= value <= 14:
            raise ImpossibleMeasure(item, value)
        return "I" if PH_RANGE[0] <= value <= PH_RANGE[1] else "劣V"
    if value < 0:
        raise ImpossibleMeasure(item, value)
    limits = TP_LAKE if item == "TP" and lake else LIMITS[item]
    for name, limit in zip(CLASSES, limits, strict=False):
        if (value >= limit) if item in MINIMUM_ITEMS else (value <= limit):
            return name
    return "劣V"


def classify(measures: Mapping[str, float], *, lake: bool = False) -> WaterClass:
    """The class of a sample from the items it has (at least one)."""
    known = {item: value for item, value in measures.items() if value is not None}
    unknown = [item for item in known if item not in LIMITS and item != "pH"]
    if unknown:
        raise KeyError(", ".join(unknown))
    if not known:
        raise ValueError("no GB 3838 item measured")
    by_item = {item: item_class(item, value, lake=lake) for item, value in known.items()}
    worst = max(by_item.values(), key=rank)
    return WaterClass(worst, [item for item, c in by_item.items() if c == worst], by_item)


def measures_of(attrs: Mapping[str, float | None]) -> dict[str, float]:
    """GB 3838 items from an entity's attribute values (the first attribute present per item)."""
    found = {}
    for item, names in ATTRIBUTES.items():
        for name in names:
            if attrs.get(name) is not None:
                found[item] = attrs[name]
                break
    return found  # type: ignore[return-value]
