"""Sensing-network health: last seen, online or offline from the expected reporting interval,
battery and signal where reported, counts and online ratio by entity type and by district (the
service path), and an event when a device goes silent.

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

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.bus.outbox import enqueue
from cityhub.hub.broker import changes
from cityhub.hub.broker import service as broker
from cityhub.hub.ingest import measures, service
from cityhub.hub.ingest.events import DeviceBackOnline, DeviceWentSilent
from cityhub.hub.ingest.models import IngestDevice
from cityhub.kit.db import ALL_TENANTS, scope_to_tenant
from cityhub.kit.periodic import Periodic
from cityhub.kit.time import isoformat, utcnow

log = logging.getLogger(__name__)

state_of = service.health_state


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
    low_battery: list[str] = field(default_factory=list)


async def summary(session: AsyncSession, now: datetime, *, low_battery: float = 0.2) -> Summary:
    """Counts of the tenant's devices by state, overall, by entity type and by service path."""
    found = Summary()
    for device in await session.scalars(select(IngestDevice)):
        state = state_of(device, now)
        found.overall.add(state)
        found.by_type.setdefault(device.entity_type, Tally()).add(state)
        found.by_district.setdefault(device.service_path, Tally()).add(state)
        if device.battery_level is not None and device.battery_level < low_battery:
            found.low_battery.append(device.device_id)
    return found


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
        changed: dict[str, list[tuple[str, str]]] = {}
        for device in devices:
            state = state_of(device, now)
            recorded = None if device.online is None else ("online" if device.online else "offline")
            if state != "unknown" and state != recorded:
                changed.setdefault(device.tenant_code, []).append((device.device_id, state))
        for tenant, items in changed.items():
            async with self.sessions() as session, session.begin():
                scope_to_tenant(session, tenant)
                await self._record(session, items, now)
        return sum(len(items) for items in changed.values())

    async def _record(self, session: AsyncSession, items: list[tuple[str, str]], now: datetime) -> None:
        expand = self.expand()
        rows = {
            row.device_id: row
            for row in await session.scalars(
                select(IngestDevice).where(IngestDevice.device_id.in_([d for d, _ in items]))
            )
        }
        entity_ids = [service.device_entity_id(device_id) for device_id, _ in items]
        before, stored = await service.load_entities(session, entity_ids)
        written = []
        at = isoformat(now)
        for device_id, state in items:
            device = rows.get(device_id)
            if device is None:
                continue
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
