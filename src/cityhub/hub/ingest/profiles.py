"""A device's provisioning merged with its group's: the :class:`Profile` the gateways work from,
and every profile of one API key read at once (what a gateway caches)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.ingest import measures
from cityhub.hub.ingest.measures import Profile, Rejected
from cityhub.hub.ingest.models import IngestDevice, IngestServiceGroup
from cityhub.kit.db import ALL_TENANTS


def merged(group_items: list[dict[str, Any]], items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Group defaults overridden by the device's own items of the same key."""
    mine = {item.get(key) or item.get("name") for item in items}
    return [item for item in group_items if (item.get(key) or item.get("name")) not in mine] + items


def profile_of(device: IngestDevice, group: IngestServiceGroup | None, apikey: str) -> Profile:
    attributes = merged(group.attributes if group else [], device.attributes, "object_id")
    commands = merged(group.commands if group else [], device.commands, "name")
    mappings = {}
    for item in attributes:
        spec = measures.Mapping_(name=item["name"], type=item.get("type"), unit=_unit(item))
        mappings[item.get("object_id") or item["name"]] = spec
    return Profile(
        tenant=device.tenant_code,
        service_path=device.service_path,
        apikey=apikey,
        device_id=device.device_id,
        entity_id=device.entity_name,
        entity_type=device.entity_type,
        protocol=device.protocol or (group.protocol if group else None),
        transport=device.transport or (group.transport if group else None),
        endpoint=device.endpoint,
        crs=device.crs if device.crs != "WGS84" or group is None else group.crs,
        explicit_attrs=device.explicit_attrs or bool(group and group.explicit_attrs),
        by_object_id=mappings,
        commands=tuple(item["name"] for item in commands),
        expected_interval=device.expected_interval,
    )


def _unit(item: dict[str, Any]) -> str | None:
    if item.get("unitCode"):
        return str(item["unitCode"])
    meta = (item.get("metadata") or {}).get("unitCode")
    return str(meta["value"]) if isinstance(meta, dict) and meta.get("value") else None


def autoprovisioned_entity_id(entity_type: str, device_id: str) -> str:
    """The entity of an autoprovisioned device: ``urn:ngsi-ld:<entity_type>:<device_id>``."""
    return f"urn:ngsi-ld:{entity_type}:{device_id}"


def group_template(group: IngestServiceGroup) -> Profile:
    """The profile a device of ``group`` has before any provisioning of its own."""
    blank = IngestDevice(
        tenant_code=group.tenant_code,
        device_id="",
        service_path=group.service_path,
        apikey=group.apikey,
        entity_name="",
        entity_type=group.entity_type,
        protocol=None,
        transport=None,
        endpoint=None,
        attributes=[],
        static_attributes=[],
        commands=[],
        crs="WGS84",
        explicit_attrs=False,
    )
    return profile_of(blank, group, group.apikey)


@dataclass
class KeyProfiles:
    """Every device that sends with one API key: what a gateway caches per key."""

    tenant: str | None  # the group's tenant (None: no group has the key)
    devices: dict[str, Profile]
    disabled: bool = False  # the group's key was disabled (a security response)
    #: the group's profile for a device it does not know, when the group autoprovisions
    template: Profile | None = None

    def profile(self, apikey: str, device_id: str) -> Profile:
        if self.disabled:
            raise Rejected(
                measures.APIKEY_DISABLED,
                f"apikey {apikey!r} is disabled; its messages are refused until it is enabled again",
                tenant=self.tenant,
            )
        found = self.devices.get(device_id)
        if found is not None:
            return found
        if self.template is not None:
            return replace(
                self.template,
                device_id=device_id,
                entity_id=autoprovisioned_entity_id(self.template.entity_type, device_id),
                provisional=True,
            )
        if self.tenant is None and not self.devices:
            raise Rejected(measures.UNKNOWN_APIKEY, f"no service group or device has apikey {apikey!r}")
        raise Rejected(
            measures.UNKNOWN_DEVICE,
            f"device {device_id!r} is not provisioned for apikey {apikey!r}",
            tenant=self.tenant,
        )


async def profiles_of_apikey(session: AsyncSession, apikey: str) -> KeyProfiles:
    """Every device of ``apikey``, in any tenant, in one query (a gateway meets thousands of
    devices of one key at once)."""
    everywhere = {ALL_TENANTS: True}
    group = await session.scalar(
        select(IngestServiceGroup).where(IngestServiceGroup.apikey == apikey).execution_options(**everywhere)
    )
    statement = select(IngestDevice)
    if group is not None:
        statement = statement.where(
            IngestDevice.tenant_code == group.tenant_code,
            (IngestDevice.apikey == apikey) | IngestDevice.apikey.is_(None),
        )
    else:
        statement = statement.where(IngestDevice.apikey == apikey)
    devices: dict[str, Profile] = {}
    ambiguous: set[str] = set()
    for device in await session.scalars(statement.execution_options(**everywhere)):
        if device.device_id in devices:
            ambiguous.add(device.device_id)
        devices[device.device_id] = profile_of(device, group, apikey)
    for device_id in ambiguous:  # the same id in several tenants under one key: refuse it
        del devices[device_id]
    autoprovisions = group is not None and group.autoprovision and not group.disabled
    return KeyProfiles(
        group.tenant_code if group is not None else None,
        devices,
        disabled=bool(group and group.disabled),
        template=group_template(group) if group is not None and autoprovisions else None,
    )
