"""Network resources and coverage.

Network resources are NGSI-LD entities like any other city thing, written through the broker's API:
``FiveGSite``, ``NBIoTCell`` and ``FibreAccessPoint``, each with a ``location`` (a point) and a
``coverageRadius`` in metres. Coverage is computed from them: a point is covered by a resource when
it lies within the resource's radius of its location (great-circle distance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.broker import service as broker
from cityhub.hub.ingest.models import IngestDevice
from cityhub.kit.geo import haversine_m

#: Entity type → the kind of network it is part of.
KINDS = {"FiveGSite": "5G", "NBIoTCell": "NB-IoT", "FibreAccessPoint": "fibre"}
COVERAGE_RADIUS = "coverageRadius"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"

Expand = Callable[[str], str]


@dataclass(frozen=True)
class Resource:
    id: str
    type: str
    kind: str
    lon: float
    lat: float
    radius: float


def _point(entity: dict[str, Any]) -> tuple[float, float] | None:
    for instance in entity["attrs"].get(LOCATION, ()):
        value = instance.get("value")
        if isinstance(value, dict) and value.get("type") == "Point" and "datasetId" not in instance:
            lon, lat = value["coordinates"][:2]
            return float(lon), float(lat)
    return None


def _number(entity: dict[str, Any], iri: str) -> float | None:
    for instance in entity["attrs"].get(iri, ()):
        value = instance.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool) and "datasetId" not in instance:
            return float(value)
    return None


async def resources(
    session: AsyncSession, expand: Expand, kinds: Iterable[str] | None = None
) -> list[Resource]:
    """The tenant's network resources with a point location and a coverage radius."""
    wanted = [name for name, kind in KINDS.items() if kinds is None or kind in set(kinds)]
    if not wanted:
        return []
    query = broker.EntityQuery(types=[expand(name) for name in wanted])
    entities, _ = await broker.query_entities(session, query, limit=1_000_000, offset=0)
    by_iri = {expand(name): name for name in wanted}
    radius_iri = expand(COVERAGE_RADIUS)
    found = []
    for entity in entities:
        point = _point(entity)
        radius = _number(entity, radius_iri)
        kind_type = next((by_iri[t] for t in entity["type"] if t in by_iri), None)
        if point is None or radius is None or kind_type is None:
            continue
        found.append(Resource(entity["id"], kind_type, KINDS[kind_type], point[0], point[1], radius))
    return found


def covering(found: list[Resource], lon: float, lat: float) -> list[tuple[Resource, float]]:
    """The resources whose coverage reaches (lon, lat), nearest first, with their distance."""
    hits = []
    for resource in found:
        distance = haversine_m(resource.lon, resource.lat, lon, lat)
        if distance <= resource.radius:
            hits.append((resource, distance))
    return sorted(hits, key=lambda hit: hit[1])


@dataclass
class DeviceCoverage:
    located: int
    unlocated: int
    covered: dict[str, int]
    uncovered: dict[str, list[str]]


async def device_coverage(session: AsyncSession, expand: Expand) -> DeviceCoverage:
    """For each network kind, how many of the tenant's provisioned devices (by their entity's
    location) it covers, and which it does not."""
    found = await resources(session, expand)
    devices = list(await session.scalars(select(IngestDevice)))
    entities = await broker.get_entities(session, [device.entity_name for device in devices])
    result = DeviceCoverage(0, 0, dict.fromkeys(KINDS.values(), 0), {kind: [] for kind in KINDS.values()})
    for device in devices:
        entity = entities.get(device.entity_name)
        point = _point(entity) if entity is not None else None
        if point is None:
            result.unlocated += 1
            continue
        result.located += 1
        kinds = {resource.kind for resource, _ in covering(found, *point)}
        for kind in KINDS.values():
            if kind in kinds:
                result.covered[kind] += 1
            else:
                result.uncovered[kind].append(device.device_id)
    return result
