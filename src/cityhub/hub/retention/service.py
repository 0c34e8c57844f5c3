"""Retention policies: keeping them (per tenant, the session scoped to it) and applying them.

**Applying a policy** at time ``now``: history of the policy's entities observed before
``now - keep_raw`` is downsampled to one instance per entity, attribute, datasetId and ``period``
(periods aligned on 2000-01-01T00:00Z, so every run cuts the same periods); with ``drop_after``,
history observed before ``now - drop_after`` is then deleted. Deletion marks (no observedAt) are
left alone. A policy for every type leaves out the types that have a policy of their own in the
tenant.

**A downsampled instance** stands for the instances of its period: its ``observedAt`` is the
period's start, its ``value`` the first of the policy's methods computed over the period's values
when they are all numbers (the last value otherwise), and its sub-attribute ``downsampled`` (a
JsonProperty) holds every method's result, the period and the number of instances it replaced. A
period holding one instance is left as it is, so applying a policy again changes nothing.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.broker.history import AGGREGATES, parse_duration
from cityhub.hub.broker.models import BrokerAttributeInstance, BrokerEntityType
from cityhub.hub.retention.models import RetentionPolicy
from cityhub.hub.retention.schemas import PolicyCreate, PolicyRead, PolicyUpdate
from cityhub.kit.db import current_tenant
from cityhub.kit.errors import AlreadyExists, BadRequestData, NotFound
from cityhub.kit.time import isoformat, utcnow

DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
#: The sub-attribute a downsampled instance carries its aggregates in.
DOWNSAMPLED = DEFAULT_VOCAB + "downsampled"

Progress = Callable[[int, int], None]


def _epoch(moment: datetime) -> datetime:
    return datetime(2000, 1, 1, tzinfo=moment.tzinfo)


def type_iri(name: str) -> str:
    """A full IRI as given; a bare name in the core context's default ``@vocab``."""
    return name if ":" in name else DEFAULT_VOCAB + name


def _duration(text: str, what: str) -> timedelta:
    try:
        length = parse_duration(text)
    except BadRequestData as error:
        raise BadRequestData(f"{what}: {error.detail}") from None
    if length <= timedelta(0):
        raise BadRequestData(f"{what} must be longer than zero")
    return length


def _check(keep_raw: str, period: str, methods: Sequence[str], drop_after: str | None) -> None:
    raw = _duration(keep_raw, "keep_raw")
    _duration(period, "period")
    unknown = [m for m in methods if m not in AGGREGATES]
    if unknown:
        raise BadRequestData(f"unknown methods {', '.join(unknown)}; use {', '.join(AGGREGATES)}")
    if drop_after is not None and _duration(drop_after, "drop_after") <= raw:
        raise BadRequestData("drop_after must be longer than keep_raw")


def read(policy: RetentionPolicy) -> PolicyRead:
    return PolicyRead(
        id=str(policy.policy_id),
        tenant=policy.tenant_code,
        entity_type=policy.entity_type,
        keep_raw=policy.keep_raw,
        period=policy.period,
        methods=list(policy.methods),
        drop_after=policy.drop_after,
        created_at=policy.created_at,
        modified_at=policy.modified_at,
        last_applied_at=policy.last_applied_at,
        last_outcome=policy.last_outcome,
    )


async def list_policies(session: AsyncSession) -> list[RetentionPolicy]:
    """The policies of the session's tenant (every tenant's on an unscoped session)."""
    statement = select(RetentionPolicy).order_by(
        RetentionPolicy.tenant_code, RetentionPolicy.entity_type.is_not(None), RetentionPolicy.entity_type
    )
    return list(await session.scalars(statement))


async def get_policy(session: AsyncSession, policy_id: str) -> RetentionPolicy:
    try:
        key = uuid.UUID(policy_id)
    except ValueError:
        raise NotFound(f"no retention policy {policy_id}") from None
    found = (await session.scalars(select(RetentionPolicy).where(RetentionPolicy.policy_id == key))).first()
    if found is None:
        raise NotFound(f"no retention policy {policy_id}")
    return found


