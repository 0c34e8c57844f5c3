"""The demo city as data: Zhengzhou, its districts, grid cells, roads, stations, lots and lights.

The hand-written facts (district codes, names and seats, monitoring sites, river sections, road
names) are in ``data/zhengzhou.json``; the rest is generated from them, deterministically from a
seed. District polygons are the Voronoi cells of the district seats clipped to a rough city
outline: simplified shapes around the real places, not survey boundaries.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import pairwise
from typing import Any
from xml.sax.saxutils import quoteattr

from shapely.geometry import MultiPoint, Point, Polygon
from shapely.ops import voronoi_diagram

Coord = tuple[float, float]  # (longitude, latitude), WGS-84

CITY_CODE = "410100"
#: Metres per degree of latitude; a degree of longitude is this times cos(latitude).
M_PER_DEG = 111_320.0
#: The unit grid cell's side (GB/T 30428: cells of about 10,000 m²).
CELL_M = 100.0
#: Unit grid cells per side of the block generated around each urban district's seat.
CELLS_PER_SIDE = 10

#: Road classes (OSM ``highway`` values): free-flow speed (km/h), lanes each way, speed limit.
ROAD_CLASSES: dict[str, tuple[float, int, int]] = {
    "motorway": (100.0, 3, 120),
    "trunk": (75.0, 3, 80),
    "primary": (50.0, 3, 60),
    "secondary": (38.0, 2, 50),
}
#: GB 3096-2008 acoustic environment zone classes and their day / night limits, dB(A).
NOISE_LIMITS: dict[str, tuple[float, float]] = {
    "0": (50.0, 40.0),
    "1": (55.0, 45.0),
    "2": (60.0, 50.0),
    "3": (65.0, 55.0),
    "4a": (70.0, 55.0),
}


@dataclass(frozen=True)
class District:
    code: str
    name: str
    name_en: str
    centre: Coord
    urban: bool
    polygon: tuple[Coord, ...]


@dataclass(frozen=True)
class GridCell:
    code: str
    district: str
    polygon: tuple[Coord, ...]

    @property
    def centre(self) -> Coord:
        lons = [p[0] for p in self.polygon[:4]]
        lats = [p[1] for p in self.polygon[:4]]
        return (sum(lons) / 4, sum(lats) / 4)


@dataclass(frozen=True)
class RoadSegment:
    id: str
    road: str
    road_en: str
    road_class: str
    line: tuple[Coord, ...]
    district: str

    @property
    def length(self) -> float:
        return sum(distance(a, b) for a, b in zip(self.line, self.line[1:], strict=False))

    @property
    def lanes(self) -> int:
        return ROAD_CLASSES[self.road_class][1]

    @property
    def free_flow_speed(self) -> float:
        return ROAD_CLASSES[self.road_class][0]

    @property
    def speed_limit(self) -> int:
        return ROAD_CLASSES[self.road_class][2]

    @property
    def midpoint(self) -> Coord:
        a, b = self.line[0], self.line[-1]
        return (round((a[0] + b[0]) / 2, 6), round((a[1] + b[1]) / 2, 6))


@dataclass(frozen=True)
class Sensor:
    """Something in the field that reports: a station, detector, monitor, lot or lamp.

    ``kind`` is one of :data:`KINDS`; ``static`` are the attributes it is provisioned with."""

    kind: str
    device_id: str
    name: str
    name_en: str
    location: Coord
    district: str
    static: dict[str, Any] = field(default_factory=dict)


#: Device kinds: entity type, seconds between reports (simulated time).
KINDS: dict[str, tuple[str, int]] = {
    "air": ("AirQualityObserved", 600),
    "water": ("WaterQualityObserved", 3600),
    "noise": ("NoiseLevelObserved", 300),
    "traffic": ("TrafficFlowObserved", 300),
    "parking": ("OffStreetParking", 300),
    "light": ("Streetlight", 900),
}


@dataclass(frozen=True, eq=False)
class City:
    code: str
    name: str
    name_en: str
    seed: int
    districts: tuple[District, ...]
    cells: tuple[GridCell, ...]
    roads: tuple[RoadSegment, ...]
    sensors: tuple[Sensor, ...]

    def district(self, code: str) -> District:
        return next(d for d in self.districts if d.code == code)

    def of_kind(self, kind: str) -> list[Sensor]:
        return [s for s in self.sensors if s.kind == kind]

    def road(self, segment_id: str) -> RoadSegment:
        return next(r for r in self.roads if r.id == segment_id)


def distance(a: Coord, b: Coord) -> float:
    """Great-circle distance in metres."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


