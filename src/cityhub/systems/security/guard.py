"""Access control for every API, in one place.

With ``CITYHUB_AUTH_MODE=on`` the app is built with :func:`guard` as a dependency of every route
(the NGSI-LD broker, the hub's APIs and every application's router), run before the route's own
dependencies. For each request it:

1. refuses a blocked source address (403) and counts the request against the source's and then
   the client's rate limit (429);
2. finds what the route needs (:func:`policy.requirement`); the health checks, the token endpoint
   and the API description are public;
3. reads the bearer token (missing, malformed, tampered, expired or revoked: 401) and the caller's
   current state and roles (cached for ``CITYHUB_AUTH_CACHE_SECONDS``);
4. checks the permission in the request's tenant, the ``NGSILD-Tenant`` header or the default
   (missing: 403). The check is made before the endpoint looks anything up, so a refusal says
   nothing about whether an object exists in a tenant the caller may not see;
5. for the broker, sets the entity types the caller may read and write there: the data
   catalog's department ownership and sharing classes (:mod:`cityhub.hub.catalog.access`), which
   the broker's storage functions apply (:mod:`cityhub.hub.broker.sharing`).

401 and 403 are counted as security events. :class:`AuditMiddleware` writes every write request
into the audit chain after it is answered.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from fastapi import Request
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityhub.config import Settings
from cityhub.hub.broker.http import PERSONAL_AUDIT, PERSONAL_CLEARANCE, PERSONAL_READS
from cityhub.hub.broker.sharing import TYPE_ACCESS, TypeAccess
from cityhub.hub.catalog import access as catalog_access
from cityhub.hub.ingest.api import FIWARE_TENANT_PATHS, iot_tenant
from cityhub.kit.errors import HUB_ERRORS, Forbidden, HubError, TooManyRequests, Unauthorized
from cityhub.kit.time import utcnow
from cityhub.kit.web import PROBLEM_JSON, PROBLEM_MEDIA_TYPES, TENANT_HEADER, StatusNoted
from cityhub.systems.security import audit, credentials, service
from cityhub.systems.security.awareness import VOLUME_REFUSALS, Detector
from cityhub.systems.security.models import BlockedSource
from cityhub.systems.security.policy import DEVICE_PATHS, Permission, Principal, is_read, requirement
from cityhub.systems.security.ratelimit import RateLimiter, create_rate_limiter

log = logging.getLogger(__name__)

PRINCIPAL = "principal"
# PERSONAL_CLEARANCE is set on each authorized request: whether the caller holds ``personal:read``
# in the request's tenant. The broker reads it (and only it) to mask personal information, and
# notes under PERSONAL_READS what it showed unmasked, which :class:`AuditMiddleware` records
# before the answer leaves; a stream, which shows data after its answer began, writes its own
# records through the PERSONAL_AUDIT callable the middleware puts on each read request.


class AuditUnavailable(HubError):
    """A read that would show personal information unmasked could not be written into the audit
    chain: the answer is withheld (no record, no answer)."""

    status = 503
    type = HUB_ERRORS + "audit-unavailable"
    title = "The read cannot be audited"


@dataclass(frozen=True)
class _UserState:
    principal: Principal  # mfa False: the token says whether the second factor was given
    active: bool
    tokens_valid_after: float | None


#: Seconds during which further messages with the same unknown device key raise no new event.
UNKNOWN_KEY_QUIET = 60.0


class SecurityRuntime:
    """What one hub process holds for access control; ``app.state.security`` when auth is on."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        registry: CollectorRegistry,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        if settings.uses_dev_secret:
            # Never sign with the published development key: a key of this process alone (tokens
            # do not outlive it, nor reach other workers). Production refuses to start instead.
            log.warning(
                "CITYHUB_SECRET_KEY is not set: tokens are signed with a key generated for this "
                "process and become invalid when it stops"
            )
            self.key = secrets.token_urlsafe(48)
        else:
            self.key = settings.secret_key.get_secret_value()
        self.token_policy = service.TokenPolicy(
            key=self.key,
            access_ttl=settings.access_token_ttl,
            refresh_ttl=settings.refresh_token_ttl,
            lockout_threshold=settings.lockout_threshold,
            lockout_minutes=settings.lockout_minutes,
            password_min_length=settings.password_min_length,
        )
        self.cascade = settings.auth_city_sees_counties
        self.detector = Detector(sessions, registry)
        self.limiter: RateLimiter = create_rate_limiter(settings.redis_url)
        self._users: dict[uuid.UUID, tuple[float, _UserState | None]] = {}
        self._blocked: tuple[float, dict[str, datetime | None]] = (0.0, {})
        self._blocked_noted: dict[str, float] = {}
        self._unknown_keys: dict[str, float] = {}
        self._recording: set[asyncio.Task[None]] = set()
        self._access = catalog_access.AccessCache()

    async def aclose(self) -> None:
        if self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)
        await self.limiter.aclose()

    def disabled_device_key(self, apikey: str, transport: str, source: str | None) -> None:
        """A device message came with a disabled API key: a security event, as for an unknown key."""
        self._device_key_event("disabled_device_key", apikey, transport, source)

    def unknown_device_key(self, apikey: str, transport: str, source: str | None) -> None:
        self._device_key_event("unknown_device_key", apikey, transport, source)

    def _device_key_event(self, kind: str, apikey: str, transport: str, source: str | None) -> None:
        """A device message came with an API key no service group has: a security event, recorded
        in the background (the gateway has refused and dead-lettered the message already), at most
        once a minute per key so that a flood of guesses does not become a flood of writes."""
        now = time.monotonic()
        key = f"{kind}:{apikey}"
        if now - self._unknown_keys.get(key, -UNKNOWN_KEY_QUIET) < UNKNOWN_KEY_QUIET:
            return
        if len(self._unknown_keys) >= 10_000:
            self._unknown_keys.clear()
        self._unknown_keys[key] = now
        task = asyncio.get_running_loop().create_task(
            self.detector.record(kind, source=source, transport=transport, apikey=apikey[:64])
        )
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    def forget(self, user_id: uuid.UUID | None = None) -> None:
        """Drop cached user state (all of it with no argument) after a change in this process."""
        if user_id is None:
            self._users.clear()
            self._blocked = (0.0, {})
        else:
            self._users.pop(user_id, None)

    async def _user_state(self, user_id: uuid.UUID) -> _UserState | None:
        now = time.monotonic()
        cached = self._users.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.sessions() as session:
            loaded = await service.load_principal(session, user_id)
        state = None
        if loaded is not None:
            user, grants = loaded
            state = _UserState(
                principal=Principal(
                    user_id=user.id,
                    username=user.username,
                    kind=user.kind,
                    tenant_code=user.tenant_code,
                    department_id=user.department_id,
                    platform_admin=user.platform_admin,
                    grants=tuple((g.tenant_code, g.role) for g in grants),
                    mfa=False,
                ),
                active=user.active,
                tokens_valid_after=user.tokens_valid_after.timestamp() if user.tokens_valid_after else None,
            )
        if len(self._users) > 50_000:
            self._users.clear()
        self._users[user_id] = (now + self.settings.auth_cache_seconds, state)
        return state

    async def _blocked_sources(self) -> dict[str, datetime | None]:
        now = time.monotonic()
        if self._blocked[0] > now:
            return self._blocked[1]
        async with self.sessions() as session:
            rows = (await session.execute(select(BlockedSource.address, BlockedSource.expires_at))).all()
        blocked = {str(address): expires for address, expires in rows}
        self._blocked = (now + self.settings.auth_cache_seconds, blocked)
        return blocked

    async def _limit(self, key: str, source: str | None, username: str | None) -> None:
        limit = self.settings.rate_limit_per_minute
        if limit <= 0:
            return
        try:
            count = await self.limiter.hit(key)
        except Exception:  # a rate limiter that is down must not take the hub down with it
            log.warning("rate limiter (%s) unavailable; request let through", self.limiter.backend)
            return
        if count > limit:
            # Every refusal is counted; only the first of a window, and the one that makes it
            # abnormal, are stored, so a flood does not turn into a flood of rows.
            refused = count - limit
            if refused == 1:
                await self.detector.record("rate_limited", source=source, username=username, key=key)
            elif refused == VOLUME_REFUSALS:
                await self.detector.record(
                    "abnormal_volume", source=source, username=username, key=key, refusals=refused
                )
            else:
                self.detector.counter.labels("rate_limited").inc()
            raise TooManyRequests(f"more than {limit} requests in a minute; try again shortly")

    async def screen(self, request: Request) -> str | None:
        """Refuse a blocked source address and count the request against the source's rate limit;
        every request passes here, public ones (the web console's files) included. Returns the
        source address."""
        source = request.client.host if request.client else None
        blocked = await self._blocked_sources()
        if source is not None and source in blocked:
            expires = blocked[source]
            if expires is None or expires > utcnow():
                # counted every time, stored once a minute per address: a blocked flood stays cheap
                now = time.monotonic()
                if self._blocked_noted.get(source, 0.0) < now - 60:
                    self._blocked_noted[source] = now
                    await self.detector.record("blocked_source", source=source, path=request.url.path)
                else:
                    self.detector.counter.labels("blocked_source").inc()
                raise Forbidden("requests from this address are blocked")
        await self._limit(f"src:{source}", source, None)
        return source

    async def authorize(self, request: Request, bearer: str | None) -> None:
        source = await self.screen(request)
        path = request.url.path
        needed = requirement(request.method, path)
        if needed is None:
            return
        tenant = request_tenant(path, request.headers.get, self.settings.default_tenant)
        if bearer is None:
            raise Unauthorized("this API needs a bearer token: POST /api/v1/auth/token")
        try:
            claims = credentials.read_access_token(self.key, bearer)
        except credentials.TokenError as error:
            await self.detector.record("token_invalid", source=source, tenant=tenant, reason=str(error))
            raise Unauthorized(str(error)) from None
        state = await self._user_state(claims.user_id)
        if state is None or not state.active:
            await self.detector.record(
                "token_invalid", source=source, username=claims.username, reason="user"
            )
            raise Unauthorized("the account is disabled or no longer exists")
        if state.tokens_valid_after is not None and claims.issued_at < state.tokens_valid_after:
            await self.detector.record(
                "token_revoked_used", source=source, username=claims.username, tenant=tenant
            )
            raise Unauthorized("the access token was revoked")
        principal = Principal(**{**state.principal.__dict__, "mfa": claims.mfa, "token_id": claims.token_id})
        request.state.principal = principal
        await self._limit(f"user:{principal.user_id}", source, principal.username)
        if not needed.met_by(principal, tenant, cascade=self.cascade):
            await self.detector.record(
                "access_denied",
                source=source,
                username=principal.username,
                tenant=tenant,
                method=request.method,
                path=path,
            )
            verb = "read" if is_read(request.method, path) else "write"
            where = f"in tenant {tenant}" if needed.scope == "tenant" else "on this hub"
            raise Forbidden(f"{principal.username} may not {verb} here {where}")
        setattr(
            request.state,
            PERSONAL_CLEARANCE,
            principal.can(Permission.PERSONAL_READ, tenant, cascade=self.cascade),
        )
        # the broker's API and the console's views of the same entities (map layers, live feed)
        if path.startswith(("/ngsi-ld/", "/api/v1/console/")):
            writing = not is_read(request.method, path)
            setattr(request.state, TYPE_ACCESS, await self.type_access(principal, tenant, writing=writing))

    async def type_access(self, principal: Principal, tenant: str, *, writing: bool) -> TypeAccess | None:
        """The entity types the caller may read and write in ``tenant``: the data catalog's
        department ownership and sharing classes (:mod:`cityhub.hub.catalog.access`); None for
        an administrator."""
        caller = catalog_access.caller_of(principal, tenant, cascade=self.cascade)
        return await self._access.get(self.sessions, tenant, caller, writing=writing)


