"""Idempotent consumers: delivery is at least once, so a consumer whose effect must happen exactly
once records each event it has handled, in the same transaction as the effect.

    async with sessions() as session, session.begin():
        if await first_delivery(session, "system-tally", event):
            ...apply the effect...

A redelivered event finds its receipt and is skipped; a handler that fails rolls back both the
effect and the receipt, so the retry applies it again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.bus.events import Event
from cityhub.kit.db import Base, UTCDateTime, upsert_insert
from cityhub.kit.time import utcnow


class InboxReceipt(Base):
    __tablename__ = "bus_inbox"

    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)


async def first_delivery(session: AsyncSession, consumer: str, event: Event) -> bool:
    """Record that ``consumer`` handles ``event``; False if it already did (a redelivery)."""
    values = {"consumer": consumer, "event_id": event.id, "processed_at": utcnow()}
    insert = upsert_insert(session)
    statement = insert(InboxReceipt).values(**values).on_conflict_do_nothing()
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0) == 1)


async def prune_receipts(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(InboxReceipt).where(InboxReceipt.processed_at < before))