@cache
def facts() -> dict[str, Any]:
    """The hand-written facts of the city (package data)."""
    text = resources.files("cityhub.sim").joinpath("data/zhengzhou.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _rounded(coords: Any) -> tuple[Coord, ...]:
    return tuple((round(x, 6), round(y, 6)) for x, y in coords)


def _districts(data: dict[str, Any]) -> tuple[District, ...]:
    outline = Polygon(data["city"]["outline"])
    seats = [Point(d["centre"]) for d in data["districts"]]
    cells = voronoi_diagram(MultiPoint(seats), envelope=outline.envelope.buffer(1.0))
    found = []
    for item, seat in zip(data["districts"], seats, strict=True):
        cell = next(c for c in cells.geoms if c.contains(seat))
        shape = cell.intersection(outline).simplify(0.002)
        found.append(
            District(
                code=item["code"],
                name=item["name"],
                name_en=item["name_en"],
                centre=(item["centre"][0], item["centre"][1]),
                urban=item["urban"],
                polygon=_rounded(shape.exterior.coords),
            )
        )
    return tuple(found)


def district_of(districts: tuple[District, ...], point: Coord) -> str:
    """The district a point lies in: the nearest seat, in degrees as the districts' Voronoi cells
    were drawn."""
    return min(districts, key=lambda d: (d.centre[0] - point[0]) ** 2 + (d.centre[1] - point[1]) ** 2).code


def _cells(districts: tuple[District, ...]) -> tuple[GridCell, ...]:
    found = []
    for district in districts:
        if not district.urban:
            continue
        lon0, lat0 = district.centre
        dlat = CELL_M / M_PER_DEG
        dlon = CELL_M / (M_PER_DEG * math.cos(math.radians(lat0)))
        west = lon0 - dlon * CELLS_PER_SIDE / 2
        south = lat0 - dlat * CELLS_PER_SIDE / 2
        serial = 0
        for row in range(CELLS_PER_SIDE):
            for col in range(CELLS_PER_SIDE):
                serial += 1
                x, y = west + col * dlon, south + row * dlat
                ring = ((x, y), (x + dlon, y), (x + dlon, y + dlat), (x, y + dlat), (x, y))
                found.append(GridCell(f"{district.code}{serial:08d}", district.code, _rounded(ring)))
    return tuple(found)


def _cuts(low: float, high: float, marks: list[float]) -> list[float]:
    inner = sorted({round(m, 6) for m in marks if low < m < high})
    return [low, *inner, high]


def _roads(data: dict[str, Any], districts: tuple[District, ...]) -> tuple[RoadSegment, ...]:
    spec = data["roads"]
    rings = spec["rings"]
    inner, middle = rings[0], rings[1]
    ns = [r["at"] for r in spec["north_south"]]
    ew = [r["at"] for r in spec["east_west"]]
    pieces: list[tuple[str, str, str, tuple[Coord, ...]]] = []

    def add(name: str, name_en: str, cls: str, marks: list[float], fixed: float, vertical: bool) -> None:
        for a, b in pairwise(marks):
            line = ((fixed, a), (fixed, b)) if vertical else ((a, fixed), (b, fixed))
            pieces.append((name, name_en, cls, _rounded(line)))

    ring_lons = [r[k] for r in rings[:2] for k in ("west", "east")]
    ring_lats = [r[k] for r in rings[:2] for k in ("south", "north")]
    for road in spec["north_south"]:
        marks = _cuts(middle["south"], middle["north"], ew + ring_lats)
        add(road["name"], road["name_en"], "primary", marks, road["at"], vertical=True)
    for road in spec["east_west"]:
        marks = _cuts(middle["west"], middle["east"], ns + ring_lons)
        add(road["name"], road["name_en"], "primary", marks, road["at"], vertical=False)
    # the secondary grid: streets halfway between arterials inside the inner ring
    lon_lines = sorted([inner["west"], *ns, inner["east"]])
    lat_lines = sorted([inner["south"], *ew, inner["north"]])
    names = iter(spec["secondary_names"])
    for a, b in pairwise(lon_lines):
        name = next(names)
        marks = _cuts(inner["south"], inner["north"], ew)
        add(name, _pinyin_street(name), "secondary", marks, round((a + b) / 2, 6), vertical=True)
    for a, b in pairwise(lat_lines):
        name = next(names)
        marks = _cuts(inner["west"], inner["east"], ns)
        add(name, _pinyin_street(name), "secondary", marks, round((a + b) / 2, 6), vertical=False)
    for index, ring in enumerate(rings):
        # the outer ring has no arterial crossings here: cut it into sections of about 4 km
        crossing_lons = ns if index < 2 else _spaced(ring["west"], ring["east"], 8)
        crossing_lats = ew if index < 2 else _spaced(ring["south"], ring["north"], 8)
        for side in ("south", "north"):
            marks = _cuts(ring["west"], ring["east"], crossing_lons)
            add(ring["name"], ring["name_en"], ring["class"], marks, ring[side], vertical=False)
        for side in ("west", "east"):
            marks = _cuts(ring["south"], ring["north"], crossing_lats)
            add(ring["name"], ring["name_en"], ring["class"], marks, ring[side], vertical=True)
    for road in spec["radials"]:
        start, end = tuple(road["from"]), tuple(road["to"])
        steps = max(1, round(distance(start, end) / 2500))
        points = [
            (start[0] + (end[0] - start[0]) * i / steps, start[1] + (end[1] - start[1]) * i / steps)
            for i in range(steps + 1)
        ]
        for a, b in pairwise(points):
            pieces.append((road["name"], road["name_en"], "primary", _rounded((a, b))))
    segments = []
    for serial, (name, name_en, cls, line) in enumerate(pieces, start=1):
        mid = ((line[0][0] + line[-1][0]) / 2, (line[0][1] + line[-1][1]) / 2)
        segments.append(
            RoadSegment(
                id=f"urn:ngsi-ld:RoadSegment:{CITY_CODE}-{serial:04d}",
                road=name,
                road_en=name_en,
                road_class=cls,
                line=line,
                district=district_of(districts, mid),
            )
        )
    return tuple(segments)


def _spaced(low: float, high: float, parts: int) -> list[float]:
    return [low + (high - low) * i / parts for i in range(1, parts)]


_NUMERALS = {"一": "1", "二": "2", "三": "3", "四": "4", "五": "5", "六": "6", "七": "7", "八": "8"}


def _pinyin_street(name: str) -> str:
    """经三路 → Jing 3rd Road; 纬五路 → Wei 5th Road (the English of the numbered streets)."""
    number = int(_NUMERALS.get(name[1], "0"))
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number, "th")
    return f"{'Jing' if name[0] == '经' else 'Wei'} {number}{suffix} Road"


