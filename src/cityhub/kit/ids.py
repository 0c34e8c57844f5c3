"""Identifiers: time-ordered UUIDs (v7 layout) so primary keys index well and sort by creation."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> uuid.UUID:
    """A UUID whose first 48 bits are the Unix time in milliseconds (RFC 9562 version 7)."""
    millis = time.time_ns() // 1_000_000
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


def new_ids(count: int) -> list[uuid.UUID]:
    """``count`` version-7 UUIDs of this millisecond, with one call for the randomness: a batch of
    history rows needs thousands at once."""
    stamp = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | 0x2 << 62
    noise = os.urandom(10 * count)
    return [
        uuid.UUID(int=stamp | (r >> 68 & 0xFFF) << 64 | r & _LOW_62)
        for r in (int.from_bytes(noise[i : i + 10]) for i in range(0, 10 * count, 10))
    ]


_LOW_62 = (1 << 62) - 1
