"""HTTP plumbing shared by every API: problem-details rendering, body limits, request-scoped
database sessions and the request's tenant.

The session dependency commits when the endpoint returns and before the response is sent (FastAPI
dependency scope "function"), so a failed commit becomes an error response, never a false 2xx.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityhub.kit.db import scope_to_tenant
from cityhub.kit.errors import (
    HUB_ERRORS,
    BadRequestData,
    HubError,
    InvalidRequest,
    MethodNotAllowed,
    NonexistentTenant,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TENANT_HEADER = "NGSILD-Tenant"

TenantResolver = Callable[[AsyncSession, str], Awaitable[None]]


class StatusNoted:
    """An ASGI ``send`` that notes the response's status on its way: middleware that records each
    request (metrics, audit) passes it to the app and reads ``status`` afterwards, which stays 500
    when the app failed before answering."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


#: ``app.state`` key: path prefix → media type of problem details answered under it, for APIs whose
#: standard names another type than RFC 9457's (NGSI-LD answers its ProblemDetails as JSON).
PROBLEM_MEDIA_TYPES = "problem_media_types"


def problem(error: HubError, request: Request | None = None) -> ProblemResponse:
    instance = request.url.path if request is not None else None
    response = ProblemResponse(error.to_problem(instance), status_code=error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="cityhub"'
    if request is not None:
        for prefix, media_type in getattr(request.app.state, PROBLEM_MEDIA_TYPES, {}).items():
            if request.url.path.startswith(prefix):
                response.headers["content-type"] = media_type
    return response


def _validation_detail(error: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    issues = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()))
        issues.append({"location": location, "message": item.get("msg", "invalid")})
    if any(item.get("type") == "json_invalid" for item in error.errors()):
        return "request body is not valid JSON", issues
    summary = "; ".join(f"{issue['location']}: {issue['message']}" for issue in issues[:5])
    return summary or "request does not validate", issues


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as problem details: ours, FastAPI's validation, Starlette's 404/405, and
    anything unexpected (a logged 500 that says nothing about internals)."""

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, error: HubError) -> Response:
        return problem(error, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> Response:
        detail, issues = _validation_detail(error)
        return problem(InvalidRequest(detail, errors=issues), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            return problem(NotFound(f"no resource at {request.url.path}"), request)
        if error.status_code == 405:
            return problem(MethodNotAllowed(f"{request.method} is not allowed here"), request)
        try:
            title = HTTPStatus(error.status_code).phrase
        except ValueError:
            title = "HTTP error"
        body = {
            "type": f"{HUB_ERRORS}http-{error.status_code}",
            "title": title,
            "status": error.status_code,
            "detail": str(error.detail),
            "instance": request.url.path,
        }
        return ProblemResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, error: ClientDisconnect) -> Response:
        # The client closed the connection before its body was read: nothing was done, nothing is
        # acknowledged, and no one is left to answer (a device sends the message again).
        log.info("client went away before %s %s was read", request.method, request.url.path)
        gone = BadRequestData("the client closed the connection before the request was read")
        return problem(gone, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(HubError("the hub failed to process the request; the error is logged"), request)

    @app.exception_handler(StatementError)
    async def _unstorable(request: Request, error: StatementError) -> Response:
        # JSON columns go through orjson, which holds integers to 64 bits; a request's JSON may carry
        # larger ones (the standard library reads them), and only the write finds out
        if isinstance(error.orig, orjson.JSONEncodeError):
            return problem(BadRequestData(f"a value in the request cannot be stored: {error.orig}"), request)
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            # the database went away under the request (a restart, a terminated backend): nothing
            # of it was committed, and the pool replaces the connection, so trying again is right
            log.warning("database connection lost on %s %s: %s", request.method, request.url.path, error.orig)
            return problem(ServiceUnavailable("the database connection was lost; try again"), request)
        return await _unexpected(request, error)


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, whether announced by Content-Length or streamed.
    ``larger`` maps exact paths (upload endpoints) to a limit of their own; it is read per request,
    so it may be filled after the middleware is made (the applications' routes, at start-up)."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger if larger is not None else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.max_bytes)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await self._refuse(scope, receive, send, limit)
                else:
                    await self.app(scope, receive, send)
                return
        # No length announced (chunked): read up to the limit before the app sees anything.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                await self._refuse(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        error = PayloadTooLarge(f"request body exceeds {limit} bytes")
        response = ProblemResponse(error.to_problem(scope.get("path")), status_code=413)
        await response(scope, receive, send)


#: Pages that load the API explorer's scripts and styles, and so get a looser content policy.
_EXPLORER_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


class SecurityHeadersMiddleware:
    """Headers every answer carries: no MIME sniffing, no framing, no referrer, a content policy
    that lets an API answer load nothing, and (behind TLS in production) HSTS."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self.api_headers = [
            *common,
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        ]
        self.page_headers = common

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.page_headers if scope.get("path") in _EXPLORER_PATHS else self.api_headers

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # a page that states its own content policy (the web console) keeps it
                own_policy = any(name.lower() == b"content-security-policy" for name, _ in headers)
                message["headers"] = [*headers, *(self.page_headers if own_policy else extra)]
            await send(message)

        await self.app(scope, receive, add_headers)


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; committed when the endpoint returns, rolled back on error."""
    async with request.app.state.sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


DbSession = Annotated[AsyncSession, Depends(db_session, scope="function")]


async def request_tenant(request: Request, session: DbSession) -> str:
    """The tenant named by the ``NGSILD-Tenant`` header (or the hub's default), checked to exist;
    the request's session is scoped to it from here on."""
    code = request.headers.get(TENANT_HEADER) or request.app.state.default_tenant
    if not (len(code) == 6 and code.isdigit()):
        raise NonexistentTenant(f"tenant {code!r} is not a six-digit GB/T 2260 division code")
    resolver: TenantResolver = request.app.state.tenant_resolver
    await resolver(session, code)
    scope_to_tenant(session, code)
    request.state.tenant = code
    return code


RequestTenant = Annotated[str, Depends(request_tenant, scope="function")]


_Made = TypeVar("_Made")


def on_event_loop(factory: Callable[..., _Made]) -> Callable[..., Awaitable[_Made]]:
    """``factory`` (a class whose constructor takes the request's parameters) as an async
    dependency with the same parameters. FastAPI runs a sync dependency, a class included, in its
    thread pool: a hop to a thread and back on every request for a few assignments, which under
    load costs more than the work."""

    async def made(**given: Any) -> _Made:
        return factory(**given)

    made.__signature__ = inspect.signature(factory, eval_str=True)  # type: ignore[attr-defined]
    made.__name__ = made.__qualname__ = getattr(factory, "__name__", "dependency")
    made.__doc__ = factory.__doc__
    return made
