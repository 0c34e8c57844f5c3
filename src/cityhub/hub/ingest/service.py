"""Provisioning, device look-up, dead letters and commands over storage.

Functions take the session first, scoped to the request's tenant (the ``fiware-service``), and never
commit. Provisioning also writes, through the broker's own write path, the device's entity (its
static attributes and command attributes) and its NGSI-LD ``Device`` entity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.bus.outbox import enqueue
from cityhub.hub.broker import changes, ngsi
from cityhub.hub.broker import service as broker
from cityhub.hub.ingest import measures, profiles
from cityhub.hub.ingest.events import ProvisioningChanged
from cityhub.hub.ingest.measures import Profile, Rejected
from cityhub.hub.ingest.models import IngestCommand, IngestDevice, IngestServiceGroup
from cityhub.hub.ingest.schemas import (
    DeviceIn,
    DeviceOut,
    DeviceUpdate,
    ServiceGroupIn,
    ServiceGroupOut,
    ServiceGroupUpdate,
)
from cityhub.kit.db import ALL_TENANTS, current_tenant
from cityhub.kit.errors import AlreadyExists, BadRequestData, NotFound
from cityhub.kit.time import isoformat, utcnow

Expand = Callable[[str], str]
#: Command attributes on a device's entity: the command itself, its status and its result.
STATUS_SUFFIX = "_status"
#: A device is offline once silent for this many expected intervals.
MISSED_INTERVALS = 2
INFO_SUFFIX = "_info"
COMMAND_STATUSES = ("UNKNOWN", "PENDING", "DELIVERED", "OK", "ERROR", "EXPIRED")


def _tenant(session: AsyncSession) -> str:
    tenant = current_tenant(session)
    assert tenant is not None, "ingest sessions are scoped to a tenant"
    return tenant


def entity_id_for(entity_type: str, device_id: str, entity_name: str | None) -> str:
    """FIWARE's entity_name, made a URI as NGSI-LD needs: ``urn:ngsi-ld:<type>:<device_id>``."""
    name = entity_name or device_id
    return name if ngsi.is_uri(name) and ":" in name else f"urn:ngsi-ld:{entity_type}:{name}"


def device_entity_id(device_id: str) -> str:
    return f"urn:ngsi-ld:Device:{device_id}"


