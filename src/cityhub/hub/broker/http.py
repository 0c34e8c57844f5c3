"""What every NGSI-LD endpoint shares: the request (tenant, @context, body, content negotiation),
rendering of answers, and the parsing of common parameters.

Request bodies are read and parsed here (not by FastAPI models) because NGSI-LD payloads are
open-ended JSON-LD whose meaning depends on the @context; ``ngsi`` validates them.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response

from cityhub.hub.broker import ngsi, service, sharing
from cityhub.hub.broker.context import ActiveContext, ContextStore, link_header, parse_link_header
from cityhub.hub.broker.protection import Disclosure
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.errors import BadRequestData, HubError, InvalidRequest, UnsupportedMediaType
from cityhub.kit.time import isoformat, utcnow
from cityhub.kit.web import TENANT_HEADER, DbSession, on_event_loop

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
#: The only operations with a GeoJSON representation: retrieve and query entities (route names).
GEO_ROUTES = frozenset({"retrieve_entity", "query_entities"})
MERGE_PATCH = "application/merge-patch+json"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
#: What access control sets on a request (see ``protection``) and what the broker notes back.
PERSONAL_CLEARANCE = "personal_clearance"
PERSONAL_READS = "personal_reads"
#: Set by access control on read requests: ``async (detail) -> None`` writes a ``personal.read``
#: record for this request at once (raising when it cannot); for answers that show personal
#: information after they began (the console's live feed).
PERSONAL_AUDIT = "personal_audit"


class NotAcceptable(HubError):
    status = 406
    type = "https://uri.etsi.org/ngsi-ld/errors/NotAcceptable"
    title = "Not acceptable"


class TooManyResults(HubError):
    status = 403
    type = "https://uri.etsi.org/ngsi-ld/errors/TooManyResults"
    title = "Too many results"


class BrokerRequest:
    """What every broker endpoint needs: the tenant (session already scoped), the @context in
    force, and how the answer must be rendered."""

    def __init__(self, request: Request, session: DbSession) -> None:
        self.request = request
        self.session = session
        header = request.headers.get(TENANT_HEADER)
        self.tenant = header or request.app.state.default_tenant
        self.tenant_given = header is not None
        if not self.tenant or len(self.tenant) > 64 or not self.tenant.isprintable():
            raise BadRequestData(f"tenant {self.tenant!r} is not a valid tenant name")
        scope_to_tenant(session, self.tenant)
        # The entity types the caller may read and write (the data catalog's sharing rules), set
        # by access control like the clearance below; the storage functions apply it.
        sharing.attach(session, getattr(request.state, sharing.TYPE_ACCESS, None))
        self.contexts: ContextStore = request.app.state.hub.contexts
        # Set by access control on every request it lets through; absent when it is off, and
        # then personal information is shown as written (development).
        clearance = getattr(request.state, PERSONAL_CLEARANCE, None)
        self.disclosure = Disclosure(clear=clearance is not False, audited=clearance is True)
        self.accept = _negotiate(request.headers.get("accept"))
        route = getattr(request.scope.get("route"), "name", None)
        if self.accept == GEO_JSON and request.method == "GET" and route not in GEO_ROUTES:
            raise NotAcceptable(f"only entities can be answered in {GEO_JSON}; ask for {JSON} or {JSON_LD}")

    @property
    def content_type(self) -> str:
        return (self.request.headers.get("content-type") or "").split(";")[0].strip()

    async def context(self, body: Any = None) -> ActiveContext:
        """The @context of the request: the body's for JSON-LD, else the Link header's."""
        link = parse_link_header(self.request.headers.get("link"))
        if isinstance(body, dict) and self.content_type == JSON_LD:
            if "@context" not in body:
                raise BadRequestData("an application/ld+json body must carry its @context")
            if link is not None:
                raise BadRequestData("give the @context either in the body or in a Link header, not both")
            return await self.contexts.resolve(body["@context"])
        if isinstance(body, dict) and "@context" in body:
            raise BadRequestData("an application/json body must not carry @context; use a Link header")
        return await self.contexts.resolve(link)

    async def body(self, *, merge_patch: bool = False) -> Any:
        allowed = {JSON, JSON_LD} | ({MERGE_PATCH} if merge_patch else set())
        declared = self.content_type
        if declared and declared not in allowed:
            raise UnsupportedMediaType(f"Content-Type must be one of {', '.join(sorted(allowed))}")
        raw = await self.request.body()
        if not raw:
            raise InvalidRequest("the request body is empty")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            # Without a Content-Type the body is examined: what is not JSON is the client's error.
            raise InvalidRequest(f"the request body is not valid JSON: {error}") from None
        if not declared:
            raise UnsupportedMediaType(f"Content-Type must be one of {', '.join(sorted(allowed))}")
        return body

    async def read_tenant(self) -> None:
        if self.tenant_given:
            await service.require_tenant(self.session, self.tenant)

    async def write_tenant(self) -> None:
        if self.tenant_given:
            await service.ensure_tenant(self.session, self.tenant)

    def render(
        self, payload: Any, ctx: ActiveContext, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        headers = dict(headers or {})
        media = self.accept
        if media == JSON_LD:
            payload = _with_context(payload, ctx)
        elif media == GEO_JSON:
            value = ctx.value if ctx.value is not None else ctx.urls
            payload = payload | {"@context": value if isinstance(value, list) else [value]}
        else:  # the @context link comes first; pagination links may follow it
            headers["Link"] = ",".join(filter(None, (link_header(ctx.urls[0]), headers.get("Link"))))
        if self.tenant_given:
            headers[TENANT_HEADER] = self.tenant
        noted = self.disclosure.noted()
        if noted is not None:
            setattr(self.request.state, PERSONAL_READS, noted)
        return Response(orjson.dumps(payload), status_code=status, media_type=media, headers=headers)


Broker = Annotated[BrokerRequest, Depends(on_event_loop(BrokerRequest))]


def _negotiate(accept: str | None) -> str:
    if not accept:
        return JSON
    ranked = []
    for part in accept.split(","):
        media, *params = part.strip().split(";")
        quality = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((quality, media.strip()))
    for _, media in sorted(ranked, key=lambda item: -item[0]):
        if media in {JSON, JSON_LD, GEO_JSON}:
            return media
        if media in {"*/*", "application/*"}:
            return JSON
    raise NotAcceptable(f"cannot answer in {accept}; ask for {JSON}, {JSON_LD} or {GEO_JSON}")


def _with_context(payload: Any, ctx: ActiveContext) -> Any:
    value: Any = ctx.value if ctx.value is not None else ctx.urls[0]
    if isinstance(payload, list):
        return [item | {"@context": value} for item in payload]
    return payload | {"@context": value}


FORMATS: dict[str, ngsi.Format] = {
    "normalized": "normalized",
    "concise": "concise",
    "keyValues": "keyValues",
    "simplified": "keyValues",
}


def parse_options(options: str | None) -> set[str]:
    known = {*FORMATS, "sysAttrs", "noOverwrite", "replace", "update"}
    given = {item.strip() for item in (options or "").split(",") if item.strip()}
    unknown = given - known
    if unknown:
        raise InvalidRequest(f"unknown option(s): {', '.join(sorted(unknown))}")
    return given


def pick_format(options: set[str], fmt: str | None) -> ngsi.Format:
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidRequest(f"format must be normalized, concise or keyValues, not {fmt!r}")
        return FORMATS[fmt]
    if "keyValues" in options or "simplified" in options:
        return "keyValues"
    if "concise" in options:
        return "concise"
    return "normalized"


def attribute_names(text: str | None, ctx: ActiveContext) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise BadRequestData("an empty list of attribute names was given")
    for name in names:
        if name in ngsi.ENTITY_KEYS:
            raise BadRequestData(f"{name!r} is an entity member, not an attribute name")
    return [ctx.expand(ngsi.check_name(name, "attribute name")) for name in names]


def page_size(limit: int | None, offset: int, count: bool) -> int:
    """The page a query asks for (clause 5.5.9): ``limit`` defaults to 20, may be 0 only to
    count, and above the maximum is 403 TooManyResults."""
    page = DEFAULT_LIMIT if limit is None else limit
    if page < 0 or offset < 0:
        raise BadRequestData("limit and offset must not be negative")
    if page == 0 and not count:
        raise BadRequestData("limit=0 is only allowed with count=true")
    if page > MAX_LIMIT:
        raise TooManyResults(f"limit may be at most {MAX_LIMIT}")
    return page


def pagination_links(path: str, limit: int, offset: int, total: int) -> str:
    """``Link`` relations to the previous and next pages (clause 6.3.10)."""
    links = []
    if offset > 0 and limit > 0:
        links.append(f'<{path}?limit={limit}&offset={max(offset - limit, 0)}>;rel="prev";type="{JSON_LD}"')
    if limit > 0 and offset + limit < total:
        links.append(f'<{path}?limit={limit}&offset={offset + limit}>;rel="next";type="{JSON_LD}"')
    return ",".join(links)


async def context_as_given(broker: BrokerRequest, body: dict[str, Any]) -> Any:
    """The @context the subscription is read with: the body's or the Link header's (None: core)."""
    ctx = await broker.context(body)
    return (
        ctx.value if ctx.value is not None else (ctx.urls[0] if broker.request.headers.get("link") else None)
    )


_EXPRESSION = frozenset(",;|()")


def reworded(names: Any, written: ActiveContext, shown: ActiveContext) -> Any:
    """Names (a name, a list of them, or a type expression, left as is) written in one @context,
    as a client using another sees them."""
    if isinstance(names, list):
        return [reworded(name, written, shown) for name in names]
    if not isinstance(names, str) or _EXPRESSION & set(names):
        return names
    return shown.compact(written.expand(names))


def reworded_selectors(selectors: Any, written: ActiveContext, shown: ActiveContext) -> Any:
    if not isinstance(selectors, list):
        return selectors
    return [
        s | {"type": reworded(s["type"], written, shown)} if isinstance(s, dict) and "type" in s else s
        for s in selectors
    ]


def replace_members(data: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """A subscription or registration after an update: each member given replaces the stored one,
    and ``null`` (or ``urn:ngsi-ld:null``) removes it."""
    merged = dict(data)
    for key, value in fragment.items():
        if key == "@context":
            continue
        if value is None or ngsi.is_null(value):
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def page_headers(request: Request, page: int, offset: int, total: int, count: bool) -> dict[str, str]:
    """``NGSILD-Results-Count`` when asked for, and the prev/next ``Link`` relations."""
    headers = {"NGSILD-Results-Count": str(total)} if count else {}
    links = pagination_links(str(request.url.path).rstrip("/"), page, offset, total)
    if links:
        headers["Link"] = links
    return headers


def check_params(request: Request, known: frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidRequest(f"unknown query parameter(s): {', '.join(unknown)}")


def created(broker: BrokerRequest, location: str | None, status: int = 201) -> Response:
    """An empty answer (201 with its ``Location``), echoing the tenant when one was named."""
    headers = {TENANT_HEADER: broker.tenant} if broker.tenant_given else {}
    if location is not None:
        headers["Location"] = location
    return Response(status_code=status, headers=headers)


def now() -> str:
    return isoformat(utcnow())


def entity_id_of(entity_id: str) -> str:
    return ngsi.require_uri(entity_id, "entity id")
