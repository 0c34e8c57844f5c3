"""Route planning on live travel times.

The fastest route on the live times comes from customizable contraction hierarchies
(:mod:`cityhub.apps.traffic.cch`): a metric-independent hierarchy built once per network, customised
to the live times (in full when they are installed and at each refresh, in a worker thread; for at
most INCREMENTAL_SEGMENTS segments changed since, incrementally before a query), then queried in time
that does not depend on the traffic.

Searches on other weights (alternatives' penalised times, congestion avoidance) and queries while
more segments changed than an incremental update handles use bidirectional A* with landmarks (ALT),
which needs no customisation per set of weights.

Why ALT stays exact as traffic changes: landmark distances are computed once, on free-flow travel
times. Live travel times are never below free-flow (live speeds are clamped to at most the free-flow
speed), so every free-flow distance is a lower bound of the live one and the landmark potentials
``max(d(L,t) - d(L,v), d(v,L) - d(t,L))`` stay admissible and consistent. A* with them therefore
returns exact shortest paths on any travel times ≥ free-flow, penalised times for alternatives and
congestion avoidance included, with no re-preprocessing when speeds change. Only a change of the
network itself (new segments, higher free-flow speeds) needs new landmarks.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cityhub.apps.traffic.cch import Hierarchy, Metric
from cityhub.apps.traffic.landmarks import UNREACHABLE, csgraph, distances, strong_components
from cityhub.apps.traffic.network import RoadNetwork

_ACTIVE_LANDMARKS = 4
# At most this many segments changed since the last customisation: a query on the live times
# first updates the customisation incrementally (each changed segment reaches thousands of arcs on a
# city grid); more: the query runs ALT on the live times until the next full customisation.
INCREMENTAL_SEGMENTS = 8


@dataclass(frozen=True)
class Path:
    nodes: list[int]
    edges: list[int]
    seconds: float  # on the weights searched with
    length_m: float


def dijkstra_path(network: RoadNetwork, weights: Sequence[float], source: int, target: int) -> Path | None:
    """Plain Dijkstra, stopping at the target: the reference the faster search is checked against."""
    out_start, out_edges, dst = network.out_start, network.out_edges, network.dst
    dist = {source: 0.0}
    parent: dict[int, int] = {}
    heap = [(0.0, source)]
    done: set[int] = set()
    while heap:
        d, v = heapq.heappop(heap)
        if v in done:
            continue
        if v == target:
            return _trace(network, parent, source, target, d)
        done.add(v)
        for i in range(int(out_start[v]), int(out_start[v + 1])):
            e = int(out_edges[i])
            u = int(dst[e])
            nd = d + weights[e]
            if nd < dist.get(u, math.inf):
                dist[u] = nd
                parent[u] = e
                heapq.heappush(heap, (nd, u))
    return None


def _trace(network: RoadNetwork, parent: dict[int, int], source: int, target: int, seconds: float) -> Path:
    edges: list[int] = []
    v = target
    while v != source:
        e = parent[v]
        edges.append(e)
        v = int(network.src[e])
    edges.reverse()
    nodes = [source] + [int(network.dst[e]) for e in edges]
    length = float(network.length_m[edges].sum()) if edges else 0.0
    return Path(nodes=nodes, edges=edges, seconds=seconds, length_m=length)


class Router:
    """Router over one network: CCH on the live times, ALT on any other weights.
    ``set_travel_times``/``update_travel_times`` install live times; queries are exact on whatever
    times are installed (see the module's docstring)."""

    def __init__(self, network: RoadNetwork, *, landmarks: int = 16, seed: int = 7) -> None:
        started = time.perf_counter()
        self.network = network
        self.free_flow = network.free_flow_seconds()
        self._out_start: list[int] = network.out_start.tolist()
        self._out_edges: list[int] = network.out_edges.tolist()
        self._dst: list[int] = network.dst.tolist()
        self._src: list[int] = network.src.tolist()
        self._length: list[float] = network.length_m.tolist()
        self.weights: list[float] = self.free_flow.tolist()
        self._forward = csgraph(network, self.free_flow, reverse=False)
        self._backward = csgraph(network, self.free_flow, reverse=True)
        # per junction: (segment, next junction) of every segment leaving it
        self._adjacency: list[list[tuple[int, int]]] = [
            [(e, self._dst[e]) for e in self._out_edges[self._out_start[v] : self._out_start[v + 1]]]
            for v in range(network.node_count)
        ]
        # per junction: (segment, previous junction) of every segment arriving at it
        self._reverse_adjacency: list[list[tuple[int, int]]] = [
            [
                (e, self._src[e])
                for e in network.in_edges[network.in_start[v] : network.in_start[v + 1]].tolist()
            ]
            for v in range(network.node_count)
        ]
        self._in_start: list[int] = network.in_start.tolist()
        self._in_edges: list[int] = network.in_edges.tolist()
        self._component: list[int] = strong_components(self._forward)
        self._landmarks = self._choose_landmarks(min(landmarks, network.node_count), seed)
        if self._landmarks:
            frm = distances(self._forward, self._landmarks)
            to = distances(self._backward, self._landmarks)
            self._from: list[list[float]] = frm.tolist()
            self._to: list[list[float]] = to.tolist()
        else:
            self._from, self._to = [], []
        # landmark distances on a floor of the live times (see refresh_bounds), valid while no
        # live time is below its floor
        self._floor: list[float] | None = None
        self._floor_from: list[list[float]] = []
        self._floor_to: list[list[float]] = []
        self._below_floor = 0
        prepared = time.perf_counter()
        self._hierarchy = Hierarchy(network)
        built = time.perf_counter()
        self._metric: Metric = self._hierarchy.customize(self.free_flow)
        #: seconds spent preparing: landmarks (ALT), hierarchy (CCH), first customisation
        self.timings = {
            "landmarks": prepared - started,
            "hierarchy": built - prepared,
            "customisation": time.perf_counter() - built,
        }
        self._pending: set[int] = set()  # segments whose live time may differ from the metric's

    @property
    def hierarchy(self) -> Hierarchy:
        return self._hierarchy

    @property
    def metric(self) -> Metric:
        """The current customisation (pending changes not yet applied)."""
        return self._metric

    def prepare_metric(self) -> Metric:
        """A full customisation to the current live times: the slow part of :meth:`customize`,
        safe to run in a worker thread."""
        return self._hierarchy.customize(np.array(self.weights, dtype=np.float64))

    def install_metric(self, metric: Metric) -> None:
        """Use a customisation from :meth:`prepare_metric`; live times changed since it was
        prepared are applied incrementally before the next query."""
        self._metric = metric
        self._pending = set(np.flatnonzero(np.asarray(self.weights) != metric.weights).tolist())

    def customize(self) -> None:
        self.install_metric(self.prepare_metric())

    @property
    def customised(self) -> bool:
        """Whether queries on the live times can use the customisation (after at most an
        incremental update); else they run ALT until :meth:`customize`."""
        return len(self._pending) <= INCREMENTAL_SEGMENTS

    def _current_metric(self) -> Metric | None:
        if not self.customised:
            return None
        if self._pending:
            edges = sorted(self._pending)
            self._hierarchy.update(self._metric, edges, [self.weights[e] for e in edges])
            self._pending.clear()
        return self._metric

    @property
    def landmarks(self) -> list[int]:
        return list(self._landmarks)

    def _choose_landmarks(self, count: int, seed: int) -> list[int]:
        """Farthest-point selection on free-flow times, ignoring direction: landmarks spread to the
        edge of the network, where their bounds are tightest; unconnected parts get one first."""
        n = self.network.node_count
        if count <= 0 or n == 0:
            return []
        start = random.Random(seed).randrange(n)
        around = self._either_way(start)
        around[around >= UNREACHABLE] = -1.0
        chosen = [int(np.argmax(around))]
        nearest = self._either_way(chosen[0])
        while len(chosen) < count:
            nearest[chosen] = -1.0
            candidate = int(np.argmax(nearest))
            if nearest[candidate] <= 0:
                break
            chosen.append(candidate)
            nearest = np.minimum(nearest, self._either_way(candidate))
        return chosen

    def _either_way(self, node: int) -> npt.NDArray[np.float64]:
        forward = distances(self._forward, [node])[0]
        backward = distances(self._backward, [node])[0]
        nearest: npt.NDArray[np.float64] = np.minimum(forward, backward)
        return nearest

    def set_travel_times(self, seconds: npt.NDArray[np.float64]) -> None:
        """Install live travel times (one per segment; times below free-flow are raised to it) and
        customise to them."""
        live = np.maximum(seconds, self.free_flow)
        self.weights = live.tolist()
        self.customize()
        if self._floor is not None:
            self._below_floor = int((live < np.asarray(self._floor)).sum())

    def update_travel_times(self, edges: Sequence[int], seconds: Sequence[float]) -> None:
        ff = self.free_flow
        floor = self._floor
        for e, s in zip(edges, seconds, strict=True):
            w = max(float(s), float(ff[e]))
            self.weights[e] = w
            self._pending.add(e)
            if floor is not None and w < floor[e]:
                self._below_floor += 1  # counted once per update: conservative until the next refresh

    def floor_bounds(self, margin: float = 0.9) -> tuple[list[float], list[list[float]], list[list[float]]]:
        """Landmark distances on a floor of the current live times (``margin`` × live, never below
        free-flow): the slow part of :meth:`refresh_bounds`, safe to run in a worker thread."""
        floor = np.maximum(np.asarray(self.weights) * margin, self.free_flow)
        forward = distances(csgraph(self.network, floor, reverse=False), self._landmarks)
        backward = distances(csgraph(self.network, floor, reverse=True), self._landmarks)
        return floor.tolist(), forward.tolist(), backward.tolist()

    def install_bounds(self, bounds: tuple[list[float], list[list[float]], list[list[float]]]) -> None:
        """Use landmark distances from :meth:`floor_bounds`. Queries use them while every live time
        is at or above its floor (then they are lower bounds of live distances, as free-flow ones
        are, and tighter); one live time below its floor switches back to the free-flow bounds
        until the next refresh. Exact either way."""
        floor, forward, backward = bounds
        if not self._landmarks:
            return
        self._floor, self._floor_from, self._floor_to = floor, forward, backward
        self._below_floor = int((np.asarray(self.weights) < np.asarray(floor)).sum())

    def refresh_bounds(self, margin: float = 0.9) -> None:
        self.install_bounds(self.floor_bounds(margin))

    @property
    def live_bounds(self) -> bool:
        """Whether queries on the live times use the bounds of the last refresh."""
        return self._floor is not None and self._below_floor == 0

    def unreachable(self, source: int, target: int) -> bool:
        """Whether no path leads from source to target. Nodes of one strongly connected component
        reach each other; otherwise the landmarks may prove it, else a search from both ends, each
        step on the smaller side, settles it (fast when one end is a small dead end)."""
        if self._component[source] == self._component[target]:
            return False
        if any(
            (f[target] >= UNREACHABLE and f[source] < UNREACHABLE)
            or (t[source] >= UNREACHABLE and t[target] < UNREACHABLE)
            for f, t in zip(self._from, self._to, strict=True)
        ):
            return True
        return not self._reaches(source, target)

    def _reaches(self, source: int, target: int) -> bool:
        ahead, behind = {source}, {target}
        ahead_queue, behind_queue = [source], [target]
        while ahead_queue and behind_queue:
            forward = len(ahead_queue) <= len(behind_queue)
            queue, seen, other = (ahead_queue, ahead, behind) if forward else (behind_queue, behind, ahead)
            start, edges, ends = (
                (self._out_start, self._out_edges, self._dst)
                if forward
                else (self._in_start, self._in_edges, self._src)
            )
            following: list[int] = []
            for v in queue:
                for i in range(start[v], start[v + 1]):
                    u = ends[edges[i]]
                    if u in other:
                        return True
                    if u not in seen:
                        seen.add(u)
                        following.append(u)
            if forward:
                ahead_queue = following
            else:
                behind_queue = following
        return False

    def shortest_path(
        self, source: int, target: int, weights: Sequence[float] | None = None, *, above_live: bool = False
    ) -> Path | None:
        """The exact shortest path on ``weights`` (the live times by default, searched with CCH;
        any other weights, searched with ALT, must be ≥ free-flow times; ``above_live``: they are
        ≥ the live times, so the refreshed bounds hold for them too), or None when the target
        cannot be reached."""
        metric = self._current_metric() if weights is None else None
        if metric is not None:
            if source == target:
                return Path([source], [], 0.0, 0.0)
            found = self._hierarchy.query(metric, source, target)
            if found is None:
                return None
            seconds, edges = found
            nodes = [source] + [self._dst[e] for e in edges]
            return Path(nodes, edges, seconds, sum(self._length[e] for e in edges))
        return self.alt_path(source, target, weights, above_live=above_live)

    def alt_path(
        self, source: int, target: int, weights: Sequence[float] | None = None, *, above_live: bool = False
    ) -> Path | None:
        """:meth:`shortest_path` by ALT, whatever the weights.

        Bidirectional A* with the average potential p(v) = (π_t(v) − π_s(v)) / 2, π_t a landmark
        lower bound of d(v, t) and π_s one of d(s, v): p is consistent forwards and −p backwards,
        so both searches run on the same non-negative reduced costs and the search can stop as soon
        as the two smallest keys add up to the best meeting found."""
        w = self.weights if weights is None else weights
        if source == target:
            return Path([source], [], 0.0, 0.0)
        if self.unreachable(source, target):
            return None
        use_floor = self.live_bounds and (weights is None or above_live)
        active = self._active(source, target, use_floor)
        n = self.network.node_count
        inf = math.inf
        cutoff = UNREACHABLE / 2
        potential = [inf] * n  # p(v); NaN once known to be off every source-target path
        nan = math.nan

        def p(u: int) -> float:
            to_target = 0.0
            from_source = 0.0
            for f, ft, fs, g, gt, gs in active:
                fu, gu = f[u], g[u]
                x = ft - fu
                if x > to_target:
                    to_target = x
                x = gu - gt
                if x > to_target:
                    to_target = x
                x = fu - fs
                if x > from_source:
                    from_source = x
                x = gs - gu
                if x > from_source:
                    from_source = x
            if to_target >= cutoff or from_source >= cutoff:
                return nan
            return (to_target - from_source) / 2

        dist_f = [inf] * n
        dist_r = [inf] * n
        parent_f = [-1] * n
        parent_r = [-1] * n
        closed_f = bytearray(n)
        closed_r = bytearray(n)
        dist_f[source] = 0.0
        dist_r[target] = 0.0
        potential[source] = p(source)
        potential[target] = p(target)
        heap_f: list[tuple[float, int]] = [(potential[source], source)]
        heap_r: list[tuple[float, int]] = [(-potential[target], target)]
        best = inf
        meet = -1
        push, pop = heapq.heappush, heapq.heappop
        adjacency, reverse = self._adjacency, self._reverse_adjacency
        while heap_f and heap_r:
            if heap_f[0][0] + heap_r[0][0] >= best:
                break
            if len(heap_f) <= len(heap_r):
                _, v = pop(heap_f)
                if closed_f[v]:
                    continue
                closed_f[v] = 1
                dv = dist_f[v]
                for e, u in adjacency[v]:
                    nd = dv + w[e]
                    if nd < dist_f[u]:
                        h = potential[u]
                        if h == inf:
                            h = potential[u] = p(u)
                        if h != h:  # NaN: u is on no path from source to target
                            continue
                        dist_f[u] = nd
                        parent_f[u] = e
                        if nd + dist_r[u] < best:
                            best = nd + dist_r[u]
                            meet = u
                        push(heap_f, (nd + h, u))
            else:
                _, v = pop(heap_r)
                if closed_r[v]:
                    continue
                closed_r[v] = 1
                dv = dist_r[v]
                for e, u in reverse[v]:
                    nd = dv + w[e]
                    if nd < dist_r[u]:
                        h = potential[u]
                        if h == inf:
                            h = potential[u] = p(u)
                        if h != h:
                            continue
                        dist_r[u] = nd
                        parent_r[u] = e
                        if nd + dist_f[u] < best:
                            best = nd + dist_f[u]
                            meet = u
                        push(heap_r, (nd - h, u))
        if meet < 0:
            return None
        edges: list[int] = []
        v = meet
        while v != source:
            e = parent_f[v]
            edges.append(e)
            v = self._src[e]
        edges.reverse()
        v = meet
        while v != target:
            e = parent_r[v]
            edges.append(e)
            v = self._dst[e]
        nodes = [source] + [self._dst[e] for e in edges]
        return Path(nodes, edges, best, sum(self._length[e] for e in edges))

    def _active(
        self, source: int, target: int, use_floor: bool = False
    ) -> list[tuple[list[float], float, float, list[float], float, float]]:
        """The _ACTIVE_LANDMARKS landmarks with the best bound between source and target, each as
        (distances from it, to target, to source; distances to it, from target, from source)."""
        scored = []
        sets = (self._floor_from, self._floor_to) if use_floor else (self._from, self._to)
        for f, g in zip(*sets, strict=True):
            bound = max(f[target] - f[source], g[source] - g[target])
            scored.append((bound, f, g))
        scored.sort(key=lambda item: item[0], reverse=True)
        return [(f, f[target], f[source], g, g[target], g[source]) for _, f, g in scored[:_ACTIVE_LANDMARKS]]

    def routes(
        self,
        source: int,
        target: int,
        *,
        alternatives: int = 0,
        penalties: dict[int, float] | None = None,
        penalty: float = 1.4,
        max_shared: float = 0.6,
        max_stretch: float = 1.5,
    ) -> list[Path]:
        """The fastest route (by CCH without ``penalties``, else ALT) and up to ``alternatives``
        others, by ALT (penalty method: each found route's
        segments are made ``penalty`` times slower and the search is run again; a candidate is kept
        when at most ``max_shared`` of its length is shared with each kept route and it is at most
        ``max_stretch`` times slower than the fastest). ``penalties`` multiplies chosen segments'
        times (≥ 1), e.g. to avoid severe congestion. Travel times in the answer are the live ones."""
        base = self.weights
        if penalties:
            base = list(base)
            for e, factor in penalties.items():
                base[e] *= max(factor, 1.0)
            best = self.shortest_path(source, target, base, above_live=True)
        else:
            best = self.shortest_path(source, target)
        if best is None:
            return []
        found = [self._real(best)]
        if alternatives <= 0:
            return found
        searched = list(base)
        for _ in range(alternatives * 3):
            for e in found[-1].edges:
                searched[e] *= penalty
            candidate = self.shortest_path(source, target, searched, above_live=True)
            if candidate is None:
                break
            real = self._real(candidate)
            if real.seconds > max_stretch * found[0].seconds:
                break
            if all(self._shared(real, kept) <= max_shared for kept in found):
                found.append(real)
                if len(found) > alternatives:
                    break
            else:
                for e in candidate.edges:
                    searched[e] *= penalty
        return found

    def _real(self, path: Path) -> Path:
        seconds = sum(self.weights[e] for e in path.edges)
        return Path(path.nodes, path.edges, seconds, path.length_m)

    def _shared(self, path: Path, other: Path) -> float:
        if path.length_m <= 0:
            return 1.0
        common = set(path.edges) & set(other.edges)
        return sum(self._length[e] for e in common) / path.length_m
