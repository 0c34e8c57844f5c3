"""The append-only audit log, chained by SHA-256.

Each record's hash covers the previous record's hash and every field of its own, so a record
changed, removed or slipped in breaks the chain from there on; :func:`verify` walks the chain and
names the first record that does not fit. Writers take the single ``audit_head`` row with an UPDATE
as their first statement, so records from several processes are chained one after another.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.kit.time import isoformat, utcnow
from cityhub.systems.security.models import AuditHead, AuditRecord

GENESIS = "0" * 64
HEAD_ID = 1


def chain_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    action: str,
    actor: str,
    tenant_code: str | None,
    source: str | None,
    method: str | None,
    path: str | None,
    status: int | None,
    detail: dict[str, Any],
) -> str:
    material = orjson.dumps(
        [prev_hash, seq, isoformat(at), action, actor, tenant_code, source, method, path, status, detail],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(material).hexdigest()


def _record_hash(record: AuditRecord) -> str:
    return chain_hash(
        record.prev_hash,
        record.seq,
        record.at,
        record.action,
        record.actor,
        record.tenant_code,
        record.source,
        record.method,
        record.path,
        record.status,
        record.detail,
    )


async def append(
    session: AsyncSession,
    action: str,
    *,
    actor: str,
    tenant_code: str | None = None,
    source: str | None = None,
    method: str | None = None,
    path: str | None = None,
    status: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    """Add a record in the session's transaction. Lock order: the head row first."""
    row = (
        await session.execute(
            update(AuditHead)
            .where(AuditHead.id == HEAD_ID)
            .values(seq=AuditHead.seq + 1)
            .returning(AuditHead.seq, AuditHead.hash)
            .execution_options(synchronize_session=False)
        )
    ).one()
    seq, prev_hash = int(row[0]), str(row[1])
    # Microseconds survive both databases unchanged, so the hash is recomputed from what is read back.
    at = utcnow()
    detail = dict(detail or {})
    record = AuditRecord(
        seq=seq,
        at=at,
        action=action,
        actor=actor[:64],
        tenant_code=tenant_code,
        source=source,
        method=method,
        path=path,
        status=status,
        detail=detail,
        prev_hash=prev_hash,
        hash="",
    )
    record.hash = _record_hash(record)
    session.add(record)
    await session.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(hash=record.hash)
        .execution_options(synchronize_session=False)
    )
    return record


@dataclass(frozen=True)
class Verification:
    intact: bool
    records: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    reason: str | None = None


async def _records(session: AsyncSession, after: int, batch: int = 2000) -> AsyncIterator[AuditRecord]:
    while True:
        rows = (
            await session.scalars(
                select(AuditRecord).where(AuditRecord.seq > after).order_by(AuditRecord.seq).limit(batch)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].seq
        session.expunge_all()


async def verify(session: AsyncSession) -> Verification:
    """Walk the chain from its anchor to the head; the first record that does not fit is named."""
    head = await session.get(AuditHead, HEAD_ID)
    if head is None:
        return Verification(False, 0, 0, GENESIS, 0, "the audit head row is missing")
    head_seq, head_hash = head.seq, head.hash
    expected_seq, expected_prev = head.anchor_seq + 1, head.anchor_hash
    count = 0

    def broken(seq: int, reason: str) -> Verification:
        return Verification(False, count, head_seq, head_hash, seq, reason)

    async for record in _records(session, head.anchor_seq):
        if record.seq != expected_seq:
            return broken(expected_seq, f"record {expected_seq} is missing (next present is {record.seq})")
        if record.prev_hash != expected_prev:
            return broken(record.seq, "its previous-hash does not match the record before it")
        if _record_hash(record) != record.hash:
            return broken(record.seq, "its content does not match its hash (changed after writing)")
        expected_prev = record.hash
        expected_seq += 1
        count += 1
    last = expected_seq - 1
    if last < head_seq:
        return broken(last + 1, f"records {last + 1} to {head_seq} are missing (the head is at {head_seq})")
    if last > head_seq or expected_prev != head_hash:
        return broken(last, "the chain does not end at the recorded head")
    return Verification(True, count, head_seq, head_hash)


async def page(
    session: AsyncSession,
    *,
    tenants: list[str] | None,
    after: int = 0,
    limit: int = 100,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    actor: str | None = None,
) -> list[AuditRecord]:
    query = select(AuditRecord).where(AuditRecord.seq > after)
    if tenants is not None:
        query = query.where(AuditRecord.tenant_code.in_(tenants))
    if since is not None:
        query = query.where(AuditRecord.at >= since)
    if until is not None:
        query = query.where(AuditRecord.at < until)
    if action is not None:
        query = query.where(AuditRecord.action == action)
    if actor is not None:
        query = query.where(AuditRecord.actor == actor)
    return list((await session.scalars(query.order_by(AuditRecord.seq).limit(limit))).all())


def export_line(record: AuditRecord) -> bytes:
    return orjson.dumps(
        {
            "seq": record.seq,
            "at": isoformat(record.at),
            "action": record.action,
            "actor": record.actor,
            "tenant_code": record.tenant_code,
            "source": record.source,
            "method": record.method,
            "path": record.path,
            "status": record.status,
            "detail": record.detail,
            "prev_hash": record.prev_hash,
            "hash": record.hash,
        },
        option=orjson.OPT_SORT_KEYS,
    )


async def export(session: AsyncSession, after: int = 0) -> AsyncIterator[bytes]:
    """Every record after ``after`` as JSON lines, in chain order: an auditor recomputes each hash
    from the line's fields with :func:`chain_hash`."""
    async for record in _records(session, after):
        yield export_line(record)


async def prune(session: AsyncSession, *, retention_days: int) -> int:
    """Delete records older than the retention period (never less than 180 days, see config),
    moving the chain's anchor to the last one removed. Returns how many were removed."""
    cutoff = utcnow() - timedelta(days=retention_days)
    head = (
        await session.execute(select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update())
    ).scalar_one()
    last = (
        await session.execute(
            select(AuditRecord.seq, AuditRecord.hash)
            .where(AuditRecord.at < cutoff, AuditRecord.seq > head.anchor_seq)
            .order_by(AuditRecord.seq.desc())
            .limit(1)
        )
    ).first()
    if last is None:
        return 0
    anchor_seq, anchor_hash = int(last[0]), str(last[1])
    await session.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(anchor_seq=anchor_seq, anchor_hash=anchor_hash)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        delete(AuditRecord).where(AuditRecord.seq <= anchor_seq).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
