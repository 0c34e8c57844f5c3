"""Broker logic over storage. Functions take the session first (scoped to the request's tenant by
``scope_to_tenant``) and never commit; the request does."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, column, delete, func, select, table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from cityhub.hub.broker import sharing
from cityhub.hub.broker.events import record
from cityhub.hub.broker.models import BrokerEntity, BrokerEntityType, BrokerTenant
from cityhub.hub.broker.ngsi import NGSI_LD
from cityhub.hub.broker.protection import seal
from cityhub.hub.tenancy.models import Tenant
from cityhub.kit.db import (
    current_tenant,
    locked,
    note_written,
    take_write_lock,
    tenant_bound,
    tenant_params,
    upsert_insert,
    upsert_many,
)
from cityhub.kit.errors import AlreadyExists, NonexistentTenant, NotFound
from cityhub.kit.geo import Geometry, GeoRel, geometry_bbox, parse_geometry
from cityhub.kit.jsondata import json_copy
from cityhub.kit.time import parse_datetime

LOCATION = NGSI_LD + "location"
_ENTITIES: Table = BrokerEntity.__table__  # type: ignore[assignment]
_TYPES: Table = BrokerEntityType.__table__  # type: ignore[assignment]
#: SQLite's spatial index, made and kept by migration 0012 (no model: a virtual table and triggers).
_RTREE = table(
    "broker_entity_rtree", *(column(name) for name in ("box_id", "min_lon", "max_lon", "min_lat", "max_lat"))
)
_BOXES = table("broker_entity_box", column("box_id"), column("tenant_code"), column("entity_id"))


async def tenant_exists(session: AsyncSession, name: str) -> bool:
    if await session.get(BrokerTenant, name) is not None:
        return True
    return await session.get(Tenant, name) is not None if len(name) == 6 else False


async def require_tenant(session: AsyncSession, name: str) -> None:
    if not await tenant_exists(session, name):
        raise NonexistentTenant(f"tenant {name!r} does not exist")


async def ensure_tenant(session: AsyncSession, name: str) -> None:
    """NGSI-LD creates a tenant on the first write that names it."""
    insert = upsert_insert(session)
    await session.execute(insert(BrokerTenant).values(name=name).on_conflict_do_nothing())


def _tenant(session: AsyncSession) -> str:
    tenant = current_tenant(session)
    assert tenant is not None, "broker sessions are scoped to a tenant"
    return tenant


def _bbox(entity: dict[str, Any]) -> tuple[float, float, float, float] | None:
    for instance in entity["attrs"].get(LOCATION, ()):
        if instance.get("type") == "GeoProperty" and "datasetId" not in instance:
            return geometry_bbox(instance["value"])
    return None


async def lock_for_write(session: AsyncSession) -> None:
    """Make the transaction a writer before it reads the entities it will change, so that two
    writers of one entity take turns (``kit.db.take_write_lock``); the reads that will be written
    back lock their rows (``FOR UPDATE``) on PostgreSQL."""
    await take_write_lock(session, BrokerEntity)


def _seen(statement: Any, session: AsyncSession) -> Any:
    """``statement`` on ``broker_entity`` limited to the rows the request may see (``sharing``)."""
    clause = sharing.visible_clause(session)
    return statement if clause is None else statement.where(clause)


async def _load(session: AsyncSession, entity_id: str, *, for_update: bool = False) -> BrokerEntity | None:
    """The entity's row; 403 when the request may not see (or, writing, change) its type.
    ``for_update``: locked for a write in this transaction (see :func:`lock_for_write`)."""
    if for_update:
        await lock_for_write(session)
        row = await session.get(
            BrokerEntity, (_tenant(session), entity_id), with_for_update=True, populate_existing=True
        )
    else:
        row = await session.get(BrokerEntity, (_tenant(session), entity_id))
    if row is not None:
        sharing.require_visible(session, row.data)
    return row


#: An entity's stored document by id, built once, its tenant bound (``kit.db.tenant_bound``): a GET
#: of one entity, the most frequent request, neither builds a statement nor loads a row object.
_DATA_BY_ID = tenant_bound(
    select(BrokerEntity.data).where(BrokerEntity.entity_id == bindparam("entity_id")), BrokerEntity
)


async def get_entity(session: AsyncSession, entity_id: str, *, for_update: bool = False) -> dict[str, Any]:
    """A copy of the stored entity: change it freely, then :func:`save_entity` it. ``for_update``:
    the entity will be written back in this transaction (see :func:`lock_for_write`)."""
    if for_update:
        row = await _load(session, entity_id, for_update=True)
        data = None if row is None else row.data
    else:
        data = await session.scalar(_DATA_BY_ID, tenant_params(session, entity_id=entity_id))
        if data is not None:
            sharing.require_visible(session, data)
    if data is None:
        raise NotFound(f"entity {entity_id} does not exist")
    return json_copy(sharing.limited(session, data))


async def get_entities(
    session: AsyncSession, entity_ids: Sequence[str], *, for_update: bool = False
) -> dict[str, dict[str, Any]]:
    """Copies of the entities that exist among ``entity_ids`` (batches, linked-entity joins).
    ``for_update``: as for :func:`stored_entities` (locked, in id order, until the commit)."""
    if not entity_ids:
        return {}
    statement = select(BrokerEntity).where(BrokerEntity.entity_id.in_(entity_ids))
    if for_update:
        statement = await locked(session, BrokerEntity, statement.order_by(BrokerEntity.entity_id))
    rows = await session.scalars(_seen(statement, session))
    return {row.entity_id: json_copy(sharing.limited(session, row.data)) for row in rows}


async def stored_entities(
    session: AsyncSession, entity_ids: Sequence[str], *, for_update: bool = False
) -> dict[str, dict[str, Any]]:
    """The entities that exist among ``entity_ids`` as decoded from the database, not copied and
    not kept by the session: a batch's state before it writes, for :func:`write_many`'s ``before``.
    They are shared, never to be changed: :func:`writable` gives a copy to change. ``for_update``:
    they will be written back in this transaction (see :func:`lock_for_write`); rows are locked in
    id order, so two batches of overlapping entities wait for each other rather than deadlock."""
    if not entity_ids:
        return {}
    query = select(BrokerEntity.entity_id, BrokerEntity.data).where(BrokerEntity.entity_id.in_(entity_ids))
    if for_update:
        await lock_for_write(session)
        query = query.order_by(BrokerEntity.entity_id).with_for_update()
    rows = await session.execute(query)
    found: dict[str, dict[str, Any]] = dict(rows.all())
    for entity_id, entity in found.items():  # a batch may not overwrite what it may not see
        sharing.require_visible(session, entity)
        found[entity_id] = sharing.limited(session, entity)
    return found


async def stored_versions(
    session: AsyncSession, entity_ids: Sequence[str], *, for_update: bool = False
) -> dict[str, datetime]:
    """When each entity that exists among ``entity_ids`` was last modified, without its data: a
    writer that kept the entities it wrote checks with this that nobody changed them since.
    ``for_update``: as for :func:`stored_entities` (the rows stay locked until the commit)."""
    if not entity_ids:
        return {}
    query = select(BrokerEntity.entity_id, BrokerEntity.modified_at).where(
        BrokerEntity.entity_id.in_(entity_ids)
    )
    if for_update:
        await lock_for_write(session)
        query = query.order_by(BrokerEntity.entity_id).with_for_update()
    rows = await session.execute(query)
    return dict(rows.all())


def writable(entity: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored entity that attribute operations may change: its members, attribute map
    and instance lists are new, the instances themselves shared. Appends and updates replace an
    instance whole rather than change it, so the stored one stays as it was (``changes.append``)."""
    copy = dict(entity)
    copy["type"] = list(entity["type"])
    copy["attrs"] = {name: list(instances) for name, instances in entity["attrs"].items()}
    return copy


