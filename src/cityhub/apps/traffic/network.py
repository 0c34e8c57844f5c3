"""The road network as compact arrays: nodes with coordinates, directed segments, CSR adjacency.

No I/O here. Importers build a :class:`RoadNetwork` from a list of :class:`Segment`; routing and the
congestion model read its numpy arrays. Segment ``i`` is edge ``i`` of the graph.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

EARTH_RADIUS_M = 6_371_008.8


class RoadClass(StrEnum):
    """Road classes of the urban road standard (CJJ 37): 快速路, 主干路, 次干路, 支路."""

    EXPRESSWAY = "expressway"
    ARTERIAL = "arterial"
    SECONDARY = "secondary"
    BRANCH = "branch"

    @property
    def code(self) -> int:
        return _CLASS_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> RoadClass:
        return _CLASSES[code]


_CLASSES = tuple(RoadClass)
_CLASS_CODES = {c: i for i, c in enumerate(_CLASSES)}

#: Free-flow speed (km/h) assumed when the source gives none.
DEFAULT_SPEED_KMH = {
    RoadClass.EXPRESSWAY: 80.0,
    RoadClass.ARTERIAL: 60.0,
    RoadClass.SECONDARY: 40.0,
    RoadClass.BRANCH: 30.0,
}


def class_for_speed(speed_kmh: float) -> RoadClass:
    """A road class guessed from a speed limit, when the source has no road type."""
    if speed_kmh >= 70:
        return RoadClass.EXPRESSWAY
    if speed_kmh >= 50:
        return RoadClass.ARTERIAL
    if speed_kmh >= 35:
        return RoadClass.SECONDARY
    return RoadClass.BRANCH


@dataclass
class Segment:
    """One directed road segment between two junctions."""

    id: str
    from_node: str
    to_node: str
    length_m: float
    free_flow_kmh: float
    road_class: RoadClass
    lanes: int = 1
    name: str | None = None
    road: str | None = None  # the way / street the segment belongs to
    shape: list[tuple[float, float]] = field(default_factory=list)  # (lon, lat), from → to


@dataclass
class Node:
    id: str
    lon: float
    lat: float


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def polyline_length_m(points: Sequence[tuple[float, float]]) -> float:
    return sum(haversine_m(*a, *b) for a, b in itertools.pairwise(points))


class RoadNetwork:
    """Directed graph in CSR form. ``out_start[v]:out_start[v+1]`` indexes ``out_edges``, the segments
    leaving node ``v``; ``in_start``/``in_edges`` the same for segments arriving at ``v``."""

    def __init__(self, nodes: Sequence[Node], segments: Sequence[Segment]) -> None:
        self.node_ids: list[str] = [n.id for n in nodes]
        self.node_index: dict[str, int] = {nid: i for i, nid in enumerate(self.node_ids)}
        if len(self.node_index) != len(self.node_ids):
            raise ValueError("duplicate node ids")
        self.lon = np.array([n.lon for n in nodes], dtype=np.float64)
        self.lat = np.array([n.lat for n in nodes], dtype=np.float64)
        self.segments: list[Segment] = list(segments)
        self.segment_index: dict[str, int] = {}
        for i, seg in enumerate(self.segments):
            if seg.id in self.segment_index:
                raise ValueError(f"duplicate segment id {seg.id}")
            self.segment_index[seg.id] = i
        m = len(self.segments)
        self.src = np.empty(m, dtype=np.int64)
        self.dst = np.empty(m, dtype=np.int64)
        for i, seg in enumerate(self.segments):
            try:
                self.src[i] = self.node_index[seg.from_node]
                self.dst[i] = self.node_index[seg.to_node]
            except KeyError as exc:
                raise ValueError(f"segment {seg.id} refers to unknown node {exc.args[0]}") from None
        self.length_m = np.array([max(s.length_m, 0.1) for s in self.segments], dtype=np.float64)
        self.free_flow_kmh = np.array([max(s.free_flow_kmh, 1.0) for s in self.segments], dtype=np.float64)
        self.lanes = np.array([max(s.lanes, 1) for s in self.segments], dtype=np.int32)
        self.road_class = np.array([s.road_class.code for s in self.segments], dtype=np.int8)
        n = len(self.node_ids)
        self.out_start, self.out_edges = _csr(self.src, n)
        self.in_start, self.in_edges = _csr(self.dst, n)

    @property
    def node_count(self) -> int:
        return len(self.node_ids)

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    def free_flow_seconds(self) -> npt.NDArray[np.float64]:
        """Travel time of every segment at free-flow speed."""
        return self.length_m / (self.free_flow_kmh / 3.6)

    def nearest_node(
        self, lon: float, lat: float, *, need_out: bool = False, need_in: bool = False
    ) -> tuple[int, float]:
        """The node closest to (lon, lat) and its distance in metres; ``need_out``/``need_in`` keep
        only nodes with segments leaving / arriving."""
        if self.node_count == 0:
            raise ValueError("empty network")
        scale = math.cos(math.radians(lat))
        dx = (self.lon - lon) * scale
        dy = self.lat - lat
        d2 = dx * dx + dy * dy
        if need_out:
            d2 = np.where(np.diff(self.out_start) > 0, d2, np.inf)
        if need_in:
            d2 = np.where(np.diff(self.in_start) > 0, d2, np.inf)
        best = int(np.argmin(d2))
        if not math.isfinite(float(d2[best])):
            raise ValueError("no node with the needed connections")
        return best, haversine_m(lon, lat, float(self.lon[best]), float(self.lat[best]))

    def segment_shape(self, edge: int) -> list[tuple[float, float]]:
        seg = self.segments[edge]
        if seg.shape:
            return seg.shape
        a, b = int(self.src[edge]), int(self.dst[edge])
        return [(float(self.lon[a]), float(self.lat[a])), (float(self.lon[b]), float(self.lat[b]))]


def _csr(keys: npt.NDArray[np.int64], n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    order = np.argsort(keys, kind="stable").astype(np.int64)
    counts = np.bincount(keys, minlength=n) if len(keys) else np.zeros(n, dtype=np.int64)
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    return start, order


def build_network(nodes: Iterable[Node], segments: Iterable[Segment]) -> RoadNetwork:
    """A network from nodes and segments, keeping only nodes some segment uses."""
    segs = list(segments)
    used = {s.from_node for s in segs} | {s.to_node for s in segs}
    return RoadNetwork([n for n in nodes if n.id in used], segs)
