"""The congestion model: states from the speed table, TTI, TPI, and TTI against a SUMO run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cityhub.apps.traffic.congestion import (
    SPEED_TABLE,
    TPI_CUT_POINTS,
    SegmentState,
    TpiLevel,
    area_indices,
    segment_state,
    segment_states,
    tpi_from_share,
    tpi_level,
)
from cityhub.apps.traffic.importers import read_sumo_edge_data, read_sumo_net, safe_id
from cityhub.apps.traffic.network import RoadClass

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("road_class", "speed", "state"),
    [
        (RoadClass.EXPRESSWAY, 80, SegmentState.FREE),
        (RoadClass.EXPRESSWAY, 65, SegmentState.BASICALLY_FREE),
        (RoadClass.EXPRESSWAY, 50.1, SegmentState.BASICALLY_FREE),
        (RoadClass.EXPRESSWAY, 50, SegmentState.LIGHT),
        (RoadClass.EXPRESSWAY, 21, SegmentState.MODERATE),
        (RoadClass.EXPRESSWAY, 20, SegmentState.SEVERE),
        (RoadClass.ARTERIAL, 41, SegmentState.FREE),
        (RoadClass.ARTERIAL, 30, SegmentState.LIGHT),
        (RoadClass.ARTERIAL, 16, SegmentState.MODERATE),
        (RoadClass.ARTERIAL, 15, SegmentState.SEVERE),
        (RoadClass.SECONDARY, 36, SegmentState.FREE),
        (RoadClass.BRANCH, 10, SegmentState.SEVERE),
        (RoadClass.BRANCH, 0, SegmentState.SEVERE),
    ],
)
def test_segment_state_by_class_and_speed(road_class: RoadClass, speed: float, state: SegmentState) -> None:
    assert segment_state(road_class, speed) is state
    vector = segment_states(np.array([road_class.code], dtype=np.int8), np.array([float(speed)]))
    assert SegmentState(int(vector[0])) is state


def test_speed_table_bounds_decrease() -> None:
    for bounds in SPEED_TABLE.values():
        assert list(bounds) == sorted(bounds, reverse=True)


def test_tpi_mapping_is_piecewise_linear_and_levels() -> None:
    assert [float(tpi_from_share(s)) for s, _ in TPI_CUT_POINTS] == [t for _, t in TPI_CUT_POINTS]
    assert float(tpi_from_share(0.02)) == pytest.approx(1.0)
    assert float(tpi_from_share(0.095)) == pytest.approx(5.0)
    assert float(tpi_from_share(0.9)) == 10.0
    assert [tpi_level(x) for x in (0, 1.99, 2, 5.5, 7.99, 8, 10)] == [
        TpiLevel.FREE,
        TpiLevel.FREE,
        TpiLevel.BASICALLY_FREE,
        TpiLevel.LIGHT,
        TpiLevel.MODERATE,
        TpiLevel.SEVERE,
        TpiLevel.SEVERE,
    ]
    assert (TpiLevel.SEVERE.label_zh, TpiLevel.FREE.key) == ("严重拥堵", "free")


def test_area_indices_weighted_tti_and_congested_share() -> None:
    # two districts: A has a 1 km arterial at 25 of 40 km/h (light congestion) and
    # a 1 km one at free-flow; B has one 2 km arterial at 10 km/h (severe) and an unobserved one
    length = np.array([1000.0, 1000.0, 2000.0, 500.0])
    free = np.array([40.0, 40.0, 40.0, 40.0])
    speed = np.array([25.0, 40.0, 10.0, 40.0])
    weight = np.array([100.0, 300.0, 50.0, 1.0])
    observed = np.array([True, True, True, False])
    states = segment_states(np.full(4, RoadClass.ARTERIAL.code, dtype=np.int8), speed)
    a, b, network = area_indices(
        length_m=length,
        speed_kmh=speed,
        free_flow_kmh=free,
        weight=weight,
        states=states,
        area_codes=np.array([0, 0, 1, 1]),
        area_names=["410102", "410105"],
        observed=observed,
    )
    assert a.area == "410102"
    assert a.tti == pytest.approx((100 * 1 / 25 + 300 * 1 / 40) / (400 / 40))
    assert a.congested_share == 0.0
    assert a.tpi == 0.0
    assert b.tti == pytest.approx(4.0)
    assert b.congested_share == 1.0
    assert b.tpi == 10.0
    assert (b.segments, b.observed_segments) == (2, 1)
    vkt_jam = 50 * 2000
    assert network.congested_share == pytest.approx(vkt_jam / (100 * 1000 + 300 * 1000 + vkt_jam))
    assert network.area == "network"
    assert network.level is TpiLevel.SEVERE


def test_tti_from_a_sumo_run_matches_sumo() -> None:
    """Segments imported from the SUMO network, speeds from the run's edge data: each segment's TTI
    is SUMO's own relative speed inverted, and the network TTI weighted by vehicle time is SUMO's
    total time over its time without the time loss (timeLoss), to SUMO's own accounting (2 %)."""
    net = read_sumo_net(str(DATA / "sumo_grid.net.xml"), origin=(113.6, 34.7))
    segments = {s.id: s for s in net.segments}
    intervals = read_sumo_edge_data(str(DATA / "sumo_grid.edgedata.xml"))
    assert len(intervals) == 2
    for interval in intervals:
        rows = [(segments[f"sumo-{safe_id(eid)}"], e) for eid, e in interval.edges.items() if "speed" in e]
        assert len(rows) == 48
        length = np.array([s.length_m for s, _ in rows])
        free = np.array([s.free_flow_kmh for s, _ in rows])
        speed = np.array([e["speed"] * 3.6 for _, e in rows])
        for i, (_, e) in enumerate(rows):
            [one] = area_indices(
                length_m=length[i : i + 1],
                speed_kmh=speed[i : i + 1],
                free_flow_kmh=free[i : i + 1],
                weight=np.ones(1),
                states=np.zeros(1, dtype=np.int8),
                area_codes=np.zeros(1, dtype=np.int64),
                area_names=[],
                observed=np.ones(1, dtype=bool),
            )
            assert one.tti == pytest.approx(1 / e["speedRelative"], rel=1e-4)
        # weight: vehicles on the segment so that Σ w·L/v is the vehicles' total time on it
        weight = np.array([e["sampledSeconds"] for _, e in rows]) * (speed / 3.6) / length
        network = area_indices(
            length_m=length,
            speed_kmh=speed,
            free_flow_kmh=free,
            weight=weight,
            states=np.zeros(len(rows), dtype=np.int8),
            area_codes=np.zeros(len(rows), dtype=np.int64),
            area_names=[],
            observed=np.ones(len(rows), dtype=bool),
        )[-1]
        total = sum(e["sampledSeconds"] for _, e in rows)
        lost = sum(e["timeLoss"] for _, e in rows)
        assert network.tti == pytest.approx(total / (total - lost), rel=0.02)
        assert network.tti > 1.5  # the run is congested: the comparison is not between two ones