async def create_entity(session: AsyncSession, entity: dict[str, Any]) -> None:
    sharing.require_writable(session, entity)
    if await _load(session, entity["id"]) is not None:
        raise AlreadyExists(f"entity {entity['id']} already exists")
    entity = seal(entity)  # sensitive personal information is stored (and announced) encrypted
    row = BrokerEntity(entity_id=entity["id"], data=entity)
    _fill(row, entity)
    session.add(row)
    await session.flush()
    session.add_all(BrokerEntityType(entity_id=entity["id"], type=t) for t in entity["type"])
    record(session, None, entity)


async def write_many(
    session: AsyncSession,
    entities: Sequence[dict[str, Any]],
    *,
    before: Mapping[str, dict[str, Any]],
    retyped: Sequence[str] = (),
) -> None:
    """Store many new or changed entities with two statements (upsert of the entity rows, insert of
    the type rows of entities that are new or whose types changed); ``before`` holds the earlier
    state of those that existed (as :func:`stored_entities` read it), ``retyped`` names entities
    whose types changed, whose old type rows go. The batch path: one round trip per table instead
    of several queries per entity."""
    if not entities:
        return
    tenant = _tenant(session)
    insert = upsert_insert(session)
    rows = []
    for entity in entities:
        sharing.require_writable(session, entity)
        entity = seal(entity)
        record(session, before.get(entity["id"]), entity)
        box = _bbox(entity) or (None, None, None, None)
        rows.append(
            {
                "tenant_code": tenant,
                "entity_id": entity["id"],
                "created_at": parse_datetime(entity["createdAt"]),
                "modified_at": parse_datetime(entity["modifiedAt"]),
                "data": entity,
                "min_lon": box[0],
                "min_lat": box[1],
                "max_lon": box[2],
                "max_lat": box[3],
            }
        )
    # not the ORM, whose bulk path costs more than the SQL; on PostgreSQL the driver's executemany
    await upsert_many(
        session,
        _ENTITIES,
        rows,
        keys=("tenant_code", "entity_id"),
        changed=("modified_at", "data", "min_lon", "min_lat", "max_lon", "max_lat"),
    )
    if retyped:
        await session.execute(
            delete(BrokerEntityType).where(
                BrokerEntityType.tenant_code == tenant, BrokerEntityType.entity_id.in_(retyped)
            )
        )
    # an entity that existed with the same types has its type rows already: only new entities and
    # those whose types changed need theirs (an update batch of known entities writes none)
    gone = set(retyped)
    types = [
        {"tenant_code": tenant, "entity_id": entity["id"], "type": t}
        for entity in entities
        if (old := before.get(entity["id"])) is None or old["type"] != entity["type"] or entity["id"] in gone
        for t in entity["type"]
    ]
    if types:
        await session.execute(insert(_TYPES).on_conflict_do_nothing(), types)
    note_written(session, ("broker_entity", "broker_entity_type", "broker_attribute_instance"), len(rows))


