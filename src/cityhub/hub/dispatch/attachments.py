"""Case attachments: photos kept on disk under ``<data_dir>/dispatch/attachments/<tenant>/``,
named by their SHA-256 (the same photo sent twice is stored once), with their metadata in
``dispatch_attachment``. The type is read from the bytes, not taken from the client's word.

A file is written before the transaction commits; if the commit fails the file stays, unreferenced
and harmless (a later upload of the same bytes reuses it)."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.dispatch.models import DispatchAttachment, DispatchCase, DispatchCaseEvent
from cityhub.kit.errors import NotFound, PayloadTooLarge, UnsupportedMediaType
from cityhub.kit.time import ensure_utc, utcnow

ALLOWED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")


def sniff(head: bytes) -> str | None:
    """The image type the bytes begin with, if it is one accepted."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def folder(data_dir: Path, tenant: str) -> Path:
    return data_dir / "dispatch" / "attachments" / tenant


async def add_attachment(
    session: AsyncSession,
    case: DispatchCase,
    *,
    content: bytes,
    filename: str,
    declared_type: str | None,
    taken_at: datetime | None,
    uploader: str,
    data_dir: Path,
    max_bytes: int,
) -> DispatchAttachment:
    if len(content) > max_bytes:
        raise PayloadTooLarge(f"the attachment exceeds {max_bytes} bytes")
    found = sniff(content[:16])
    if found is None:
        declared = f" (declared {declared_type})" if declared_type else ""
        raise UnsupportedMediaType(
            f"the attachment is no accepted image{declared}; accepted: {', '.join(ALLOWED_TYPES)}"
        )
    digest = hashlib.sha256(content).hexdigest()
    target = folder(data_dir, case.tenant_code) / digest
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{digest}.{uuid.uuid4().hex}")
        partial.write_bytes(content)
        os.replace(partial, target)
    now = utcnow()
    attachment = DispatchAttachment(
        case_id=case.id,
        filename=(Path(filename).name or "photo")[:255],
        content_type=found,
        size=len(content),
        sha256=digest,
        taken_at=ensure_utc(taken_at) if taken_at is not None else None,
        uploader=uploader,
        created_at=now,
    )
    session.add(attachment)
    session.add(
        DispatchCaseEvent(
            case_id=case.id,
            at=now,
            actor=uploader,
            action="attach",
            from_state=case.state,
            to_state=case.state,
            note=attachment.filename,
            data={"sha256": digest, "size": len(content), "content_type": found},
        )
    )
    await session.flush()
    return attachment


async def list_attachments(session: AsyncSession, case: DispatchCase) -> list[DispatchAttachment]:
    rows = await session.scalars(
        select(DispatchAttachment)
        .where(DispatchAttachment.case_id == case.id)
        .order_by(DispatchAttachment.created_at)
    )
    return list(rows)


async def get_attachment(session: AsyncSession, case: DispatchCase, attachment_id: str) -> DispatchAttachment:
    try:
        key = uuid.UUID(attachment_id)
    except ValueError:
        raise NotFound(f"no attachment {attachment_id}") from None
    found = (
        await session.scalars(
            select(DispatchAttachment).where(
                DispatchAttachment.id == key, DispatchAttachment.case_id == case.id
            )
        )
    ).first()
    if found is None:
        raise NotFound(f"no attachment {attachment_id} on case {case.id}")
    return found


def path_of(attachment: DispatchAttachment, data_dir: Path) -> Path:
    path = folder(data_dir, attachment.tenant_code) / attachment.sha256
    if not path.is_file():
        raise NotFound(f"the file of attachment {attachment.id} is missing from storage")
    return path
