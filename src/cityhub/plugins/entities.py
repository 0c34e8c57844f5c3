"""Entities for applications: read, write and query the context broker in the hub's own process.

Applications name entities, types and attributes as a client sending no @context does (the NGSI-LD
core context and its default vocabulary): ``{"id": "urn:ngsi-ld:ParkingSpot:1", "type":
"ParkingSpot", "status": {"type": "Property", "value": "free"}}``. Writes join the caller's
transaction and take the broker's own path, so history, subscriptions and other consumers of
:class:`EntitiesChanged` see them. Consume ``EntitiesChanged`` with ``registry.subscribe`` and turn
each change's ``entity`` (stored form, or None once deleted) into this form with
:func:`compact_entity`; ``expand`` gives the stored name of a type or attribute (to compare with a
change's ``types``, ``created``, ``updated`` lists).
"""

from __future__ import annotations

from cityhub.hub.broker.events import EntitiesChanged
from cityhub.hub.broker.local import (
    compact_entity,
    delete_entities,
    expand,
    find_entities,
    read_entity,
    read_history,
    write_entities,
)

__all__ = [
    "EntitiesChanged",
    "compact_entity",
    "delete_entities",
    "expand",
    "find_entities",
    "read_entity",
    "read_history",
    "write_entities",
]
