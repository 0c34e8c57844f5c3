"""What the broker tells the rest of the hub: every committed change of an entity.

The write paths of ``service`` call :func:`record` with the entity before and after the change.
Changes collect on the session and, just before it commits, go into the outbox as
:class:`EntitiesChanged` events, in the same transaction as the change itself: a change that
commits is always announced, one that rolls back never is. Subscriptions (``notifier``) and
applications (rules, cockpits) consume these events from the bus.

A change carries the entity after it (``entity``, None once deleted) and, of the attributes that
changed, their instances before it (``previous``), which is what ``showChanges`` and deletion
notifications need, without shipping whole entities twice; a deletion also carries the deleted
entity's types, scopes and timestamps (``before``), and ``unscoped`` says an update deleted the scope.

Context source registrations are announced the same way, as :class:`RegistrationsChanged`: each
change carries the registration before and after it (as stored: its members and the @context they
were written in), which is what csource subscriptions need to tell a newly matching registration
from an updated one or one that no longer matches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cityhub.bus import Event
from cityhub.bus.outbox import enqueue
from cityhub.kit.db import current_tenant
from cityhub.kit.time import isoformat, utcnow

_PENDING_KEY = "cityhub.broker.changes"
_PENDING_REGISTRATIONS_KEY = "cityhub.broker.registration_changes"
#: Changes per event: a 1,000-entity batch becomes ten events, each well under NATS's 1 MiB limit.
CHUNK = 100

#: Called with (session, tenant, changes) just before commit, before the changes are announced;
#: the temporal store hooks in here to keep its history in the same transaction.
BeforeCommit = Callable[[Session, str, list[dict[str, Any]]], None]
_before_commit: list[BeforeCommit] = []


class EntitiesChanged(Event):
    """Entities of one tenant changed in one transaction. ``tenant`` is the NGSI-LD tenant name."""

    event_type = "broker.entities_changed"
    plain_json_fields = frozenset({"changes"})  # entities as stored: JSON through and through

    changes: list[dict[str, Any]]


class RegistrationsChanged(Event):
    """Context source registrations of one tenant changed in one transaction. Each change is
    ``{"op", "id", "at", "before", "after"}``; ``before`` and ``after`` (None when created, deleted)
    are ``{"data", "context"}``: the registration's members as stored and its @context."""

    event_type = "broker.registrations_changed"

    changes: list[dict[str, Any]]


def on_before_commit(hook: BeforeCommit) -> BeforeCommit:
    _before_commit.append(hook)
    return hook


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """The change from ``before`` to ``after`` (either may be None: created, deleted)."""
    old = before["attrs"] if before else {}
    new = after["attrs"] if after else {}
    created = [name for name in new if name not in old]
    deleted = [name for name in old if name not in new]
    updated = [name for name in new if name in old and new[name] != old[name]]
    subject = after if after is not None else before
    assert subject is not None
    if before is None:
        op = "create"
    elif after is None:
        op = "delete"
    else:
        op = "update"
    return {
        "op": op,
        "id": subject["id"],
        "at": after["modifiedAt"] if after is not None else isoformat(utcnow()),
        "types": list(subject["type"]),
        "entity": after,
        "before": _shell(before) if op == "delete" and before is not None else None,
        "created": created,
        "updated": updated,
        "deleted": deleted,
        "previous": {name: old[name] for name in (*updated, *deleted)},
        # the scope was deleted (the history keeps a deletion mark, as for an attribute)
        "unscoped": bool(before and after and before.get("scope") and not after.get("scope")),
    }


def _shell(entity: dict[str, Any]) -> dict[str, Any]:
    """The entity without its attributes: its types and scopes before the change."""
    return {key: value for key, value in entity.items() if key != "attrs"}


def record(
    session: AsyncSession | Session, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """Note a change of one entity; it is announced when the session commits."""
    _note(session, _PENDING_KEY, diff(before, after))


def record_registration(
    session: AsyncSession | Session,
    registration_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Note a change of one context source registration (``before``/``after``: ``{"data",
    "context"}``, None when created or deleted); it is announced when the session commits."""
    op = "create" if before is None else "delete" if after is None else "update"
    change = {"op": op, "id": registration_id, "at": isoformat(utcnow()), "before": before, "after": after}
    _note(session, _PENDING_REGISTRATIONS_KEY, change)


def _note(session: AsyncSession | Session, key: str, change: dict[str, Any]) -> None:
    """Keep ``change`` on the session, by tenant, under ``key`` until it commits."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    tenant = current_tenant(sync)
    assert tenant is not None, "broker sessions are scoped to a tenant"
    sync.info.setdefault(key, {}).setdefault(tenant, []).append(change)


@event.listens_for(Session, "before_commit")
def _announce(session: Session) -> None:
    pending: dict[str, list[dict[str, Any]]] = session.info.pop(_PENDING_KEY, {})
    for tenant, changes in pending.items():
        for hook in _before_commit:
            hook(session, tenant, changes)
        for start in range(0, len(changes), CHUNK):
            enqueue(session, EntitiesChanged(tenant=tenant, changes=changes[start : start + CHUNK]))
    registrations: dict[str, list[dict[str, Any]]] = session.info.pop(_PENDING_REGISTRATIONS_KEY, {})
    for tenant, changes in registrations.items():
        for start in range(0, len(changes), CHUNK):
            enqueue(session, RegistrationsChanged(tenant=tenant, changes=changes[start : start + CHUNK]))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
    session.info.pop(_PENDING_REGISTRATIONS_KEY, None)
