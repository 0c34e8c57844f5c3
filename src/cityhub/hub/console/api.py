"""The web console's HTTP side: its files at ``/``, its live feed, ``/api/v1/console/stream``, and
its map layers, ``/api/v1/console/features``.

The files are served by :class:`ConsoleFiles`, the app router's fallback: it answers only what no
route matched, so every API path, the applications' included, keeps priority, and a request under
an API prefix that nothing answers stays a 404 problem. Hashed build assets (``/assets/…``) are
cached for a year; the page itself is revalidated on each load; any other path without a file
extension is a client route and gets the page (``index.html``). Without a build, ``/`` answers a
page that says how to make one and the hub runs on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

import cityhub
from cityhub.hub.broker import ngsi, sharing
from cityhub.hub.broker import service as broker_service
from cityhub.hub.broker.context import core_context
from cityhub.hub.broker.http import PERSONAL_AUDIT, PERSONAL_CLEARANCE, PERSONAL_READS, Broker
from cityhub.hub.broker.models import TENANT_NAME_LENGTH
from cityhub.hub.console.service import MAX_FEATURES, LiveFeed, layer_features
from cityhub.kit.errors import BadRequestData
from cityhub.kit.web import TENANT_HEADER
from cityhub.systems.security.policy import console_shell

router = APIRouter(prefix="/api/v1/console", tags=["console"])
log = logging.getLogger(__name__)

#: Seconds between keep-alive comments on an idle stream (proxies close silent connections).
KEEPALIVE = 15.0
#: Seconds a stream gathers what it showed unmasked before writing one ``personal.read`` record.
AUDIT_INTERVAL = 60.0
#: Records of closed streams still being written (a closing stream cannot wait for its own).
_closing: set[asyncio.Task[None]] = set()
#: The content policy of the console's files: its own scripts, styles and map workers, nothing
#: from elsewhere.
CONTENT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; "
    "child-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'"
)
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
MAX_TYPES = 50
#: Properties one request may ask for: each layer colours and labels by a few.
MAX_ATTRS = 50


def default_console_dir() -> Path:
    """Where ``npm run build`` in ``console/`` writes: the package's ``console_dist`` folder."""
    return Path(cityhub.__file__).parent / "console_dist"


def _types(raw: str | None) -> list[str]:
    if raw is None or not raw.strip():
        return []
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if len(names) > MAX_TYPES:
        raise BadRequestData(f"at most {MAX_TYPES} entity types in one stream")
    for name in names:
        if not name.isprintable() or any(c in name for c in " <>\"'{}|\\^`") or len(name) > 256:
            raise BadRequestData(f"{name!r} is not an entity type name")
    return names


@router.get(
    "/stream",
    summary="Live entity changes of the request's tenant, as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    types: Annotated[
        str | None, Query(description="Comma-separated entity types (short names); none: every type")
    ] = None,
) -> StreamingResponse:
    """Each change is a ``change`` event whose data is ``{"op", "id", "type", "entity"}`` (the
    entity in normalized NGSI-LD with short names, null once deleted); ``resync`` says changes
    were lost because the client fell behind, so it should reload. The tenant is the
    ``NGSILD-Tenant`` header's, or the default tenant."""
    tenant = request.headers.get(TENANT_HEADER) or request.app.state.default_tenant
    if len(tenant) > TENANT_NAME_LENGTH or not tenant.isprintable():
        raise BadRequestData(f"tenant {tenant!r} is not a valid tenant name")
    feed: LiveFeed = request.app.state.hub.console
    access = getattr(request.state, sharing.TYPE_ACCESS, None)
    # set by access control (absent when it is off: shown as written, as in the broker's answers)
    clearance = getattr(request.state, PERSONAL_CLEARANCE, None)
    audit: Callable[[dict[str, Any]], Awaitable[None]] | None = getattr(request.state, PERSONAL_AUDIT, None)
    listener = feed.open(
        tenant,
        _types(types),
        access,
        clear=clearance is not False,
        audited=clearance is True and audit is not None,
    )

    async def events() -> AsyncIterator[bytes]:
        # What a cleared caller is handed unmasked goes into the audit chain once per
        # AUDIT_INTERVAL (one record listing the entity ids), not change by change; a record
        # that cannot be written ends the stream.
        window = time.monotonic()
        try:
            yield b"retry: 3000\n: connected\n\n"
            while True:
                if audit is not None and time.monotonic() - window >= AUDIT_INTERVAL:
                    window = time.monotonic()
                    noted = listener.take_noted()
                    if noted is not None:
                        try:
                            await audit(noted)
                        except Exception:
                            log.exception("could not audit what a live feed showed (%s): stream ended", noted)
                            return
                if listener.overflowed:
                    while not listener.queue.empty():
                        listener.queue.get_nowait()
                    listener.overflowed = False
                    yield b"event: resync\ndata: {}\n\n"
                try:
                    message = await asyncio.wait_for(listener.queue.get(), timeout=KEEPALIVE)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield b"event: change\ndata: " + orjson.dumps(message) + b"\n\n"
        finally:
            feed.close(listener)
            noted = listener.take_noted()
            if audit is not None and noted is not None:
                # the stream's task may be cancelled (the client left): the last record is
                # written by a task of its own
                task = asyncio.get_running_loop().create_task(_last_record(audit, noted))
                _closing.add(task)
                task.add_done_callback(_closing.discard)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _last_record(audit: Callable[[dict[str, Any]], Awaitable[None]], noted: dict[str, Any]) -> None:
    try:
        await audit(noted)
    except Exception:
        log.exception("could not audit what a closed live feed showed (%s)", noted)


