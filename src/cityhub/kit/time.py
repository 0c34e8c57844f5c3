"""Time: timezone-aware UTC everywhere, ISO 8601 on the wire."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC (how SQLite hands them back); aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def isoformat(value: datetime) -> str:
    """ISO 8601 with a ``Z`` suffix, millisecond precision kept as given."""
    return ensure_utc(value).isoformat().replace("+00:00", "Z")


def parse_datetime(text: str) -> datetime:
    """Parse ISO 8601; a value without offset is UTC. Raises ValueError on bad input."""
    return ensure_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
