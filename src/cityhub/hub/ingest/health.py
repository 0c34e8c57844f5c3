"""Sensing-network health: last seen, online or offline from the expected reporting interval,
battery and signal where reported, counts and online ratio by entity type, by geographic district
and by service path, and an event when a device goes silent.

**Districts.** A device of a district's own tenant (a county-level division of the tenant
registry) counts for that district. A device of any other tenant (the city's) is placed by its
position, the ``location`` of its entity (a static attribute, or the position it reports), in the
district boundaries the tenant keeps: its ``AdministrativeArea`` entities whose ``location`` is a
Polygon or MultiPolygon and whose ``code`` (else the last part of the entity id) names the
district. A device without a position, or outside every boundary, counts as outside the
districts.

A device with an ``expected_interval`` is **online** when it reported within twice that interval
(one missed report is tolerated), **offline** after that, and **unknown** before its first report;
a device without an expected interval is unknown. The monitor checks every
``CITYHUB_INGEST_HEALTH_INTERVAL`` seconds; when a device's state changes it records it, sets
``deviceState`` on its ``Device`` entity (through the broker's write path), and emits
:class:`DeviceWentSilent` or :class:`DeviceBackOnline` in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.bus.outbox import enqueue
from cityhub.hub.broker import changes
from cityhub.hub.broker import service as broker
from cityhub.hub.ingest import measures, service
from cityhub.hub.ingest.events import DeviceBackOnline, DeviceWentSilent
from cityhub.hub.ingest.models import IngestDevice
from cityhub.hub.tenancy.models import Tenant
from cityhub.kit.db import ALL_TENANTS, current_tenant, scope_to_tenant
from cityhub.kit.errors import HubError
from cityhub.kit.geo import Geometry, parse_geometry
from cityhub.kit.periodic import Periodic
from cityhub.kit.time import isoformat, utcnow

log = logging.getLogger(__name__)

state_of = service.health_state


def _new_state(device: IngestDevice, now: datetime) -> str | None:
    """The device's state by its last report, where it differs from the one recorded (None
    where it does not, or where it is not known yet)."""
    state = state_of(device, now)
    recorded = None if device.online is None else ("online" if device.online else "offline")
    return None if state in ("unknown", recorded) else state


@dataclass
class Tally:
    total: int = 0
    online: int = 0
    offline: int = 0
    unknown: int = 0

    def add(self, state: str) -> None:
        self.total += 1
        setattr(self, state, getattr(self, state) + 1)

    def as_dict(self) -> dict[str, float | int | None]:
        known = self.online + self.offline
        return {
            "total": self.total,
            "online": self.online,
            "offline": self.offline,
            "unknown": self.unknown,
            "onlineRatio": round(self.online / known, 4) if known else None,
        }


@dataclass
class Summary:
    overall: Tally = field(default_factory=Tally)
    by_type: dict[str, Tally] = field(default_factory=dict)
    by_district: dict[str, Tally] = field(default_factory=dict)
    district_names: dict[str, str | None] = field(default_factory=dict)
    outside_districts: Tally = field(default_factory=Tally)
    by_service_path: dict[str, Tally] = field(default_factory=dict)
    low_battery: list[str] = field(default_factory=list)


#: The entity type of a district boundary (schema.org's term for an administrative area).
BOUNDARY_TYPE = "AdministrativeArea"
COUNTY = "county"


@dataclass(frozen=True)
class District:
    code: str
    name: str | None
    shape: Any  # a prepared shapely (Multi)Polygon


def _value(entity: dict[str, Any], iri: str) -> Any:
    instances = entity["attrs"].get(iri) or [{}]
    return instances[0].get("value")


def _geometry(entity: dict[str, Any]) -> Geometry | None:
    for instance in entity["attrs"].get(broker.LOCATION, ()):
        if instance.get("type") == "GeoProperty":
            try:
                return parse_geometry(instance.get("value"))
            except HubError:
                return None
    return None


async def boundaries(session: AsyncSession, expand: Callable[[str], str]) -> list[District]:
    """The district boundaries the session's tenant keeps (its ``AdministrativeArea`` entities)."""
    found = []
    query = broker.EntityQuery(types=[expand(BOUNDARY_TYPE)])
    entities, _ = await broker.query_entities(session, query, limit=100_000, offset=0)
    for entity in entities:
        geometry = _geometry(entity)
        if geometry is None or geometry.type not in ("Polygon", "MultiPolygon"):
            continue
        code = _value(entity, expand("code"))
        name = _value(entity, expand("name"))
        shape = geometry.shape
        shapely.prepare(shape)
        found.append(
            District(
                code=str(code) if code else str(entity["id"]).rsplit(":", 1)[-1],
                name=str(name) if isinstance(name, str) else None,
                shape=shape,
            )
        )
    return found