async def load_entities(
    session: AsyncSession, entity_ids: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The stored entities of ``entity_ids`` as they are (the state before, for
    :func:`broker.write_many`) and copies of them to change."""
    before = await broker.stored_entities(session, list(set(entity_ids)), for_update=True)
    return before, {entity_id: broker.writable(entity) for entity_id, entity in before.items()}


# -- service groups ---------------------------------------------------------------------------------


def _dump(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True) for item in items]


async def create_groups(session: AsyncSession, service_path: str, groups: Sequence[ServiceGroupIn]) -> None:
    keys = [group.apikey for group in groups]
    if len(set(keys)) != len(keys):
        raise BadRequestData("the same apikey is given twice")
    taken = await session.scalars(
        select(IngestServiceGroup.apikey)
        .where(IngestServiceGroup.apikey.in_(keys))
        .execution_options(**{ALL_TENANTS: True})
    )
    clash = sorted(taken)
    if clash:
        raise AlreadyExists(f"a service group with apikey {', '.join(clash)} already exists")
    for group in groups:
        session.add(
            IngestServiceGroup(
                service_path=service_path,
                apikey=group.apikey,
                resource=group.resource,
                entity_type=group.entity_type,
                protocol=group.protocol,
                transport=group.transport,
                attributes=_dump(group.attributes),
                static_attributes=_dump(group.static_attributes),
                commands=_dump(group.commands),
                crs=group.crs or "WGS84",
                expected_interval=group.expected_interval,
                explicit_attrs=bool(group.explicitAttrs),
                autoprovision=bool(group.autoprovision),
            )
        )
    await session.flush()


def group_out(group: IngestServiceGroup) -> ServiceGroupOut:
    return ServiceGroupOut(
        service=group.tenant_code,
        subservice=group.service_path,
        apikey=group.apikey,
        resource=group.resource,
        entity_type=group.entity_type,
        attributes=group.attributes,
        static_attributes=group.static_attributes,
        commands=group.commands,
        protocol=group.protocol,
        transport=group.transport,
        crs=group.crs,
        expected_interval=group.expected_interval,
        explicitAttrs=group.explicit_attrs,
        autoprovision=group.autoprovision,
    )


async def list_groups(
    session: AsyncSession, service_path: str | None, *, limit: int, offset: int
) -> tuple[list[IngestServiceGroup], int]:
    statement = select(IngestServiceGroup)
    if service_path is not None:
        statement = statement.where(IngestServiceGroup.service_path == service_path)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(IngestServiceGroup.created_at, IngestServiceGroup.apikey)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def _group(session: AsyncSession, apikey: str, resource: str | None) -> IngestServiceGroup:
    statement = select(IngestServiceGroup).where(IngestServiceGroup.apikey == apikey)
    if resource is not None:
        statement = statement.where(IngestServiceGroup.resource == resource)
    group = await session.scalar(statement)
    if group is None:
        raise NotFound(
            f"no service group with apikey {apikey!r}" + (f" and resource {resource}" if resource else "")
        )
    return group


async def update_group(
    session: AsyncSession, apikey: str, resource: str | None, change: ServiceGroupUpdate
) -> None:
    group = await _group(session, apikey, resource)
    given = change.model_fields_set
    for name in ("entity_type", "protocol", "transport", "crs", "expected_interval", "resource"):
        if name in given and (getattr(change, name) is not None or name in ("protocol", "transport")):
            setattr(group, name, getattr(change, name))
    for name in ("attributes", "static_attributes", "commands"):
        if name in given:
            setattr(group, name, _dump(getattr(change, name)))
    if "explicitAttrs" in given:
        group.explicit_attrs = bool(change.explicitAttrs)
    if "autoprovision" in given:
        group.autoprovision = bool(change.autoprovision)
    await session.flush()


async def delete_group(session: AsyncSession, apikey: str, resource: str | None) -> None:
    await session.delete(await _group(session, apikey, resource))
    await session.flush()


# -- devices ----------------------------------------------------------------------------------------


def health_state(device: IngestDevice, now: datetime) -> str:
    """online, offline or unknown (see :mod:`cityhub.hub.ingest.health`)."""
    if device.expected_interval is None or device.last_seen_at is None:
        return "unknown"
    silent = (now - device.last_seen_at).total_seconds()
    return "online" if silent <= device.expected_interval * MISSED_INTERVALS else "offline"


def device_out(device: IngestDevice) -> DeviceOut:
    return DeviceOut(
        device_id=device.device_id,
        service=device.tenant_code,
        service_path=device.service_path,
        entity_name=device.entity_name,
        entity_type=device.entity_type,
        apikey=device.apikey,
        attributes=device.attributes,
        static_attributes=device.static_attributes,
        commands=device.commands,
        protocol=device.protocol,
        transport=device.transport,
        endpoint=device.endpoint,
        crs=device.crs,
        expected_interval=device.expected_interval,
        explicitAttrs=device.explicit_attrs,
        last_seen_at=device.last_seen_at,
        state=health_state(device, utcnow()),
        battery_level=device.battery_level,
        rssi=device.rssi,
    )


async def _group_for(
    session: AsyncSession, service_path: str, apikey: str | None
) -> IngestServiceGroup | None:
    """The group a device belongs to: the one of its apikey, else the only one of its service path."""
    if apikey is not None:
        return await session.scalar(select(IngestServiceGroup).where(IngestServiceGroup.apikey == apikey))
    groups = list(
        await session.scalars(
            select(IngestServiceGroup).where(IngestServiceGroup.service_path == service_path)
        )
    )
    return groups[0] if len(groups) == 1 else None


async def create_devices(
    session: AsyncSession, service_path: str, devices: Sequence[DeviceIn], expand: Expand
) -> list[IngestDevice]:
    ids = [device.device_id for device in devices]
    if len(set(ids)) != len(ids):
        raise BadRequestData("the same device_id is given twice")
    taken = sorted(
        await session.scalars(select(IngestDevice.device_id).where(IngestDevice.device_id.in_(ids)))
    )
    if taken:
        raise AlreadyExists(f"device {', '.join(taken)} already exists")
    rows = []
    groups: dict[str | None, IngestServiceGroup | None] = {}  # one query per apikey, not per device
    for given in devices:
        if given.apikey not in groups:
            groups[given.apikey] = await _group_for(session, service_path, given.apikey)
        group = groups[given.apikey]
        if given.apikey is not None and group is not None and group.tenant_code != _tenant(session):
            raise BadRequestData(f"apikey {given.apikey!r} belongs to another service")
        if group is None and given.apikey is None:
            raise BadRequestData(
                f"device {given.device_id}: give an apikey, or provision one service group for {service_path}"
            )
        entity_type = given.entity_type or (group.entity_type if group else None)
        if entity_type is None:
            raise BadRequestData(f"device {given.device_id}: entity_type is missing (and no group gives one)")
        row = IngestDevice(
            device_id=given.device_id,
            service_path=service_path,
            apikey=given.apikey or (group.apikey if group else None),
            entity_name=entity_id_for(entity_type, given.device_id, given.entity_name),
            entity_type=entity_type,
            protocol=given.protocol,
            transport=given.transport,
            endpoint=given.endpoint,
            attributes=_dump(given.attributes),
            static_attributes=_dump(given.static_attributes),
            commands=_dump(given.commands),
            crs=given.crs or (group.crs if group else "WGS84"),
            expected_interval=given.expected_interval or (group.expected_interval if group else None),
            explicit_attrs=bool(given.explicitAttrs),
        )
        if not ngsi.is_uri(row.entity_name):
            raise BadRequestData(f"device {given.device_id}: entity_name {row.entity_name!r} is not a URI")
        session.add(row)
        rows.append((row, group))
    await session.flush()
    await _write_entities(session, rows, expand)
    return [row for row, _ in rows]


async def autoprovision_device(
    session: AsyncSession, group: IngestServiceGroup, device_id: str, expand: Expand
) -> IngestDevice:
    """A device of ``group`` provisioned from the group alone (see
    :mod:`cityhub.hub.ingest.autoprovision`), with its entity and Device entity."""
    row = IngestDevice(
        device_id=device_id,
        service_path=group.service_path,
        apikey=group.apikey,
        entity_name=profiles.autoprovisioned_entity_id(group.entity_type, device_id),
        entity_type=group.entity_type,
        attributes=[],
        static_attributes=[],
        commands=[],
        crs=group.crs,
        expected_interval=group.expected_interval,
        explicit_attrs=False,
    )
    session.add(row)
    await session.flush()
    await _write_entities(session, [(row, group)], expand)
    return row


async def _write_entities(
    session: AsyncSession, rows: list[tuple[IngestDevice, IngestServiceGroup | None]], expand: Expand
) -> None:
    """Each device's entity (static and command attributes, added where missing) and its Device entity."""
    await broker.ensure_tenant(session, _tenant(session))
    ids = [row.entity_name for row, _ in rows] + [device_entity_id(row.device_id) for row, _ in rows]
    before, stored = await load_entities(session, ids)
    now = isoformat(utcnow())
    written: dict[str, dict[str, Any]] = {}
    for row, group in rows:
        profile = profiles.profile_of(row, group, row.apikey or "")
        statics = profiles.merged(group.static_attributes if group else [], row.static_attributes, "name")
        attrs: dict[str, Any] = {}
        for item in statics:
            kind, value = _static(item, profile)
            attrs[expand(item["name"])] = [measures.instance(kind, value, None, None)]
        for name in profile.commands:
            attrs[expand(name)] = [measures.instance("Property", "", None, None)]
            attrs[expand(name + STATUS_SUFFIX)] = [measures.instance("Property", "UNKNOWN", None, None)]
            attrs[expand(name + INFO_SUFFIX)] = [measures.instance("Property", "", None, None)]
        _upsert(written, stored, row.entity_name, [expand(row.entity_type)], profile.scope, attrs, now)
        device_id = device_entity_id(row.device_id)
        if device_id != row.entity_name:
            described = {
                expand("controlledAsset"): [measures.instance("Relationship", row.entity_name, None, None)],
                expand("controlledProperty"): [
                    measures.instance(
                        "Property", [m.name for m in profile.by_object_id.values()] or [""], None, None
                    )
                ],
                expand("supportedProtocol"): [
                    measures.instance("Property", "ul20" if profile.protocol == "UL" else "JSON", None, None)
                ],
                expand("deviceState"): [measures.instance("Property", "provisioned", None, None)],
            }
            _upsert(written, stored, device_id, [expand("Device")], profile.scope, described, now)
    await broker.write_many(session, list(written.values()), before=before)


def _upsert(
    written: dict[str, dict[str, Any]],
    stored: dict[str, dict[str, Any]],
    entity_id: str,
    types: list[str],
    scope: list[str] | None,
    attrs: dict[str, Any],
    now: str,
) -> None:
    current = written.get(entity_id) or stored.get(entity_id)
    if current is None:
        entity: dict[str, Any] = {"id": entity_id, "type": types, "attrs": attrs}
        if scope:
            entity["scope"] = scope
        changes.stamp(entity, now, created=True)
        written[entity_id] = entity
        return
    changes.add_types(current, types)
    missing = {iri: instances for iri, instances in attrs.items() if iri not in current["attrs"]}
    changes.append(current, missing, now)
    written[entity_id] = current


def _static(item: dict[str, Any], profile: Profile) -> tuple[str, Any]:
    try:
        return measures.convert(item.get("value"), item.get("type"), profile.crs, item["name"])
    except Rejected as error:
        raise BadRequestData(f"static attribute {error.detail}") from None


async def list_devices(
    session: AsyncSession, service_path: str | None, *, limit: int, offset: int
) -> tuple[list[IngestDevice], int]:
    statement = select(IngestDevice)
    if service_path is not None:
        statement = statement.where(IngestDevice.service_path == service_path)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(IngestDevice.created_at, IngestDevice.device_id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def get_device(session: AsyncSession, device_id: str) -> IngestDevice:
    device = await session.get(IngestDevice, (_tenant(session), device_id))
    if device is None:
        raise NotFound(f"device {device_id} does not exist")
    return device


async def update_device(session: AsyncSession, device_id: str, change: DeviceUpdate, expand: Expand) -> None:
    device = await get_device(session, device_id)
    given = change.model_fields_set
    for name in ("entity_type", "protocol", "transport", "endpoint", "crs", "expected_interval", "apikey"):
        if name in given:
            setattr(device, name, getattr(change, name))
    if "entity_name" in given and change.entity_name:
        device.entity_name = entity_id_for(device.entity_type, device.device_id, change.entity_name)
    for name in ("attributes", "static_attributes", "commands"):
        if name in given:
            setattr(device, name, _dump(getattr(change, name)))
    if "explicitAttrs" in given:
        device.explicit_attrs = bool(change.explicitAttrs)
    await session.flush()
    group = await _group_for(session, device.service_path, device.apikey)
    await _write_entities(session, [(device, group)], expand)


async def delete_device(session: AsyncSession, device_id: str) -> None:
    """The device goes, and so does its Device entity; its data entity and history stay."""
    device = await get_device(session, device_id)
    await session.delete(device)
    with contextlib.suppress(NotFound):
        await broker.delete_entity(session, device_entity_id(device_id))
    await session.flush()


# -- commands ---------------------------------------------------------------------------------------


async def devices_of_entities(session: AsyncSession, entity_ids: Sequence[str]) -> list[IngestDevice]:
    return list(await session.scalars(select(IngestDevice).where(IngestDevice.entity_name.in_(entity_ids))))


async def open_command(session: AsyncSession, device_id: str, name: str) -> IngestCommand | None:
    """The latest command of that name still waiting for the device's answer."""
    return await session.scalar(
        select(IngestCommand)
        .where(
            IngestCommand.device_id == device_id,
            IngestCommand.name == name,
            IngestCommand.status.in_(("PENDING", "DELIVERED")),
        )
        .order_by(IngestCommand.created_at.desc())
        .limit(1)
    )


async def list_commands(session: AsyncSession, device_id: str, *, limit: int) -> list[IngestCommand]:
    return list(
        await session.scalars(
            select(IngestCommand)
            .where(IngestCommand.device_id == device_id)
            .order_by(IngestCommand.created_at.desc())
            .limit(limit)
        )
    )


async def set_command_status(
    session: AsyncSession, command: IngestCommand, status: str, info: Any, expand: Expand
) -> None:
    """Record the command's new status on its row and on the device's entity
    (``<command>_status``, ``<command>_info``)."""
    now = utcnow()
    command.status = status
    command.info = info
    command.updated_at = now
    device = await session.get(IngestDevice, (command.tenant_code, command.device_id))
    if device is None:
        return
    before, stored = await load_entities(session, [device.entity_name])
    entity = stored.get(device.entity_name)
    if entity is None:
        return
    at = isoformat(now)
    attrs = {
        expand(command.name + STATUS_SUFFIX): [measures.instance("Property", status, at, None)],
        expand(command.name + INFO_SUFFIX): [
            measures.instance("Property", info if info is not None else "", at, None)
        ],
    }
    changes.append(entity, attrs, at)
    await broker.write_many(session, [entity], before=before)


async def set_apikey_disabled(session: AsyncSession, tenant: str, apikey: str, *, disabled: bool) -> bool:
    """Disable (or enable again) the service group of ``apikey`` in ``tenant``; the gateways refuse
    its messages as dead letters (``apikey-disabled``). False if the tenant has no such group.
    After the commit, :class:`ProvisioningChanged` makes every hub process's gateway forget what
    it cached of the key."""
    group = await session.scalar(
        select(IngestServiceGroup)
        .where(IngestServiceGroup.tenant_code == tenant, IngestServiceGroup.apikey == apikey)
        .execution_options(**{ALL_TENANTS: True})
    )
    if group is None:
        return False
    group.disabled = disabled
    await session.flush()
    enqueue(session, ProvisioningChanged(tenant=tenant, apikey=apikey))
    return True


def provisioning_changed(session: AsyncSession, tenant: str) -> None:
    """Service groups or devices of ``tenant`` changed: after the commit, every hub process's
    gateway looks devices up again."""
    enqueue(session, ProvisioningChanged(tenant=tenant))
