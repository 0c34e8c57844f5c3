"""Re-encryption of stored personal information under the current data key.

``cityhub security rotate-data-key`` walks every stored entity and every history row, opens each
encrypted value whose key is not the current one and seals it again under the current one, a
batch per transaction. A value already under the current key is left alone, so a run that stops
is started again where it was (resumable) and a second run changes nothing (idempotent). A value
under a key id the ring does not hold, or one its key does not open, is reported and left as it
is: nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.hub.broker.models import BrokerAttributeInstance, BrokerEntity
from cityhub.hub.broker.ngsi import content_key
from cityhub.hub.broker.protection import ENVELOPE, binding, is_sealed, sub_attributes
from cityhub.kit.db import ALL_TENANTS
from cityhub.systems.security.privacy import DataKeyError, KeyRing

Progress = Callable[[int, int], None]


@dataclass
class Rotated:
    values: int = 0  # values re-encrypted
    current: int = 0  # values already under the current key
    problems: list[str] = field(default_factory=list)  # values that could not be opened


def _reseal(
    ring: KeyRing,
    entity_id: str,
    attribute: str,
    instance: dict[str, Any],
    outcome: Rotated,
    where: str,
    path: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """The instance re-encrypted under the current key, its sub-attributes (at any depth)
    included; None when it needs nothing."""
    changed: dict[str, Any] = {}
    for sub in sub_attributes(instance):
        resealed = _reseal(ring, entity_id, attribute, instance[sub], outcome, where, (*path, sub))
        if resealed is not None:
            changed[sub] = resealed
    key = content_key(instance.get("type", "Property"))
    content = instance.get(key)
    if isinstance(content, dict) and is_sealed(content):
        token = str(content[ENVELOPE])
        if KeyRing.key_id(token) == ring.current:
            outcome.current += 1
        else:
            context = binding(entity_id, attribute, *path)
            try:
                plaintext = ring.decrypt(token, context)
            except DataKeyError as error:
                named = ".".join((attribute, *path))
                outcome.problems.append(f"{where} {named}: {error.detail}")
            else:
                outcome.values += 1
                changed[key] = {ENVELOPE: ring.encrypt(plaintext, context)}
    return instance | changed if changed else None


async def _entities(
    session: AsyncSession, ring: KeyRing, after: tuple[str, str], batch: int, outcome: Rotated
) -> tuple[int, tuple[str, str] | None]:
    rows = (
        await session.execute(
            select(BrokerEntity.tenant_code, BrokerEntity.entity_id, BrokerEntity.data)
            .where(tuple_(BrokerEntity.tenant_code, BrokerEntity.entity_id) > tuple_(*after))
            .order_by(BrokerEntity.tenant_code, BrokerEntity.entity_id)
            .limit(batch)
            .execution_options(**{ALL_TENANTS: True})
        )
    ).all()
    for tenant, entity_id, data in rows:
        attrs = dict(data["attrs"])
        changed = False
        for name, instances in data["attrs"].items():
            resealed = [
                _reseal(ring, entity_id, name, i, outcome, f"{tenant} {entity_id}") for i in instances
            ]
            if any(r is not None for r in resealed):
                attrs[name] = [r if r is not None else i for r, i in zip(resealed, instances, strict=True)]
                changed = True
        if changed:
            await session.execute(
                update(BrokerEntity)
                .where(BrokerEntity.tenant_code == tenant, BrokerEntity.entity_id == entity_id)
                .values(data=data | {"attrs": attrs})
                .execution_options(**{ALL_TENANTS: True}, synchronize_session=False)
            )
    last = (str(rows[-1][0]), str(rows[-1][1])) if rows else None
    return len(rows), last


async def rotate(
    sessions: async_sessionmaker[AsyncSession],
    ring: KeyRing,
    *,
    batch: int = 500,
    progress: Progress | None = None,
) -> Rotated:
    """Re-encrypt every stored value not under ``ring.current``: entities, then history."""
    outcome = Rotated()
    async with sessions() as session:
        total = int(
            (
                await session.scalar(
                    select(func.count()).select_from(BrokerEntity).execution_options(**{ALL_TENANTS: True})
                )
            )
            or 0
        ) + int(
            (
                await session.scalar(
                    select(func.count())
                    .select_from(BrokerAttributeInstance)
                    .execution_options(**{ALL_TENANTS: True})
                )
            )
            or 0
        )
    done = 0
    after: tuple[str, str] | None = ("", "")
    while after is not None:
        async with sessions() as session, session.begin():
            count, after = await _entities(session, ring, after, batch, outcome)
        done += count
        if progress is not None:
            progress(done, total)
    last_id = None
    while True:
        async with sessions() as session, session.begin():
            statement = (
                select(
                    BrokerAttributeInstance.instance_id,
                    BrokerAttributeInstance.tenant_code,
                    BrokerAttributeInstance.entity_id,
                    BrokerAttributeInstance.attribute,
                    BrokerAttributeInstance.data,
                )
                .order_by(BrokerAttributeInstance.instance_id)
                .limit(batch)
                .execution_options(**{ALL_TENANTS: True})
            )
            if last_id is not None:
                statement = statement.where(BrokerAttributeInstance.instance_id > last_id)
            rows = (await session.execute(statement)).all()
            for instance_id, tenant, entity_id, attribute, data in rows:
                resealed = _reseal(
                    ring, entity_id, attribute, data, outcome, f"{tenant} {entity_id} (history)"
                )
                if resealed is not None:
                    await session.execute(
                        update(BrokerAttributeInstance)
                        .where(BrokerAttributeInstance.instance_id == instance_id)
                        .values(data=resealed)
                        .execution_options(**{ALL_TENANTS: True}, synchronize_session=False)
                    )
        if not rows:
            break
        last_id = rows[-1][0]
        done += len(rows)
        if progress is not None:
            progress(done, total)
    return outcome
