"""Situational awareness: security events recorded, counted and correlated by rules.

Every event is a row of ``security_event`` (written in a transaction of its own, so an event of a
request that fails is kept) and a count in ``cityhub_security_events_total{kind}``. Rules over
sliding windows kept by this process turn single events into findings: many failed logins from one
address (brute force), failures across many user names from one address (credential stuffing),
a burst of denials. Each finding is raised once per window and source.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import defaultdict, deque
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.kit.errors import AlreadyExists, BadRequestData, NotFound
from cityhub.kit.time import utcnow
from cityhub.systems.security import audit, incidents
from cityhub.systems.security.models import BlockedSource, SecurityEvent, SecurityIncident, User

log = logging.getLogger(__name__)

SEVERITY = {
    "login_failed": "low",
    "login_succeeded_after_failures": "low",
    "account_locked": "medium",
    "token_invalid": "low",
    "token_revoked_used": "high",
    "refresh_token_reuse": "high",
    "access_denied": "low",
    "brute_force": "high",
    "credential_stuffing": "high",
    "denial_burst": "medium",
    "rate_limited": "low",
    "abnormal_volume": "medium",
    "blocked_source": "low",
    "unknown_device_key": "medium",
    "disabled_device_key": "medium",
}

#: Failed logins from one address within the window that make a brute-force finding.
BRUTE_FORCE_FAILURES = 10
#: Distinct user names failing from one address within the window: credential stuffing.
STUFFING_USERNAMES = 5
LOGIN_WINDOW = 300.0
#: Denials (403) for one caller or address within the window: a burst.
DENIAL_BURST = 20
DENIAL_WINDOW = 60.0
#: Rate-limit refusals for one client or address in one rate-limit window (a minute): abnormal
#: volume (raised by the guard, which counts them).
VOLUME_REFUSALS = 50


class _Window:
    """Timestamps (and an optional label) of events per key, kept for ``span`` seconds."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.items: dict[str, deque[tuple[float, str]]] = defaultdict(deque)
        self.alerted: dict[str, float] = {}

    def add(self, key: str, label: str = "") -> deque[tuple[float, str]]:
        now = time.monotonic()
        items = self.items[key]
        items.append((now, label))
        while items and items[0][0] < now - self.span:
            items.popleft()
        if len(self.items) > 10_000:  # forget idle keys rather than grow without bound
            for stale in [k for k, v in self.items.items() if not v or v[-1][0] < now - self.span]:
                del self.items[stale]
        return items

    def first_alert(self, key: str) -> bool:
        now = time.monotonic()
        last = self.alerted.get(key)
        if last is not None and last > now - self.span:
            return False
        self.alerted[key] = now
        return True


class Detector:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], registry: CollectorRegistry) -> None:
        self.sessions = sessions
        self.counter = Counter(
            "cityhub_security_events_total",
            "Security events recorded by this process since start, by kind.",
            ("kind",),
            registry=registry,
        )
        self._logins = _Window(LOGIN_WINDOW)
        self._denials = _Window(DENIAL_WINDOW)

    async def record(
        self,
        kind: str,
        *,
        source: str | None = None,
        username: str | None = None,
        tenant: str | None = None,
        **detail: Any,
    ) -> None:
        """Record an event (and what the rules make of it) in a transaction of its own."""
        rows = self._rows(kind, source, username, tenant, detail)
        try:
            async with self.sessions() as session, session.begin():
                session.add_all(rows)
                await session.flush()
                await incidents.group_events(session, rows)
        except Exception:  # an event that cannot be stored is logged; the request's answer stands
            log.exception("could not store security event %s", kind)

    async def record_in(
        self,
        session: AsyncSession,
        kind: str,
        *,
        source: str | None = None,
        username: str | None = None,
        tenant: str | None = None,
        **detail: Any,
    ) -> None:
        """Record an event in ``session``'s transaction (a request that writes anyway: a login);
        a high-severity finding opens an incident (or joins the open one of its rule and source)."""
        rows = self._rows(kind, source, username, tenant, detail)
        session.add_all(rows)
        await session.flush()
        await incidents.group_events(session, rows)

    def _rows(
        self, kind: str, source: str | None, username: str | None, tenant: str | None, detail: dict[str, Any]
    ) -> list[SecurityEvent]:
        findings = [(kind, detail)]
        key = source or "?"
        if kind == "login_failed":
            items = self._logins.add(key, username or "")
            if len(items) >= BRUTE_FORCE_FAILURES and self._logins.first_alert("bf:" + key):
                findings.append(("brute_force", {"failures": len(items), "window_s": LOGIN_WINDOW}))
            names = {label for _, label in items if label}
            if len(names) >= STUFFING_USERNAMES and self._logins.first_alert("cs:" + key):
                findings.append(("credential_stuffing", {"usernames": len(names), "window_s": LOGIN_WINDOW}))
        elif kind == "access_denied":
            who = username or key
            items = self._denials.add(who)
            if len(items) >= DENIAL_BURST and self._denials.first_alert(who):
                findings.append(("denial_burst", {"denials": len(items), "window_s": DENIAL_WINDOW}))
        rows = [
            SecurityEvent(
                kind=name,
                severity=SEVERITY.get(name, "low"),
                source=source,
                username=username,
                tenant_code=tenant,
                detail=extra,
            )
            for name, extra in findings
        ]
        for name, _ in findings:
            self.counter.labels(name).inc()
            if SEVERITY.get(name) == "high":
                log.warning("security event %s from %s (user %s)", name, source, username)
        return rows


