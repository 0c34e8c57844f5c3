"""The broker for code in the hub's own process: applications, the rule engine, the case workflow.

Entities go in and come out in normalized NGSI-LD under the core @context (short names such as
``temperature``, ``location``), as a client that sends no @context would write them. Writes take
the broker's own path, in the caller's transaction: history, subscriptions and
``EntitiesChanged`` see them exactly as they see a request's. Every function takes the NGSI-LD
tenant to act in, and leaves the session's tenant scope as it found it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.broker import changes, ngsi, protection, service, sharing
from cityhub.hub.broker.context import core_context
from cityhub.hub.broker.entities import entity_query
from cityhub.hub.broker.models import BrokerAttributeInstance, BrokerEntityType, BrokerHistoryDay
from cityhub.kit.db import in_tenant
from cityhub.kit.time import isoformat, utcnow


def expand(name: str) -> str:
    """An attribute or type name of the core @context as the broker stores it (an IRI)."""
    return core_context().expand(name)


def compact_entity(stored: Mapping[str, Any]) -> dict[str, Any]:
    """An entity as stored (an ``EntitiesChanged`` change's ``entity``) in normalized form.
    Applications run in the hub's process: encrypted personal information is given decrypted."""
    return ngsi.compact_entity(protection.Disclosure(clear=True).entity(dict(stored)), core_context())


async def write_entities(
    session: AsyncSession, tenant: str, entities: Sequence[Mapping[str, Any]], *, replace: bool = False
) -> None:
    """Create the entities that do not exist; merge the given attributes into those that do (an
    attribute given replaces the stored one of the same datasetId), or with ``replace`` replace
    them whole. Invalid entities raise ``BadRequestData`` before anything is written."""
    ctx = core_context()
    expanded = [ngsi.expand_entity(dict(entity), ctx) for entity in entities]
    with in_tenant(session, tenant):
        await service.ensure_tenant(session, tenant)
        before = await service.stored_entities(
            session, [entity["id"] for entity in expanded], for_update=True
        )
        moment = isoformat(utcnow())
        current: dict[str, dict[str, Any]] = {}
        retyped: list[str] = []
        for entity in expanded:
            entity_id = entity["id"]
            existing = current.get(entity_id) or before.get(entity_id)
            if existing is None:
                changes.stamp(entity, moment, created=True)
                current[entity_id] = entity
                continue
            types = set(existing["type"])
            if replace:
                target = changes.replaced(existing, entity, moment)
            else:
                target = existing if entity_id in current else service.writable(existing)
                changes.add_types(target, entity["type"])
                changes.append(target, entity["attrs"], moment)
            current[entity_id] = target
            if set(target["type"]) != types:
                retyped.append(entity_id)
        await service.write_many(session, list(current.values()), before=before, retyped=retyped)


async def read_entity(session: AsyncSession, tenant: str, entity_id: str) -> dict[str, Any] | None:
    with in_tenant(session, tenant):
        found = await service.stored_entities(session, [entity_id])
    stored = found.get(entity_id)
    return compact_entity(stored) if stored is not None else None


async def find_entities(
    session: AsyncSession,
    tenant: str,
    *,
    type: str | None = None,
    q: str | None = None,
    georel: str | None = None,
    geometry: str | None = None,
    coordinates: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Entities as ``GET /ngsi-ld/v1/entities`` with these parameters finds them, in creation order."""
    query = entity_query(
        core_context(),
        ids=None,
        types=type,
        id_pattern=None,
        q=q,
        scope_q=None,
        geo=(georel, geometry, coordinates, None),
    )
    with in_tenant(session, tenant):
        found, _ = await service.query_entities(session, query, limit=limit, offset=offset)
    return [compact_entity(entity) for entity in found]


async def delete_entities(session: AsyncSession, tenant: str, entity_ids: Sequence[str]) -> None:
    """Delete the entities that exist; ids of none are passed over."""
    with in_tenant(session, tenant):
        stored = await service.stored_entities(session, list(entity_ids), for_update=True)
        for entity_id in stored:
            await service.delete_entity(session, entity_id)


async def read_history(
    session: AsyncSession, tenant: str, entity_id: str, attrs: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, Any]]]:
    """Each attribute's values in ``[start, end)`` by time (observedAt, else when it was stored),
    oldest first; deletion marks are left out."""
    return (await read_histories(session, tenant, [entity_id], attrs, start, end))[entity_id]


#: Entities whose history one statement of :func:`read_histories` reads.
HISTORY_CHUNK = 500


async def read_histories(
    session: AsyncSession,
    tenant: str,
    entity_ids: Sequence[str],
    attrs: Sequence[str],
    start: datetime,
    end: datetime,
) -> dict[str, dict[str, list[tuple[datetime, Any]]]]:
    """:func:`read_history` of many entities with one statement per :data:`HISTORY_CHUNK` of them
    (a city's stations: one query each cost more than the rows they read), by entity id."""
    names = {expand(name): name for name in attrs}
    at = func.coalesce(BrokerAttributeInstance.observed_at, BrokerAttributeInstance.recorded_at)
    histories: dict[str, dict[str, list[tuple[datetime, Any]]]] = {
        entity_id: {name: [] for name in attrs} for entity_id in entity_ids
    }
    ids = list(histories)
    with in_tenant(session, tenant):
        allowed: dict[str, frozenset[str] | None] = {}
        access = sharing.of(session)
        if access is not None:  # a session held to the caller's datasets (plugins.EntitySession)
            typed: dict[str, list[str]] = {entity_id: [] for entity_id in ids}
            for chunk in _chunks(ids):
                found = await session.execute(
                    select(BrokerEntityType.entity_id, BrokerEntityType.type).where(
                        BrokerEntityType.entity_id.in_(chunk)
                    )
                )
                for entity_id, entity_type in found:
                    typed[entity_id].append(entity_type)
            for entity_id, types in typed.items():
                access.require_visible(types, f"entity {entity_id}")
                allowed[entity_id] = access.allowed(types)
        for chunk in _chunks(ids):
            statement = (
                select(
                    BrokerAttributeInstance.entity_id,
                    BrokerAttributeInstance.attribute,
                    at,
                    BrokerAttributeInstance.data,
                )
                .where(
                    BrokerAttributeInstance.entity_id.in_(chunk),
                    BrokerAttributeInstance.attribute.in_(list(names)),
                    BrokerAttributeInstance.deleted_at.is_(None),
                    at >= start,
                    at < end,
                )
                .order_by(at)
            )
            for entity_id, attribute, when, data in await session.execute(statement):
                opened = allowed.get(entity_id)
                if opened is not None and attribute not in opened:
                    continue
                content = data.get(ngsi.content_key(data.get("type", "")))
                histories[entity_id][names[attribute]].append(
                    (when, protection.open_content(entity_id, attribute, content))
                )
    return histories


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + HISTORY_CHUNK] for i in range(0, len(ids), HISTORY_CHUNK)]


async def history_revisions(
    session: AsyncSession, tenant: str, first: date, last: date
) -> dict[str, dict[date, int]]:
    """Per entity, the revision of each UTC day from ``first`` to ``last`` of its history that was
    written, changed or deleted after the fact (how often; days and entities never revised are
    left out). See :class:`~cityhub.hub.broker.models.BrokerHistoryDay` for what bumps it."""
    found = await session.execute(
        select(BrokerHistoryDay.entity_id, BrokerHistoryDay.day, BrokerHistoryDay.revision).where(
            BrokerHistoryDay.tenant_code == tenant,
            BrokerHistoryDay.day >= first,
            BrokerHistoryDay.day <= last,
        )
    )
    revisions: dict[str, dict[date, int]] = {}
    for entity_id, day, revision in found:
        revisions.setdefault(entity_id, {})[day] = revision
    return revisions