async def create_policy(session: AsyncSession, body: PolicyCreate) -> RetentionPolicy:
    _check(body.keep_raw, body.period, body.methods, body.drop_after)
    entity_type = type_iri(body.entity_type) if body.entity_type is not None else None
    same = RetentionPolicy.entity_type
    clash = (
        await session.scalars(
            select(RetentionPolicy).where(same.is_(None) if entity_type is None else same == entity_type)
        )
    ).first()
    if clash is not None:
        what = f"entity type {entity_type}" if entity_type else "every entity type"
        raise AlreadyExists(f"the tenant has a retention policy for {what} already: {clash.policy_id}")
    policy = RetentionPolicy(
        entity_type=entity_type,
        keep_raw=body.keep_raw,
        period=body.period,
        methods=list(body.methods),
        drop_after=body.drop_after,
    )
    session.add(policy)
    await session.flush()
    return policy


async def update_policy(session: AsyncSession, policy_id: str, body: PolicyUpdate) -> RetentionPolicy:
    policy = await get_policy(session, policy_id)
    given = body.model_dump(exclude_unset=True)
    if any(given.get(name, "") is None for name in ("keep_raw", "period", "methods")):
        raise BadRequestData("keep_raw, period and methods cannot be removed; drop_after can (null)")
    merged = {
        "keep_raw": policy.keep_raw,
        "period": policy.period,
        "methods": list(policy.methods),
        "drop_after": policy.drop_after,
    } | given
    _check(merged["keep_raw"], merged["period"], merged["methods"], merged["drop_after"])
    for name, value in given.items():
        setattr(policy, name, value)
    policy.modified_at = utcnow()
    await session.flush()
    return policy


async def delete_policy(session: AsyncSession, policy_id: str) -> None:
    await session.delete(await get_policy(session, policy_id))


# -- applying policies ------------------------------------------------------------------------------


@dataclass
class Downsampled:
    entities: int = 0
    read: int = 0
    kept: int = 0
    dropped: int = 0


def aggregate(method: str, values: list[Any]) -> Any:
    """One aggregation method over a period's values, as the temporal API defines them."""
    if method == "totalCount":
        return len(values)
    if method == "distinctCount":
        return len({repr(v) for v in values})
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None
    if method == "sum":
        return sum(numbers)
    if method == "avg":
        return sum(numbers) / len(numbers)
    if method == "min":
        return min(numbers)
    if method == "max":
        return max(numbers)
    if method == "sumsq":
        return sum(n * n for n in numbers)
    mean = sum(numbers) / len(numbers)
    return math.sqrt(sum((n - mean) ** 2 for n in numbers) / len(numbers))  # stddev


def _entity_filter(entity_type: str | None, exclude_types: Sequence[str]) -> list[ColumnElement[bool]]:
    instance = BrokerAttributeInstance
    where: list[ColumnElement[bool]] = []
    if entity_type is not None:
        typed = select(BrokerEntityType.entity_id).where(BrokerEntityType.type == entity_type)
        where.append(instance.entity_id.in_(typed))
    if exclude_types:
        others = select(BrokerEntityType.entity_id).where(BrokerEntityType.type.in_(exclude_types))
        where.append(instance.entity_id.not_in(others))
    return where


async def downsample(
    session: AsyncSession,
    *,
    before: datetime,
    period: timedelta,
    entity_type: str | None = None,
    methods: Sequence[str] | None = None,
    period_text: str | None = None,
    exclude_types: Sequence[str] = (),
    progress: Progress | None = None,
) -> Downsampled:
    """Shrink the history observed before ``before`` to one instance per entity, attribute,
    datasetId and ``period`` (see the module docstring). Without ``methods``, numbers become their
    average and the instance has no ``downsampled`` member; ``period_text`` is how the period is
    written there (ISO 8601 seconds by default). Works entity by entity, each in the
    caller's transaction (the session's tenant scope, if any, applies). ``progress(done, total)``
    is called after each entity."""
    if period <= timedelta(0):
        raise BadRequestData("the downsampling period must be longer than zero")
    instance = BrokerAttributeInstance
    old = (instance.observed_at < before) & instance.deleted_at.is_(None)
    candidates = select(instance.tenant_code, instance.entity_id).where(
        old, *_entity_filter(entity_type, exclude_types)
    )
    keys = [(row[0], row[1]) for row in await session.execute(candidates.distinct())]
    outcome = Downsampled(entities=len(keys))
    epoch = _epoch(before)
    for done, (tenant, entity_id) in enumerate(keys, start=1):
        rows = list(
            await session.scalars(
                select(instance)
                .where(old, instance.tenant_code == tenant, instance.entity_id == entity_id)
                .order_by(instance.observed_at, instance.instance_id)
            )
        )
        groups: dict[tuple[str, str | None, int], list[BrokerAttributeInstance]] = {}
        for row in rows:
            assert row.observed_at is not None
            bucket = (row.observed_at - epoch) // period
            groups.setdefault((row.attribute, row.dataset_id, bucket), []).append(row)
        outcome.read += len(rows)
        for (_, _, bucket), members in groups.items():
            outcome.kept += 1
            if len(members) == 1:
                continue
            start = epoch + period * bucket
            kept = members[-1]
            label = period_text or _period_text(period)
            kept.data = _downsampled(kept.data, members, start, label, methods)
            kept.observed_at = start
            for member in members[:-1]:
                await session.delete(member)
        await session.flush()
        if progress is not None:
            progress(done, len(keys))
    return outcome


