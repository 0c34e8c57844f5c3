"""Background work of the device gateway: the batch writer.

**The writer.** Every accepted message becomes a job of entity updates; every refused one a job
holding its dead letter. Jobs queue in arrival order; the writer takes as many as are waiting (up
to ``batch_size`` updates) and stores them in one transaction through the broker's own write path
(:func:`cityhub.hub.broker.service.write_many`), so history and subscriptions see every message.
A job's future resolves only after that transaction commits: the HTTP gateway answers, and the
MQTT gateway acknowledges (PUBACK) the message, only then.

Several messages of one entity in one batch are written in *rounds* (the first message of each
entity, then the second, ...), each round a ``write_many``, so each message is its own change with
its own history instance and notification.

**What the writer keeps between batches.** Devices report again and again, so the writer keeps
the last :data:`KEPT_ENTITIES` entities it wrote (serialised: nothing that shares the change events'
dicts can alter them). The next batch reads only those entities' ``modified_at`` and reads in full
only those someone else changed since (or that it does not keep); the rest start from the kept
copy. A device's ``last_seen_at`` is written at most once per :data:`SEEN_RESOLUTION` seconds
(a quarter of its expected interval when that is shorter), so that a batch of devices reporting
again soon does not rewrite a thousand device rows; the first message after a quiet spell always
writes it, so health checks see a silent device come back at once.

When the database fails for a reason that can pass (connection lost, locked), the batch is retried
with back-off; it is never acknowledged meanwhile. Any other failure splits the batch in halves
until the one message that cannot be written is found; that one becomes a ``write-failed`` dead
letter, the rest are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Table, insert, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.hub.broker import changes
from cityhub.hub.broker import service as broker
from cityhub.hub.broker.ngsi import Attributes
from cityhub.hub.ingest import measures
from cityhub.hub.ingest.models import IngestDeadLetter, IngestDevice
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.ids import new_id
from cityhub.kit.jsondata import json_copy
from cityhub.kit.time import isoformat, parse_datetime, utcnow

log = logging.getLogger(__name__)

_LETTERS: Table = IngestDeadLetter.__table__  # type: ignore[assignment]
_DEVICES: Table = IngestDevice.__table__  # type: ignore[assignment]
PAYLOAD_KEPT = 4096
#: Entities the writer keeps as it last wrote them (about 1 KB each for a device's entity).
KEPT_ENTITIES = 20_000
#: Longest a device's stored ``last_seen_at`` lags behind its latest message, in seconds.
SEEN_RESOLUTION = 10.0
#: Devices whose latest ``last_seen_at`` write the writer remembers.
SEEN_KEPT = 200_000


@dataclass
class Update:
    """One measure group's change of one entity."""

    tenant: str
    entity_id: str
    types: list[str]
    scope: list[str] | None
    attrs: Attributes
    device_id: str
    seen_at: datetime
    battery: float | None = None
    rssi: float | None = None
    expected_interval: float | None = None  # the device's, when provisioned with one


@dataclass
class Letter:
    """A refused message, as its dead-letter row."""

    tenant: str
    transport: str
    reason: str
    detail: str
    payload: bytes
    apikey: str | None = None
    device_id: str | None = None
    source: str | None = None
    received_at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=lambda: str(new_id()))

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_code": self.tenant,
            "received_at": self.received_at,
            "transport": self.transport,
            "apikey": _cut(self.apikey, 256),
            "device_id": _cut(self.device_id, 256),
            "source": _cut(self.source, 512),
            "reason": self.reason,
            "detail": _text(self.detail[:2000]),
            "payload": _text(self.payload[:PAYLOAD_KEPT].decode("utf-8", errors="replace")),
            "size": len(self.payload),
        }


def _cut(text: str | None, length: int) -> str | None:
    return None if text is None else _text(text[:length])


def _text(text: str) -> str:
    """Text as every database stores it: PostgreSQL refuses NUL characters."""
    return text.replace("\x00", "\ufffd")


@dataclass
class Job:
    """What one message asks for: updates, or a dead letter. ``outcome`` resolves to None when
    stored, or to the :class:`Letter` that was stored instead."""

    updates: list[Update]
    letter: Letter | None
    outcome: asyncio.Future[Letter | None]


def _transient(error: BaseException) -> bool:
    if isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