async def guard(request: Request) -> None:
    """The dependency the app applies to every route when auth is on."""
    runtime: SecurityRuntime = request.app.state.security
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    await runtime.authorize(request, value.strip() if scheme.lower() == "bearer" and value.strip() else None)


BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "An access token from POST /api/v1/auth/token",
}


def declare_bearer(schema: dict[str, Any]) -> dict[str, Any]:
    """Mark every operation but the public ones as needing the bearer token in an OpenAPI
    description (the guard is one dependency for all routes, not a parameter of each)."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = BEARER_SCHEME
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and requirement(method.upper(), path) is not None:
                operation["security"] = [{"bearer": []}]
    return schema


def principal_of(request: Request) -> Principal:
    principal = getattr(request.state, PRINCIPAL, None)
    if not isinstance(principal, Principal):
        raise Unauthorized("this API needs a bearer token: POST /api/v1/auth/token")
    return principal


def request_tenant(path: str, header: Callable[[str], str | None], default: str) -> str:
    """The tenant a request acts in, read as the route it calls reads it: the FIWARE-shaped ingest
    routes by :func:`iot_tenant`, every other API by ``NGSILD-Tenant`` alone (a ``fiware-service``
    header sent to the broker names nothing there, so it must not choose where permission is checked)."""
    if path.startswith(FIWARE_TENANT_PATHS):
        return iot_tenant(header, default)
    return header(TENANT_HEADER) or default


def _header(headers: dict[bytes, bytes], name: str) -> str | None:
    value = headers.get(name.lower().encode())
    return value.decode(errors="replace") if value is not None else None


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


class AuditMiddleware:
    """Every write request (and every refused one) goes into the audit chain once answered, and so
    does every read that showed personal information unmasked (``personal.read``: who, the tenant,
    the entities and the attribute names, never the values)."""

    #: The login service audits logins itself; a device's measures are data, not actions: the
    #: broker's history keeps them, and the gateway keeps each refused one as a dead letter.
    SKIP = frozenset({"/api/v1/auth/token", *DEVICE_PATHS})

    def __init__(self, app: ASGIApp, runtime: SecurityRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope.get("method", "GET")
        path: str = scope.get("path", "")
        if path in self.SKIP:
            await self.app(scope, receive, send)
            return
        if is_read(method, path):
            state = scope.setdefault("state", {})

            async def audit_reads(detail: dict[str, Any], status: int = 200) -> None:
                await self._append(scope, method, path, status, "personal.read", detail)

            state[PERSONAL_AUDIT] = audit_reads
            await self.app(scope, receive, _AuditedRead(self, scope, method, path, send))
            return
        sent = StatusNoted(send)
        try:
            await self.app(scope, receive, sent)
        finally:
            await self._record(scope, method, path, sent.status, f"http.{method.lower()}")

    async def _record(
        self,
        scope: Scope,
        method: str,
        path: str,
        status: int,
        action: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Write a record; a failure is logged (the request was answered already)."""
        try:
            await self._append(scope, method, path, status, action, detail)
        except Exception:
            log.exception("could not write the audit record of %s %s", method, path)

    async def _append(
        self,
        scope: Scope,
        method: str,
        path: str,
        status: int,
        action: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Write a record into the chain in a transaction of its own; raises when it cannot."""
        principal = scope.get("state", {}).get(PRINCIPAL)
        headers = dict(scope.get("headers", []))
        default = self.runtime.settings.default_tenant
        tenant = request_tenant(path, lambda name: _header(headers, name), default)
        client = scope.get("client")
        async with self.runtime.sessions() as session, session.begin():
            await audit.append(
                session,
                action,
                actor=principal.username if isinstance(principal, Principal) else "anonymous",
                tenant_code=tenant[:64],
                source=client[0] if client else None,
                method=method,
                path=path,
                status=status,
                detail=detail,
            )


class _AuditedRead:
    """The ``send`` of a read request: when the answer shows personal information unmasked (the
    broker noted it under PERSONAL_READS before answering), its ``personal.read`` record is
    written before the answer's first byte leaves. If the record cannot be written, the answer
    is replaced by a 503 problem and its body dropped: a cleared caller is never shown what the
    chain does not hold. The cost is the record's write, which was made after the answer before."""

    def __init__(self, middleware: AuditMiddleware, scope: Scope, method: str, path: str, send: Send) -> None:
        self.middleware, self.scope, self.method, self.path, self.send = middleware, scope, method, path, send
        self.withheld = False

    async def __call__(self, message: Message) -> None:
        if self.withheld:
            return  # the answer's body, replaced by the problem
        if message["type"] == "http.response.start":
            reads = self.scope.get("state", {}).get(PERSONAL_READS)
            if reads:
                try:
                    await self.middleware._append(
                        self.scope, self.method, self.path, message["status"], "personal.read", reads
                    )
                except Exception:
                    log.exception("no personal.read record for %s: answer withheld", self.path)
                    self.withheld = True
                    await self._refuse()
                    return
        await self.send(message)

    async def _refuse(self) -> None:
        error = AuditUnavailable(
            "the answer shows personal information and its audit record could not be written"
        )
        body = orjson.dumps(error.to_problem(self.path))
        media = PROBLEM_JSON
        app = self.scope.get("app")
        if app is not None:
            for prefix, media_type in (getattr(app.state, PROBLEM_MEDIA_TYPES, None) or {}).items():
                if self.path.startswith(prefix):
                    media = media_type
        headers = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
        await self.send({"type": "http.response.start", "status": error.status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
