"""Transactional outbox: events leave only after the transaction that caused them commits.

A service calls :func:`enqueue` with its session; the event is a row in the same transaction as
the change it describes. After commit the relay is woken and publishes the pending rows in order,
marking each published once the bus has taken it. A process that dies between commit and publish
leaves the rows pending: the next relay (this process after restart, or another hub process)
sends them. With the bus down, rows simply wait, and drain when it comes back.

Several processes may run relays on one PostgreSQL database: rows are claimed with
``FOR UPDATE SKIP LOCKED``, and NATS drops the rare duplicate by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, Integer, String, Text, delete, event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, Session, mapped_column

from cityhub.bus.base import Bus, BusUnavailable
from cityhub.bus.events import Event, UnknownEventType, decode_event
from cityhub.bus.inbox import prune_receipts
from cityhub.kit.db import Base, UTCDateTime
from cityhub.kit.time import utcnow

log = logging.getLogger(__name__)

WAKE_KEY = "cityhub.outbox.wake"
_DIRTY_KEY = "cityhub.outbox.dirty"


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    event_type: Mapped[str] = mapped_column(String(120), nullable=False)
    tenant_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "created_at",
            "seq",
            sqlite_where=published_at.is_(None),
            postgresql_where=published_at.is_(None),
        ),
        Index("ix_outbox_published_at", "published_at"),
        Index("ix_outbox_tenant_code", "tenant_code", "created_at"),
    )


#: Events enqueued by this process, by id, so its relay publishes them without reading their
#: payload back from the table and decoding it (for a broker batch, the largest cost of relaying).
#: Bounded: an event dropped from here, or enqueued by another process, is read from its row. One
#: whose transaction rolled back is never claimed and ages out.
_KEPT: OrderedDict[uuid.UUID, Event] = OrderedDict()
KEPT_EVENTS = 500


def enqueue(session: AsyncSession | Session, *events: Event) -> None:
    """Add events to the session's transaction; they are published after it commits."""
    sync_session = session.sync_session if isinstance(session, AsyncSession) else session
    for item in events:
        _KEPT[item.id] = item
        if len(_KEPT) > KEPT_EVENTS:
            _KEPT.popitem(last=False)
    for seq, item in enumerate(events):
        sync_session.add(
            OutboxMessage(
                id=item.id,
                seq=seq,
                event_type=item.event_type,
                tenant_code=item.tenant,
                payload=item.to_payload(),
                created_at=item.occurred_at,
            )
        )
    sync_session.info[_DIRTY_KEY] = True


@event.listens_for(Session, "after_commit")
def _wake_relay(session: Session) -> None:
    if session.info.pop(_DIRTY_KEY, False):
        wake = session.info.get(WAKE_KEY)
        if wake is not None:
            wake()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_DIRTY_KEY, None)


@dataclass(slots=True)
class _Claimed:
    """A claimed outbox row: its event (kept in memory) or its payload, then what became of it."""

    id: uuid.UUID
    event_type: str
    event: Event | None
    payload: dict[str, Any] | None = None
    done: bool = False  # published, or given up on (undecodable)
    error: str | None = None


