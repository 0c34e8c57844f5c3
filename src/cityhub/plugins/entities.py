"""Entities for applications: read, write and query the context broker in the hub's own process.

Applications name entities, types and attributes as a client sending no @context does (the NGSI-LD
core context and its default vocabulary): ``{"id": "urn:ngsi-ld:ParkingSpot:1", "type":
"ParkingSpot", "status": {"type": "Property", "value": "free"}}``. Writes join the caller's
transaction and take the broker's own path, so history, subscriptions and other consumers of
:class:`EntitiesChanged` see them. Consume ``EntitiesChanged`` with ``registry.subscribe`` and turn
each change's ``entity`` (stored form, or None once deleted) into this form with
:func:`compact_entity`; ``expand`` gives the stored name of a type or attribute (to compare with a
change's ``types``, ``created``, ``updated`` lists).

An endpoint that answers with entity data takes :data:`EntitySession` instead of ``DbSession``:
its reads then keep to the data catalog's rules for the caller, as the broker's API does (entity
types of datasets the caller's department may not read are refused with 403, types read in part
show the attributes opened only).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.broker import sharing
from cityhub.hub.broker.events import EntitiesChanged
from cityhub.hub.broker.local import (
    compact_entity,
    delete_entities,
    expand,
    find_entities,
    read_entity,
    read_histories,
    read_history,
    write_entities,
)
from cityhub.hub.catalog import access
from cityhub.kit.web import DbSession, RequestTenant
from cityhub.systems.security.policy import Principal


async def entity_session(request: Request, session: DbSession, tenant: RequestTenant) -> AsyncSession:
    """The request's session, its entity reads held to the caller's datasets in ``tenant`` (with
    access control off, or for an administrator, unrestricted)."""
    principal = getattr(request.state, "principal", None)
    security = getattr(request.app.state, "security", None)
    if isinstance(principal, Principal) and security is not None:
        caller = access.caller_of(principal, tenant, cascade=bool(security.cascade))
        sharing.attach(session, await access.type_access(session, caller, writing=False))
    return session


EntitySession = Annotated[AsyncSession, Depends(entity_session, scope="function")]

__all__ = [
    "EntitiesChanged",
    "EntitySession",
    "compact_entity",
    "delete_entities",
    "expand",
    "find_entities",
    "read_entity",
    "read_histories",
    "read_history",
    "write_entities",
]
