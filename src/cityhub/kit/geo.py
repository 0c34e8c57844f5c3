"""Geometry for NGSI-LD geo-queries (ETSI GS CIM 009, clause 4.10) and China's coordinate systems.

Geometries are GeoJSON (RFC 7946) in WGS-84 longitude, latitude[, altitude]; edges are straight lines
in longitude/latitude, as RFC 7946 says. The topological relations (within, contains, intersects,
equals, disjoint, overlaps) are OGC simple-features predicates (shapely/GEOS) evaluated in that plane.

Distances (``near``) are horizontal, in metres on the WGS-84 ellipsoid, measured in an azimuthal
equidistant plane centred on the query geometry (the point itself, or the centre of its bounding box):
a unit-sphere azimuthal equidistant projection of geodetic coordinates, its east axis scaled by the
prime-vertical radius N and its north axis by the meridional radius M at the centre's latitude.
Point to point this is the haversine central angle times that directional radius. Other geometries are
first densified to 0.01° (about 1 km) segments, so their projected edges follow the lon/lat-straight
edges. Measured against geodesics (Karney's algorithm, geographiclib) around Zhengzhou, the error
grows with the square of the distance ρ from the centre, about 7e-10·ρ² metres: 0.07 m at 10 km,
1.8 m at 50 km, 7 m at 100 km. A spherical haversine (``haversine_m``, kept as a fast helper) is off
by up to 0.5 %, about 23 m at 10 km there, so ``near`` does not use it. Altitude is ignored, and
geometries crossing the antimeridian are not split.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Literal, TypeAlias, cast, get_args
from urllib.parse import unquote

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import shape as _geojson_to_shapely

from cityhub.kit.errors import BadRequestData

GeometryType = Literal[
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"
]
Relation = Literal["near", "within", "contains", "intersects", "equals", "disjoint", "overlaps"]
CRS = Literal["WGS84", "GCJ02", "BD09"]
BBox: TypeAlias = tuple[float, float, float, float]
"""(min_lon, min_lat, max_lon, max_lat)"""
Position: TypeAlias = tuple[float, ...]
Coordinates: TypeAlias = "Position | tuple[Coordinates, ...]"

# WGS-84 ellipsoid.
_A: Final = 6378137.0
_E2: Final = 6.69437999014e-3
_MEAN_RADIUS: Final = 6371008.8
_DENSIFY_DEG: Final = 0.01
_BBOX_SLACK_M: Final = 1.0

# How deep the arrays of each geometry type nest above its positions.
_DEPTH: Final[dict[str, int]] = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}
_QUERY_TYPES: Final = ", ".join(_DEPTH)
_ALL_TYPES: Final = _QUERY_TYPES + ", GeometryCollection"
_RELATIONS: Final[tuple[str, ...]] = get_args(Relation)


class InvalidGeometry(BadRequestData):
    title = "Invalid geometry"


class InvalidGeoQuery(BadRequestData):
    title = "Invalid geo-query"


def _show(value: object) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count(minimum: int, noun: str) -> str:
    return f"one {noun}" if minimum == 1 else f"{minimum} {noun}s"


class _Reader:
    """One pass over GeoJSON coordinates: checks them, converts them to tuples, tracks the bbox."""

    def __init__(self) -> None:
        self.west = self.south = math.inf
        self.east = self.north = -math.inf
        self.dim = 0

    @property
    def bbox(self) -> BBox:
        return (self.west, self.south, self.east, self.north)

    def number(self, value: object, path: str, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidGeometry(f"{path}: {name} must be a number, got {_show(value)}")
        try:
            return float(value)
        except OverflowError:
            raise InvalidGeometry(f"{path}: {name} {_show(value)} is out of range") from None

    def position(self, value: object, path: str) -> Position:
        if not isinstance(value, list | tuple):
            raise InvalidGeometry(f"{path}: expected a position [longitude, latitude], got {_show(value)}")
        if len(value) not in (2, 3):
            raise InvalidGeometry(f"{path}: a position has 2 or 3 numbers, got {len(value)}")
        if self.dim and len(value) != self.dim:
            raise InvalidGeometry(f"{path}: position has {len(value)} numbers, the first one has {self.dim}")
        self.dim = len(value)
        lon = self.number(value[0], path, "longitude")
        lat = self.number(value[1], path, "latitude")
        if not -180.0 <= lon <= 180.0:
            raise InvalidGeometry(f"{path}: longitude {_show(lon)} out of range [-180, 180]")
        if not -90.0 <= lat <= 90.0:
            raise InvalidGeometry(f"{path}: latitude {_show(lat)} out of range [-90, 90]")
        self.west, self.east = min(self.west, lon), max(self.east, lon)
        self.south, self.north = min(self.south, lat), max(self.north, lat)
        if len(value) == 2:
            return (lon, lat)
        alt = self.number(value[2], path, "altitude")
        if not math.isfinite(alt):
            raise InvalidGeometry(f"{path}: altitude {_show(alt)} is not a finite number")
        return (lon, lat, alt)

    def items(self, value: object, path: str, what: str, minimum: int, noun: str) -> list[object]:
        if not isinstance(value, list | tuple):
            raise InvalidGeometry(f"{path}: expected an array of {noun}s, got {_show(value)}")
        if len(value) < minimum:
            raise InvalidGeometry(f"{path}: {what} needs at least {_count(minimum, noun)}, got {len(value)}")
        return list(value)

    def positions(self, value: object, path: str, what: str, minimum: int) -> tuple[Position, ...]:
        items = self.items(value, path, what, minimum, "position")
        return tuple(self.position(p, f"{path}[{i}]") for i, p in enumerate(items))

    def line(self, value: object, path: str) -> tuple[Position, ...]:
        return self.positions(value, path, "a LineString", 2)

    def polygon(self, value: object, path: str) -> tuple[tuple[Position, ...], ...]:
        rings = self.items(value, path, "a Polygon", 1, "linear ring")
        return tuple(self.ring(r, f"{path}[{i}]") for i, r in enumerate(rings))

    def ring(self, value: object, path: str) -> tuple[Position, ...]:
        ring = self.positions(value, path, "a linear ring", 4)
        if ring[0] != ring[-1]:
            raise InvalidGeometry(
                f"{path}: linear ring is not closed: first position {_show(ring[0])} "
                f"differs from last {_show(ring[-1])}"
            )
        return ring

    def coordinates(self, kind: str, value: object, path: str) -> Coordinates:
        depth, probe = 0, value
        while isinstance(probe, list | tuple) and probe:
            depth, probe = depth + 1, probe[0]
        if not isinstance(probe, list | tuple) and depth != _DEPTH[kind] + 1:
            raise InvalidGeometry(
                f"{path}: a {kind} nests arrays {_DEPTH[kind] + 1} deep, got {depth} "
                f"(innermost {_show(probe)})"
            )
        if kind == "Point":
            return self.position(value, path)
        if kind == "MultiPoint":
            return self.positions(value, path, "a MultiPoint", 1)
        if kind == "LineString":
            return self.line(value, path)
        if kind == "Polygon":
            return self.polygon(value, path)
        if kind == "MultiLineString":
            lines = self.items(value, path, "a MultiLineString", 1, "line string")
            return tuple(self.line(part, f"{path}[{i}]") for i, part in enumerate(lines))
        polygons = self.items(value, path, "a MultiPolygon", 1, "polygon")
        return tuple(self.polygon(part, f"{path}[{i}]") for i, part in enumerate(polygons))


def _listed(coordinates: Coordinates) -> Any:
    if coordinates and isinstance(coordinates[0], tuple):
        return [_listed(c) for c in coordinates]
    return list(coordinates)


@dataclass(frozen=True)
class Geometry:
    """A validated GeoJSON geometry; build it with ``parse_geometry`` or ``geometry_from_query``.

    ``coordinates`` are nested tuples of floats (empty for a GeometryCollection, whose members are in
    ``geometries``); ``bbox`` is (min_lon, min_lat, max_lon, max_lat).
    """

    type: GeometryType
    coordinates: Coordinates
    bbox: BBox
    geometries: tuple[Geometry, ...] = ()

    @property
    def geojson(self) -> dict[str, Any]:
        """A fresh GeoJSON dict (lists, not tuples), safe to change or serialise."""
        if self.type == "GeometryCollection":
            return {"type": self.type, "geometries": [g.geojson for g in self.geometries]}
        return {"type": self.type, "coordinates": _listed(self.coordinates)}

    @cached_property
    def shape(self) -> Any:
        """The shapely geometry, built on first use; an OGC-invalid one is repaired with make_valid."""
        return _shapely_from_geojson(self.geojson)

    @cached_property
    def _anchor(self) -> tuple[float, float]:
        if self.type == "Point":
            return self.bbox[0], self.bbox[1]
        return (self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2

    @cached_property
    def _plane(self) -> Any:
        """This geometry in the azimuthal equidistant plane around its own anchor, prepared."""
        plane = _project(self.shape, *self._anchor)
        shapely.prepare(plane)
        return plane


def parse_geometry(obj: object, *, check_topology: bool = False) -> Geometry:
    """Validate a GeoJSON geometry object; raise InvalidGeometry saying what is wrong and where.

    Foreign members (``bbox``, ``crs``...) are dropped. With ``check_topology`` a self-intersecting or
    otherwise OGC-invalid geometry is refused too (this builds the shapely geometry at once).
    """
    geometry = _parse(obj, "")
    if check_topology:
        reason = _invalidity(_geojson_to_shapely(geometry.geojson))
        if reason:
            raise InvalidGeometry(f"coordinates: invalid {geometry.type}: {reason}")
    return geometry


def geometry_bbox(obj: object) -> BBox:
    """The bounding box of a GeoJSON geometry, as ``parse_geometry(obj).bbox`` (which validates it
    and says what is wrong), with a short way for the common case: a point in range."""
    if isinstance(obj, dict) and obj.get("type") == "Point":
        position = obj.get("coordinates")
        if isinstance(position, list) and len(position) == 2:
            lon, lat = position
            if (
                type(lon) in (int, float)
                and type(lat) in (int, float)
                and -180.0 <= lon <= 180.0
                and -90.0 <= lat <= 90.0
            ):
                return (float(lon), float(lat), float(lon), float(lat))
    return parse_geometry(obj).bbox


def _parse(obj: object, prefix: str) -> Geometry:
    if not isinstance(obj, dict):
        raise InvalidGeometry(
            f"{prefix.rstrip('.') or 'geometry'}: expected a GeoJSON geometry object, got {_show(obj)}"
        )
    kind = obj.get("type")
    if kind == "GeometryCollection":
        members = obj.get("geometries")
        if not isinstance(members, list) or not members:
            raise InvalidGeometry(f"{prefix}geometries: expected a non-empty array, got {_show(members)}")
        parts = tuple(_parse(m, f"{prefix}geometries[{i}].") for i, m in enumerate(members))
        bbox = (
            min(p.bbox[0] for p in parts),
            min(p.bbox[1] for p in parts),
            max(p.bbox[2] for p in parts),
            max(p.bbox[3] for p in parts),
        )
        return Geometry("GeometryCollection", (), bbox, parts)
    if not isinstance(kind, str) or kind not in _DEPTH:
        problem = "missing" if kind is None else f"unknown geometry type {_show(kind)}"
        raise InvalidGeometry(f"{prefix}type: {problem} (expected one of {_ALL_TYPES})")
    if "coordinates" not in obj:
        raise InvalidGeometry(f"{prefix}coordinates: missing")
    return _build(kind, obj["coordinates"], f"{prefix}coordinates")


def _build(kind: str, value: object, path: str) -> Geometry:
    reader = _Reader()
    coordinates = reader.coordinates(kind, value, path)
    return Geometry(cast(GeometryType, kind), coordinates, reader.bbox)


def query_geometry(geometry: Any, coordinates: Any) -> Geometry:
    """A geo-query's geometry in either form NGSI-LD has: coordinates as a JSON text (the query
    string, or a geoQ written that way) or as the JSON array itself (a POST query, a geoQ)."""
    if isinstance(coordinates, str):
        return geometry_from_query(str(geometry), coordinates)
    return parse_geometry({"type": geometry, "coordinates": coordinates})


def geometry_from_query(geometry: str, coordinates: str) -> Geometry:
    """The NGSI-LD query form: ``geometry=Point&coordinates=[8.68,49.40]`` (values already decoded;
    a still percent-encoded coordinates value is decoded once more)."""
    if geometry not in _DEPTH:
        raise InvalidGeometry(
            f"geometry: unknown geometry type {_show(geometry)} (expected one of {_QUERY_TYPES})"
        )
    text = unquote(coordinates) if "%" in coordinates else coordinates
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidGeometry(f"coordinates: not a JSON array ({exc})") from None
    return _build(geometry, value, "coordinates")


@dataclass(frozen=True)
class GeoRel:
    """A parsed NGSI-LD ``georel``; distances in metres."""

    relation: Relation
    max_distance: float | None = None
    min_distance: float | None = None

    def matches(self, query: Geometry, target: Geometry) -> bool:
        """Whether ``target`` (an entity's GeoProperty) stands in this relation to ``query``.

        near: the shortest distance between them is at most maxDistance / at least minDistance;
        within: target within query; contains: target contains query; the rest are symmetric.
        """
        if self.relation == "near":
            distance = distance_m(query, target)
            return (self.max_distance is None or distance <= self.max_distance) and (
                self.min_distance is None or distance >= self.min_distance
            )
        shapely.prepare(query.shape)
        return bool(_QUERY_FIRST[self.relation](query.shape, target.shape))

    def search_bbox(self, query: Geometry) -> BBox | None:
        """A box that the bbox of every matching target intersects (closed: touching counts), for an
        index prefilter before ``matches``; None where no box can be given (disjoint, minDistance only).
        A box crossing the antimeridian or reaching a pole is widened to all longitudes."""
        if self.relation == "disjoint":
            return None
        if self.relation != "near":
            return query.bbox
        if self.max_distance is None:
            return None
        return _expand(query, self.max_distance)


# Each relation as "query <predicate> target", so the prepared query geometry comes first.
_QUERY_FIRST: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "within": shapely.contains,
    "contains": shapely.within,
    "intersects": shapely.intersects,
    "equals": shapely.equals,
    "disjoint": shapely.disjoint,
    "overlaps": shapely.overlaps,
}

_NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def parse_georel(text: str) -> GeoRel:
    """Parse ``near;maxDistance==2000``, ``near;minDistance==100`` (both may be given), ``within``,
    ``contains``, ``intersects``, ``equals``, ``disjoint`` or ``overlaps``."""
    relation, *modifiers = text.split(";")
    if relation not in _RELATIONS:
        raise InvalidGeoQuery(
            f"georel: unknown relation {_show(relation)} (expected one of {', '.join(_RELATIONS)})"
        )
    if relation != "near":
        if modifiers:
            raise InvalidGeoQuery(f"georel: {relation} takes no modifiers, got {_show(';'.join(modifiers))}")
        return GeoRel(cast(Relation, relation))
    distances: dict[str, float] = {}
    for modifier in modifiers:
        name, sep, number = modifier.partition("==")
        if not sep or name not in ("maxDistance", "minDistance"):
            raise InvalidGeoQuery(
                f"georel: malformed modifier {_show(modifier)} (expected maxDistance==<metres> "
                "or minDistance==<metres>)"
            )
        if name in distances:
            raise InvalidGeoQuery(f"georel: {name} given twice")
        if not _NUMBER.fullmatch(number):
            raise InvalidGeoQuery(f"georel: {name} {_show(number)} is not a number")
        value = float(number)
        if not 0.0 <= value < math.inf:
            raise InvalidGeoQuery(f"georel: {name} must be a finite number >= 0, got {number}")
        distances[name] = value
    if not distances:
        raise InvalidGeoQuery("georel: near needs maxDistance==<metres> or minDistance==<metres>")
    low, high = distances.get("minDistance"), distances.get("maxDistance")
    if low is not None and high is not None and low > high:
        raise InvalidGeoQuery(f"georel: minDistance {low:g} exceeds maxDistance {high:g}")
    return GeoRel("near", max_distance=high, min_distance=low)


# ---- distances ----------------------------------------------------------------------------------


def _radii(lat: float) -> tuple[float, float]:
    """Meridional radius M and prime-vertical radius N of WGS-84 at a latitude, in metres."""
    w = 1.0 - _E2 * math.sin(math.radians(lat)) ** 2
    return _A * (1.0 - _E2) / (w * math.sqrt(w)), _A / math.sqrt(w)


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance on the mean-radius sphere: fast, within 0.5 % of the geodesic."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2.0 * _MEAN_RADIUS * math.asin(math.sqrt(min(1.0, h)))


def _aeqd(lon0: float, lat0: float, lon: float, lat: float) -> tuple[float, float]:
    """(east, north) in metres of one point in the plane around (lon0, lat0); see the module notes."""
    p0, p, dl = math.radians(lat0), math.radians(lat), math.radians(lon - lon0)
    h = math.sin((p - p0) / 2) ** 2 + math.cos(p0) * math.cos(p) * math.sin(dl / 2) ** 2
    c = 2.0 * math.asin(math.sqrt(min(1.0, h)))
    k = c / math.sin(c) if c > 1e-12 else 1.0
    m, n = _radii(lat0)
    east = k * math.cos(p) * math.sin(dl)
    north = k * (math.cos(p0) * math.sin(p) - math.sin(p0) * math.cos(p) * math.cos(dl))
    return n * east, m * north


def _project(geometry: Any, lon0: float, lat0: float) -> Any:
    """A shapely lon/lat geometry densified and projected into the plane around (lon0, lat0)."""
    m, n = _radii(lat0)
    p0 = math.radians(lat0)
    sin0, cos0 = math.sin(p0), math.cos(p0)

    def transform(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        p, dl = np.radians(xy[:, 1]), np.radians(xy[:, 0] - lon0)
        h = np.sin((p - p0) / 2) ** 2 + cos0 * np.cos(p) * np.sin(dl / 2) ** 2
        c = 2.0 * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
        k = np.divide(c, np.sin(c), out=np.ones_like(c), where=c > 1e-12)
        east = k * np.cos(p) * np.sin(dl)
        north = k * (cos0 * np.sin(p) - sin0 * np.cos(p) * np.cos(dl))
        return np.column_stack((n * east, m * north))

    return shapely.transform(shapely.segmentize(geometry, _DENSIFY_DEG), transform)


def distance_m(query: Geometry, target: Geometry) -> float:
    """Shortest horizontal distance in metres between two geometries (0 where they meet), measured in
    the plane around ``query``; see the module notes for the error bound."""
    lon0, lat0 = query._anchor
    if query.type == "Point" and target.type == "Point":
        return math.hypot(*_aeqd(lon0, lat0, *target._anchor))
    return float(shapely.distance(query._plane, _project(target.shape, lon0, lat0)))


def _expand(query: Geometry, metres: float) -> BBox:
    """The query bbox grown by ``metres``, sound for ``distance_m``.

    The plane's scale is at least 1 in every direction on the unit sphere (azimuthal equidistant) and
    then at least M at the anchor, so a target within ``metres`` lies within the central angle
    r = metres / M of the query; a spherical cap of radius r around latitude φ spans r in latitude and
    asin(sin r / cos φ) in longitude. One metre of slack covers the densified edges' sagitta.
    """
    west, south, east, north = query.bbox
    r = (metres + _BBOX_SLACK_M) / _radii(query._anchor[1])[0]
    dlat = math.degrees(r)
    south, north = max(-90.0, south - dlat), min(90.0, north + dlat)
    cos_extreme = math.cos(math.radians(max(abs(query.bbox[1]), abs(query.bbox[3]))))
    if r >= math.pi / 2 or math.sin(r) >= cos_extreme:
        return (-180.0, south, 180.0, north)
    dlon = math.degrees(math.asin(math.sin(r) / cos_extreme))
    if west - dlon < -180.0 or east + dlon > 180.0:
        return (-180.0, south, 180.0, north)
    return (west - dlon, south, east + dlon, north)


# ---- shapely behind typed helpers ---------------------------------------------------------------


def _shapely_from_geojson(geojson: dict[str, Any]) -> Any:
    geometry = _geojson_to_shapely(geojson)
    return geometry if shapely.is_valid(geometry) else shapely.make_valid(geometry)


def _invalidity(geometry: Any) -> str | None:
    if shapely.is_valid(geometry):
        return None
    return str(shapely.is_valid_reason(geometry))


# ---- China's coordinate systems -----------------------------------------------------------------
# GCJ-02 (the "Mars" datum of Chinese web maps) offsets WGS-84 by a published polynomial-and-sine
# field given in metres on the Krasovsky 1940 ellipsoid; BD-09 (Baidu) rotates and shifts GCJ-02.

_KRASOVSKY_A: Final = 6378245.0
_KRASOVSKY_EE: Final = 0.00669342162296594323
_BD_X_PI: Final = math.pi * 3000.0 / 180.0


def _out_of_china(lon: float, lat: float) -> bool:
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _gcj02_offset(lon: float, lat: float) -> tuple[float, float]:
    """(dlon, dlat) in degrees that GCJ-02 adds to a WGS-84 position."""
    x, y = lon - 105.0, lat - 35.0
    waves = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    north = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + waves
    north += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    north += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y / 30.0 * math.pi)) * 2.0 / 3.0
    east = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + waves
    east += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    east += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    phi = math.radians(lat)
    w = 1.0 - _KRASOVSKY_EE * math.sin(phi) ** 2
    meridional = _KRASOVSKY_A * (1.0 - _KRASOVSKY_EE) / (w * math.sqrt(w))
    parallel = _KRASOVSKY_A / math.sqrt(w) * math.cos(phi)
    return math.degrees(east / parallel), math.degrees(north / meridional)


def _invert(
    forward: Callable[[float, float], tuple[float, float]], lon: float, lat: float, guess: tuple[float, float]
) -> tuple[float, float]:
    """Solve forward(x) = (lon, lat) by fixed-point iteration (forward is the identity plus a slowly
    varying offset, so each step gains two to three digits)."""
    x, y = guess
    for _ in range(30):
        fx, fy = forward(x, y)
        dx, dy = fx - lon, fy - lat
        x, y = x - dx, y - dy
        if abs(dx) < 1e-12 and abs(dy) < 1e-12:
            break
    return x, y


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """WGS-84 to GCJ-02; identity outside mainland China's rough bounding box."""
    if _out_of_china(lon, lat):
        return lon, lat
    dlon, dlat = _gcj02_offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 to WGS-84, the iterative inverse (round trip within 1e-9 degree)."""
    if _out_of_china(lon, lat):
        return lon, lat

    def forward(x: float, y: float) -> tuple[float, float]:
        dx, dy = _gcj02_offset(x, y)
        return x + dx, y + dy

    return _invert(forward, lon, lat, (lon, lat))


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 to BD-09 (applied everywhere, as Baidu publishes it)."""
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _BD_X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _BD_X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """BD-09 to GCJ-02: Baidu's closed-form inverse (about 1e-5 degree off) refined to the exact
    inverse of ``gcj02_to_bd09``."""
    x, y = lon - 0.0065, lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _BD_X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _BD_X_PI)
    return _invert(gcj02_to_bd09, lon, lat, (z * math.cos(theta), z * math.sin(theta)))


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def to_wgs84(lon: float, lat: float, crs: CRS) -> tuple[float, float]:
    """A device's (lon, lat) in ``crs`` converted to WGS-84."""
    if crs == "WGS84":
        return lon, lat
    if crs == "GCJ02":
        return gcj02_to_wgs84(lon, lat)
    if crs == "BD09":
        return bd09_to_wgs84(lon, lat)
    raise InvalidGeometry(
        f"crs: unknown coordinate reference system {_show(crs)} (expected WGS84, GCJ02 or BD09)"
    )