class OutboxRelay:
    """Moves committed events from the outbox table to the bus."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: Bus,
        *,
        poll_interval: float = 1.0,
        batch_size: int = 200,
        retention: timedelta = timedelta(days=7),
        max_backoff: float = 30.0,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.retention = retention
        self.max_backoff = max_backoff
        self._wakeup = asyncio.Event()
        self._draining = asyncio.Lock()  # one drain at a time in this process
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_prune: datetime | None = None
        self.published = 0
        self.bus_down_since: datetime | None = None

    def wake(self) -> None:
        """Called after a commit that added events (from any thread-safe point in the loop)."""
        self._wakeup.set()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, *, flush_timeout: float = 5.0) -> None:
        """Stop the loop, then try one last drain so a clean shutdown leaves nothing behind."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            # Let a drain under way finish: cancelling it inside a database call can leave SQLite's
            # write lock held until the connection is reclaimed, which stalls the last drain.
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=flush_timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), timeout=flush_timeout)

    async def _run(self) -> None:
        delay = self.poll_interval
        while not self._stopping:
            try:
                await self.drain()
                delay = self.poll_interval
                await self._maybe_prune()
            except BusUnavailable as error:
                if self.bus_down_since is None:
                    self.bus_down_since = utcnow()
                    log.warning("bus unavailable, events wait in the outbox: %s", error)
                delay = min(max(delay * 2, self.poll_interval), self.max_backoff)
            except Exception:
                log.exception("outbox relay failed; retrying")
                delay = min(max(delay * 2, self.poll_interval), self.max_backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
            self._wakeup.clear()

    async def drain(self) -> int:
        """Publish every pending row; returns how many were published. Raises BusUnavailable."""
        total = 0
        async with self._draining:
            while True:
                sent = await self._publish_batch()
                total += sent
                if sent < self.batch_size:
                    break
        if total and self.bus_down_since is not None:
            log.info("bus is back; outbox drained")
            self.bus_down_since = None
        return total

    async def _publish_batch(self) -> int:
        """Claim, publish and mark one batch. On PostgreSQL the rows stay locked (SKIP LOCKED)
        while they are published, so relays of other processes skip them. SQLite has one writer
        per database file: holding its lock across publishing would block the very consumers the
        in-process bus runs, so there rows are read, published, then marked, each step short."""
        async with self.sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                async with session.begin():
                    rows = await self._claim(session, lock=True)
                    sent, outage = await self._publish(rows)
                    await self._mark(session, rows)
            else:
                async with session.begin():
                    rows = await self._claim(session, lock=False)
                sent, outage = await self._publish(rows)
                async with session.begin():
                    await self._mark(session, rows)
        self.published += sent
        if outage is not None:
            raise outage
        return sent

    async def _claim(self, session: AsyncSession, *, lock: bool) -> list[_Claimed]:
        """The next pending rows, oldest first, with their events: those this process enqueued
        come from memory, the others' payloads are read in one more query."""
        query = (
            select(OutboxMessage.id, OutboxMessage.event_type)
            .where(OutboxMessage.published_at.is_(None))
            .order_by(OutboxMessage.created_at, OutboxMessage.seq)
            .limit(self.batch_size)
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        claimed = await session.execute(query)
        rows = [_Claimed(row_id, event_type, _KEPT.get(row_id)) for row_id, event_type in claimed]
        missing = [row.id for row in rows if row.event is None]
        if missing:
            stored = await session.execute(
                select(OutboxMessage.id, OutboxMessage.payload).where(OutboxMessage.id.in_(missing))
            )
            payloads: dict[uuid.UUID, dict[str, Any]] = dict(stored.all())
            for row in rows:
                if row.event is None:
                    row.payload = payloads.get(row.id)
        return rows

    async def _publish(self, rows: list[_Claimed]) -> tuple[int, BusUnavailable | None]:
        """Publish rows in order, noting each outcome; stops at the first outage and returns it."""
        sent = 0
        for row in rows:
            item = row.event
            if item is None:
                try:
                    item = decode_event(row.event_type, row.payload or {})
                except (UnknownEventType, ValueError) as error:
                    # Written by an app that is no longer installed, or an old schema: keep the
                    # row, marked, so it is neither lost nor retried forever.
                    row.error, row.done = f"cannot decode: {error!r}", True
                    log.error("outbox row %s (%s) cannot be decoded: %s", row.id, row.event_type, error)
                    continue
            try:
                await self.bus.publish(item)
            except BusUnavailable as error:
                row.error = str(error)[:2000]
                return sent, error
            row.done = True
            _KEPT.pop(row.id, None)
            sent += 1
        return sent, None

    async def _mark(self, session: AsyncSession, rows: list[_Claimed]) -> None:
        """Write the outcomes: published rows in one statement, failed attempts one by one."""
        now = utcnow()
        published = [row.id for row in rows if row.done and row.error is None]
        if published:
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_(published)).values(published_at=now),
                execution_options={"synchronize_session": False},
            )
        for row in rows:
            if row.error is not None:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id)
                    .values(
                        attempts=OutboxMessage.attempts + 1,
                        last_error=row.error,
                        published_at=now if row.done else None,
                    ),
                    execution_options={"synchronize_session": False},
                )

    async def pending(self) -> int:
        async with self.sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
            )
            return int(count or 0)

    async def _maybe_prune(self) -> None:
        now = utcnow()
        if self._last_prune is not None and now - self._last_prune < timedelta(minutes=10):
            return
        self._last_prune = now
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(OutboxMessage).where(OutboxMessage.published_at < now - self.retention)
            )
            await prune_receipts(session, now - self.retention)
