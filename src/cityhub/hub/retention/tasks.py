"""Applying every tenant's retention policies: periodically in each hub process (the task here),
or once from ``cityhub history apply-retention``. Each policy is applied in a transaction of its
own, scoped to its tenant; on PostgreSQL an advisory lock keeps two processes from applying the
same policy at once (the second skips it)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.hub.retention import service
from cityhub.hub.retention.models import RetentionPolicy
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.periodic import Periodic

log = logging.getLogger(__name__)


@dataclass
class Applied:
    tenant: str
    policy_id: uuid.UUID
    entity_type: str | None
    outcome: service.Downsampled | None  # None: another process was applying it


#: Called before each policy with (its number from 1, how many, the policy); returns the
#: progress callback for its entities, or None.
OnPolicy = Callable[[int, int, RetentionPolicy], service.Progress | None]


async def apply_all(
    sessions: async_sessionmaker[AsyncSession],
    *,
    now: datetime | None = None,
    on_policy: OnPolicy | None = None,
) -> list[Applied]:
    async with sessions() as session:
        keys = await service.policy_keys(session)
    applied = []
    for number, (tenant, policy_id) in enumerate(keys, start=1):
        async with sessions() as session, session.begin():
            scope_to_tenant(session, tenant)
            policy = (
                await session.scalars(select(RetentionPolicy).where(RetentionPolicy.policy_id == policy_id))
            ).first()
            if policy is None:  # removed meanwhile
                continue
            if not await service.try_lock(session, policy):
                applied.append(Applied(tenant, policy_id, policy.entity_type, None))
                continue
            progress = on_policy(number, len(keys), policy) if on_policy is not None else None
            outcome = await service.apply_policy(session, policy, now=now, progress=progress)
            applied.append(Applied(tenant, policy_id, policy.entity_type, outcome))
    return applied


class RetentionTask:
    """Applies every policy every ``interval`` seconds, the first time ``interval`` after start."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float) -> None:
        self.sessions = sessions
        self.interval = interval
        self._periodic = Periodic("applying retention policies", interval, self.apply)

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def apply(self) -> None:
        for item in await apply_all(self.sessions):
            if item.outcome is not None and (item.outcome.read or item.outcome.dropped):
                log.info(
                    "retention policy %s of tenant %s: %d instances read, %d kept, %d dropped",
                    item.policy_id,
                    item.tenant,
                    item.outcome.read,
                    item.outcome.kept,
                    item.outcome.dropped,
                )
