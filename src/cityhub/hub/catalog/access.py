"""Who may read and write a dataset: the rules, in one place, for the broker and the catalog alike.

- A user of the **owning department** reads and writes the dataset.
- **Administrators** (platform administrators, and holders of the ``admin`` role in the tenant or,
  by the city-sees-counties policy, above it) read and write every dataset: they are the custodians
  who register datasets and hand them between departments.
- **Other departments** (of the tenant, or of a city above a county) read ``unconditional``
  datasets; ``conditional`` ones only while an approved sharing request of theirs is in force
  (only the attributes the approvals name, when they all name some); ``not_shared`` ones never.
  Nobody outside the owner writes.
- A user **without a department** (a person not yet placed, a system client) is outside every
  department: unconditional datasets only, no writes.
- The catalog lists the entries of unconditional and conditional datasets to every reader of the
  tenant (a department must find a conditional dataset to apply for it); a not-shared dataset's
  entry only to its owner and administrators.
- An entity type in **no dataset** is not the catalog's to decide: the caller's role in the tenant
  does, as before the catalog existed.

These rules sit on top of the role check, never instead of it: the guard has already refused a
caller without ``data:read`` (or ``data:write``) in the tenant.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cityhub.hub.broker.sharing import TypeAccess
from cityhub.hub.catalog.models import (
    APPROVED,
    CONDITIONAL,
    NOT_SHARED,
    UNCONDITIONAL,
    Dataset,
    DatasetType,
    SharingRequest,
)
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.time import utcnow
from cityhub.systems.security.policy import Principal


@dataclass(frozen=True)
class Caller:
    """What the rules need of a caller in one tenant."""

    name: str
    department_id: uuid.UUID | None
    admin: bool

    @classmethod
    def unrestricted(cls, name: str = "anonymous") -> Caller:
        """Access control is off (development): every dataset is open."""
        return cls(name=name, department_id=None, admin=True)


def caller_of(principal: Principal | None, tenant: str, *, cascade: bool) -> Caller:
    """The catalog's view of the caller in ``tenant``; without access control, unrestricted."""
    if principal is None:
        return Caller.unrestricted()
    admin = principal.platform_admin or "admin" in principal.roles_in(tenant, cascade=cascade)
    return Caller(name=principal.username, department_id=principal.department_id, admin=admin)


def owns(caller: Caller, department_id: uuid.UUID) -> bool:
    return caller.department_id is not None and caller.department_id == department_id


def may_write(caller: Caller, department_id: uuid.UUID) -> bool:
    return caller.admin or owns(caller, department_id)


def may_read(caller: Caller, department_id: uuid.UUID, sharing: str, approved: bool) -> bool:
    if may_write(caller, department_id) or sharing == UNCONDITIONAL:
        return True
    return sharing == CONDITIONAL and approved and caller.department_id is not None


def may_list(caller: Caller, department_id: uuid.UUID, sharing: str) -> bool:
    return sharing != NOT_SHARED or may_write(caller, department_id)


async def approvals(
    session: AsyncSession, department_id: uuid.UUID | None, now: datetime | None = None
) -> dict[uuid.UUID, frozenset[str] | None]:
    """Datasets of the session's tenant that ``department_id`` holds an approval in force for,
    with the attributes the approvals open (None: the whole dataset; several approvals of one
    dataset open what any of them does)."""
    if department_id is None:
        return {}
    moment = now or utcnow()
    rows = await session.execute(
        select(SharingRequest.dataset_id, SharingRequest.fields).where(
            SharingRequest.applicant_department_id == department_id,
            SharingRequest.status == APPROVED,
            SharingRequest.starts_at <= moment,
            SharingRequest.expires_at > moment,
        )
    )
    found: dict[uuid.UUID, frozenset[str] | None] = {}
    for dataset_id, fields in rows:
        if dataset_id in found and found[dataset_id] is None:
            continue
        if not fields:
            found[dataset_id] = None
        else:
            found[dataset_id] = (found.get(dataset_id) or frozenset()) | frozenset(fields)
    return found


async def approved_datasets(
    session: AsyncSession, department_id: uuid.UUID | None, now: datetime | None = None
) -> set[uuid.UUID]:
    """Datasets of the session's tenant that ``department_id`` holds an approval in force for."""
    return set(await approvals(session, department_id, now))


