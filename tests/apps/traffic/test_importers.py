"""Importers: SUMO .net.xml, OSM XML and PBF, SUMO edge data."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest

from cityhub.apps.traffic.importers import (
    NetworkFormatError,
    format_for_name,
    parse_maxspeed,
    read_network,
    read_osm_pbf,
    read_osm_xml,
    read_sumo_edge_data,
    read_sumo_net,
    utm_to_lonlat,
)
from cityhub.apps.traffic.network import RoadClass, build_network

DATA = Path(__file__).parent / "data"


def test_sumo_net_edges_lanes_speeds_and_skips() -> None:
    net = read_sumo_net(str(DATA / "small.net.xml"))
    by_id = {s.id: s for s in net.segments}
    # internal edge and the sidewalk-only edge are not roads; '#' is escaped in ids
    assert sorted(by_id) == ["sumo--A_230", "sumo--A_231", "sumo-A_230", "sumo-A_231", "sumo-ramp"]
    a0 = by_id["sumo-A_230"]
    assert (a0.from_node, a0.to_node, a0.lanes, a0.length_m) == ("sumo-J0", "sumo-J1", 2, 1000.0)
    assert a0.road_class is RoadClass.ARTERIAL  # highway.primary
    assert a0.free_flow_kmh == pytest.approx(60.0, abs=0.1)
    assert a0.name == "中原路"
    assert by_id["sumo--A_231"].lanes == 1
    assert by_id["sumo-ramp"].road_class is RoadClass.EXPRESSWAY  # no type: 80 km/h by its speed
    assert {n.id for n in net.nodes} == {"sumo-J0", "sumo-J1", "sumo-J2", "sumo-J3"}
    # UTM 49N with the net offset: x = 0 lies at easting 741000, inside Zhengzhou
    j0 = next(n for n in net.nodes if n.id == "sumo-J0")
    assert 113.5 < j0.lon < 113.8
    assert 34.6 < j0.lat < 34.9
    j1 = next(n for n in net.nodes if n.id == "sumo-J1")
    network = build_network(net.nodes, net.segments)
    assert network.segment_count == 5
    # 1000 m apart in the projection is about 1000 m on the ground (UTM scale and the spherical
    # haversine together within 0.4 %)
    from cityhub.apps.traffic.network import haversine_m

    assert haversine_m(j0.lon, j0.lat, j1.lon, j1.lat) == pytest.approx(1000.0, rel=4e-3)


def test_utm_inverse_on_the_central_meridian_and_equator() -> None:
    lon, lat = utm_to_lonlat(500_000.0, 0.0, 49)
    assert (lon, lat) == (pytest.approx(111.0), pytest.approx(0.0, abs=1e-9))
    # one degree of latitude on the central meridian is 110.574 km at the equator, times k0
    lon, lat = utm_to_lonlat(500_000.0, 110_574.4 * 0.9996, 49)
    assert lat == pytest.approx(1.0, abs=1e-4)


def test_sumo_net_without_projection_needs_an_origin() -> None:
    text = (
        (DATA / "small.net.xml")
        .read_text(encoding="utf-8")
        .replace(
            'projParameter="+proj=utm +zone=49 +ellps=WGS84 +datum=WGS84 +units=m +no_defs"',
            'projParameter="!"',
        )
    )
    with pytest.raises(NetworkFormatError, match="not geo-referenced"):
        read_sumo_net(io.BytesIO(text.encode()))
    net = read_sumo_net(io.BytesIO(text.encode()), origin=(113.6, 34.7))
    j1 = next(n for n in net.nodes if n.id == "sumo-J1")
    assert (j1.lon, j1.lat) == (pytest.approx(113.6 + 1000 / 111195 / math.cos(math.radians(34.7))), 34.7)


def test_osm_ways_split_at_junctions_with_oneway_lanes_and_speeds() -> None:
    net = read_osm_xml(str(DATA / "small.osm"))
    by_id = {s.id: s for s in net.segments}
    assert sorted(by_id) == [
        "osm-100-0",
        "osm-100-0-r",
        "osm-100-1",
        "osm-100-1-r",
        "osm-200-0",
        "osm-200-1",
        "osm-400-0",
        "osm-500-0",
        "osm-500-0-r",
    ]
    first = by_id["osm-100-0"]
    assert (first.from_node, first.to_node, first.lanes, first.free_flow_kmh) == ("osm-1", "osm-2", 2, 60.0)
    assert first.road_class is RoadClass.ARTERIAL
    assert first.length_m == pytest.approx(914.5, rel=5e-3)  # 0.01° of longitude at 34.75° N
    assert by_id["osm-100-0-r"].shape == first.shape[::-1]
    assert by_id["osm-200-0"].road_class is RoadClass.SECONDARY
    ramp = by_id["osm-400-0"]
    assert ramp.road_class is RoadClass.EXPRESSWAY
    assert ramp.free_flow_kmh == pytest.approx(40.23, abs=0.01)
    assert {n.id for n in net.nodes} == {
        "osm-1",
        "osm-2",
        "osm-3",
        "osm-4",
        "osm-5",
        "osm-7",
        "osm-8",
        "osm-9",
    }


def test_osm_pbf_reads_like_xml(tmp_path: Path) -> None:
    osmium = pytest.importorskip("osmium")
    pbf = tmp_path / "small.osm.pbf"
    writer = osmium.SimpleWriter(str(pbf))
    try:
        osmium.apply(str(DATA / "small.osm"), writer)
    finally:
        writer.close()
    from_pbf = read_osm_pbf(str(pbf))
    from_xml = read_osm_xml(str(DATA / "small.osm"))
    assert sorted(s.id for s in from_pbf.segments) == sorted(s.id for s in from_xml.segments)
    lengths = {s.id: s.length_m for s in from_xml.segments}
    for s in from_pbf.segments:
        assert math.isclose(s.length_m, lengths[s.id], rel_tol=1e-6)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<net><edge", "not well-formed"),
        (b"<osm/>", "starts with <net>"),
        (b"", "not well-formed"),
    ],
)
def test_bad_sumo_input(payload: bytes, message: str) -> None:
    with pytest.raises(NetworkFormatError, match=message):
        read_sumo_net(io.BytesIO(payload), origin=(0.0, 0.0))


def test_bad_osm_input() -> None:
    with pytest.raises(NetworkFormatError, match="starts with <osm>"):
        read_osm_xml(io.BytesIO(b"<net/>"))
    with pytest.raises(NetworkFormatError, match="valid lon/lat"):
        read_osm_xml(io.BytesIO(b'<osm><node id="1" lat="x" lon="1"/></osm>'))
    with pytest.raises(NetworkFormatError, match="unknown network format"):
        read_network(io.BytesIO(b""), "shp")


def test_format_and_maxspeed_helpers() -> None:
    assert [format_for_name(n) for n in ("a.net.xml", "b.OSM", "c.osm.pbf", "d.csv")] == [
        "sumo",
        "osm",
        "pbf",
        None,
    ]
    assert [parse_maxspeed(v) for v in ("50", "50 km/h", "none", None)] == [50.0, 50.0, None, None]


def test_sumo_edge_data() -> None:
    xml = b"""<meandata><interval begin="0.00" end="300.00" id="d">
      <edge id="A#0" sampledSeconds="900.5" traveltime="90.00" speed="11.11" entered="10" left="9"/>
      <edge id="ramp" sampledSeconds="0.00"/>
    </interval></meandata>"""
    [interval] = read_sumo_edge_data(io.BytesIO(xml))
    assert (interval.begin, interval.end) == (0.0, 300.0)
    assert interval.edges["A#0"]["traveltime"] == 90.0
    assert "traveltime" not in interval.edges["ramp"]