def _sensors(
    data: dict[str, Any],
    districts: tuple[District, ...],
    roads: tuple[RoadSegment, ...],
    cells: tuple[GridCell, ...],
    rng: random.Random,
) -> tuple[Sensor, ...]:
    found: list[Sensor] = []
    for site in data["air_stations"]:
        at = (site["at"][0], site["at"][1])
        found.append(
            Sensor("air", f"air-{site['key']}", site["name"], site["name_en"], at, district_of(districts, at))
        )
    for section in data["water_sections"]:
        at = (section["at"][0], section["at"][1])
        found.append(
            Sensor(
                "water",
                f"water-{section['key']}",
                section["name"],
                section["name_en"],
                at,
                district_of(districts, at),
                {"river": section["river"], "riverEn": section["river_en"]},
            )
        )
    # traffic detectors: every motorway and trunk segment, every other primary one
    primaries = 0
    for road in roads:
        if road.road_class == "secondary":
            continue
        if road.road_class == "primary":
            primaries += 1
            if primaries % 2 == 0:
                continue
        serial = road.id.rsplit("-", 1)[1]
        found.append(
            Sensor(
                "traffic",
                f"traffic-{serial}",
                f"{road.road}检测器 {serial}",
                f"{road.road_en} detector {serial}",
                road.midpoint,
                road.district,
                {
                    "refRoadSegment": road.id,
                    "roadClass": road.road_class,
                    "freeFlowSpeed": road.free_flow_speed,
                    "laneCount": road.lanes,
                },
            )
        )
    # noise monitors: by the arterials (zone 4a) and in grid cells of the other zone classes
    arterials = [r for r in roads if r.road_class in ("primary", "trunk") and r.district in _urban(districts)]
    for index, road in enumerate(rng.sample(arterials, min(10, len(arterials))), start=1):
        found.append(
            Sensor(
                "noise",
                f"noise-{index:03d}",
                f"{road.road}噪声监测点",
                f"{road.road_en} noise monitor",
                road.midpoint,
                road.district,
                {"zoneClass": "4a"},
            )
        )
    zones = ["0", "1", "1", "2", "2", "2", "3"]
    picked = rng.sample(list(cells), min(14, len(cells)))
    for index, cell in enumerate(picked, start=11):
        zone = zones[index % len(zones)]
        serial = f"{index:03d}"
        found.append(
            Sensor(
                "noise",
                f"noise-{serial}",
                f"{_zone_zh(zone)}噪声监测点 {serial}",
                f"Noise monitor {serial} ({_zone_en(zone)})",
                cell.centre,
                cell.district,
                {"zoneClass": zone, "refGridCell": f"urn:ngsi-ld:GridCell:{cell.code}"},
            )
        )
    urban = [d for d in districts if d.urban]
    for index, name in enumerate(data["parking_names"], start=1):
        district = urban[index % len(urban)]
        at = (
            round(district.centre[0] + rng.uniform(-0.012, 0.012), 6),
            round(district.centre[1] + rng.uniform(-0.010, 0.010), 6),
        )
        profile = ["commercial", "hospital", "station", "park", "office"][index % 5]
        found.append(
            Sensor(
                "parking",
                f"parking-{index:03d}",
                name,
                f"Car park {index}",
                at,
                district_of(districts, at),
                {"totalSpotNumber": rng.choice([120, 180, 240, 300, 450, 600, 800]), "usage": profile},
            )
        )
    lit = [r for r in roads if r.road_class in ("primary", "secondary") and r.district in _urban(districts)]
    for index, road in enumerate(rng.sample(lit, min(48, len(lit))), start=1):
        found.append(
            Sensor(
                "light",
                f"light-{index:03d}",
                f"{road.road}路灯 {index:03d}",
                f"{road.road_en} street light {index:03d}",
                road.midpoint,
                road.district,
                {
                    "lanternHeight": 12.0,
                    "ratedPower": rng.choice([0.15, 0.25, 0.4]),
                    "refRoadSegment": road.id,
                },
            )
        )
    return tuple(found)


