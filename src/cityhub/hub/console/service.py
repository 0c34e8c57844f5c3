"""The console's data: the live feed of entity changes, and lean map layers.

The live feed: entity changes, as the broker announces them, fanned out to open streams.

Each hub process subscribes once to :class:`EntitiesChanged` (a per-process consumer, so every
process sees every change) and hands each change to the streams open on it whose tenant and entity
types match. A stream that does not keep up loses its oldest changes, never the hub's memory: its
queue is bounded and an overflow is reported to the browser as a ``resync`` event, on which it
reloads its layers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.bus import Event
from cityhub.hub.broker import sharing
from cityhub.hub.broker.context import core_context
from cityhub.hub.broker.events import EntitiesChanged
from cityhub.hub.broker.local import compact_entity
from cityhub.hub.broker.models import BrokerEntity, BrokerEntityType
from cityhub.hub.broker.ngsi import compact_entity as compact_entity_as
from cityhub.hub.broker.protection import Disclosure
from cityhub.hub.broker.service import LOCATION

#: Changes one stream may have waiting before it is told to reload.
QUEUE_SIZE = 1000


@dataclass(eq=False)
class Listener:
    """One open stream: a tenant, the entity types it wants (empty: all), what of them it may see
    (``access``: the data catalog's sharing rules for the caller, hidden types and types read in
    part; None: everything), whether the caller sees personal
    information as written (``clear``; masked otherwise), whether what it is handed unmasked is
    noted for the audit chain (``audited``: ``seen`` entity ids, ``attributes`` names) and its
    waiting changes."""

    tenant: str
    types: frozenset[str]
    access: sharing.TypeAccess | None = None
    clear: bool = True
    audited: bool = False
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False
    seen: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)

    def offer(self, message: dict[str, Any], noted: Disclosure | None = None) -> None:
        """Queue a change; ``noted``: what its message shows unmasked, noted when audited."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            return
        if self.audited and noted is not None:
            self.seen |= noted.entities
            self.attributes |= noted.attributes

    def take_noted(self) -> dict[str, Any] | None:
        """What the stream was handed unmasked since the last call, as a ``personal.read``
        record's detail (entity ids and attribute names, never values); None: nothing."""
        if not self.seen:
            return None
        noted = Disclosure(clear=True, audited=True, entities=self.seen, attributes=self.attributes).noted()
        self.seen, self.attributes = set(), set()
        return noted


class LiveFeed:
    """The streams open on this process and the bus handler that feeds them."""

    def __init__(self) -> None:
        self.listeners: set[Listener] = set()

    def open(
        self,
        tenant: str,
        types: Iterable[str],
        access: sharing.TypeAccess | None = None,
        *,
        clear: bool = True,
        audited: bool = False,
    ) -> Listener:
        listener = Listener(tenant, frozenset(types), access, clear, audited)
        self.listeners.add(listener)
        return listener

    def close(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    async def on_changes(self, event: Event) -> None:
        assert isinstance(event, EntitiesChanged)
        listeners = [listener for listener in self.listeners if listener.tenant == event.tenant]
        if not listeners:
            return
        for change in event.changes:
            # the message as a caller with, without clearance sees it, with all attributes or
            # those it may see of a type read in part, and what it shows unmasked
            shown: dict[tuple[bool, frozenset[str] | None], tuple[dict[str, Any], Disclosure]] = {}
            for listener in listeners:
                seen = sharing.seen_change(listener.access, change)
                if seen is None:
                    continue
                allowed = listener.access.allowed(change["types"]) if listener.access is not None else None
                key = (listener.clear, allowed)
                if key not in shown:
                    disclosure = Disclosure(clear=listener.clear, audited=listener.clear)
                    shown[key] = (message_of(seen, disclosure), disclosure)
                message, disclosure = shown[key]
                if not listener.types or message["type"] in listener.types:
                    listener.offer(message, disclosure)


def message_of(change: dict[str, Any], disclosure: Disclosure) -> dict[str, Any]:
    """What the browser gets for one change: the operation, the entity's id and short type, and the
    entity after it in normalized NGSI-LD with short names (None once deleted), its personal
    information shown as ``disclosure`` allows (sensitive values decrypted, or masked)."""
    stored = change.get("entity")
    entity = compact_entity(disclosure.entity(stored)) if stored is not None else None
    short_type = core_context().compact(change["types"][0])
    return {"op": change["op"], "id": change["id"], "type": short_type, "entity": entity}


#: The most features one layer request answers; a tenant with more is told its layer is cut.
MAX_FEATURES = 50_000


async def layer_features(
    session: AsyncSession,
    entity_types: Sequence[str],
    attributes: Sequence[str] | None,
    disclosure: Disclosure,
    *,
    limit: int = MAX_FEATURES,
) -> tuple[list[dict[str, Any]], bool]:
    """The entities of the given types (IRIs) of the session's tenant as lean GeoJSON features, in
    creation order: id, geometry (``location``) and ``attributes`` (IRIs; None: all) as keyValues
    properties (``type`` among them), shown as ``disclosure`` allows. Returns the features and
    whether more than ``limit`` entities were left out.

    With ``attributes`` the database hands over only the entity's types, location and those
    attributes (JSON paths), not whole entities: every layer of a map, ten thousand stations
    included, is one query of small rows, where the broker's query reads every entity of the type
    for each page it answers."""
    data = BrokerEntity.data
    typed = select(BrokerEntityType.entity_id).where(
        BrokerEntityType.tenant_code == BrokerEntity.tenant_code,
        BrokerEntityType.entity_id == BrokerEntity.entity_id,
        BrokerEntityType.type.in_(entity_types),
    )
    if attributes is None:
        columns: list[Any] = [BrokerEntity.entity_id, data]
    else:
        columns = [BrokerEntity.entity_id, data[("type",)], data[("attrs", LOCATION)]]
        columns += [data[("attrs", name)] for name in attributes]
    statement = (
        select(*columns)
        .where(typed.exists())
        .order_by(BrokerEntity.created_at, BrokerEntity.entity_id)
        .limit(limit + 1)
    )
    visible = sharing.visible_clause(session)  # datasets the caller's department may not read
    if visible is not None:
        statement = statement.where(visible)
    rows = (await session.execute(statement)).all()
    ctx = core_context()
    features = []
    for row in rows[:limit]:
        entity_id = row[0]
        if attributes is None:
            stored = row[1]
            location = stored["attrs"].get(LOCATION)
            attrs = {name: i for name, i in stored["attrs"].items() if name != LOCATION}
            types = stored["type"]
        else:
            types, location = row[1], row[2]
            attrs = {name: value for name, value in zip(attributes, row[3:], strict=True) if value}
        allowed = sharing.allowed(session, types)  # a type readable in part: those attributes only
        if allowed is not None:
            attrs = {name: value for name, value in attrs.items() if name in allowed}
            location = location if LOCATION in allowed else None
        entity = disclosure.entity({"id": entity_id, "type": types, "attrs": attrs})
        properties = compact_entity_as(entity, ctx, fmt="keyValues")
        del properties["id"]
        features.append(
            {"type": "Feature", "id": entity_id, "geometry": _geometry(location), "properties": properties}
        )
    return features, len(rows) > limit


def _geometry(instances: Any) -> Any:
    """The default GeoProperty instance's value (the one without a datasetId), else the first."""
    if not isinstance(instances, list):
        return None
    found = [i for i in instances if isinstance(i, dict) and i.get("type") == "GeoProperty"]
    default = next((i for i in found if "datasetId" not in i), found[0] if found else None)
    return default.get("value") if default is not None else None
