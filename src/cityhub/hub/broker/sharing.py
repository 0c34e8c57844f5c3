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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    the refusal's message. ``writing``: the request changes data (every locked type is hidden)."""

    hidden: frozenset[str] = frozenset()
    locked: frozenset[str] = frozenset()
    datasets: Mapping[str, str] = field(default_factory=dict)
    writing: bool = False

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

    def require_writable(self, types: Iterable[str], what: str) -> None:
        denied = self.locked.intersection(types)
        if denied:
            raise Forbidden(
                f"{what} would belong to dataset {self._name(denied)}, which only its department writes"
            )


def attach(session: AsyncSession | Session, access: TypeAccess | None) -> None:
    session.info[_SESSION_KEY] = access


def of(session: AsyncSession | Session) -> TypeAccess | None:
    access = session.info.get(_SESSION_KEY)
    return access if isinstance(access, TypeAccess) else None


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
