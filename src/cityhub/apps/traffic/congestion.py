"""The congestion model: segment state from speed by road class, travel time index (TTI) and the
0–10 traffic performance index (TPI), for one segment, a district or the whole network.

Both tables below are the only place their numbers live; docs/traffic.md prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from cityhub.apps.traffic.network import RoadClass


class SegmentState(IntEnum):
    FREE = 0
    BASICALLY_FREE = 1
    LIGHT = 2
    MODERATE = 3
    SEVERE = 4

    @property
    def key(self) -> str:
        return _STATE_LABELS[self][0]

    @property
    def label_zh(self) -> str:
        return _STATE_LABELS[self][1]

    @property
    def label_en(self) -> str:
        return _STATE_LABELS[self][2]

    @classmethod
    def from_key(cls, key: str) -> SegmentState:
        for state, (k, _, _) in _STATE_LABELS.items():
            if k == key:
                return state
        raise ValueError(f"unknown segment state {key!r}")


_STATE_LABELS = {
    SegmentState.FREE: ("free", "畅通", "free flow"),
    SegmentState.BASICALLY_FREE: ("basicallyFree", "基本畅通", "basically free"),
    SegmentState.LIGHT: ("light", "轻度拥堵", "light congestion"),
    SegmentState.MODERATE: ("moderate", "中度拥堵", "moderate congestion"),
    SegmentState.SEVERE: ("severe", "严重拥堵", "severe congestion"),
}

#: Segment state by speed (km/h): the lower bounds (exclusive) of free, basically free, light and
#: moderate; at or below the last bound a segment is in severe congestion.
SPEED_TABLE: dict[RoadClass, tuple[float, float, float, float]] = {
    RoadClass.EXPRESSWAY: (65.0, 50.0, 35.0, 20.0),
    RoadClass.ARTERIAL: (40.0, 30.0, 20.0, 15.0),
    RoadClass.SECONDARY: (35.0, 25.0, 15.0, 10.0),
    RoadClass.BRANCH: (35.0, 25.0, 15.0, 10.0),
}

#: TPI from the VKT-weighted share of congested road (segments in moderate or severe congestion):
#: (share, TPI) cut points, linear in between, 10 above the last. Beijing's DB11/T 785 style
#: cut points (4 %, 8 %, 11 %, 14 % of congested mileage for the levels' lower bounds), as used for
#: the GB/T 33171-2016 style 0–10 index.
TPI_CUT_POINTS: tuple[tuple[float, float], ...] = (
    (0.00, 0.0),
    (0.04, 2.0),
    (0.08, 4.0),
    (0.11, 6.0),
    (0.14, 8.0),
    (0.24, 10.0),
)
CONGESTED_STATES = (SegmentState.MODERATE, SegmentState.SEVERE)


class TpiLevel(IntEnum):
    FREE = 0
    BASICALLY_FREE = 1
    LIGHT = 2
    MODERATE = 3
    SEVERE = 4

    @property
    def key(self) -> str:
        return _STATE_LABELS[SegmentState(self.value)][0]

    @property
    def label_zh(self) -> str:
        return _STATE_LABELS[SegmentState(self.value)][1]

    @property
    def label_en(self) -> str:
        return _STATE_LABELS[SegmentState(self.value)][2]


def tpi_level(tpi: float) -> TpiLevel:
    """[0,2) free, [2,4) basically free, [4,6) light, [6,8) moderate, [8,10] severe."""
    return TpiLevel(min(int(tpi // 2), 4))


_BOUNDS = np.array([SPEED_TABLE[c] for c in RoadClass], dtype=np.float64)  # row = class code


def segment_state(road_class: RoadClass, speed_kmh: float) -> SegmentState:
    bounds = SPEED_TABLE[road_class]
    for state, bound in enumerate(bounds):
        if speed_kmh > bound:
            return SegmentState(state)
    return SegmentState.SEVERE


def segment_states(
    class_codes: npt.NDArray[np.int8], speeds_kmh: npt.NDArray[np.float64]
) -> npt.NDArray[np.int8]:
    """:func:`segment_state` for arrays: the number of bounds a speed does not exceed."""
    bounds = _BOUNDS[class_codes.astype(np.int64)]
    states: npt.NDArray[np.int8] = (speeds_kmh[:, None] <= bounds).sum(axis=1).astype(np.int8)
    return states


def tpi_from_share(share: float | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    xs = np.array([p[0] for p in TPI_CUT_POINTS])
    ys = np.array([p[1] for p in TPI_CUT_POINTS])
    return np.asarray(np.interp(share, xs, ys), dtype=np.float64)


@dataclass(frozen=True)
class AreaIndex:
    area: str
    tti: float
    tpi: float
    congested_share: float
    segments: int
    observed_segments: int

    @property
    def level(self) -> TpiLevel:
        return tpi_level(self.tpi)


def area_indices(
    *,
    length_m: npt.NDArray[np.float64],
    speed_kmh: npt.NDArray[np.float64],
    free_flow_kmh: npt.NDArray[np.float64],
    weight: npt.NDArray[np.float64],
    states: npt.NDArray[np.int8],
    area_codes: npt.NDArray[np.int64],
    area_names: Sequence[str],
    observed: npt.NDArray[np.bool_],
) -> list[AreaIndex]:
    """TTI = Σ w·L/v ÷ Σ w·L/v_ff and TPI from the VKT-weighted congested share, per area (the
    ``area_codes`` index into ``area_names``) and, last, for all segments (named "network"). Only
    observed segments count; an area with none has TTI 1 and TPI 0."""
    n_areas = len(area_names)
    w = np.where(observed, weight, 0.0)
    actual = w * length_m / np.maximum(speed_kmh, 0.1)
    free = w * length_m / free_flow_kmh
    vkt = w * length_m
    congested = np.isin(states, [int(s) for s in CONGESTED_STATES])
    codes = area_codes
    sums = [np.bincount(codes, weights=x, minlength=n_areas) for x in (actual, free, vkt, vkt * congested)]
    counts = np.bincount(codes, minlength=n_areas)
    seen = np.bincount(codes, weights=observed.astype(np.float64), minlength=n_areas)
    result = []
    for i, name in enumerate(area_names):
        result.append(
            _index(name, sums[0][i], sums[1][i], sums[2][i], sums[3][i], int(counts[i]), int(seen[i]))
        )
    actual_all, free_all, vkt_all, jam_all = (float(x.sum()) for x in sums)
    result.append(
        _index("network", actual_all, free_all, vkt_all, jam_all, len(length_m), int(observed.sum()))
    )
    return result


def _index(name: str, actual: float, free: float, vkt: float, jam: float, n: int, seen: int) -> AreaIndex:
    tti = actual / free if free > 0 else 1.0
    share = jam / vkt if vkt > 0 else 0.0
    return AreaIndex(name, float(tti), float(tpi_from_share(share)), float(share), n, seen)