async def type_access(session: AsyncSession, caller: Caller, *, writing: bool) -> TypeAccess | None:
    """The broker's restriction for ``caller`` in the session's tenant: None for administrators
    (nothing restricted); for everyone else a :class:`TypeAccess`, empty where the tenant has no
    datasets the caller does not own (it still names the caller's department, for subscriptions)."""
    if caller.admin:
        return None
    rows = (
        await session.execute(
            select(
                DatasetType.entity_type, Dataset.id, Dataset.code, Dataset.department_id, Dataset.sharing
            ).join(Dataset, Dataset.id == DatasetType.dataset_id)
        )
    ).all()
    foreign = [row for row in rows if not may_write(caller, row[3])]
    if not foreign:
        return TypeAccess(writing=writing, department=caller.department_id)
    approved = await approvals(session, caller.department_id)
    hidden: set[str] = set()
    locked: set[str] = set()
    fields: dict[str, frozenset[str]] = {}
    codes: dict[str, str] = {}
    for entity_type, dataset_id, code, owner, sharing in foreign:
        locked.add(entity_type)
        codes[entity_type] = code
        if not may_read(caller, owner, sharing, dataset_id in approved):
            hidden.add(entity_type)
        elif sharing == CONDITIONAL and (opened := approved.get(dataset_id)) is not None:
            fields[entity_type] = opened  # an approval of some attributes only
    return TypeAccess(
        hidden=frozenset(hidden),
        locked=frozenset(locked),
        datasets=codes,
        writing=writing,
        fields=fields,
        department=caller.department_id,
    )


def readable(caller: Caller, datasets: Iterable[Dataset], approved: set[uuid.UUID]) -> list[Dataset]:
    return [d for d in datasets if may_read(caller, d.department_id, d.sharing, d.id in approved)]


async def department_access(session: AsyncSession, department_id: uuid.UUID | None) -> TypeAccess:
    """What a department (None: a caller of none) may read in the session's tenant now: the
    notifier keeps the subscriptions of a restricted caller to it."""
    caller = Caller(name="subscription", department_id=department_id, admin=False)
    access = await type_access(session, caller, writing=False)
    assert access is not None, "a caller who is not an administrator is always restricted"
    return access


#: How long a process keeps a department's access before reading the catalog again. A change made
#: through this process clears it at once; one made by another hub process, or an approval that
#: reaches its end, is seen within this time.
ACCESS_TTL = 1.0
_CATALOG_MODELS = (Dataset, DatasetType, SharingRequest)
_CHANGED_KEY = "cityhub.catalog_changed"
_CACHES: weakref.WeakSet[AccessCache] = weakref.WeakSet()


class AccessCache:
    """:func:`type_access` per tenant, department and read/write, kept for :data:`ACCESS_TTL`:
    the guard needs it on every broker request, and reading it took a connection and two queries
    (a third of a GET by id on PostgreSQL). Every cache of the process is cleared when a
    transaction that changed the catalog commits."""

    def __init__(self, ttl: float = ACCESS_TTL) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, uuid.UUID | None, bool], tuple[float, TypeAccess]] = {}
        _CACHES.add(self)

    async def get(
        self, session_factory: Any, tenant: str, caller: Caller, *, writing: bool
    ) -> TypeAccess | None:
        """The caller's access in ``tenant``, from the cache or read with a session of
        ``session_factory`` (an ``async_sessionmaker``) scoped to the tenant."""
        if caller.admin:
            return None
        key = (tenant, caller.department_id, writing)
        kept = self._entries.get(key)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        async with session_factory() as session:
            scope_to_tenant(session, tenant)
            access = await type_access(session, caller, writing=writing)
        assert access is not None
        if len(self._entries) >= 10_000:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, access)
        return access

    def clear(self) -> None:
        self._entries.clear()


@event.listens_for(Session, "after_flush")
def _note_catalog_change(session: Session, _context: object) -> None:
    if _CHANGED_KEY in session.info:
        return
    for item in (*session.new, *session.dirty, *session.deleted):
        if isinstance(item, _CATALOG_MODELS):
            session.info[_CHANGED_KEY] = True
            return


@event.listens_for(Session, "do_orm_execute")
def _note_catalog_statement(state: Any) -> None:
    """Bulk ``update``/``delete`` statements (the expiry task's) bypass the flush."""
    mapper = state.bind_mapper
    if (state.is_update or state.is_delete) and mapper is not None and mapper.class_ in _CATALOG_MODELS:
        state.session.info[_CHANGED_KEY] = True


@event.listens_for(Session, "after_commit")
def _clear_caches(session: Session) -> None:
    if session.info.pop(_CHANGED_KEY, False):
        for cache in list(_CACHES):
            cache.clear()


@event.listens_for(Session, "after_rollback")
def _forget_change(session: Session) -> None:
    session.info.pop(_CHANGED_KEY, None)
