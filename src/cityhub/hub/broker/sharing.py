"""Which entity types a request may read and write, as the broker applies it.

The decision is the data catalog's (:mod:`cityhub.hub.catalog.access`): departments own datasets,
and a dataset's sharing class says who else reads it. Access control computes a
:class:`TypeAccess` for each broker request and sets it on the request (``TYPE_ACCESS``);
:class:`~cityhub.hub.broker.http.BrokerRequest` puts it on the request's session, and the storage
functions of :mod:`cityhub.hub.broker.service` — the only way the endpoints reach entities — apply
it there, so every operation (queries, retrieval, the temporal API, batches, discovery) is covered
by the same few lines:

- a query never selects an entity of a hidden type: the condition is part of the SQL statement,
  and a query whose named types are all hidden is refused (403);
- loading one entity of a hidden type (to show it or to change it) is refused (403);
- in a write request every type it may not write counts as hidden, and so does the new type of
  an entity being written: an entity is changed only when each of its types, before and after,
  may be written.

An entity of several types is hidden when any of them is. Without a ``TypeAccess`` (access control
off, or the hub's own code working on a session of its own) nothing is restricted.

A type may also be readable **in part** (``fields``: an approval that names the attributes it
opens): every entity of it is loaded with those attributes only (:func:`limited`), before a query's
``q``, ``attrs``, ``orderBy`` or geo-query looks at it, so nothing of the other attributes is
shown, matched or ordered by.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cityhub.hub.broker.models import BrokerEntity, BrokerEntityType
from cityhub.kit.errors import Forbidden

#: ``request.state`` attribute access control sets on each broker request it lets through.
TYPE_ACCESS = "type_access"
_SESSION_KEY = "cityhub.type_access"


@dataclass(frozen=True)
class TypeAccess:
    """``hidden``: types whose entities the caller may not see; ``locked``: types the caller may
    not write (a superset of ``hidden``); ``datasets``: the dataset code of each such type, for
    the refusal's message. ``writing``: the request changes data (every locked type is hidden).
    ``fields``: types readable in part, with the attribute IRIs that may be seen (all locked).
    ``department``: the caller's department, whose access this is (a subscription made with it
    is judged by that department's access at each notification)."""

    hidden: frozenset[str] = frozenset()
    locked: frozenset[str] = frozenset()
    datasets: Mapping[str, str] = field(default_factory=dict)
    writing: bool = False
    fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    department: uuid.UUID | None = None

    @property
    def unseen(self) -> frozenset[str]:
        """The types this request may not load."""
        return self.hidden | self.locked if self.writing else self.hidden

    def _name(self, types: Iterable[str]) -> str:
        codes = sorted({self.datasets.get(t, t) for t in types})
        return ", ".join(codes)

    def require_visible(self, types: Iterable[str], what: str) -> None:
        denied = self.unseen.intersection(types)
        if denied:
            verb = "changed" if self.writing else "read"
            raise Forbidden(f"{what} belongs to dataset {self._name(denied)}, which may not be {verb} here")

    def allowed(self, types: Iterable[str]) -> frozenset[str] | None:
        """The attributes an entity of ``types`` shows (None: all of them). An entity of several
        types readable in part shows what every one of them opens."""
        limits = [self.fields[t] for t in types if t in self.fields]
        if not limits:
            return None
        return frozenset.intersection(*limits)

    def limit(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        """``entity`` with only the attributes it may show: the entity itself when all (shared,
        not copied), else a shallow copy with a new attribute map."""
        allowed = self.allowed(entity["type"]) if self.fields else None
        if allowed is None:
            return entity  # type: ignore[return-value]
        attrs = {name: value for name, value in entity["attrs"].items() if name in allowed}
        return {**entity, "attrs": attrs}

    def require_writable(self, types: Iterable[str], what: str) -> None:
        denied = self.locked.intersection(types)
        if denied:
            raise Forbidden(
                f"{what} would belong to dataset {self._name(denied)}, which only its department writes"
            )


#: The access of a department (None: of none) in the session's tenant, by the data catalog's rules:
#: what the notifier keeps a restricted subscription to.
DepartmentAccess = Callable[[AsyncSession, "uuid.UUID | None"], Awaitable[TypeAccess]]


def attach(session: AsyncSession | Session, access: TypeAccess | None) -> None:
    session.info[_SESSION_KEY] = access


def of(session: AsyncSession | Session) -> TypeAccess | None:
    access = session.info.get(_SESSION_KEY)
    return access if isinstance(access, TypeAccess) else None


def limited(session: AsyncSession | Session, entity: dict[str, Any]) -> dict[str, Any]:
    """``entity`` as the request may see it: only the attributes a field-level approval opens
    for a type readable in part; the entity itself otherwise."""
    access = of(session)
    return entity if access is None or not access.fields else access.limit(entity)


def allowed(session: AsyncSession | Session, types: Iterable[str]) -> frozenset[str] | None:
    """The attributes the request may see of an entity of ``types`` (None: all)."""
    access = of(session)
    return None if access is None or not access.fields else access.allowed(types)


def require_visible(session: AsyncSession, entity: Mapping[str, Any]) -> None:
    access = of(session)
    if access is not None:
        access.require_visible(entity["type"], f"entity {entity['id']}")


def require_writable(session: AsyncSession, entity: Mapping[str, Any]) -> None:
    access = of(session)
    if access is not None:
        access.require_writable(entity["type"], f"entity {entity['id']}")


def visible_clause(session: AsyncSession) -> ColumnElement[bool] | None:
    """The SQL condition a ``broker_entity`` row must meet to be seen (None: every row)."""
    access = of(session)
    if access is None or not access.unseen:
        return None
    # Both databases would otherwise probe the type index once per hidden type for every
    # candidate row; written so, an entity's own type rows (one or two) are read by the key's
    # prefix and compared with the hidden types instead.
    entity_type: ColumnElement[str] = BrokerEntityType.type + ""
    denied = select(BrokerEntityType.entity_id).where(
        BrokerEntityType.tenant_code == BrokerEntity.tenant_code,
        BrokerEntityType.entity_id == BrokerEntity.entity_id,
        entity_type.in_(sorted(access.unseen)),
    )
    return ~denied.exists()


def require_some_visible(session: AsyncSession, types: Iterable[str]) -> None:
    """A query that names types only this request may not see is refused rather than answered
    empty: the caller learns why (the types' dataset is listed in the catalog anyway)."""
    access = of(session)
    named = set(types)
    if access is not None and named and named <= access.unseen:
        access.require_visible(named, "every entity type asked for")


def seen_change(access: TypeAccess | None, change: dict[str, Any]) -> dict[str, Any] | None:
    """A change event's ``change`` as one with ``access`` may see it (a restricted subscription,
    the console's live feed): nothing of an entity of a type it may not read; of a type it reads
    in part, the attributes it may see only (an update of none of them is no change to it)."""
    if access is None:
        return change
    types = change["types"]
    if access.hidden.intersection(types):
        return None
    allowed = access.allowed(types)
    if allowed is None:
        return change
    seen = {
        name: [attribute for attribute in change[name] if attribute in allowed]
        for name in ("created", "updated", "deleted")
    }
    if change["op"] == "update" and not any(seen.values()):
        return None
    return (
        change
        | seen
        | {
            "entity": access.limit(change["entity"]) if change["entity"] is not None else None,
            "previous": {name: value for name, value in change["previous"].items() if name in allowed},
        }
    )
