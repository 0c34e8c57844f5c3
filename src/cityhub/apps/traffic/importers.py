"""Road network importers: SUMO ``.net.xml``, OpenStreetMap XML (``.osm``) and PBF (``.pbf``, with
pyosmium), and SUMO edge data (``edgeData`` mean-data output) for comparing indices with a
simulation. No I/O beyond reading the given file; the results are plain nodes and segments."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from cityhub.apps.traffic.network import (
    DEFAULT_SPEED_KMH,
    Node,
    RoadClass,
    Segment,
    class_for_speed,
    polyline_length_m,
)

Source = str | IO[bytes]


class NetworkFormatError(ValueError):
    """The file is not a road network this importer can read; the message says why."""


@dataclass
class ImportedNetwork:
    format: str
    nodes: list[Node] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)


def safe_id(raw: str) -> str:
    """An id usable inside an NGSI-LD URN: anything but letters, digits, '.', '_' and '-' becomes
    '_' followed by its code point in hex."""
    return re.sub(r"[^A-Za-z0-9._-]", lambda m: f"_{ord(m.group()):x}", raw)


def _iterparse(source: Source) -> Iterator[tuple[str, ET.Element]]:
    try:
        yield from ET.iterparse(source, events=("start", "end"))
    except ET.ParseError as exc:
        raise NetworkFormatError(f"not well-formed XML: {exc}") from None


# ---------------------------------------------------------------- SUMO


_SUMO_SKIPPED_FUNCTIONS = {"internal", "crossing", "walkingarea"}


def _drivable_lane(lane: ET.Element) -> bool:
    allow = lane.get("allow")
    if allow is not None:
        return bool({"passenger", "all", "private", "taxi", "bus"} & set(allow.split()))
    disallow = set((lane.get("disallow") or "").split())
    return not ({"passenger", "all", "private"} & disallow)


def _sumo_class(edge_type: str | None, speed_kmh: float) -> RoadClass:
    if edge_type:
        highway = edge_type.rsplit(".", 1)[-1]
        found = OSM_HIGHWAY_CLASSES.get(highway)
        if found is not None:
            return found
    return class_for_speed(speed_kmh)


def read_sumo_net(source: Source, *, origin: tuple[float, float] | None = None) -> ImportedNetwork:
    """Edges of a SUMO network with their lanes, speeds, lengths and shapes; internal, crossing and
    walking-area edges and edges no car may use are skipped. Coordinates come from the network's
    UTM projection, or, for a network without one, from ``origin`` (lon, lat) placed at x = y = 0."""
    net = ImportedNetwork("sumo")
    junctions: dict[str, tuple[float, float]] = {}
    raw_edges: list[tuple[ET.Element, list[ET.Element]]] = []
    project: Any = None
    root_seen = False
    depth = 0
    edge: ET.Element | None = None
    lanes: list[ET.Element] = []
    for event, elem in _iterparse(source):
        if event == "start":
            depth += 1
            if depth == 1:
                if elem.tag != "net":
                    raise NetworkFormatError(f"a SUMO network starts with <net>, this one with <{elem.tag}>")
                root_seen = True
            elif depth == 2 and elem.tag == "edge":
                edge, lanes = elem, []
            continue
        depth -= 1
        if depth == 1:
            if elem.tag == "location":
                project = _sumo_projection(elem, origin)
            elif elem.tag == "junction" and elem.get("type") != "internal":
                junctions[elem.get("id", "")] = (float(elem.get("x", 0)), float(elem.get("y", 0)))
            elif elem.tag == "edge" and edge is not None:
                if edge.get("function") not in _SUMO_SKIPPED_FUNCTIONS:
                    raw_edges.append((edge, lanes))
                edge = None
                continue
            elem.clear()
        elif depth == 2 and edge is not None and elem.tag == "lane":
            lanes.append(elem)
    if not root_seen:
        raise NetworkFormatError("empty document")
    if project is None:
        project = _sumo_projection(None, origin)
    for jid, (x, y) in junctions.items():
        lon, lat = project(x, y)
        net.nodes.append(Node(f"sumo-{safe_id(jid)}", lon, lat))
    for edge_elem, lane_elems in raw_edges:
        drivable = [lane for lane in lane_elems if _drivable_lane(lane)]
        if not drivable:
            continue
        eid, frm, to = edge_elem.get("id", ""), edge_elem.get("from"), edge_elem.get("to")
        if frm not in junctions or to not in junctions:
            continue
        speed_kmh = max(float(lane.get("speed", "13.89")) for lane in drivable) * 3.6
        length = max(float(lane.get("length", "0")) for lane in drivable)
        shape_attr = edge_elem.get("shape") or drivable[len(drivable) // 2].get("shape") or ""
        shape = [project(*(float(c) for c in p.split(",")[:2])) for p in shape_attr.split()]
        net.segments.append(
            Segment(
                id=f"sumo-{safe_id(eid)}",
                from_node=f"sumo-{safe_id(frm)}",
                to_node=f"sumo-{safe_id(to)}",
                length_m=length,
                free_flow_kmh=speed_kmh,
                road_class=_sumo_class(edge_elem.get("type"), speed_kmh),
                lanes=len(drivable),
                name=edge_elem.get("name"),
                road=eid,
                shape=shape,
            )
        )
    return net


def _sumo_projection(location: ET.Element | None, origin: tuple[float, float] | None) -> Any:
    offset_x = offset_y = 0.0
    proj = "!"
    if location is not None:
        offset_x, offset_y = (float(v) for v in location.get("netOffset", "0,0").split(","))
        proj = location.get("projParameter", "!")
    zone = re.search(r"\+zone=(\d+)", proj)
    if "+proj=utm" in proj and zone:
        south = "+south" in proj
        z = int(zone.group(1))

        def from_utm(x: float, y: float) -> tuple[float, float]:
            return utm_to_lonlat(x - offset_x, y - offset_y, z, south=south)

        return from_utm
    if origin is None:
        raise NetworkFormatError(
            "the SUMO network is not geo-referenced (no UTM projection): give the origin (lon,lat) "
            "of its x = 0, y = 0 point"
        )
    lon0, lat0 = origin
    metres_per_degree = math.pi * 6_371_008.8 / 180

    def local(x: float, y: float) -> tuple[float, float]:
        lat = lat0 + y / metres_per_degree
        lon = lon0 + x / (metres_per_degree * math.cos(math.radians(lat0)))
        return lon, lat

    return local


def utm_to_lonlat(easting: float, northing: float, zone: int, *, south: bool = False) -> tuple[float, float]:
    """Inverse transverse Mercator on WGS-84 (series to the sixth order, sub-metre in a zone)."""
    a, f, k0 = 6378137.0, 1 / 298.257223563, 0.9996
    e2 = f * (2 - f)
    ep2 = e2 / (1 - e2)
    x = easting - 500_000.0
    y = northing - (10_000_000.0 if south else 0.0)
    mu = y / k0 / (a * (1 - e2 / 4 - 3 * e2**2 / 64 - 5 * e2**3 / 256))
    e1 = (1 - math.sqrt(1 - e2)) / (1 + math.sqrt(1 - e2))
    phi1 = (
        mu
        + (3 * e1 / 2 - 27 * e1**3 / 32) * math.sin(2 * mu)
        + (21 * e1**2 / 16 - 55 * e1**4 / 32) * math.sin(4 * mu)
        + (151 * e1**3 / 96) * math.sin(6 * mu)
        + (1097 * e1**4 / 512) * math.sin(8 * mu)
    )
    sin1, cos1, tan1 = math.sin(phi1), math.cos(phi1), math.tan(phi1)
    c1 = ep2 * cos1**2
    t1 = tan1**2
    n1 = a / math.sqrt(1 - e2 * sin1**2)
    r1 = a * (1 - e2) / (1 - e2 * sin1**2) ** 1.5
    d = x / (n1 * k0)
    lat = phi1 - (n1 * tan1 / r1) * (
        d**2 / 2
        - (5 + 3 * t1 + 10 * c1 - 4 * c1**2 - 9 * ep2) * d**4 / 24
        + (61 + 90 * t1 + 298 * c1 + 45 * t1**2 - 252 * ep2 - 3 * c1**2) * d**6 / 720
    )
    lon = (
        d
        - (1 + 2 * t1 + c1) * d**3 / 6
        + (5 - 2 * c1 + 28 * t1 - 3 * c1**2 + 8 * ep2 + 24 * t1**2) * d**5 / 120
    ) / cos1
    return (zone - 1) * 6 - 180 + 3 + math.degrees(lon), math.degrees(lat)


@dataclass
class EdgeInterval:
    begin: float
    end: float
    edges: dict[str, dict[str, float]]


def read_sumo_edge_data(source: Source) -> list[EdgeInterval]:
    """SUMO ``edgeData`` output: per interval, each edge's numeric attributes (traveltime, speed,
    sampledSeconds, entered, left, density, ...)."""
    intervals: list[EdgeInterval] = []
    current: EdgeInterval | None = None
    for event, elem in _iterparse(source):
        if event == "start" and elem.tag == "interval":
            current = EdgeInterval(float(elem.get("begin", 0)), float(elem.get("end", 0)), {})
        elif event == "end" and elem.tag == "edge" and current is not None:
            values: dict[str, float] = {}
            for key, value in elem.attrib.items():
                try:
                    values[key] = float(value)
                except ValueError:
                    continue
            current.edges[elem.get("id", "")] = values
            elem.clear()
        elif event == "end" and elem.tag == "interval" and current is not None:
            intervals.append(current)
            current = None
    return intervals


# ---------------------------------------------------------------- OpenStreetMap

OSM_HIGHWAY_CLASSES: dict[str, RoadClass] = {
    "motorway": RoadClass.EXPRESSWAY,
    "motorway_link": RoadClass.EXPRESSWAY,
    "trunk": RoadClass.EXPRESSWAY,
    "trunk_link": RoadClass.EXPRESSWAY,
    "primary": RoadClass.ARTERIAL,
    "primary_link": RoadClass.ARTERIAL,
    "secondary": RoadClass.SECONDARY,
    "secondary_link": RoadClass.SECONDARY,
    "tertiary": RoadClass.BRANCH,
    "tertiary_link": RoadClass.BRANCH,
    "unclassified": RoadClass.BRANCH,
    "residential": RoadClass.BRANCH,
    "living_street": RoadClass.BRANCH,
    "service": RoadClass.BRANCH,
    "road": RoadClass.BRANCH,
}
_ONEWAY_BY_DEFAULT = {"motorway", "motorway_link"}


@dataclass
class _Way:
    id: str
    refs: list[str]
    tags: dict[str, str]


def parse_maxspeed(value: str | None) -> float | None:
    """km/h from an OSM ``maxspeed`` ("50", "50 km/h", "30 mph"); None when not a number."""
    if not value:
        return None
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh)?\s*$", value)
    if not match:
        return None
    speed = float(match.group(1))
    return speed * 1.609344 if match.group(2) == "mph" else speed


def read_osm_xml(source: Source) -> ImportedNetwork:
    """Ways with a drivable ``highway`` tag, split at junctions into directed segments."""
    coords: dict[str, tuple[float, float]] = {}
    ways: list[_Way] = []
    root_seen = False
    for event, elem in _iterparse(source):
        if event == "start":
            if not root_seen:
                if elem.tag != "osm":
                    raise NetworkFormatError(f"an OSM file starts with <osm>, this one with <{elem.tag}>")
                root_seen = True
            continue
        if elem.tag == "node":
            try:
                coords[elem.get("id", "")] = (float(elem.get("lon", "")), float(elem.get("lat", "")))
            except ValueError:
                raise NetworkFormatError(f"node {elem.get('id')} has no valid lon/lat") from None
            elem.clear()
        elif elem.tag == "way":
            tags = {t.get("k", ""): t.get("v", "") for t in elem.iter("tag")}
            if tags.get("highway") in OSM_HIGHWAY_CLASSES:
                ways.append(_Way(elem.get("id", ""), [nd.get("ref", "") for nd in elem.iter("nd")], tags))
            elem.clear()
        elif elem.tag == "relation":
            elem.clear()
    if not root_seen:
        raise NetworkFormatError("empty document")
    return _osm_network("osm", coords, ways)


def read_osm_pbf(path: str) -> ImportedNetwork:
    """The same as :func:`read_osm_xml` for a PBF file, read with pyosmium."""
    try:
        import osmium
    except ImportError:  # pragma: no cover - osmium is a dependency; kept for stripped installs
        raise NetworkFormatError("reading .pbf needs the osmium package (pyosmium)") from None

    coords: dict[str, tuple[float, float]] = {}
    ways: list[_Way] = []

    class Collector(osmium.SimpleHandler):
        def way(self, w: Any) -> None:
            tags = {t.k: t.v for t in w.tags}
            if tags.get("highway") not in OSM_HIGHWAY_CLASSES:
                return
            refs = []
            for nd in w.nodes:
                if nd.location.valid():
                    coords[str(nd.ref)] = (nd.location.lon, nd.location.lat)
                refs.append(str(nd.ref))
            ways.append(_Way(str(w.id), refs, tags))

    try:
        Collector().apply_file(path, locations=True)
    except RuntimeError as exc:
        raise NetworkFormatError(f"not a readable OSM PBF file: {exc}") from None
    return _osm_network("pbf", coords, ways)


def _osm_network(fmt: str, coords: dict[str, tuple[float, float]], ways: Iterable[_Way]) -> ImportedNetwork:
    kept = []
    for way in ways:
        refs = [r for r in way.refs if r in coords]
        if len(refs) >= 2:
            kept.append(_Way(way.id, refs, way.tags))
    uses: dict[str, int] = {}
    for way in kept:
        for r in way.refs:
            uses[r] = uses.get(r, 0) + 1
        uses[way.refs[0]] = uses.get(way.refs[0], 0) + 1
        uses[way.refs[-1]] = uses.get(way.refs[-1], 0) + 1
    net = ImportedNetwork(fmt)
    junctions: set[str] = set()
    for way in kept:
        highway = way.tags["highway"]
        road_class = OSM_HIGHWAY_CLASSES[highway]
        speed = parse_maxspeed(way.tags.get("maxspeed")) or DEFAULT_SPEED_KMH[road_class]
        oneway = way.tags.get("oneway", "")
        forward = backward = True
        if oneway in ("yes", "true", "1") or (
            oneway == ""
            and (highway in _ONEWAY_BY_DEFAULT or way.tags.get("junction") in ("roundabout", "circular"))
        ):
            backward = False
        elif oneway in ("-1", "reverse"):
            forward = False
        lanes_total = _int_tag(way.tags.get("lanes"))
        lanes_fwd = _int_tag(way.tags.get("lanes:forward"))
        lanes_bwd = _int_tag(way.tags.get("lanes:backward"))
        if forward and backward:
            half = max(1, (lanes_total or 2) // 2)
            lanes_fwd, lanes_bwd = lanes_fwd or half, lanes_bwd or half
        else:
            lanes_fwd = lanes_bwd = lanes_total or 1
        piece = [way.refs[0]]
        k = 0
        for ref in way.refs[1:]:
            piece.append(ref)
            if uses.get(ref, 0) > 1 or ref == way.refs[-1]:
                shape = [coords[r] for r in piece]
                length = polyline_length_m(shape)
                base = f"osm-{safe_id(way.id)}-{k}"
                a, b = f"osm-{safe_id(piece[0])}", f"osm-{safe_id(piece[-1])}"
                junctions.update((piece[0], piece[-1]))
                if forward:
                    net.segments.append(
                        Segment(
                            base,
                            a,
                            b,
                            length,
                            speed,
                            road_class,
                            lanes_fwd,
                            way.tags.get("name"),
                            way.id,
                            shape,
                        )
                    )
                if backward:
                    net.segments.append(
                        Segment(
                            f"{base}-r",
                            b,
                            a,
                            length,
                            speed,
                            road_class,
                            lanes_bwd,
                            way.tags.get("name"),
                            way.id,
                            shape[::-1],
                        )
                    )
                piece = [ref]
                k += 1
    net.nodes = [Node(f"osm-{safe_id(r)}", *coords[r]) for r in sorted(junctions)]
    return net


def _int_tag(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(1, int(float(value.split(";")[0])))
    except ValueError:
        return None


def read_network(source: Source, fmt: str, *, origin: tuple[float, float] | None = None) -> ImportedNetwork:
    """Dispatch on the format name: ``sumo``, ``osm`` or ``pbf`` (a path for pbf)."""
    if fmt == "sumo":
        return read_sumo_net(source, origin=origin)
    if fmt == "osm":
        return read_osm_xml(source)
    if fmt == "pbf":
        if not isinstance(source, str):
            raise NetworkFormatError("a .pbf network is read from a file path")
        return read_osm_pbf(source)
    raise NetworkFormatError(f"unknown network format {fmt!r}: sumo, osm or pbf")


def format_for_name(filename: str) -> str | None:
    lower = filename.lower()
    if lower.endswith(".net.xml") or lower.endswith(".net.xml.gz"):
        return "sumo"
    if lower.endswith(".osm") or lower.endswith(".osm.xml"):
        return "osm"
    if lower.endswith(".pbf"):
        return "pbf"
    return None
