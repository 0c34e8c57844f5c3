"""Dead letters over storage: listing them and counting them by device and reason. They are
written by the batch writer (:mod:`cityhub.hub.ingest.tasks`); functions here take a session scoped
to the tenant and never commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.ingest.models import IngestDeadLetter


async def list_dead_letters(
    session: AsyncSession,
    *,
    device_id: str | None,
    reason: str | None,
    since: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[IngestDeadLetter], int]:
    statement = select(IngestDeadLetter)
    if device_id is not None:
        statement = statement.where(IngestDeadLetter.device_id == device_id)
    if reason is not None:
        statement = statement.where(IngestDeadLetter.reason == reason)
    if since is not None:
        statement = statement.where(IngestDeadLetter.received_at >= since)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(IngestDeadLetter.received_at.desc(), IngestDeadLetter.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def dead_letter_counts(session: AsyncSession) -> list[tuple[str | None, str, int, datetime]]:
    """(device id, reason, count, last received) for every device and reason with letters."""
    rows = await session.execute(
        select(
            IngestDeadLetter.device_id,
            IngestDeadLetter.reason,
            func.count(),
            func.max(IngestDeadLetter.received_at),
        )
        .group_by(IngestDeadLetter.device_id, IngestDeadLetter.reason)
        .order_by(func.count().desc(), IngestDeadLetter.reason)
    )
    return [(device_id, reason, int(count), last) for device_id, reason, count, last in rows]
