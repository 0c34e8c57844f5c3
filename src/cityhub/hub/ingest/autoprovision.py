"""Autoprovisioning: a service group with ``autoprovision: true`` (the IoT Agents' flag) provisions
a device it does not know on that device's first valid message.

The message is checked against the group's attributes first (as any message is); only a message
that would be stored provisions the device, so a malformed message from an unknown device stays a
dead letter and leaves nothing behind. The device gets the group's service path, entity type,
attributes, static attributes and commands (through the group, as a device provisioned without
its own members), and the entity ``urn:ngsi-ld:<entity_type>:<device_id>``; its entity and
``Device`` entity are written as for a device provisioned through ``/iot/devices``.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cityhub.hub.broker import ngsi
from cityhub.hub.ingest import measures, service
from cityhub.hub.ingest.measures import Profile, Rejected
from cityhub.hub.ingest.models import IngestDevice, IngestServiceGroup
from cityhub.hub.ingest.schemas import NAME_PATTERN
from cityhub.kit.db import scope_to_tenant

if TYPE_CHECKING:
    from cityhub.hub.ingest.gateway import Gateway

_NAME = re.compile(NAME_PATTERN)
#: One device is provisioned at a time in a process: the second message of a device that arrives
#: while its first provisions it finds the device there.
_LOCK = asyncio.Lock()


async def provision(gateway: Gateway, profile: Profile) -> None:
    """Provision the device of ``profile`` (a provisional profile, from its group); refuses
    (``unknown-device``) a device id that cannot name a device."""
    device_id = profile.device_id
    if len(device_id) > 256 or not _NAME.match(device_id):
        raise Rejected(
            measures.UNKNOWN_DEVICE,
            f"device {device_id!r} is not provisioned and cannot be autoprovisioned: "
            "the id has characters a device id may not have",
            tenant=profile.tenant,
        )
    if not ngsi.is_uri(profile.entity_id):
        raise Rejected(
            measures.UNKNOWN_DEVICE,
            f"device {device_id!r} cannot be autoprovisioned: {profile.entity_id!r} is not a URI",
            tenant=profile.tenant,
        )
    async with _LOCK:
        try:
            async with gateway.sessions() as session, session.begin():
                scope_to_tenant(session, profile.tenant)
                group = await session.scalar(
                    select(IngestServiceGroup).where(IngestServiceGroup.apikey == profile.apikey)
                )
                if group is None or not group.autoprovision or group.disabled:
                    raise Rejected(
                        measures.UNKNOWN_DEVICE,
                        f"device {device_id!r} is not provisioned for apikey {profile.apikey!r}",
                        tenant=profile.tenant,
                    )
                if await session.get(IngestDevice, (profile.tenant, device_id)) is None:
                    await service.autoprovision_device(session, group, device_id, gateway.expand)
        except IntegrityError:
            pass  # another process provisioned it in the meantime
        gateway.forget_apikey(profile.apikey)