def _downsampled(
    data: dict[str, Any],
    members: list[BrokerAttributeInstance],
    start: datetime,
    period_text: str,
    methods: Sequence[str] | None,
) -> dict[str, Any]:
    shown = dict(data)
    values = [m.data.get("value") for m in members]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if methods:
        results = {method: aggregate(method, values) for method in methods}
        if numeric:
            shown["value"] = results[methods[0]]
        shown[DOWNSAMPLED] = {
            "type": "JsonProperty",
            "json": results | {"period": period_text, "instances": len(members)},
        }
    elif numeric:
        shown["value"] = aggregate("avg", values)
    shown["observedAt"] = isoformat(start)
    return shown


def _period_text(period: timedelta) -> str:
    seconds = period.total_seconds()
    return f"PT{seconds:g}S" if seconds % 1 else f"PT{int(seconds)}S"


async def _other_types(session: AsyncSession, policy: RetentionPolicy) -> list[str]:
    """For a policy of every type: the types with a policy of their own in the tenant."""
    if policy.entity_type is not None:
        return []
    rows = await session.scalars(
        select(RetentionPolicy.entity_type).where(RetentionPolicy.entity_type.is_not(None))
    )
    return [t for t in rows if t is not None]


async def apply_policy(
    session: AsyncSession,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> Downsampled:
    """Apply one policy in the caller's transaction, the session scoped to the policy's tenant."""
    assert current_tenant(session) == policy.tenant_code, "apply a policy in a session of its tenant"
    now = now or utcnow()
    exclude = await _other_types(session, policy)
    outcome = await downsample(
        session,
        before=now - parse_duration(policy.keep_raw),
        period=parse_duration(policy.period),
        entity_type=policy.entity_type,
        methods=policy.methods,
        period_text=policy.period,
        exclude_types=exclude,
        progress=progress,
    )
    if policy.drop_after is not None:
        instance = BrokerAttributeInstance
        dropped = await session.execute(
            delete(instance)
            .where(
                instance.tenant_code == policy.tenant_code,
                instance.observed_at < now - parse_duration(policy.drop_after),
                *_entity_filter(policy.entity_type, exclude),
            )
            .execution_options(synchronize_session=False)
        )
        outcome.dropped = int(getattr(dropped, "rowcount", 0) or 0)
    policy.last_applied_at = now
    policy.last_outcome = asdict(outcome)
    return outcome


async def try_lock(session: AsyncSession, policy: RetentionPolicy) -> bool:
    """Whether this transaction may apply ``policy``: on PostgreSQL, one hub process at a time
    (a transaction-level advisory lock; another process holding it means the policy is being
    applied now); SQLite has one writer at a time anyway."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = policy.policy_id.int & ((1 << 63) - 1)
    locked = await session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
    return bool(locked.scalar())


async def policy_keys(session: AsyncSession) -> list[tuple[str, uuid.UUID]]:
    """(tenant, policy id) of every policy of every tenant, on an unscoped session."""
    rows = await session.execute(
        select(RetentionPolicy.tenant_code, RetentionPolicy.policy_id).order_by(
            RetentionPolicy.tenant_code, func.coalesce(RetentionPolicy.entity_type, "")
        )
    )
    return [(row[0], row[1]) for row in rows]