def _urban(districts: tuple[District, ...]) -> set[str]:
    return {d.code for d in districts if d.urban}


def _zone_zh(zone: str) -> str:
    return {"0": "康复疗养区", "1": "居住文教区", "2": "混合区", "3": "工业区", "4a": "交通干线"}[zone]


def _zone_en(zone: str) -> str:
    return {"0": "class 0", "1": "class 1", "2": "class 2", "3": "class 3", "4a": "class 4a"}[zone]


@cache
def build_city(seed: int = 42) -> City:
    """The demo city; the same seed gives the same city."""
    data = facts()
    rng = random.Random(f"cityhub-demo-city-{seed}")
    districts = _districts(data)
    cells = _cells(districts)
    roads = _roads(data, districts)
    sensors = _sensors(data, districts, roads, cells, rng)
    city = data["city"]
    return City(CITY_CODE, city["name"], city["name_en"], seed, districts, cells, roads, sensors)


# -- exports ------------------------------------------------------------------------------------------


def osm_xml(city: City) -> str:
    """The road network as OSM XML: one way per segment, nodes shared where segments meet."""
    nodes: dict[Coord, int] = {}
    ways = []
    for road in city.roads:
        refs = []
        for point in road.line:
            refs.append(nodes.setdefault(point, len(nodes) + 1))
        ways.append((road, refs))
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="cityhub-demo">']
    for (lon, lat), node_id in nodes.items():
        lines.append(f'  <node id="{node_id}" version="1" lat="{lat:.6f}" lon="{lon:.6f}"/>')
    for serial, (road, refs) in enumerate(ways, start=1):
        lines.append(f'  <way id="{serial}" version="1">')
        lines.extend(f'    <nd ref="{ref}"/>' for ref in refs)
        tags = {
            "highway": road.road_class,
            "name": road.road,
            "name:zh": road.road,
            "name:en": road.road_en,
            "lanes": str(road.lanes * 2),
            "maxspeed": str(road.speed_limit),
            "ref:cityhub": road.id,
            "addr:district": road.district,
        }
        lines.extend(f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items())
        lines.append("  </way>")
    lines.append("</osm>")
    return "\n".join(lines) + "\n"


def _feature(geometry: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def geojson(city: City) -> dict[str, dict[str, Any]]:
    """Districts, grid cells and roads as GeoJSON feature collections (for a base map)."""

    def collection(features: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "FeatureCollection", "features": features}

    return {
        "districts": collection(
            [
                _feature(
                    {"type": "Polygon", "coordinates": [list(map(list, d.polygon))]},
                    {"code": d.code, "name": d.name, "name_en": d.name_en, "urban": d.urban},
                )
                for d in city.districts
            ]
        ),
        "grid": collection(
            [
                _feature(
                    {"type": "Polygon", "coordinates": [list(map(list, c.polygon))]},
                    {"code": c.code, "district": c.district},
                )
                for c in city.cells
            ]
        ),
        "roads": collection(
            [
                _feature(
                    {"type": "LineString", "coordinates": list(map(list, r.line))},
                    {"id": r.id, "name": r.road, "name_en": r.road_en, "roadClass": r.road_class},
                )
                for r in city.roads
            ]
        ),
    }
