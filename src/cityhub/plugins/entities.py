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

from collections.abc import Awaitable, Callable
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
    history_revisions,
    read_entity,
    read_histories,
    read_history,
    write_entities,
)
from cityhub.kit.errors import Forbidden
from cityhub.kit.web import DbSession, RequestTenant
from cityhub.systems.security.policy import Principal


async def entity_session(request: Request, session: DbSession, tenant: RequestTenant) -> AsyncSession:
    """The request's session, its entity reads held to the caller's datasets in ``tenant`` (with
    access control off, or for an administrator, unrestricted)."""
    principal = getattr(request.state, "principal", None)
    security = getattr(request.app.state, "security", None)
    if isinstance(principal, Principal) and security is not None:
        sharing.attach(session, await security.type_access(principal, tenant, writing=False))
    return session


EntitySession = Annotated[AsyncSession, Depends(entity_session, scope="function")]


def reads_types(*names: str) -> Callable[[Request, str], Awaitable[None]]:
    """A dependency for an application's routes whose answers are derived from entities of the
    types ``names`` (a live road network built from sensor readings, statistics, a component
    inventory): they cannot be cut to what a caller may see entity by entity, so a caller whose
    department may not read those datasets whole gets 403 naming them, as the broker would refuse
    the entities themselves. With access control off, or for an administrator, nothing is checked.
    Use as ``APIRouter(dependencies=[Depends(reads_types("TrafficFlowObserved"))])``."""
    return _dataset_check(names, writing=False)


def writes_types(*names: str) -> Callable[[Request, str], Awaitable[None]]:
    """As :func:`reads_types`, for routes that change entities of ``names``: only the department
    that owns their datasets (and administrators) may."""
    return _dataset_check(names, writing=True)


def _dataset_check(names: tuple[str, ...], *, writing: bool) -> Callable[[Request, str], Awaitable[None]]:
    iris = [expand(name) for name in names]

    async def check(request: Request, tenant: RequestTenant) -> None:
        principal = getattr(request.state, "principal", None)
        security = getattr(request.app.state, "security", None)
        if not isinstance(principal, Principal) or security is None:
            return
        found: sharing.TypeAccess | None = await security.type_access(principal, tenant, writing=writing)
        if found is None:
            return
        found.require_visible(iris, "what this answers from")
        partial = [iri for iri in iris if iri in found.fields]
        if partial:
            raise Forbidden(
                f"what this answers from belongs to dataset {found.datasets.get(partial[0], partial[0])}, "
                "which this department may read in part only"
            )

    return check


__all__ = [
    "EntitiesChanged",
    "EntitySession",
    "compact_entity",
    "delete_entities",
    "expand",
    "find_entities",
    "history_revisions",
    "read_entity",
    "read_histories",
    "read_history",
    "reads_types",
    "write_entities",
    "writes_types",
]