def _position(entity: dict[str, Any]) -> tuple[float, float] | None:
    """Where an entity is: its point, or a point on its line or area."""
    for instance in entity["attrs"].get(broker.LOCATION, ()):
        if instance.get("type") != "GeoProperty":
            continue
        value = instance.get("value")
        if isinstance(value, dict) and value.get("type") == "Point":  # the common case, read directly
            coordinates = value.get("coordinates")
            if isinstance(coordinates, list) and len(coordinates) >= 2:
                lon, lat = coordinates[0], coordinates[1]
                if isinstance(lon, int | float) and isinstance(lat, int | float):
                    return float(lon), float(lat)
            return None
        try:
            point = parse_geometry(value).shape.representative_point()
        except HubError:
            return None
        return float(point.x), float(point.y)
    return None


def place(districts: list[District], positions: list[tuple[float, float] | None]) -> list[District | None]:
    """The district each position lies in (None: no position, or outside every boundary); a
    position on a border goes to the first district that has it."""
    found: list[District | None] = [None] * len(positions)
    known = [index for index, position in enumerate(positions) if position is not None]
    if not known or not districts:
        return found
    lons = np.array([positions[index][0] for index in known])  # type: ignore[index]
    lats = np.array([positions[index][1] for index in known])  # type: ignore[index]
    left = np.ones(len(known), dtype=bool)
    for district in districts:
        hits = shapely.intersects_xy(district.shape, lons, lats) & left
        for at in np.flatnonzero(hits):
            found[known[at]] = district
        left &= ~hits
    return found


async def summary(
    session: AsyncSession,
    now: datetime,
    expand: Callable[[str], str],
    *,
    tenants: list[str] | None = None,
    low_battery: float = 0.2,
) -> Summary:
    """Counts of the devices of ``tenants`` (default: the session's tenant) by state: overall, by
    entity type, by district and by service path. The session is scoped to each tenant in turn
    and left scoped as it was."""
    own = current_tenant(session)
    assert own is not None, "ingest sessions are scoped to a tenant"
    found = Summary()
    try:
        for tenant in tenants or [own]:
            scope_to_tenant(session, tenant)
            await _count(session, tenant, now, expand, low_battery, found)
    finally:
        scope_to_tenant(session, own)
    return found


async def _count(
    session: AsyncSession,
    tenant: str,
    now: datetime,
    expand: Callable[[str], str],
    low_battery: float,
    found: Summary,
) -> None:
    devices = list(await session.scalars(select(IngestDevice).order_by(IngestDevice.device_id)))
    if not devices:
        return
    registered = await session.get(Tenant, tenant) if len(tenant) == 6 else None
    districts: list[District] = []
    placed: list[District | None] = [None] * len(devices)
    if registered is not None and registered.level == COUNTY:
        placed = [District(registered.code, registered.name, None)] * len(devices)
    else:
        districts = await boundaries(session, expand)
        if districts:
            entities = await broker.stored_entities(session, [d.entity_name for d in devices])
            positions = [
                _position(entities[d.entity_name]) if d.entity_name in entities else None for d in devices
            ]
            placed = place(districts, positions)
    names = await _names(session, [d.code for d in districts])
    for device, district in zip(devices, placed, strict=True):
        state = state_of(device, now)
        found.overall.add(state)
        found.by_type.setdefault(device.entity_type, Tally()).add(state)
        found.by_service_path.setdefault(device.service_path, Tally()).add(state)
        if district is None:
            found.outside_districts.add(state)
        else:
            found.by_district.setdefault(district.code, Tally()).add(state)
            found.district_names.setdefault(district.code, names.get(district.code) or district.name)
        if device.battery_level is not None and device.battery_level < low_battery:
            found.low_battery.append(device.device_id)


