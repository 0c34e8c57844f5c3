"""Seeding the demo city into a hub, through its public APIs only.

Tenants through ``/api/v1/tenants``, service groups and devices through the ingestion provisioning
API (``/iot/services``, ``/iot/devices``), static entities (road segments, grid cells) through the
NGSI-LD batch API. The city's monitoring networks belong to the city tenant; each district is its
own tenant too, and is the service path (``/410102``) of the devices and entities in it, so
NGSI-LD ``scopeQ=/410102`` selects a district; the districts' boundaries are ``AdministrativeArea``
entities of the city tenant, in which device health places the city's devices.

Idempotent: what exists is left alone; a second run creates nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from cityhub.sim.city import KINDS, City, District, GridCell, RoadSegment, Sensor, osm_xml

SERVICE = "fiware-service"
SERVICE_PATH = "fiware-servicepath"

#: The measures of each kind: (attribute name, IoT Agent type, unit code). Devices send JSON whose
#: keys are the attribute names.
MEASURES: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "air": (
        ("pm25", "Number", "GQ"),
        ("pm10", "Number", "GQ"),
        ("o3", "Number", "GQ"),
        ("no2", "Number", "GQ"),
        ("so2", "Number", "GQ"),
        ("co", "Number", "GP"),
        ("temperature", "Number", "CEL"),
        ("relativeHumidity", "Number", None),
    ),
    "water": (
        ("temperature", "Number", "CEL"),
        ("pH", "Number", None),
        ("O2", "Number", "M1"),
        ("NH4", "Number", "M1"),
        ("turbidity", "Number", None),
        ("conductivity", "Number", None),
    ),
    "noise": (("LAeq", "Number", "2N"), ("LAmax", "Number", "2N")),
    "traffic": (
        ("averageVehicleSpeed", "Number", "KMH"),
        ("intensity", "Integer", None),
        ("occupancy", "Number", None),
        ("congested", "Boolean", None),
    ),
    "parking": (("availableSpotNumber", "Integer", None), ("occupancy", "Number", None)),
    "light": (
        ("powerState", "Text", None),
        ("illuminanceLevel", "Number", None),
        ("powerConsumption", "Number", "KWT"),
        ("status", "Text", None),
    ),
}
#: How a static attribute's Python value is declared to the IoT Agent API.
_STATIC_TYPES = {bool: "Boolean", int: "Integer", float: "Number", str: "Text"}


class SeedError(Exception):
    """The hub refused part of the seeding; the message says what and why."""


@dataclass
class SeedReport:
    tenants: int = 0
    groups: int = 0
    devices: int = 0
    entities: int = 0
    segments: int = 0  # imported by the hub's traffic application
    grid_cells: int = 0  # imported into the case workflow
    departments: int = 0  # the departments that own the case categories
    categories: int = 0  # case categories the demo's alert rules name
    #: what the credentials may not do (403), left to an administrator: "departments", "categories"
    not_allowed: tuple[str, ...] = ()

    def changed(self) -> bool:
        return bool(
            self.tenants
            or self.groups
            or self.devices
            or self.entities
            or self.segments
            or self.grid_cells
            or self.departments
            or self.categories
        )


def apikey(kind: str, district: str) -> str:
    return f"zz-{kind}-{district}"


def entity_id(sensor: Sensor) -> str:
    return f"urn:ngsi-ld:{KINDS[sensor.kind][0]}:{sensor.device_id}"


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise SeedError(f"{what}: HTTP {response.status_code} {response.text[:500]}")


async def authenticate(
    client: httpx.AsyncClient,
    *,
    token: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> None:
    """Make ``client`` send a bearer token: the one given, or one obtained with the OAuth2 client
    credentials grant. Needed when the hub runs with ``CITYHUB_AUTH_MODE=on``."""
    if token is None and client_id is not None:
        response = await client.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret or "",
            },
        )
        _check(response, "token (client credentials)")
        token = str(response.json()["access_token"])
    if token is not None:
        client.headers["Authorization"] = f"Bearer {token}"


async def _tenants(client: httpx.AsyncClient, city: City) -> int:
    created = 0
    for code in ("410000", city.code):
        if (await client.get(f"/api/v1/tenants/{code}")).status_code == 404:
            _check(await client.post("/api/v1/tenants", json={"code": code}), f"tenant {code}")
            created += 1
    listed = await client.get("/api/v1/tenants", params={"parent": city.code, "limit": 1000})
    _check(listed, "tenants")
    have = {item["code"] for item in listed.json()["items"]}
    for district in city.districts:
        if district.code not in have:
            body = {"code": district.code, "name": district.name, "name_en": district.name_en}
            _check(await client.post("/api/v1/tenants", json=body), f"tenant {district.code}")
            created += 1
    return created


async def _listed(client: httpx.AsyncClient, path: str, member: str, tenant: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    headers = {SERVICE: tenant, SERVICE_PATH: "/*"}
    while True:
        response = await client.get(path, params={"limit": 1000, "offset": len(found)}, headers=headers)
        _check(response, path)
        page = response.json()[member]
        found.extend(page)
        if len(page) < 1000:
            return found


def expected_interval(kind: str, speed: float) -> int:
    """Real seconds between a sensor's reports when the simulation runs ``speed`` times faster than
    the wall clock (device health judges silence in real time), with room for the simulator's
    batching; a floor of 30 s. At ``speed`` 0 (as fast as possible) the simulated interval."""
    interval = KINDS[kind][1]
    if speed <= 0:
        return interval
    return max(30, math.ceil(interval / speed) + 10)


def _group(kind: str, district: str, speed: float) -> dict[str, Any]:
    entity_type, _ = KINDS[kind]
    return {
        "apikey": apikey(kind, district),
        "entity_type": entity_type,
        "resource": "/iot/json",
        "protocol": "IoTA-JSON",
        "transport": "HTTP",
        "expected_interval": expected_interval(kind, speed),
        "attributes": [
            {"object_id": name, "name": name, "type": kind_, **({"unitCode": unit} if unit else {})}
            for name, kind_, unit in MEASURES[kind]
        ],
        "static_attributes": [{"name": "source", "type": "Text", "value": "CityHub demo city"}],
    }


def _point(at: tuple[float, float]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [at[0], at[1]]}


def _device(city: City, sensor: Sensor) -> dict[str, Any]:
    district = city.district(sensor.district)
    static: list[dict[str, Any]] = [
        {"name": "name", "type": "Text", "value": sensor.name},
        {"name": "nameEn", "type": "Text", "value": sensor.name_en},
        {"name": "location", "type": "geo:json", "value": _point(sensor.location)},
        {"name": "district", "type": "Text", "value": district.code},
        {"name": "districtName", "type": "Text", "value": district.name},
    ]
    for name, value in sensor.static.items():
        kind = "Relationship" if name.startswith("ref") else _STATIC_TYPES.get(type(value), "Property")
        static.append({"name": name, "type": kind, "value": value})
    return {
        "device_id": sensor.device_id,
        "entity_name": entity_id(sensor),
        "entity_type": KINDS[sensor.kind][0],
        "apikey": apikey(sensor.kind, sensor.district),
        "protocol": "IoTA-JSON",
        "transport": "HTTP",
        "static_attributes": static,
    }


def road_entity(city: City, road: RoadSegment) -> dict[str, Any]:
    """A RoadSegment (Smart Data Models field names) for when no traffic application imports roads."""
    return {
        "id": road.id,
        "type": "RoadSegment",
        "scope": f"/{road.district}",
        "name": {"type": "Property", "value": road.road},
        "nameEn": {"type": "Property", "value": road.road_en},
        "roadClass": {"type": "Property", "value": road.road_class},
        "length": {"type": "Property", "value": round(road.length, 1), "unitCode": "MTR"},
        "totalLaneNumber": {"type": "Property", "value": road.lanes * 2},
        "laneCount": {"type": "Property", "value": road.lanes},
        "freeFlowSpeed": {"type": "Property", "value": road.free_flow_speed, "unitCode": "KMH"},
        "maximumAllowedSpeed": {"type": "Property", "value": road.speed_limit, "unitCode": "KMH"},
        "district": {"type": "Property", "value": road.district},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "LineString", "coordinates": [list(p) for p in road.line]},
        },
    }


def district_entity(district: District) -> dict[str, Any]:
    """A district's boundary: what device health by district places the city's devices in."""
    return {
        "id": f"urn:ngsi-ld:AdministrativeArea:{district.code}",
        "type": "AdministrativeArea",
        "code": {"type": "Property", "value": district.code},
        "name": {"type": "Property", "value": district.name},
        "nameEn": {"type": "Property", "value": district.name_en},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Polygon", "coordinates": [[list(p) for p in district.polygon]]},
        },
    }


def cell_entity(cell: GridCell) -> dict[str, Any]:
    """A unit grid cell of digital urban management (GB/T 30428)."""
    return {
        "id": f"urn:ngsi-ld:GridCell:{cell.code}",
        "type": "GridCell",
        "scope": f"/{cell.district}",
        "code": {"type": "Property", "value": cell.code},
        "district": {"type": "Property", "value": cell.district},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Polygon", "coordinates": [[list(p) for p in cell.polygon]]},
        },
    }


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _entities(client: httpx.AsyncClient, tenant: str, entities: list[dict[str, Any]]) -> int:
    created = 0
    headers = {"NGSILD-Tenant": tenant}
    for chunk in _chunks(entities, 200):
        response = await client.post("/ngsi-ld/v1/entityOperations/create", json=chunk, headers=headers)
        if response.status_code == 201:
            created += len(chunk)
            continue
        if response.status_code != 207:
            _check(response, "entities")
        outcome = response.json()
        # entities already there are the idempotent case; anything else is a real refusal
        others = [e for e in outcome["errors"] if e.get("error", {}).get("status") != 409]
        if others:
            raise SeedError(f"entities: {others[:3]}")
        created += len(outcome["success"])
    return created


async def seed(
    client: httpx.AsyncClient, city: City, *, roads: bool = True, speed: float = 60.0
) -> SeedReport:
    """Create what of ``city`` the hub behind ``client`` lacks; returns what was created.

    ``roads=False`` leaves the ``RoadSegment`` entities out, for a hub whose traffic application
    imports the road network from the OSM file itself (its ways carry the segment ids as
    ``ref:cityhub``, which the traffic detectors' ``refRoadSegment`` name). ``speed`` is the
    speed-up the city will run at: it sets the devices' expected intervals (see
    :func:`expected_interval`) when their service groups are created."""
    report = SeedReport()
    report.tenants = await _tenants(client, city)
    tenant = city.code
    groups = {g["apikey"] for g in await _listed(client, "/iot/services", "services", tenant)}
    devices = {d["device_id"] for d in await _listed(client, "/iot/devices", "devices", tenant)}
    paths: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for sensor in city.sensors:
        new_groups, new_devices = paths.setdefault(sensor.district, ([], []))
        key = apikey(sensor.kind, sensor.district)
        if key not in groups:
            groups.add(key)
            new_groups.append(_group(sensor.kind, sensor.district, speed))
        if sensor.device_id not in devices:
            new_devices.append(_device(city, sensor))
    for district, (new_groups, new_devices) in sorted(paths.items()):
        headers = {SERVICE: tenant, SERVICE_PATH: f"/{district}"}
        for chunk in _chunks(new_groups, 100):
            _check(await client.post("/iot/services", json={"services": chunk}, headers=headers), "groups")
            report.groups += len(chunk)
        for chunk in _chunks(new_devices, 200):
            _check(await client.post("/iot/devices", json={"devices": chunk}, headers=headers), "devices")
            report.devices += len(chunk)
    traffic = roads and await _has_app(client, "traffic")
    statics = [road_entity(city, road) for road in city.roads] if roads and not traffic else []
    statics += [cell_entity(c) for c in city.cells]
    statics += [district_entity(d) for d in city.districts]
    report.entities = await _entities(client, tenant, statics)
    if traffic:
        report.segments = await _road_network(client, city)
    report.grid_cells = await _grid_cells(client, city)
    try:
        report.categories = await _categories(client, city)
    except _NotAllowed:
        report.not_allowed += ("categories",)
    try:
        report.departments = await _departments(client, city)
    except _NotAllowed:
        report.not_allowed += ("departments",)
    return report


class _NotAllowed(Exception):
    """The credentials seeding runs with may not do this (403)."""


def _allowed(response: httpx.Response) -> httpx.Response:
    if response.status_code == 403:
        raise _NotAllowed
    return response


#: The city's departments by the code the case categories name as their owner (``default_department``
#: in the dispatch categories): (name, English name). A category's cases go to the department of
#: that code in the case's district, else in the city.
DEPARTMENTS: dict[str, tuple[str, str]] = {
    "urban_management": ("城市管理局", "Urban Management Bureau"),
    "municipal": ("市政设施管理局", "Municipal Facilities Bureau"),
    "sanitation": ("环境卫生管理局", "Sanitation Bureau"),
    "landscaping": ("园林局", "Landscaping Bureau"),
    "traffic": ("交通运输局", "Transport Bureau"),
    "construction": ("住房和城乡建设局", "Housing and Urban-Rural Development Bureau"),
    "environment": ("生态环境局", "Ecology and Environment Bureau"),
}
_LIMITS = {
    "normal": {"filing": 30, "dispatch": 30, "handling": 480, "verification": 120},
    "urgent": {"filing": 10, "dispatch": 10, "handling": 120, "verification": 60},
}
#: Case categories the environment application's alert rules open cases in (``air-pollution``,
#: ``water-pollution``), absent from the shipped code table: without them those cases wait in
#: triage as of an unknown category. Events of a major class 07 环境污染, owned by 生态环境局.
ALERT_CATEGORIES: tuple[dict[str, Any], ...] = tuple(
    {
        "code": code,
        "kind": "event",
        "major_code": "07",
        "minor_code": minor,
        "name_zh": name_zh,
        "name_en": name_en,
        "major_name_zh": "环境污染",
        "major_name_en": "environmental pollution",
        "limits": _LIMITS,
        "default_department": "environment",
    }
    for code, minor, name_zh, name_en in (
        ("air-pollution", "01", "大气污染", "air pollution"),
        ("water-pollution", "02", "水体污染", "water pollution"),
    )
)


async def _categories(client: httpx.AsyncClient, city: City) -> int:
    """The alert rules' case categories in the city's case workflow, once each."""
    headers = {"NGSILD-Tenant": city.code}
    listed = await client.get("/api/v1/dispatch/categories", headers=headers)
    _check(listed, "case categories")
    have = {c["code"] for c in listed.json()}
    created = 0
    for category in ALERT_CATEGORIES:
        if category["code"] not in have:
            response = await client.post("/api/v1/dispatch/categories", json=category, headers=headers)
            _check(_allowed(response), f"case category {category['code']}")
            created += 1
    return created


async def _departments(client: httpx.AsyncClient, city: City) -> int:
    """The departments owning the city's case categories (their ``default_department``), in the
    city tenant, so that a case is routed to its department instead of waiting in triage. Through
    the security API (``/api/v1/departments``, which needs ``users:manage`` when security is on:
    without it they are left to an administrator); a code with no entry in :data:`DEPARTMENTS` is
    named by its code."""
    headers = {"NGSILD-Tenant": city.code}
    listed = await client.get("/api/v1/dispatch/categories", headers=headers)
    _check(listed, "case categories")
    owners = sorted({c["default_department"] for c in listed.json() if c.get("default_department")})
    present = await client.get("/api/v1/departments", headers=headers)
    _check(_allowed(present), "departments")
    have = {d["code"] for d in present.json()}
    created = 0
    for code in owners:
        if code in have:
            continue
        name, name_en = DEPARTMENTS.get(code, (code, code))
        body = {"code": code, "name": name, "name_en": name_en}
        response = await client.post("/api/v1/departments", json=body, headers=headers)
        _check(_allowed(response), f"department {code}")
        created += 1
    return created


async def _grid_cells(client: httpx.AsyncClient, city: City) -> int:
    """The unit grid cells into the case workflow, once, so that a case (a citizen's report, an
    alert's) is located in its cell and district."""
    headers = {"NGSILD-Tenant": city.code}
    present = await client.get("/api/v1/dispatch/grid-cells", params={"limit": 1}, headers=headers)
    _check(present, "grid cells")
    if present.json()["total"] > 0:
        return 0
    features = [
        {
            "type": "Feature",
            "properties": {"code": cell.code, "district": cell.district, "name": cell.code},
            "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in cell.polygon]]},
        }
        for cell in city.cells
    ]
    response = await client.post(
        "/api/v1/dispatch/grid-cells",
        json={"type": "FeatureCollection", "features": features},
        headers=headers,
    )
    _check(response, "grid cells")
    created: int = response.json()["created"]
    return created


async def _has_app(client: httpx.AsyncClient, name: str) -> bool:
    response = await client.get("/api/v1/apps")
    _check(response, "apps")
    return any(app.get("name") == name and app.get("state") == "running" for app in response.json())


async def _road_network(client: httpx.AsyncClient, city: City) -> int:
    """Import the road network through the traffic application, once: it makes the segments
    (one per direction) and routes on them. Its ways carry the ``RoadSegment`` ids the detectors
    name, so their readings find their segments."""
    headers = {"NGSILD-Tenant": city.code}
    present = await client.get("/api/v1/traffic/segments", params={"limit": 1}, headers=headers)
    if present.status_code == 200:
        return 0
    if present.status_code != 404:
        _check(present, "road network")
    files = {"file": ("zhengzhou.osm", osm_xml(city).encode(), "application/xml")}
    response = await client.post("/api/v1/traffic/network", files=files, headers=headers)
    _check(response, "road network")
    imported: int = response.json()["segments_imported"]
    return imported


#: Demo departments that own the demo city's datasets (code, name, English name), and the datasets
#: (code, title, English title, entity type, owner, sharing class, update frequency, conditions).
CATALOG_DEPARTMENTS = tuple(
    (code, *DEPARTMENTS[code]) for code in ("traffic", "environment", "urban_management")
)
CATALOG_DATASETS = (
    (
        "traffic-flow",
        "交通流量监测",
        "Traffic flow",
        "TrafficFlowObserved",
        "traffic",
        "unconditional",
        "realtime",
        None,
    ),
    ("road-network", "道路路网", "Road network", "RoadSegment", "traffic", "unconditional", "monthly", None),
    (
        "parking",
        "停车场泊位",
        "Off-street parking",
        "OffStreetParking",
        "traffic",
        "conditional",
        "realtime",
        "用于停车诱导与交通研判，申请部门须说明用途与期限",
    ),
    (
        "air-quality",
        "空气质量监测",
        "Air quality",
        "AirQualityObserved",
        "environment",
        "unconditional",
        "hourly",
        None,
    ),
    (
        "water-quality",
        "水质监测",
        "Water quality",
        "WaterQualityObserved",
        "environment",
        "conditional",
        "hourly",
        "用于水环境研判与应急处置",
    ),
    (
        "noise",
        "环境噪声监测",
        "Environmental noise",
        "NoiseLevelObserved",
        "environment",
        "unconditional",
        "realtime",
        None,
    ),
    (
        "street-lights",
        "路灯设施",
        "Street lights",
        "Streetlight",
        "urban_management",
        "unconditional",
        "daily",
        None,
    ),
    (
        "grid-cells",
        "城市管理单元网格",
        "Unit grid cells",
        "GridCell",
        "urban_management",
        "unconditional",
        "yearly",
        None,
    ),
)


async def seed_catalog(client: httpx.AsyncClient, city: City) -> int:
    """The demo city's data catalog: its departments (those missing, by code) and a dataset per
    kind of demo data, owned by them with a sharing class each (the departments are those that own
    the case categories, :data:`DEPARTMENTS`). With access control on it needs an administrator's
    token; returns how many datasets were registered (0 when there is nothing to do or no
    departments API)."""
    headers = {"NGSILD-Tenant": city.code}
    listed = await client.get("/api/v1/departments", headers=headers)
    if listed.status_code != 200:
        return 0
    departments = {d["code"]: d["id"] for d in listed.json()}
    for code, name, name_en in CATALOG_DEPARTMENTS:
        if code not in departments:
            made = await client.post(
                "/api/v1/departments", json={"code": code, "name": name, "name_en": name_en}, headers=headers
            )
            _check(made, "departments")
            departments[code] = made.json()["id"]
    existing = await client.get("/api/v1/catalog/datasets", params={"limit": 500}, headers=headers)
    _check(existing, "datasets")
    known = {d["code"] for d in existing.json()["items"]}
    registered = 0
    for code, title, title_en, entity_type, owner, sharing, frequency, conditions in CATALOG_DATASETS:
        if code in known:
            continue
        body = {
            "code": code,
            "title": title,
            "title_en": title_en,
            "entity_types": [entity_type],
            "department_id": departments[owner],
            "sharing": sharing,
            "update_frequency": frequency,
            "conditions": conditions,
        }
        response = await client.post("/api/v1/catalog/datasets", json=body, headers=headers)
        if response.status_code == 409:  # the type is registered in another dataset already
            continue
        _check(response, "datasets")
        registered += 1
    return registered