async def overview(session: AsyncSession, *, tenants: list[str] | None, hours: int = 24) -> dict[str, Any]:
    since = utcnow() - timedelta(hours=hours)
    scope = [SecurityEvent.at >= since]
    if tenants is not None:
        scope.append(SecurityEvent.tenant_code.in_(tenants))
    by_kind = dict(
        (
            await session.execute(
                select(SecurityEvent.kind, func.count()).where(*scope).group_by(SecurityEvent.kind)
            )
        ).all()
    )
    by_severity = dict(
        (
            await session.execute(
                select(SecurityEvent.severity, func.count()).where(*scope).group_by(SecurityEvent.severity)
            )
        ).all()
    )
    sources = (
        await session.execute(
            select(SecurityEvent.source, func.count().label("n"))
            .where(*scope, SecurityEvent.source.is_not(None))
            .group_by(SecurityEvent.source)
            .order_by(func.count().desc())
            .limit(10)
        )
    ).all()
    locked_query = select(func.count()).select_from(User).where(User.locked_until > utcnow())
    if tenants is not None:
        locked_query = locked_query.where(User.tenant_code.in_(tenants))
    recent = (
        await session.scalars(select(SecurityEvent).where(*scope).order_by(SecurityEvent.at.desc()).limit(20))
    ).all()
    incident_query = select(SecurityIncident).where(SecurityIncident.state.in_(incidents.OPEN_STATES))
    if tenants is not None:
        incident_query = incident_query.where(SecurityIncident.tenant_code.in_(tenants))
    open_incidents = (await session.scalars(incident_query.order_by(SecurityIncident.opened_at.desc()))).all()
    return {
        "since": since,
        "events": {str(k): int(v) for k, v in by_kind.items()},
        "by_severity": {str(k): int(v) for k, v in by_severity.items()},
        "top_sources": [{"source": s, "events": int(n)} for s, n in sources],
        "locked_users": int(await session.scalar(locked_query) or 0),
        "blocked_sources": int(await session.scalar(select(func.count()).select_from(BlockedSource)) or 0),
        "recent": list(recent),
        "open_incidents": list(open_incidents),
    }


async def block_source(
    session: AsyncSession, address: str, *, reason: str, actor: str, hours: int | None
) -> datetime | None:
    """Refuse ``address`` at the door (until ``hours`` from now, or until unblocked)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise BadRequestData(f"{address!r} is not an IP address") from None
    if await session.get(BlockedSource, address) is not None:
        raise AlreadyExists(f"{address} is already blocked")
    expires = utcnow() + timedelta(hours=hours) if hours else None
    session.add(BlockedSource(address=address, reason=reason, blocked_by=actor, expires_at=expires))
    await audit.append(
        session, "security.source_blocked", actor=actor, detail={"address": address, "reason": reason}
    )
    return expires


async def unblock_source(session: AsyncSession, address: str, *, actor: str) -> None:
    result = await session.execute(delete(BlockedSource).where(BlockedSource.address == address))
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"{address} is not blocked")
    await audit.append(session, "security.source_unblocked", actor=actor, detail={"address": address})