async def _names(session: AsyncSession, codes: list[str]) -> dict[str, str]:
    """The tenant registry's names of the district codes."""
    if not codes:
        return {}
    rows = await session.execute(select(Tenant.code, Tenant.name).where(Tenant.code.in_(codes)))
    return {row.code: row.name for row in rows}


class HealthMonitor:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        expand: Callable[[], Callable[[str], str]],
        interval: float,
    ) -> None:
        self.sessions = sessions
        self.expand = expand
        self.interval = interval
        self._periodic = Periodic("device health check", interval, self.check)

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def check(self) -> int:
        """Record the devices whose state changed; returns how many did."""
        now = utcnow()
        async with self.sessions() as session:
            devices = list(
                await session.scalars(
                    select(IngestDevice)
                    .where(IngestDevice.expected_interval.is_not(None))
                    .execution_options(**{ALL_TENANTS: True})
                )
            )
        changed: dict[str, list[str]] = {}
        for device in devices:
            if _new_state(device, now) is not None:
                changed.setdefault(device.tenant_code, []).append(device.device_id)
        recorded = 0
        for tenant, device_ids in changed.items():
            async with self.sessions() as session, session.begin():
                scope_to_tenant(session, tenant)
                recorded += await self._record(session, device_ids, now)
        return recorded

    async def _record(self, session: AsyncSession, device_ids: list[str], now: datetime) -> int:
        """Write the new states, judged again on the rows as they are now, locked: between the
        check's read and this transaction a device may have reported (it is not silent then),
        and another hub process's check may have recorded the same change (its event is not
        sent twice)."""
        expand = self.expand()
        rows = {
            row.device_id: row
            for row in await session.scalars(
                select(IngestDevice)
                .where(IngestDevice.device_id.in_(device_ids))
                .order_by(IngestDevice.device_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        }
        entity_ids = [service.device_entity_id(device_id) for device_id in device_ids]
        before, stored = await service.load_entities(session, entity_ids)
        written = []
        at = isoformat(now)
        recorded = 0
        for device_id in device_ids:
            device = rows.get(device_id)
            state = None if device is None else _new_state(device, now)
            if device is None or state is None:
                continue
            recorded += 1
            device.online = state == "online"
            entity = stored.get(service.device_entity_id(device_id))
            if entity is not None:
                attrs = {expand("deviceState"): [measures.instance("Property", state, at, None)]}
                if device.last_seen_at is not None:
                    reported = isoformat(device.last_seen_at)
                    attrs[expand("dateLastValueReported")] = [
                        measures.instance("Property", {"@type": "DateTime", "@value": reported}, None, None)
                    ]
                changes.append(entity, attrs, at)
                written.append(entity)
            common = {
                "tenant": device.tenant_code,
                "device_id": device_id,
                "entity_id": device.entity_name,
                "entity_type": device.entity_type,
                "service_path": device.service_path,
            }
            if state == "offline":
                assert device.expected_interval is not None
                last = isoformat(device.last_seen_at) if device.last_seen_at else None
                enqueue(
                    session,
                    DeviceWentSilent(**common, last_seen_at=last, expected_interval=device.expected_interval),
                )
            else:
                assert device.last_seen_at is not None
                enqueue(session, DeviceBackOnline(**common, last_seen_at=isoformat(device.last_seen_at)))
        await broker.write_many(session, written, before=before)
        return recorded
