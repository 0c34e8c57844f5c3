"""Route planning on a city-size graph: the router (CCH, ALT) against networkx's Dijkstra and pgRouting.

Builds a city-like street grid (at least 100,000 junctions by default: local streets every 150 m
at 30 km/h, an arterial every eighth street at 60 km/h, an expressway ring at 80 km/h, some
one-way streets and some missing blocks), gives it live travel times (a third of the segments
slowed by up to 3×), and times the same random origin-destination pairs with:

- the app's router: customizable contraction hierarchies (CCH) on free-flow times and on the live
  times (with the customisation's time, and the first query after 1 and 8 changed segments, which
  updates the customisation incrementally), and bidirectional A* with landmarks (ALT), with its
  landmark bounds computed on free-flow times and again after refreshing them from the live times
  (exact either way),
- networkx ``single_source_dijkstra`` with a target (stops when it reaches it),
- pgRouting ``pgr_dijkstra`` on the same graph loaded into a PostgreSQL table, when a server with
  the extension is reachable (``scripts/pgrouting.sh`` installs it; the benchmark creates and
  drops its own database).

Every answer is checked against the others. Then the congestion indices: a batch of speed
updates on 50,000 segments and the recomputation of states, TTI and TPI per district and for the
network, against the same computed segment by segment in plain Python.

    .venv/bin/python bench/routing.py [--side 320] [--pairs 200] [--baseline-pairs 30]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

import networkx as nx
import numpy as np

from cityhub.apps.traffic.congestion import segment_state, tpi_from_share
from cityhub.apps.traffic.network import Node, RoadClass, RoadNetwork, Segment
from cityhub.apps.traffic.routing import INCREMENTAL_SEGMENTS, Path, Router
from cityhub.apps.traffic.service import live_network

SPACING_M = 150.0
LON0, LAT0 = 113.55, 34.70


def city_grid(side: int, seed: int) -> RoadNetwork:
    rng = np.random.default_rng(seed)
    dlat = SPACING_M / 111_195.0
    dlon = dlat / math.cos(math.radians(LAT0))
    nodes = [Node(f"j{r}_{c}", LON0 + c * dlon, LAT0 + r * dlat) for r in range(side) for c in range(side)]
    ring = {side // 6, side - 1 - side // 6}
    segments: list[Segment] = []

    def street(r: int, c: int, r2: int, c2: int, along: int) -> None:
        if along in ring and min(r, r2, c, c2) >= side // 6 and max(r, r2, c, c2) <= side - 1 - side // 6:
            cls, kmh = RoadClass.EXPRESSWAY, 80.0
        elif along % 8 == 0:
            cls, kmh = RoadClass.ARTERIAL, 60.0
        else:
            cls, kmh = RoadClass.BRANCH, 30.0
        if cls is RoadClass.BRANCH and rng.random() < 0.04:
            return  # a missing block
        a, b = f"j{r}_{c}", f"j{r2}_{c2}"
        length = SPACING_M * rng.uniform(0.95, 1.1)
        lanes = 3 if cls is not RoadClass.BRANCH else 1
        one_way = cls is RoadClass.BRANCH and along % 4 == 2  # every fourth local street is one-way
        sid = f"{a}-{b}"
        segments.append(Segment(sid, a, b, length, kmh, cls, lanes))
        if not one_way:
            segments.append(Segment(f"{sid}-r", b, a, length, kmh, cls, lanes))

    for r in range(side):
        for c in range(side):
            if c + 1 < side:
                street(r, c, r, c + 1, r)
            if r + 1 < side:
                street(r, c, r + 1, c, c)
    return RoadNetwork(nodes, segments)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def fmt(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1000:8.2f} ms   p99 {percentile(values, 99) * 1000:8.2f} ms"


def ratio(baseline: list[float], ours: list[float]) -> str:
    p50 = percentile(baseline, 50) / percentile(ours, 50)
    p99 = percentile(baseline, 99) / percentile(ours, 99)
    return f"p50 {p50:8.1f}×      p99 {p99:8.1f}×"


async def pgrouting(
    dsn: str, network: RoadNetwork, weights: list[float], pairs: list[tuple[int, int]]
) -> tuple[list[float], list[float]] | str:
    try:
        import asyncpg
    except ImportError:
        return "asyncpg missing"
    name = "cityhub_bench_routing"
    try:
        admin = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL not reachable ({exc})"
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(dsn.rsplit("/", 1)[0] + f"/{name}")
    try:
        try:
            await connection.execute("CREATE EXTENSION pgrouting CASCADE")
        except asyncpg.PostgresError as exc:
            return f"pgRouting not available ({exc}); run scripts/pgrouting.sh"
        await connection.execute(
            "CREATE TABLE edges (id bigint PRIMARY KEY, source bigint, target bigint, cost float8)"
        )
        rows = [
            (i, int(network.src[i]) + 1, int(network.dst[i]) + 1, weights[i])
            for i in range(network.segment_count)
        ]
        await connection.copy_records_to_table("edges", records=rows)
        await connection.execute("ANALYZE edges")
        times, costs = [], []
        sql = (
            "SELECT coalesce(max(agg_cost + cost), -1) FROM pgr_dijkstra("
            "'SELECT id, source, target, cost FROM edges', $1::bigint, $2::bigint, directed => true)"
        )
        for s, t in pairs:
            started = time.perf_counter()
            cost = await connection.fetchval(sql, s + 1, t + 1)
            times.append(time.perf_counter() - started)
            costs.append(float(cost))
        return times, costs
    finally:
        await connection.close()
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def bench_indices(seed: int) -> None:
    side = 125  # 4·125·124 = 62,000 directed segments before missing blocks and one-way streets
    network = city_grid(side, seed)
    rng = np.random.default_rng(seed)
    districts = [
        f"4101{(int(network.src[e]) % side) * 4 // side + 2:02d}" for e in range(network.segment_count)
    ]
    live = live_network(network, list(districts), landmarks=1)
    m = network.segment_count
    now = datetime.now(UTC)
    batch = rng.choice(m, size=m // 5, replace=False).tolist()
    speeds = (network.free_flow_kmh[batch] * rng.uniform(0.1, 1.0, len(batch))).tolist()
    live.observe_many(range(m), network.free_flow_kmh.tolist(), now)  # every segment observed once
    live.flow[:] = rng.uniform(100, 1500, m)

    started = time.perf_counter()
    live.observe_many(batch, speeds, now)
    updated = time.perf_counter()
    indices = live.indices(now, 900.0)
    done = time.perf_counter()

    # the same indices segment by segment in plain Python
    started_py = time.perf_counter()
    sums: dict[str, list[float]] = {}
    for e in range(m):
        seg = network.segments[e]
        v = float(live.speed_kmh[e])
        w = float(live.flow[e])
        state = segment_state(seg.road_class, v)
        acc = sums.setdefault(districts[e], [0.0, 0.0, 0.0, 0.0])
        acc[0] += w * seg.length_m / max(v, 0.1)
        acc[1] += w * seg.length_m / seg.free_flow_kmh
        acc[2] += w * seg.length_m
        acc[3] += w * seg.length_m if state >= 3 else 0.0
    plain = {d: (a / f, float(tpi_from_share(j / k))) for d, (a, f, k, j) in sums.items()}
    done_py = time.perf_counter()
    for index in indices[:-1]:
        tti, tpi = plain[index.area]
        assert math.isclose(index.tti, tti, rel_tol=1e-9)
        assert math.isclose(index.tpi, tpi, rel_tol=1e-9)
    print(f"\nindices: {m} segments, {len(indices) - 1} districts, batch of {len(batch)} speed updates")
    print(f"  apply the batch (live state and router times)   {(updated - started) * 1000:8.1f} ms")
    print(f"  states, TTI and TPI per district and network   {(done - updated) * 1000:8.1f} ms")
    print(f"  the same recomputation in plain Python          {(done_py - started_py) * 1000:8.1f} ms")
    print(
        f"  ratio plain Python / numpy recomputation        {(done_py - started_py) / (done - updated):8.1f}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", type=int, default=320, help="junctions per side of the grid")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument(
        "--baseline-pairs", type=int, default=30, help="pairs also run on networkx and pgRouting"
    )
    parser.add_argument("--landmarks", type=int, default=16)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    started = time.perf_counter()
    network = city_grid(args.side, args.seed)
    built = time.perf_counter()
    router = Router(network, landmarks=args.landmarks)
    prepared = time.perf_counter()
    timings = router.timings
    print(f"graph: {network.node_count} junctions, {network.segment_count} directed segments")
    print(
        f"build {built - started:.1f} s, router {prepared - built:.1f} s: "
        f"landmarks ({len(router.landmarks)}) "
        f"{timings['landmarks']:.1f} s, hierarchy {timings['hierarchy']:.1f} s "
        f"({router.hierarchy.arc_count} arcs, {router.hierarchy.triangle_count} triangles), "
        f"first customisation {timings['customisation']:.1f} s"
    )
    rng = np.random.default_rng(args.seed)
    slow = rng.random(network.segment_count) < 0.33
    live = router.free_flow * np.where(slow, rng.uniform(1.0, 3.0, network.segment_count), 1.0)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < args.pairs:
        s, t = (int(x) for x in rng.integers(0, network.node_count, 2))
        if s != t:
            pairs.append((s, t))

    def run(search: Callable[[int, int], Path | None], check: list[float] | None = None) -> list[float]:
        spent, found = [], []
        for s, t in pairs:
            t0 = time.perf_counter()
            path = search(s, t)
            spent.append(time.perf_counter() - t0)
            found.append(path.seconds if path else -1.0)
        if check is not None:
            for cost, expected in zip(found, check, strict=True):
                assert math.isclose(cost, expected, rel_tol=1e-9), (cost, expected)
        else:
            costs.extend(found)
        return spent

    costs: list[float] = []
    print(f"\n{len(pairs)} random pairs (CCH's times include unpacking the shortcuts into segments)")
    cch_free = run(router.shortest_path)
    free_costs = list(costs)
    costs.clear()
    print(f"  CCH, free-flow times                      {fmt(cch_free)}")
    router.set_travel_times(live)
    t0 = time.perf_counter()
    router.customize()
    customised = time.perf_counter() - t0
    print(f"  customisation to the live times           {customised:.2f} s")
    cch = run(router.shortest_path)
    print(f"  CCH, live times                           {fmt(cch)}")
    assert sum(costs) > sum(free_costs)
    # a few segments change: the next query first updates the customisation incrementally
    updates = []
    for k in (1, INCREMENTAL_SEGMENTS):
        edges = rng.integers(0, network.segment_count, k).tolist()
        router.update_travel_times(edges, [router.weights[e] * 1.5 for e in edges])
        t0 = time.perf_counter()
        router.shortest_path(*pairs[0])
        updates.append(time.perf_counter() - t0)
        router.update_travel_times(edges, [router.weights[e] / 1.5 for e in edges])
        router.shortest_path(*pairs[0])
    print(
        f"  first query after 1 / {INCREMENTAL_SEGMENTS} changed segments     "
        f"{updates[0] * 1000:.0f} / {updates[1] * 1000:.0f} ms"
    )
    ours = run(lambda s, t: router.alt_path(s, t), costs)
    print(f"  ALT, free-flow bounds                     {fmt(ours)}")
    t0 = time.perf_counter()
    router.refresh_bounds()
    print(f"  refresh of the bounds from live times     {time.perf_counter() - t0:.1f} s")
    refreshed = run(lambda s, t: router.alt_path(s, t), costs)
    print(f"  ALT, refreshed bounds                     {fmt(refreshed)}")

    base_pairs = pairs[: args.baseline_pairs]
    graph = nx.DiGraph()
    for e in range(network.segment_count):
        a, b = int(network.src[e]), int(network.dst[e])
        w = router.weights[e]
        if not graph.has_edge(a, b) or graph[a][b]["w"] > w:
            graph.add_edge(a, b, w=w)
    nx_times = []
    for i, (s, t) in enumerate(base_pairs):
        t0 = time.perf_counter()
        try:
            cost, _ = nx.single_source_dijkstra(graph, s, t, weight="w")
        except nx.NetworkXNoPath:
            cost = -1.0
        nx_times.append(time.perf_counter() - t0)
        assert math.isclose(cost, costs[i], rel_tol=1e-9), (s, t, cost, costs[i])
    k = len(base_pairs)
    print(f"\nthe first {k} pairs")
    print(f"  CCH                                       {fmt(cch[:k])}")
    print(f"  ALT, free-flow bounds                     {fmt(ours[:k])}")
    print(f"  ALT, refreshed bounds                     {fmt(refreshed[:k])}")
    print(f"  networkx Dijkstra                         {fmt(nx_times)}")
    print(f"  ratio networkx / CCH                      {ratio(nx_times, cch[:k])}")
    print(f"  ratio networkx / ALT free-flow bounds     {ratio(nx_times, ours[:k])}")
    print(f"  ratio networkx / ALT refreshed bounds     {ratio(nx_times, refreshed[:k])}")

    found = asyncio.run(pgrouting(args.pg, network, router.weights, base_pairs))
    if isinstance(found, str):
        print(f"  pgRouting: skipped, {found}")
    else:
        pg_times, pg_costs = found
        for i, cost in enumerate(pg_costs):
            assert math.isclose(cost, costs[i], rel_tol=1e-6) or (cost < 0 and costs[i] < 0), (cost, costs[i])
        print(f"  pgRouting pgr_dijkstra                    {fmt(pg_times)}")
        print(f"  ratio pgRouting / CCH                     {ratio(pg_times, cch[:k])}")
        print(f"  ratio pgRouting / ALT free-flow bounds    {ratio(pg_times, ours[:k])}")
        print(f"  ratio pgRouting / ALT refreshed bounds    {ratio(pg_times, refreshed[:k])}")
    print(f"  all answers equal (CCH, ALT, networkx{'' if isinstance(found, str) else ', pgRouting'})")
    bench_indices(args.seed)


if __name__ == "__main__":
    main()