async def save_entity(session: AsyncSession, entity: dict[str, Any]) -> None:
    """Store a changed entity (its types may have changed too)."""
    row = await _load(session, entity["id"])
    if row is None:
        raise NotFound(f"entity {entity['id']} does not exist")
    sharing.require_writable(session, entity)
    entity = seal(entity)
    record(session, row.data, entity)
    _fill(row, entity)
    row.data = entity
    flag_modified(row, "data")  # JSON is compared by value: say it changed
    stored = set(
        await session.scalars(select(BrokerEntityType.type).where(BrokerEntityType.entity_id == entity["id"]))
    )
    if stored != set(entity["type"]):
        await session.execute(delete(BrokerEntityType).where(BrokerEntityType.entity_id == entity["id"]))
        session.add_all(BrokerEntityType(entity_id=entity["id"], type=t) for t in entity["type"])


def _fill(row: BrokerEntity, entity: dict[str, Any]) -> None:
    row.created_at = parse_datetime(entity["createdAt"])
    row.modified_at = parse_datetime(entity["modifiedAt"])
    box = _bbox(entity)
    row.min_lon, row.min_lat, row.max_lon, row.max_lat = box if box else (None, None, None, None)


async def delete_entity(session: AsyncSession, entity_id: str) -> None:
    row = await _load(session, entity_id)
    if row is None:
        raise NotFound(f"entity {entity_id} does not exist")
    await session.execute(delete(BrokerEntityType).where(BrokerEntityType.entity_id == entity_id))
    record(session, row.data, None)
    await session.delete(row)
    await session.flush()  # gone now, so a second deletion in the same request finds nothing


@dataclass
class EntityQuery:
    """What GET /entities (or POST /entityOperations/query) asks for, with names expanded."""

    types: Sequence[str] | None = None
    ids: Sequence[str] | None = None
    id_pattern: str | None = None
    matches: Callable[[dict[str, Any]], bool] | None = None  # q and scopeQ, compiled by the API
    keep: Callable[[dict[str, Any]], bool] | None = None  # attrs / datasetId presence
    where: Any = None  # an SQL condition on BrokerEntity rows (temporal queries: history in range)
    order: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None  # orderBy
    georel: GeoRel | None = None
    geometry: Geometry | None = None
    geoproperty: str = LOCATION


