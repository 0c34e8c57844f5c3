"""The demo city as data: real division codes, districts that tile the city, grid cells, a road
network that exports to OSM XML, and sensors, all the same for the same seed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib import resources

from shapely.geometry import Point, Polygon

from cityhub.sim.city import CELL_M, KINDS, build_city, distance, osm_xml
from cityhub.systems.standards import divisions


def test_districts_are_the_real_divisions_of_zhengzhou() -> None:
    city = build_city(42)
    assert city.code == "410100"
    assert len(city.districts) == 12
    for district in city.districts:
        known = divisions.lookup(district.code)
        assert known is not None, district.code
        assert known.name == district.name
        assert divisions.parent_of(district.code) == "410100"
        shape = Polygon(district.polygon)
        assert shape.is_valid
        assert shape.contains(Point(district.centre)), district.name
    shapes = [Polygon(d.polygon) for d in city.districts]
    for i, a in enumerate(shapes):
        for b in shapes[i + 1 :]:
            assert a.intersection(b).area < 1e-6  # they tile, they do not overlap


def test_grid_cells_are_unit_cells_coded_by_district() -> None:
    city = build_city(42)
    codes = [cell.code for cell in city.cells]
    assert len(codes) == len(set(codes)) == 500
    urban = {d.code for d in city.districts if d.urban}
    for cell in city.cells:
        assert cell.code.startswith(cell.district)
        assert len(cell.code) == 14
        assert cell.district in urban
        side = distance(cell.polygon[0], cell.polygon[1])
        assert abs(side - CELL_M) < 1.0
        assert Polygon(city.district(cell.district).polygon).contains(Point(cell.centre))


def test_road_network_has_rings_arterials_and_streets() -> None:
    city = build_city(42)
    classes = {r.road_class for r in city.roads}
    assert classes == {"motorway", "trunk", "primary", "secondary"}
    names = {r.road for r in city.roads}
    assert {"三环快速路", "四环快速路", "金水路", "中州大道", "郑汴路", "经三路"} <= names
    assert len({r.id for r in city.roads}) == len(city.roads)
    for road in city.roads:
        assert road.length > 50
        assert road.free_flow_speed <= road.speed_limit


def test_osm_export_is_valid_and_shipped() -> None:
    city = build_city(42)
    text = osm_xml(city)
    root = ET.fromstring(text)
    nodes = {n.get("id") for n in root.iter("node")}
    ways = list(root.iter("way"))
    assert len(ways) == len(city.roads)
    for way in ways:
        assert all(nd.get("ref") in nodes for nd in way.iter("nd"))
        tags = {t.get("k"): t.get("v") for t in way.iter("tag")}
        assert tags["highway"] in ("motorway", "trunk", "primary", "secondary")
        assert tags["name"]
        assert tags["name:en"]
        assert tags["ref:cityhub"].startswith("urn:ngsi-ld:RoadSegment:")
    # segments meet at shared nodes: fewer nodes than segment ends
    assert len(nodes) < 2 * len(ways)
    shipped = resources.files("cityhub.sim").joinpath("data/zhengzhou.osm").read_text(encoding="utf-8")
    assert shipped == text, "regenerate with: cityhub demo export DIR (seed 42)"


def test_sensors_of_every_kind_in_their_district() -> None:
    city = build_city(42)
    for kind in KINDS:
        assert city.of_kind(kind), kind
    assert len({s.device_id for s in city.sensors}) == len(city.sensors)
    assert {s.static["zoneClass"] for s in city.of_kind("noise")} >= {"1", "2", "4a"}
    assert {s.static["river"] for s in city.of_kind("water")} == {"黄河", "贾鲁河", "金水河"}
    for sensor in city.sensors:
        shape = Polygon(city.district(sensor.district).polygon)
        assert shape.buffer(0.01).contains(Point(sensor.location)), sensor.device_id


def test_same_seed_same_city_other_seed_other_placement() -> None:
    assert build_city(42).sensors == build_city(42).sensors
    other = build_city(7)
    assert [s.location for s in other.of_kind("light")] != [
        s.location for s in build_city(42).of_kind("light")
    ]
    assert other.roads == build_city(42).roads  # the road layout is the city's, not the seed's