@router.get(
    "/features",
    summary="Map layers of the request's tenant: the entities of some types as lean GeoJSON",
    responses={200: {"content": {"application/json": {}}}},
)
async def features(
    broker: Broker,
    type: Annotated[
        str, Query(description="Comma-separated entity types (short names of the core @context)")
    ],
    attrs: Annotated[
        str | None,
        Query(description="Comma-separated attributes to give as properties (short names); none: all"),
    ] = None,
) -> Response:
    """Every entity of the types (up to a limit) in one answer, as a GeoJSON FeatureCollection
    whose features carry the entity id, its ``location`` and, as keyValues properties, its
    ``type`` and the attributes named in ``attrs`` (all without it): what the console's map draws
    and colours by, every layer at once, without paging through the broker. Access is the
    broker's: a read in the ``NGSILD-Tenant`` header's tenant (or the default tenant), personal
    information masked unless the caller holds the clearance (and audited when shown).
    ``truncated`` is true when the tenant has more such entities than the limit."""
    types = _types(type)
    if not types:
        raise BadRequestData("name at least one entity type")
    for name in types:
        ngsi.check_name(name, "entity type")
    names = [name.strip() for name in attrs.split(",") if name.strip()] if attrs is not None else None
    if names == []:
        raise BadRequestData("attrs names no attribute; leave it out for all of them")
    if names is not None and len(names) > MAX_ATTRS:
        raise BadRequestData(f"at most {MAX_ATTRS} attributes in one request")
    ctx = core_context()
    for name in names or []:
        if name in ngsi.ENTITY_KEYS or name == "location":
            raise BadRequestData(f"{name!r} is not an attribute a layer can ask for")
        ngsi.check_name(name, "attribute name")
    found: list[dict[str, Any]] = []
    cut = False
    if not broker.tenant_given or await broker_service.tenant_exists(broker.session, broker.tenant):
        found, cut = await layer_features(
            broker.session,
            list(dict.fromkeys(ctx.expand(name) for name in types)),
            list(dict.fromkeys(ctx.expand(name) for name in names)) if names is not None else None,
            broker.disclosure,
            limit=MAX_FEATURES,
        )
    noted = broker.disclosure.noted()
    if noted is not None:
        setattr(broker.request.state, PERSONAL_READS, noted)
    body = {"type": "FeatureCollection", "features": found, "truncated": cut}
    return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})


_MISSING_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>CityHub</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto; line-height: 1.5">
<h1>CityHub 控制台尚未构建 · The web console is not built</h1>
<p>The hub and its APIs are running; only the web console's files are missing from
<code>{where}</code>.</p>
<p>Build it with Node.js and npm: <code>./dev up</code> does it, or
<code>cd console &amp;&amp; npm ci &amp;&amp; npm run build</code>; or point
<code>CITYHUB_CONSOLE_DIR</code> at a folder holding a build.</p>
<p>请安装 Node.js 与 npm 后运行 <code>./dev up</code>（或在 <code>console/</code> 中执行
<code>npm ci &amp;&amp; npm run build</code>），或将 <code>CITYHUB_CONSOLE_DIR</code> 指向已构建的目录。</p>
<p>API: <a href="/docs">/docs</a></p>
</body></html>
"""


class ConsoleFiles:
    """The router's fallback that serves the console's files (see the module's description)."""

    def __init__(self, root: Path, not_found: ASGIApp) -> None:
        self.root = root.resolve()
        self.not_found = not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not console_shell(scope["method"], scope["path"]):
            await self.not_found(scope, receive, send)
            return
        request = Request(scope, receive)
        security = request.app.state.security
        if security is not None:
            await security.screen(request)
        response = self._answer(scope["path"])
        if response is None:
            await self.not_found(scope, receive, send)
            return
        response.headers["content-security-policy"] = CONTENT_POLICY
        await response(scope, receive, send)

    def _answer(self, path: str) -> Response | None:
        index = self.root / "index.html"
        relative = path.lstrip("/")
        if relative:
            candidate = (self.root / relative).resolve()
            if candidate.is_relative_to(self.root) and candidate.is_file():
                hashed = candidate.is_relative_to(self.root / "assets")
                return FileResponse(candidate, headers={"Cache-Control": IMMUTABLE if hashed else REVALIDATE})
            if "." in relative.rsplit("/", 1)[-1]:
                return None  # a file that is not there, not a client route: 404, built or not
        if not index.is_file():
            return HTMLResponse(_MISSING_PAGE.format(where=self.root), status_code=503)
        return FileResponse(index, headers={"Cache-Control": REVALIDATE})
