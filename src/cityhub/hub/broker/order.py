"""``orderBy`` (ETSI GS CIM 009 v1.9, clause 4.23): the order of entities in a query's answer.

``orderBy`` is a comma-separated list of keys, each ``path`` or ``path;asc`` / ``path;desc``: ``id``,
``type``, ``createdAt``, ``modifiedAt``, or an attribute path as ``q`` writes it (``name``,
``name.subProperty``, ``name.observedAt``, ``name[key]``). The first key decides; later keys break
ties, and the broker's own order (creation) breaks the rest. An entity without a value for a key
comes after those that have one, in either direction. Values of different kinds (numbers, text,
…) are ordered by kind first, so that any mix of values has one order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cityhub.hub.broker.q import AttrPath, Expand, attr_values, parse_attr_path
from cityhub.kit.errors import BadRequestData
from cityhub.kit.time import parse_datetime

#: Entity members ordered by directly, not through an attribute.
MEMBERS = ("id", "type", "createdAt", "modifiedAt")


@dataclass(frozen=True, slots=True)
class OrderKey:
    path: AttrPath | str  # a member name, or an attribute path
    descending: bool = False


def parse_order_by(text: str) -> tuple[OrderKey, ...]:
    keys = []
    for item in text.split(","):
        path, _, direction = item.strip().partition(";")
        if direction not in ("", "asc", "desc"):
            raise BadRequestData(f"orderBy direction must be asc or desc, not {direction!r}")
        if not path:
            raise BadRequestData("orderBy has an empty key")
        target: AttrPath | str = path if path in MEMBERS else parse_attr_path(path, "orderBy")
        keys.append(OrderKey(target, direction == "desc"))
    return tuple(keys)


_MISSING = object()


def _value(entity: dict[str, Any], key: OrderKey, expand: Expand) -> Any:
    if isinstance(key.path, str):
        value = entity.get(key.path)
        if key.path == "type":
            return min(value) if value else _MISSING
        if key.path in ("createdAt", "modifiedAt") and isinstance(value, str):
            return parse_datetime(value)
        return _MISSING if value is None else value
    found = attr_values(entity, key.path, expand)
    if not found:
        return _MISSING
    value = found[0]
    return value[0] if isinstance(value, list) and value else value


def _sortable(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, datetime):
        return (3, value)
    return (4, repr(value))


Entities = list[dict[str, Any]]


#: What the caller may sort an entity by: the entity as seen for ordering, given the attributes
#: (IRIs) the keys name (``protection.Disclosure.orderable``: classified attributes absent for a
#: caller without clearance, sensitive ones opened for one with it).
Reveal = Callable[[dict[str, Any], Iterable[str]], dict[str, Any]]


def ordering(
    keys: tuple[OrderKey, ...], expand: Expand, reveal: Reveal | None = None
) -> Callable[[Entities], Entities]:
    """A function that puts a list of (expanded) entities in the order ``keys`` ask for, each
    entity compared as ``reveal`` shows it."""
    names = {expand(key.path.name) for key in keys if not isinstance(key.path, str)}

    def order(entities: Entities) -> Entities:
        if reveal is None or not names:
            seen = {id(entity): entity for entity in entities}
        else:
            seen = {id(entity): reveal(entity, names) for entity in entities}
        ordered = list(entities)
        for key in reversed(keys):  # stable sorts, the least significant key first
            values = [(_value(seen[id(entity)], key, expand), entity) for entity in ordered]
            present = [(value, entity) for value, entity in values if value is not _MISSING]
            present.sort(key=lambda pair: _sortable(pair[0]), reverse=key.descending)
            ordered = [entity for _, entity in present] + [e for v, e in values if v is _MISSING]
        return ordered

    return order
