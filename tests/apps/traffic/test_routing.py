"""ALT routing against plain Dijkstra on random graphs, with free-flow and live travel times."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cityhub.apps.traffic.network import Node, RoadClass, RoadNetwork, Segment
from cityhub.apps.traffic.routing import INCREMENTAL_SEGMENTS, Router, dijkstra_path


def random_network(seed: int, nodes: int, edges: int) -> RoadNetwork:
    rng = np.random.default_rng(seed)
    node_list = [Node(f"n{i}", 113.6 + rng.random() * 0.1, 34.7 + rng.random() * 0.1) for i in range(nodes)]
    segments = []
    for k in range(edges):
        a, b = (int(x) for x in rng.integers(0, nodes, 2))
        if a == b:
            continue
        segments.append(
            Segment(
                id=f"s{k}",
                from_node=f"n{a}",
                to_node=f"n{b}",
                length_m=float(rng.uniform(20, 2000)),
                free_flow_kmh=float(rng.choice([30, 40, 60, 80])),
                road_class=RoadClass.ARTERIAL,
            )
        )
    return RoadNetwork(node_list, segments)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    nodes=st.integers(2, 60),
    density=st.floats(0.5, 4.0),
    slowdown_seed=st.integers(0, 10_000),
)
def test_alt_equals_dijkstra_with_live_times(
    seed: int, nodes: int, density: float, slowdown_seed: int
) -> None:
    network = random_network(seed, nodes, int(nodes * density))
    router = Router(network, landmarks=4)
    rng = np.random.default_rng(slowdown_seed)
    # live speeds anywhere between free-flow and a tenth of it; a few faster than free-flow (clamped)
    live = router.free_flow * rng.uniform(0.8, 10.0, network.segment_count)
    router.set_travel_times(live)
    for _ in range(10):
        s, t = (int(x) for x in rng.integers(0, nodes, 2))
        expected = dijkstra_path(network, router.weights, s, t)
        found = router.shortest_path(s, t)
        if expected is None:
            assert found is None
        else:
            assert found is not None
            assert math.isclose(found.seconds, expected.seconds, rel_tol=1e-9)
            assert math.isclose(sum(router.weights[e] for e in found.edges), found.seconds, rel_tol=1e-9)
            assert found.nodes[0] == s
            assert found.nodes[-1] == t
            assert all(network.dst[a] == network.src[b] for a, b in itertools.pairwise(found.edges))
            # alternatives: the first is the fastest, every one a real path no faster than it
            routes = router.routes(s, t, alternatives=2)
            assert math.isclose(routes[0].seconds, expected.seconds, rel_tol=1e-9)
            for route in routes:
                assert route.seconds >= routes[0].seconds * (1 - 1e-9)
                assert route.nodes[0] == s
                assert route.nodes[-1] == t


def test_live_times_never_below_free_flow() -> None:
    network = random_network(1, 20, 60)
    router = Router(network)
    router.set_travel_times(router.free_flow / 2)
    assert router.weights == router.free_flow.tolist()


def line(n: int) -> RoadNetwork:
    """n nodes in a row, one-way from left to right, 1 km apart at 36 km/h (100 s each)."""
    nodes = [Node(f"n{i}", 113.6 + i * 0.01, 34.7) for i in range(n)]
    segments = [
        Segment(f"s{i}", f"n{i}", f"n{i + 1}", 1000.0, 36.0, RoadClass.ARTERIAL) for i in range(n - 1)
    ]
    return RoadNetwork(nodes, segments)


def test_one_way_street_cannot_be_driven_backwards() -> None:
    router = Router(line(5), landmarks=2)
    path = router.shortest_path(0, 4)
    assert path is not None
    assert path.edges == [0, 1, 2, 3]
    assert math.isclose(path.seconds, 400.0)
    assert router.shortest_path(4, 0) is None


def ladder() -> RoadNetwork:
    """Two parallel two-way roads joined at both ends: a fast one (north) and a slower one (south)."""
    nodes = [Node("a", 0.0, 0.0), Node("b", 0.02, 0.0), Node("n", 0.01, 0.005), Node("s", 0.01, -0.005)]
    segments = []
    for sid, x, y, kmh in (
        ("an", "a", "n", 60.0),
        ("nb", "n", "b", 60.0),
        ("as", "a", "s", 50.0),
        ("sb", "s", "b", 50.0),
    ):
        segments.append(Segment(sid, x, y, 1200.0, kmh, RoadClass.ARTERIAL))
        segments.append(Segment(sid + "-r", y, x, 1200.0, kmh, RoadClass.ARTERIAL))
    return RoadNetwork(nodes, segments)


def test_alternatives_and_avoidance() -> None:
    network = ladder()
    router = Router(network, landmarks=2)
    a, b = network.node_index["a"], network.node_index["b"]
    routes = router.routes(a, b, alternatives=2)
    assert [[network.segments[e].id for e in r.edges] for r in routes] == [["an", "nb"], ["as", "sb"]]
    # the north road jams: live times change, no new landmarks, the south road is now the fastest
    jam = router.free_flow.copy()
    jam[network.segment_index["an"]] *= 5
    router.set_travel_times(jam)
    [best] = router.routes(a, b)
    assert [network.segments[e].id for e in best.edges] == ["as", "sb"]
    # avoiding the south road by penalty sends the route north again, travel time the live one
    south = {network.segment_index["as"]: 10.0}
    [avoiding] = router.routes(a, b, penalties=south)
    assert [network.segments[e].id for e in avoiding.edges] == ["an", "nb"]
    assert math.isclose(avoiding.seconds, router.weights[0] + router.weights[2])


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), nodes=st.integers(2, 50), change_seed=st.integers(0, 10_000))
def test_refreshed_bounds_stay_exact_as_times_rise_and_fall(seed: int, nodes: int, change_seed: int) -> None:
    network = random_network(seed, nodes, nodes * 3)
    router = Router(network, landmarks=4)
    rng = np.random.default_rng(change_seed)
    router.set_travel_times(router.free_flow * rng.uniform(1.0, 4.0, network.segment_count))
    router.refresh_bounds()
    assert router.live_bounds or network.segment_count == 0 or not router.landmarks
    edges = rng.integers(0, max(network.segment_count, 1), 5).tolist() if network.segment_count else []
    # slower: the refreshed bounds still hold; faster than the floor: back to free-flow bounds
    factors = rng.choice([1.5, 0.3], len(edges)).tolist()
    router.update_travel_times(edges, [router.weights[e] * f for e, f in zip(edges, factors, strict=True)])
    for _ in range(8):
        s, t = (int(x) for x in rng.integers(0, nodes, 2))
        expected = dijkstra_path(network, router.weights, s, t)
        found = router.shortest_path(s, t)
        assert (found is None) == (expected is None)
        if expected is not None and found is not None:
            assert math.isclose(found.seconds, expected.seconds, rel_tol=1e-9)


def test_bounds_fall_back_when_a_time_drops_below_its_floor() -> None:
    router = Router(ladder(), landmarks=2)
    router.set_travel_times(router.free_flow * 3)
    assert not router.live_bounds
    router.refresh_bounds()
    assert router.live_bounds
    router.update_travel_times([0], [router.weights[0] * 2])  # slower: still above the floor
    assert router.live_bounds
    router.update_travel_times([0], [router.free_flow[0]])  # back to free flow: below the floor
    assert not router.live_bounds
    router.refresh_bounds()
    assert router.live_bounds


def assert_same_as_dijkstra(router: Router, pairs: list[tuple[int, int]]) -> None:
    network = router.network
    for s, t in pairs:
        expected = dijkstra_path(network, router.weights, s, t)
        found = router.shortest_path(s, t)
        assert (found is None) == (expected is None), (s, t)
        if expected is not None and found is not None:
            assert math.isclose(found.seconds, expected.seconds, rel_tol=1e-9)
            assert math.isclose(sum(router.weights[e] for e in found.edges), found.seconds, rel_tol=1e-9)
            assert found.nodes[0] == s
            assert found.nodes[-1] == t
            assert all(network.dst[a] == network.src[b] for a, b in itertools.pairwise(found.edges))


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    nodes=st.integers(2, 70),
    density=st.floats(0.5, 4.0),
    change_seed=st.integers(0, 10_000),
    changes=st.integers(1, 20),
)
def test_cch_equals_dijkstra_as_times_change(
    seed: int, nodes: int, density: float, change_seed: int, changes: int
) -> None:
    """Random directed graphs (so one-way streets, parallel segments, unreachable pairs): the
    customised hierarchy answers as Dijkstra on the live times, after a full customisation, after
    incremental updates of a few segments (then bit for bit the full customisation's arc times),
    and, with more changes pending, by ALT until the next customisation."""
    network = random_network(seed, nodes, int(nodes * density))
    router = Router(network, landmarks=2)
    rng = np.random.default_rng(change_seed)
    pairs = [(int(a), int(b)) for a, b in rng.integers(0, nodes, (12, 2))]
    router.set_travel_times(router.free_flow * rng.uniform(1.0, 5.0, network.segment_count))
    assert router.customised
    assert_same_as_dijkstra(router, pairs)
    if network.segment_count == 0:
        return
    edges = rng.integers(0, network.segment_count, changes).tolist()
    factors = rng.choice([0.2, 0.7, 1.5, 4.0], changes).tolist()
    router.update_travel_times(edges, [router.weights[e] * f for e, f in zip(edges, factors, strict=True)])
    assert router.customised == (len(set(edges)) <= INCREMENTAL_SEGMENTS)
    assert_same_as_dijkstra(router, pairs)
    if router.customised:
        full = router.hierarchy.customize(router.weights)
        current = router.metric
        for name in ("up", "down", "mid_up", "mid_down"):
            assert np.array_equal(getattr(full, name), getattr(current, name)), name
    router.customize()
    assert router.customised
    assert_same_as_dijkstra(router, pairs)


def test_customisation_prepared_aside_keeps_later_changes() -> None:
    """A customisation prepared (as in a worker thread) from the times of its start, installed after
    more changes: those are still applied before the next query."""
    network = random_network(3, 40, 160)
    router = Router(network, landmarks=2)
    metric = router.prepare_metric()
    edges = [1, 2, 3]
    router.update_travel_times(edges, [router.weights[e] * 6 for e in edges])
    router.install_metric(metric)
    assert router.customised
    rng = np.random.default_rng(3)
    assert_same_as_dijkstra(router, [(int(a), int(b)) for a, b in rng.integers(0, 40, (30, 2))])


def test_cch_takes_the_faster_of_parallel_segments_and_ignores_loops() -> None:
    nodes = [Node("a", 113.6, 34.7), Node("b", 113.61, 34.7), Node("c", 113.62, 34.7)]
    segments = [
        Segment("slow", "a", "b", 1000.0, 20.0, RoadClass.BRANCH),
        Segment("fast", "a", "b", 1000.0, 60.0, RoadClass.ARTERIAL),
        Segment("loop", "b", "b", 100.0, 60.0, RoadClass.BRANCH),
        Segment("bc", "b", "c", 1000.0, 60.0, RoadClass.ARTERIAL),
    ]
    network = RoadNetwork(nodes, segments)
    router = Router(network, landmarks=1)
    path = router.shortest_path(0, 2)
    assert path is not None
    assert [network.segments[e].id for e in path.edges] == ["fast", "bc"]
    assert math.isclose(path.seconds, 120.0)
    assert router.shortest_path(2, 0) is None
    # the fast one jams: the slow one takes over, after an incremental update
    router.update_travel_times([1], [500.0])
    path = router.shortest_path(0, 2)
    assert path is not None
    assert [network.segments[e].id for e in path.edges] == ["slow", "bc"]


def test_hierarchy_on_a_grid_answers_long_routes() -> None:
    """A 30 × 30 two-way grid (nested dissection splits it many times)."""
    side = 30
    nodes = [Node(f"{r}_{c}", 113.6 + c * 0.002, 34.7 + r * 0.0015) for r in range(side) for c in range(side)]
    segments = []
    for r in range(side):
        for c in range(side):
            for r2, c2 in ((r, c + 1), (r + 1, c)):
                if r2 < side and c2 < side:
                    a, b = f"{r}_{c}", f"{r2}_{c2}"
                    segments.append(Segment(f"{a}-{b}", a, b, 160.0, 30.0, RoadClass.BRANCH))
                    segments.append(Segment(f"{b}-{a}", b, a, 160.0, 30.0, RoadClass.BRANCH))
    network = RoadNetwork(nodes, segments)
    router = Router(network, landmarks=2)
    rng = np.random.default_rng(5)
    router.set_travel_times(router.free_flow * rng.uniform(1.0, 3.0, network.segment_count))
    assert router.hierarchy.arc_count >= network.segment_count // 2
    assert_same_as_dijkstra(router, [(0, side * side - 1), (side - 1, side * (side - 1))])
    assert_same_as_dijkstra(router, [(int(a), int(b)) for a, b in rng.integers(0, side * side, (20, 2))])