class Writer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, batch_size: int) -> None:
        self._sessions = sessions
        self._batch_size = batch_size
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.letters = 0
        self.batches = 0
        #: (tenant, entity id) → (modified_at, the entity as written, serialised)
        self._kept: dict[tuple[str, str], tuple[datetime, bytes]] = {}
        #: (tenant, device id) → when (monotonic) its last_seen_at was last written
        self._seen_written: dict[tuple[str, str], float] = {}
        self.seen_resolution = SEEN_RESOLUTION

    def submit(self, updates: list[Update], letter: Letter | None = None) -> asyncio.Future[Letter | None]:
        future: asyncio.Future[Letter | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Job(updates, letter, future))
        return future

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ingest-writer")

    async def stop(self) -> None:
        """Write what is queued (for up to 10 s), then stop."""
        if self._task is None:
            return
        self._stopping = True
        self._queue.put_nowait(None)  # the writer ends when it reaches this, after every job before it
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
        except TimeoutError:
            log.warning("ingest writer stopped with %d message(s) unwritten", self._queue.qsize())
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None and not job.outcome.done():
                job.outcome.set_exception(RuntimeError("the hub is stopping"))

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            jobs = [first]
            size = len(first.updates) or 1
            end = False
            while size < self._batch_size and not self._queue.empty():
                job = self._queue.get_nowait()
                if job is None:
                    end = True
                    break
                jobs.append(job)
                size += len(job.updates) or 1
            try:
                await self._write_with_retry(jobs)
            except Exception as error:  # the writer must outlive any one batch
                log.exception("an ingest batch of %d message(s) failed", len(jobs))
                for job in jobs:
                    if not job.outcome.done():
                        job.outcome.set_exception(error)
            if end:
                return

    async def _write_with_retry(self, jobs: list[Job]) -> None:
        delay = 0.2
        while True:
            try:
                await self._write_or_split(jobs)
                return
            except Exception as error:
                if not _transient(error):
                    raise
                if self._stopping:
                    for job in jobs:
                        if not job.outcome.done():
                            job.outcome.set_exception(error)
                    return
                log.warning("ingest batch of %d not written (%s); retrying in %.1fs", len(jobs), error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _write_or_split(self, jobs: list[Job]) -> None:
        try:
            await self._write(jobs)
        except Exception as error:
            if _transient(error):
                raise
            if len(jobs) == 1:
                await self._write_failed(jobs[0], error)
                return
            middle = len(jobs) // 2
            await self._write_or_split(jobs[:middle])
            await self._write_or_split(jobs[middle:])
            return
        self.batches += 1
        for job in jobs:
            if not job.outcome.done():
                job.outcome.set_result(job.letter)

    async def _write_failed(self, job: Job, error: Exception) -> None:
        log.exception("a device message could not be written", exc_info=error)
        first = job.updates[0] if job.updates else None
        letter = job.letter or Letter(
            tenant=first.tenant if first else "",
            transport="hub",
            reason=measures.WRITE_FAILED,
            detail=f"{type(error).__name__}: {error}",
            payload=repr([u.attrs for u in job.updates]).encode(),
            device_id=first.device_id if first else None,
        )
        job.letter = letter
        job.updates = []
        await self._write([job])
        if not job.outcome.done():
            job.outcome.set_result(letter)

    async def _write(self, jobs: list[Job]) -> None:
        letters = [job.letter.row() for job in jobs if job.letter is not None]
        by_tenant: dict[str, list[Update]] = {}
        for job in jobs:
            for item in job.updates:
                by_tenant.setdefault(item.tenant, []).append(item)
        written: dict[tuple[str, str], tuple[datetime, bytes]] = {}
        seen: list[tuple[str, str]] = []
        async with self._sessions() as session, session.begin():
            if letters:
                await session.execute(insert(_LETTERS), letters)
            for tenant, updates in by_tenant.items():
                scope_to_tenant(session, tenant)
                entities = await _apply(session, updates, self._kept_of(tenant, updates))
                for entity_id, entity in entities.items():  # copied now: the events share them
                    written[tenant, entity_id] = (parse_datetime(entity["modifiedAt"]), orjson.dumps(entity))
                seen.extend(await self._seen(session, tenant, updates))
            scope_to_tenant(session, None)
        self._keep(written)  # committed: from now on they are what the database holds
        moment = time.monotonic()
        if len(self._seen_written) > SEEN_KEPT:
            self._seen_written.clear()
        self._seen_written.update((key, moment) for key in seen)
        self.letters += len(letters)
        self.written += sum(len(updates) for updates in by_tenant.values())

    def _kept_of(self, tenant: str, updates: list[Update]) -> dict[str, tuple[datetime, bytes]]:
        found = {}
        for item in updates:
            kept = self._kept.get((tenant, item.entity_id))
            if kept is not None:
                found[item.entity_id] = kept
        return found

    def _keep(self, written: dict[tuple[str, str], tuple[datetime, bytes]]) -> None:
        for key, kept in written.items():
            self._kept.pop(key, None)  # re-inserted last: the oldest go first
            self._kept[key] = kept
        for key in list(self._kept)[: max(0, len(self._kept) - KEPT_ENTITIES)]:
            del self._kept[key]

    async def _seen(self, session: AsyncSession, tenant: str, updates: list[Update]) -> list[tuple[str, str]]:
        """Last seen (the batch's latest receive time, one statement for the devices of the batch
        not written within their resolution), battery and signal of each device that reported;
        returns the devices whose last_seen_at it wrote."""
        now = time.monotonic()
        due: set[str] = set()
        for item in updates:
            if item.device_id in due:
                continue
            last = self._seen_written.get((tenant, item.device_id))
            resolution = self.seen_resolution
            if item.expected_interval:
                resolution = min(resolution, item.expected_interval / 4)
            if last is None or now - last >= resolution:
                due.add(item.device_id)
        if due:
            await session.execute(
                update(_DEVICES)
                .where(_DEVICES.c.tenant_code == tenant, _DEVICES.c.device_id.in_(sorted(due)))
                .values(last_seen_at=max(item.seen_at for item in updates))
            )
        await _condition(session, tenant, updates)
        return [(tenant, device_id) for device_id in due]


def _rounds(updates: list[Update]) -> list[list[Update]]:
    """The k-th update of each entity goes into round k, keeping arrival order within a round."""
    rounds: list[list[Update]] = []
    seen: dict[str, int] = {}
    for item in updates:
        index = seen.get(item.entity_id, 0)
        seen[item.entity_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(item)
    return rounds


async def _stored(
    session: AsyncSession, entity_ids: list[str], kept: dict[str, tuple[datetime, bytes]]
) -> dict[str, dict[str, Any]]:
    """The stored entities among ``entity_ids``: the kept copy where the database's modified_at
    is still the kept one, else read in full."""
    found: dict[str, dict[str, Any]] = {}
    # every entity of the round is locked first, in one statement (rows in id order), so that no
    # other writer changes one between this read and the write; the kept copies are checked after
    versions = await broker.stored_versions(session, entity_ids, for_update=True)
    for entity_id in entity_ids:
        if entity_id in kept:
            modified, blob = kept[entity_id]
            if versions.get(entity_id) == modified:
                found[entity_id] = orjson.loads(blob)
    missing = [entity_id for entity_id in entity_ids if entity_id not in found]
    found.update(await broker.stored_entities(session, missing))
    return found


async def _apply(
    session: AsyncSession, updates: list[Update], kept: dict[str, tuple[datetime, bytes]]
) -> dict[str, dict[str, Any]]:
    """Write the updates in rounds; returns each entity as written last."""
    now = isoformat(utcnow())
    latest: dict[str, dict[str, Any]] = {}  # each entity as the previous round left it
    for batch in _rounds(updates):
        unread = list(dict.fromkeys(item.entity_id for item in batch if item.entity_id not in latest))
        before = await _stored(session, unread, kept)
        before.update((item.entity_id, latest[item.entity_id]) for item in batch if item.entity_id in latest)
        written = []
        for item in batch:
            previous = before.get(item.entity_id)
            if previous is None:
                entity = {"id": item.entity_id, "type": list(item.types), "attrs": json_copy(item.attrs)}
                if item.scope:
                    entity["scope"] = list(item.scope)
                changes.stamp(entity, now, created=True)
            else:
                entity = broker.writable(previous)
                changes.add_types(entity, item.types)
                changes.append(entity, item.attrs, now)
            written.append(entity)
        await broker.write_many(session, written, before=before)
        latest.update({str(entity["id"]): entity for entity in written})
    return latest


async def _condition(session: AsyncSession, tenant: str, updates: list[Update]) -> None:
    """Battery and signal of each device that reported them (its latest)."""
    latest: dict[str, Update] = {}
    for item in updates:
        if item.battery is not None or item.rssi is not None:
            latest[item.device_id] = item
    for item in latest.values():  # rare: few devices report battery or signal
        values: dict[str, Any] = {}
        if item.battery is not None:
            values["battery_level"] = item.battery
        if item.rssi is not None:
            values["rssi"] = item.rssi
        await session.execute(
            update(_DEVICES)
            .where(_DEVICES.c.tenant_code == tenant, _DEVICES.c.device_id == item.device_id)
            .values(**values)
        )
