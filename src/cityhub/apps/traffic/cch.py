"""Customizable contraction hierarchies (CCH): exact shortest paths whose query time does not depend
on the travel times.

Three phases:

1. **Preprocessing, metric-independent** (:class:`Hierarchy`, once per network): junctions are ranked
   by nested dissection (recursive inertial bisection of their coordinates; each separator ranks above
   the two halves it separates), then contracted in rank order on the undirected graph, which adds
   the shortcuts a chordal supergraph needs. Each junction's neighbours of higher rank form its
   *upward* arcs; the lowest of them is its parent in the elimination tree, and every upward
   neighbour is an ancestor. Triangles u < v < w are not stored: the customisation walks them.
2. **Customisation** (:meth:`Hierarchy.customize`, whenever travel times change): every arc {v, w}
   gets, in both directions, the shortest time through junctions ranked below both ends:
   ``t(v→w) = min(segment v→w, t(v→u) + t(u→w) for each lower triangle u)``, junction u taken in
   rank order, remembering the u that gave each time. :meth:`Hierarchy.update` redoes only the arcs
   that some changed segments reach (same results, bit for bit).
3. **Query** (:meth:`Hierarchy.query`): every junction the upward search from the origin can reach
   is an ancestor of the origin in the elimination tree, and the ancestors in rank order are a
   topological order of the upward arcs; so the search is one pass up the origin's ancestors, one
   up the destination's (backward times), and the best meeting on their common ancestors. Its cost
   is the same whatever the times. Shortcuts are unpacked through their remembered triangles.

The loops over arcs and triangles are compiled with numba (a PyPI wheel); the grid-like graphs of
cities give a few hundred million triangles at 100,000 junctions, too many to list in memory or to
walk with numpy.

Correctness does not depend on the order's quality (any order gives exact answers); only the sizes
and so the times do.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from cityhub.apps.traffic.network import RoadNetwork
from cityhub.apps.traffic.ordering import nested_dissection, ranges

Ints = npt.NDArray[np.int64]
Small = npt.NDArray[np.int32]  # arrays over the arcs: 32 bits (a few million arcs) halve their memory
Floats = npt.NDArray[np.float64]


@numba.njit(cache=True, nogil=True)
def _customize(
    start: Any, head: Any, up: Any, down: Any, mid_up: Any, mid_down: Any
) -> None:  # pragma: no cover
    """Basic customisation in place: ``up``/``down`` hold each arc's own segment time (inf none).
    For each u in rank order and each pair v < x of its higher neighbours, the arc {v, x} is found
    by galloping forwards along v's arcs (x increases, and v's higher neighbours include u's above
    v: they are a clique)."""
    n = len(start) - 1
    for u in range(n):
        end_u = start[u + 1]
        for i in range(start[u], end_u):
            v = head[i]
            to_v, from_v = up[i], down[i]
            p, end_v = start[v], start[v + 1]
            for j in range(i + 1, end_u):
                x = head[j]
                if head[p] != x:
                    step = 1
                    while p + step < end_v and head[p + step] < x:
                        step *= 2
                    lo, hi = p + step // 2, min(p + step, end_v - 1)
                    while lo < hi:  # the first arc of v at or above x: x itself
                        mid = (lo + hi) // 2
                        if head[mid] < x:
                            lo = mid + 1
                        else:
                            hi = mid
                    p = lo
                c = from_v + up[j]  # v → u → x
                if c < up[p]:
                    up[p] = c
                    mid_up[p] = u
                c = to_v + down[j]  # x → u → v
                if c < down[p]:
                    down[p] = c
                    mid_down[p] = u


@numba.njit(cache=True, inline="always")
def _arc(start: Any, head: Any, low: int, high: int) -> Any:  # pragma: no cover
    return start[low] + np.searchsorted(head[start[low] : start[low + 1]], high)


@numba.njit(cache=True, nogil=True)
def _update(
    start: Any,
    head: Any,
    low: Any,
    below_start: Any,
    below: Any,
    below_arc: Any,
    base_up: Any,
    base_down: Any,
    up: Any,
    down: Any,
    mid_up: Any,
    mid_down: Any,
    changed: Any,
) -> int:  # pragma: no cover
    """Recompute the arcs ``changed`` (their own segment times changed) and every arc whose time
    depends on one that moved, in arc order (= order of the lower end): each from its own segment
    and its lower triangles u (the junctions below both ends, in rank order). Returns the count."""
    queued = np.zeros(len(head), dtype=np.uint8)
    heap = [np.int64(0)]
    heap.pop()
    for a in changed:
        if not queued[a]:
            queued[a] = 1
            heapq.heappush(heap, np.int64(a))
    done = 0
    while heap:
        a = heapq.heappop(heap)
        queued[a] = 0
        done += 1
        v, w = low[a], head[a]
        best_up, best_down = base_up[a], base_down[a]
        by_up, by_down = -1, -1
        i, i_end = below_start[v], below_start[v + 1]
        j, j_end = below_start[w], below_start[w + 1]
        while i < i_end and j < j_end:  # both lists in rank order: merge for the common u
            if below[i] < below[j]:
                i += 1
            elif below[i] > below[j]:
                j += 1
            else:
                lower_v, lower_w = below_arc[i], below_arc[j]
                c = down[lower_v] + up[lower_w]
                if c < best_up:
                    best_up, by_up = c, below[i]
                c = up[lower_v] + down[lower_w]
                if c < best_down:
                    best_down, by_down = c, below[i]
                i += 1
                j += 1
        moved = best_up != up[a] or best_down != down[a]
        up[a], down[a], mid_up[a], mid_down[a] = best_up, best_down, by_up, by_down
        if moved:  # the arc {v, w} is a side of the triangles v, w, x for every other x above v
            for k in range(start[v], start[v + 1]):
                x = head[k]
                if x != w:
                    b = _arc(start, head, min(w, x), max(w, x))
                    if not queued[b]:
                        queued[b] = 1
                        heapq.heappush(heap, np.int64(b))
    return done


@numba.njit(cache=True, nogil=True)
def _query(
    start: Any,
    head: Any,
    parent: Any,
    up: Any,
    down: Any,
    source: int,
    target: int,
    dist_up: Any,
    dist_down: Any,
    via_up: Any,
    via_down: Any,
) -> tuple[float, int]:  # pragma: no cover
    """Elimination-tree search; the distance arrays come in all inf and go back so. Returns the
    time and the meeting junction (-1: none); ``via_*`` hold the arc into each reached junction."""
    dist_up[source] = 0.0
    v = source
    while v >= 0:
        d = dist_up[v]
        if d < np.inf:
            for k in range(start[v], start[v + 1]):
                c = d + up[k]
                x = head[k]
                if c < dist_up[x]:
                    dist_up[x] = c
                    via_up[x] = k
        v = parent[v]
    dist_down[target] = 0.0
    v = target
    while v >= 0:
        d = dist_down[v]
        if d < np.inf:
            for k in range(start[v], start[v + 1]):
                c = d + down[k]
                x = head[k]
                if c < dist_down[x]:
                    dist_down[x] = c
                    via_down[x] = k
        v = parent[v]
    best, meet = np.inf, -1
    v = source
    while v >= 0:
        c = dist_up[v] + dist_down[v]
        if c < best:
            best, meet = c, v
        v = parent[v]
    return best, meet


@numba.njit(cache=True)
def _reset(parent: Any, dist: Any, origin: int) -> None:  # pragma: no cover
    v = origin
    while v >= 0:
        dist[v] = np.inf
        v = parent[v]


@numba.njit(cache=True)
def _unpack(
    start: Any,
    head: Any,
    low: Any,
    mid_up: Any,
    mid_down: Any,
    edge_up: Any,
    edge_down: Any,
    arcs: Any,
    upward: Any,
) -> Any:  # pragma: no cover
    """The segments of a list of (arc, direction), each arc its own segment or, through its
    remembered triangle u, two lower arcs (explicit stack)."""
    out = []
    for p in range(len(arcs)):
        stack = [(arcs[p], upward[p])]
        while stack:
            a, going_up = stack.pop()
            v, w = low[a], head[a]
            if going_up:
                u = mid_up[a]
                if u < 0:
                    out.append(edge_up[a])
                else:  # v → u → w
                    stack.append((_arc(start, head, u, w), True))
                    stack.append((_arc(start, head, u, v), False))
            else:
                u = mid_down[a]
                if u < 0:
                    out.append(edge_down[a])
                else:  # w → u → v
                    stack.append((_arc(start, head, u, v), True))
                    stack.append((_arc(start, head, u, w), False))
    return np.array(out, dtype=np.int64)


@dataclass
class Metric:
    """A customisation: the times of every arc of a :class:`Hierarchy` in both directions (``up``:
    from the lower-ranked end to the higher, ``down``: back) on the segment times ``weights``;
    ``mid_*``: the junction of the lower triangle that gave the time, -1 where the arc's own
    segment ``edge_*`` did (``base_*`` its time, inf where none)."""

    weights: Floats
    up: Floats
    down: Floats
    mid_up: Small
    mid_down: Small
    base_up: Floats
    base_down: Floats
    edge_up: Small
    edge_down: Small


_compiled = False


def _compile() -> None:
    """Compile the kernels once per process (numba caches them on disk), on a small network, so that
    no query waits for the compiler."""
    global _compiled
    if _compiled:
        return
    _compiled = True
    from cityhub.apps.traffic.network import Node, RoadClass, Segment

    nodes = [Node(str(i), 113.6 + (i % 3) * 0.001, 34.7 + (i // 3) * 0.001) for i in range(9)]
    segments = [
        Segment(f"{a}-{b}", str(a), str(b), 100.0, 30.0, RoadClass.BRANCH)
        for a in range(9)
        for b in (a + 1, a + 3)
        if b < 9 and (b == a + 3 or b % 3)
    ]
    segments += [
        Segment(f"{s.id}-r", s.to_node, s.from_node, 100.0, 30.0, RoadClass.BRANCH) for s in segments
    ]
    hierarchy = Hierarchy(RoadNetwork(nodes, segments))
    metric = hierarchy.customize(np.full(len(segments), 12.0))
    hierarchy.update(metric, [0], [20.0])
    hierarchy.query(metric, 0, 8)


class Hierarchy:
    """The metric-independent part of a CCH over one network (see the module's docstring)."""

    def __init__(self, network: RoadNetwork) -> None:
        _compile()
        n = network.node_count
        self.node_count = n
        src, dst = network.src, network.dst
        real = src != dst
        lo_n, hi_n = np.minimum(src, dst)[real], np.maximum(src, dst)[real]
        pairs = np.unique(lo_n * n + hi_n)
        ua, ub = pairs // max(n, 1), pairs % max(n, 1)
        ends = np.concatenate([ua, ub])
        others = np.concatenate([ub, ua])
        by_end = np.argsort(ends, kind="stable")
        start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(ends, minlength=n), out=start[1:])
        mean_lat = float(network.lat.mean()) if n else 0.0
        x = network.lon * math.cos(math.radians(mean_lat))
        order = nested_dissection(x, network.lat.astype(np.float64), start, others[by_end])
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n, dtype=np.int64)
        self.rank = rank

        # contraction in rank order: a junction's higher neighbours become a clique (sets, in C)
        upward: list[set[int]] = [set() for _ in range(n)]
        ra, rb = rank[ua], rank[ub]
        for lo, hi in zip(np.minimum(ra, rb).tolist(), np.maximum(ra, rb).tolist(), strict=True):
            upward[lo].add(hi)
        parent = [-1] * n
        for v in range(n):
            around = upward[v]
            if around:
                p = min(around)
                parent[v] = p
                if len(around) > 1:
                    above = upward[p]
                    above.update(around)
                    above.discard(p)
        self.parent = np.asarray(parent, dtype=np.int64)
        degree = np.fromiter((len(s) for s in upward), dtype=np.int64, count=n)
        arcs = int(degree.sum())
        self.arc_count = arcs
        self.head: Small = np.fromiter((h for s in upward for h in sorted(s)), dtype=np.int32, count=arcs)
        del upward
        self.start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(degree, out=self.start[1:])
        self.low: Small = np.repeat(np.arange(n, dtype=np.int32), degree)
        # the arcs below each junction, by lower end (for incremental customisation)
        by_head = np.lexsort((self.low, self.head))
        self.below_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.head, minlength=n), out=self.below_start[1:])
        self.below: Small = self.low[by_head]
        self.below_arc: Small = by_head.astype(np.int32)
        del by_head
        self.triangle_count = int((degree * (degree - 1) // 2).sum())
        # query scratch: distances all inf between queries (reset along the two chains)
        self._lock = threading.Lock()
        self._dist_up, self._dist_down = np.full(n, np.inf), np.full(n, np.inf)
        self._via_up, self._via_down = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)

        # segments onto arcs
        self._edge_arc = np.full(network.segment_count, -1, dtype=np.int64)
        rs, rd = rank[src], rank[dst]
        self._edge_arc[real] = self.arc_of(np.minimum(rs, rd)[real], np.maximum(rs, rd)[real])
        self._edge_up = rs < rd
        self._arc_edges = np.argsort(self._edge_arc, kind="stable")[int((~real).sum()) :]
        self._arc_edge_start = np.zeros(arcs + 1, dtype=np.int64)
        np.cumsum(np.bincount(self._edge_arc[real], minlength=arcs), out=self._arc_edge_start[1:])

    def arc_of(self, low: Ints, high: Ints) -> Ints:
        """Arc ids of the pairs (lower rank, higher rank); the pairs must be arcs."""
        keys = self.low.astype(np.int64) * self.node_count + self.head  # sorted
        found: Ints = np.searchsorted(keys, low * self.node_count + high)
        return found

    def _base(self, weights: Floats, arcs: Ints | None = None) -> tuple[Floats, Floats, Small, Small]:
        """The best single segment along each arc (``arcs``: only those) in both directions."""
        if arcs is None:
            edges = self._arc_edges
            owner = self._edge_arc[edges]
            size = self.arc_count
        else:
            counts = self._arc_edge_start[arcs + 1] - self._arc_edge_start[arcs]
            edges = self._arc_edges[ranges(self._arc_edge_start[arcs], counts)]
            owner = np.repeat(np.arange(len(arcs), dtype=np.int64), counts)
            size = len(arcs)
        found: list[Any] = []
        for upward in (True, False):
            chosen = edges[self._edge_up[edges] == upward]
            mine = owner[self._edge_up[edges] == upward]
            w = weights[chosen]
            order = np.lexsort((w, mine))
            lead = np.ones(len(order), dtype=bool)
            lead[1:] = mine[order][1:] != mine[order][:-1]
            best = order[lead]
            base = np.full(size, np.inf)
            edge = np.full(size, -1, dtype=np.int32)
            base[mine[best]] = w[best]
            edge[mine[best]] = chosen[best]
            found.append((base, edge))
        (base_up, edge_up), (base_down, edge_down) = found
        return base_up, base_down, edge_up, edge_down

    def customize(self, weights: Sequence[float] | Floats) -> Metric:
        """Arc times for segment times ``weights`` (all of them: the full customisation)."""
        w = np.array(weights, dtype=np.float64)
        base_up, base_down, edge_up, edge_down = self._base(w)
        up, down = base_up.copy(), base_down.copy()
        mid_up = np.full(self.arc_count, -1, dtype=np.int32)
        mid_down = np.full(self.arc_count, -1, dtype=np.int32)
        _customize(self.start, self.head, up, down, mid_up, mid_down)
        return Metric(w, up, down, mid_up, mid_down, base_up, base_down, edge_up, edge_down)

    def update(self, metric: Metric, edges: Iterable[int], weights: Iterable[float]) -> int:
        """Change some segments' times in ``metric`` and redo only the arcs that depend on them;
        returns how many arcs were recomputed."""
        changed = np.fromiter(edges, dtype=np.int64)
        metric.weights[changed] = np.fromiter(weights, dtype=np.float64, count=len(changed))
        arcs = np.unique(self._edge_arc[changed])
        arcs = arcs[arcs >= 0]
        if len(arcs) == 0:
            return 0
        base_up, base_down, edge_up, edge_down = self._base(metric.weights, arcs)
        metric.base_up[arcs], metric.base_down[arcs] = base_up, base_down
        metric.edge_up[arcs], metric.edge_down[arcs] = edge_up, edge_down
        done: int = _update(
            self.start,
            self.head,
            self.low,
            self.below_start,
            self.below,
            self.below_arc,
            metric.base_up,
            metric.base_down,
            metric.up,
            metric.down,
            metric.mid_up,
            metric.mid_down,
            arcs,
        )
        return done

    def query(self, metric: Metric, source: int, target: int) -> tuple[float, list[int]] | None:
        """The shortest time from junction ``source`` to ``target`` on ``metric`` and its segments,
        or None when there is no path."""
        if source == target:
            return 0.0, []
        s, t = int(self.rank[source]), int(self.rank[target])
        with self._lock:
            dist_up, dist_down, via_up, via_down = (
                self._dist_up,
                self._dist_down,
                self._via_up,
                self._via_down,
            )
            seconds, meet = _query(
                self.start,
                self.head,
                self.parent,
                metric.up,
                metric.down,
                s,
                t,
                dist_up,
                dist_down,
                via_up,
                via_down,
            )
            _reset(self.parent, dist_up, s)
            _reset(self.parent, dist_down, t)
            if meet < 0 or not math.isfinite(seconds):
                return None
            steps_up: list[int] = []
            v = meet
            while v != s:
                k = int(via_up[v])
                steps_up.append(k)
                v = int(self.low[k])
            steps_up.reverse()
            steps_down: list[int] = []
            v = meet
            while v != t:
                k = int(via_down[v])
                steps_down.append(k)
                v = int(self.low[k])
        arcs = np.array(steps_up + steps_down, dtype=np.int64)
        upward = np.zeros(len(arcs), dtype=np.bool_)
        upward[: len(steps_up)] = True
        edges = _unpack(
            self.start,
            self.head,
            self.low,
            metric.mid_up,
            metric.mid_down,
            metric.edge_up,
            metric.edge_down,
            arcs,
            upward,
        )
        return float(seconds), edges.tolist()