async def query_entities(
    session: AsyncSession, query: EntityQuery, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Matching entities in creation order, the requested page and the total count."""
    statement = _seen(select(BrokerEntity), session)
    if query.types:
        sharing.require_some_visible(session, query.types)
        # EXISTS, not IN (subquery): the database may start from another index (a geo-query's
        # box) and probe the type rows by key, instead of listing every entity of the type
        typed = select(BrokerEntityType.entity_id).where(
            BrokerEntityType.tenant_code == BrokerEntity.tenant_code,
            BrokerEntityType.entity_id == BrokerEntity.entity_id,
            BrokerEntityType.type.in_(query.types),
        )
        statement = statement.where(typed.exists())
    if query.ids:
        statement = statement.where(BrokerEntity.entity_id.in_(query.ids))
    if query.where is not None:
        statement = statement.where(query.where)
    if query.georel is not None and query.geometry is not None and query.geoproperty == LOCATION:
        box = query.georel.search_bbox(query.geometry)
        if box is not None:
            min_lon, min_lat, max_lon, max_lat = box
            statement = statement.where(
                BrokerEntity.max_lon >= min_lon,
                BrokerEntity.min_lon <= max_lon,
                BrokerEntity.max_lat >= min_lat,
                BrokerEntity.min_lat <= max_lat,
            )
            dialect = session.get_bind().dialect.name
            if dialect == "postgresql":  # the same test, as the GiST index reads it
                stored = func.box(
                    func.point(BrokerEntity.min_lon, BrokerEntity.min_lat),
                    func.point(BrokerEntity.max_lon, BrokerEntity.max_lat),
                )
                asked = func.box(func.point(min_lon, min_lat), func.point(max_lon, max_lat))
                statement = statement.where(stored.op("&&")(asked))
            elif dialect == "sqlite":  # the R*Tree of migration 0012 finds the boxes
                inside = (
                    select(_BOXES.c.entity_id)
                    .select_from(_RTREE.join(_BOXES, _BOXES.c.box_id == _RTREE.c.box_id))
                    .where(
                        _BOXES.c.tenant_code == _tenant(session),
                        _RTREE.c.max_lon >= min_lon,
                        _RTREE.c.min_lon <= max_lon,
                        _RTREE.c.max_lat >= min_lat,
                        _RTREE.c.min_lat <= max_lat,
                    )
                )
                statement = statement.where(BrokerEntity.entity_id.in_(inside))
    statement = statement.order_by(BrokerEntity.created_at, BrokerEntity.entity_id)
    pattern = re.compile(query.id_pattern) if query.id_pattern else None
    found: list[dict[str, Any]] = []
    for row in await session.scalars(statement):
        entity = sharing.limited(session, row.data)  # q, attrs, orderBy see what may be shown only
        if pattern is not None and not pattern.search(entity["id"]):
            continue
        if query.keep is not None and not query.keep(entity):
            continue
        if query.matches is not None and not query.matches(entity):
            continue
        if query.georel is not None and query.geometry is not None and not _geo_match(entity, query):
            continue
        found.append(entity)
    if query.order is not None:
        found = query.order(found)
    return found[offset : offset + limit], len(found)


def _geo_match(entity: dict[str, Any], query: EntityQuery) -> bool:
    assert query.georel is not None
    assert query.geometry is not None
    for instance in entity["attrs"].get(query.geoproperty, ()):
        if instance.get("type") == "GeoProperty" and query.georel.matches(
            query.geometry, parse_geometry(instance["value"])
        ):
            return True
    return False


async def entity_types(session: AsyncSession) -> dict[str, set[str]]:
    """Each entity type of the tenant with the attribute names its entities have."""
    return {t: set(attributes) for t, attributes in (await catalogue(session)).items()}


async def catalogue(session: AsyncSession) -> dict[str, dict[str, set[str]]]:
    """type → attribute → the attribute kinds (Property, Relationship, ...) seen for it."""
    rows = await session.scalars(_seen(select(BrokerEntity.data), session))
    found: dict[str, dict[str, set[str]]] = {}
    for stored in rows:
        entity = sharing.limited(session, stored)
        for entity_type in entity["type"]:
            attributes = found.setdefault(entity_type, {})
            for name, instances in entity["attrs"].items():
                attributes.setdefault(name, set()).update(i["type"] for i in instances)
    return found


async def count_with_attribute(session: AsyncSession, attribute: str) -> int:
    rows = await session.scalars(_seen(select(BrokerEntity.data), session))
    return sum(1 for entity in rows if attribute in sharing.limited(session, entity)["attrs"])


async def count_of_type(session: AsyncSession, entity_type: str) -> int:
    access = sharing.of(session)
    if access is not None and entity_type in access.unseen:
        return 0
    count = await session.scalar(
        select(func.count()).select_from(BrokerEntityType).where(BrokerEntityType.type == entity_type)
    )
    return int(count or 0)
