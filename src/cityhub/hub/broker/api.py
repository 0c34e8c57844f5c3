"""NGSI-LD HTTP binding (ETSI GS CIM 009, clause 6): thin endpoints over the broker service.

Request bodies are read and parsed here (not by FastAPI models) because NGSI-LD payloads are
open-ended JSON-LD whose meaning depends on the @context; ``ngsi`` validates them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from cityhub.hub.broker import changes, ngsi, service, views
from cityhub.hub.broker.context import ActiveContext, ContextStore, link_header, parse_link_header
from cityhub.hub.broker.q import parse_q, parse_scope_q, parse_type_selection
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.errors import BadRequestData, HubError, InvalidRequest, NotFound, UnsupportedMediaType
from cityhub.kit.geo import geometry_from_query, parse_geometry, parse_georel
from cityhub.kit.time import isoformat, utcnow
from cityhub.kit.web import TENANT_HEADER, DbSession

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD"])

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


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
        self.contexts: ContextStore = request.app.state.hub.contexts
        self.accept = _negotiate(request.headers.get("accept"))

    async def context(self, body: Any = None) -> ActiveContext:
        """The @context of the request: the body's for JSON-LD, else the Link header's."""
        content_type = (self.request.headers.get("content-type") or "").split(";")[0].strip()
        link = parse_link_header(self.request.headers.get("link"))
        if isinstance(body, dict) and content_type == JSON_LD:
            if "@context" not in body:
                raise BadRequestData("an application/ld+json body must carry its @context")
            if link is not None:
                raise BadRequestData("give the @context either in the body or in a Link header, not both")
            return await self.contexts.resolve(body["@context"])
        if isinstance(body, dict) and "@context" in body:
            raise BadRequestData("an application/json body must not carry @context; use a Link header")
        return await self.contexts.resolve(link)

    async def body(self, *, merge_patch: bool = False) -> Any:
        content_type = (self.request.headers.get("content-type") or "").split(";")[0].strip()
        allowed = {JSON, JSON_LD} | ({MERGE_PATCH} if merge_patch else set())
        if content_type not in allowed:
            raise UnsupportedMediaType(f"Content-Type must be one of {', '.join(sorted(allowed))}")
        raw = await self.request.body()
        if not raw:
            raise InvalidRequest("the request body is empty")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise InvalidRequest(f"the request body is not valid JSON: {error}") from None

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
        else:
            headers["Link"] = link_header(ctx.urls[0])
        if self.tenant_given:
            headers[TENANT_HEADER] = self.tenant
        return Response(orjson.dumps(payload), status_code=status, media_type=media, headers=headers)


Broker = Annotated[BrokerRequest, Depends(BrokerRequest)]


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


def _options(options: str | None) -> set[str]:
    known = {*FORMATS, "sysAttrs", "noOverwrite", "replace", "update"}
    given = {item.strip() for item in (options or "").split(",") if item.strip()}
    unknown = given - known
    if unknown:
        raise InvalidRequest(f"unknown option(s): {', '.join(sorted(unknown))}")
    return given


def _format(options: set[str], fmt: str | None) -> ngsi.Format:
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidRequest(f"format must be normalized, concise or keyValues, not {fmt!r}")
        return FORMATS[fmt]
    if "keyValues" in options or "simplified" in options:
        return "keyValues"
    if "concise" in options:
        return "concise"
    return "normalized"


def _names(text: str | None, ctx: ActiveContext) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise BadRequestData("an empty list of attribute names was given")
    for name in names:
        if name in ngsi.ENTITY_KEYS:
            raise BadRequestData(f"{name!r} is an entity member, not an attribute name")
    return [ctx.expand(ngsi.check_name(name, "attribute name")) for name in names]


RETRIEVE_PARAMS = frozenset(
    {
        "attrs",
        "pick",
        "omit",
        "options",
        "format",
        "lang",
        "datasetId",
        "join",
        "joinLevel",
        "geometryProperty",
        "local",
        "containedBy",
        "entityMap",
        "type",
    }
)
QUERY_PARAMS = RETRIEVE_PARAMS | {
    "id",
    "idPattern",
    "q",
    "scopeQ",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "limit",
    "offset",
    "count",
    "csf",
    "orderBy",
    "expandValues",
    "collect",
}


def _known_params(request: Request, known: frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidRequest(f"unknown query parameter(s): {', '.join(unknown)}")


def _now() -> str:
    return isoformat(utcnow())


def _entity_id(entity_id: str) -> str:
    return ngsi.require_uri(entity_id, "entity id")


# -- entities -----------------------------------------------------------------------------------


@router.post("/entities", status_code=201, summary="Create an entity")
@router.post("/entities/", status_code=201, include_in_schema=False)
async def create_entity(broker: Broker) -> Response:
    body = await broker.body()
    if isinstance(body, dict) and not (set(body) - {"@context"}):
        raise InvalidRequest("the entity is an empty JSON object")
    ctx = await broker.context(body)
    entity = ngsi.expand_entity(body, ctx)
    changes.stamp(entity, _now(), created=True)
    await broker.write_tenant()
    await service.create_entity(broker.session, entity)
    headers = {"Location": f"/ngsi-ld/v1/entities/{entity['id']}"}
    if broker.tenant_given:
        headers[TENANT_HEADER] = broker.tenant
    return Response(status_code=201, headers=headers)


def _view(
    ctx: ActiveContext,
    *,
    options: str | None,
    fmt: str | None,
    attrs: str | None = None,
    pick: str | None = None,
    omit: str | None = None,
    lang: str | None = None,
    dataset_id: str | None = None,
    join: str | None = None,
    join_level: int | None = None,
    geometry_property: str | None = None,
) -> views.View:
    opts = _options(options)
    datasets: set[str | None] | None = None
    if dataset_id is not None:
        datasets = set()
        for item in dataset_id.split(","):
            datasets.add(None if item == views.NONE_DATASET else ngsi.require_uri(item, "datasetId"))
    return views.View(
        ctx,
        fmt=_format(opts, fmt),
        sys_attrs="sysAttrs" in opts,
        languages=views.parse_languages(lang),
        pick=views.parse_projection(pick, "pick") if pick is not None else None,
        omit=views.parse_projection(omit, "omit") if omit is not None else None,
        attrs=set(_names(attrs, ctx) or []) if attrs is not None else None,
        dataset_ids=datasets,
        join=join,
        join_level=join_level or 1,
        geometry_property=ctx.expand(geometry_property) if geometry_property else service.LOCATION,
    )


def _fetch(broker: BrokerRequest) -> views.Fetch:
    async def fetch(ids: list[str] | Any) -> dict[str, dict[str, Any]]:
        return await service.get_entities(broker.session, list(ids))

    return fetch


@router.get("/entities/{entity_id}", summary="Retrieve an entity")
async def retrieve_entity(
    broker: Broker,
    entity_id: str,
    attrs: str | None = None,
    pick: str | None = None,
    omit: str | None = None,
    options: str | None = None,
    format: str | None = None,  # NGSI-LD names its parameters so
    lang: str | None = None,
    datasetId: str | None = None,
    join: str | None = None,
    joinLevel: int | None = None,
    geometryProperty: str | None = None,
) -> Response:
    _known_params(broker.request, RETRIEVE_PARAMS)
    await broker.read_tenant()
    ctx = await broker.context()
    view = _view(
        ctx,
        options=options,
        fmt=format,
        attrs=attrs,
        pick=pick,
        omit=omit,
        lang=lang,
        dataset_id=datasetId,
        join=join,
        join_level=joinLevel,
        geometry_property=geometryProperty,
    )
    entity = await service.get_entity(broker.session, _entity_id(entity_id))
    if not view.matches_attrs(entity):
        raise NotFound(f"entity {entity_id} has none of the attributes asked for")
    rendered = await views.render_all([entity], view, _fetch(broker))
    if not rendered[0]:
        raise NotFound(f"nothing of entity {entity_id} is left after pick and omit")
    if broker.accept == GEO_JSON:
        return broker.render(_feature(rendered[0], entity, view), ctx)
    return broker.render(rendered if len(rendered) > 1 else rendered[0], ctx)


def _feature(rendered: dict[str, Any], entity: dict[str, Any], view: views.View) -> dict[str, Any]:
    geometry = None
    for instance in entity["attrs"].get(view.geometry_property, ()):
        if instance.get("type") == "GeoProperty":
            geometry = instance.get("value")
            break
    properties = {k: v for k, v in rendered.items() if k != "id"}
    return {
        "id": rendered.get("id", entity["id"]),
        "type": "Feature",
        "geometry": geometry,
        "properties": properties,
    }


@router.delete("/entities/{entity_id}", status_code=204, summary="Delete an entity")
async def delete_entity(broker: Broker, entity_id: str) -> Response:
    await broker.read_tenant()
    await service.delete_entity(broker.session, _entity_id(entity_id))
    return Response(status_code=204)


@router.get("/entities", summary="Query entities")
@router.get("/entities/", include_in_schema=False)
async def query_entities(
    broker: Broker,
    id: str | None = None,  # NGSI-LD names its parameters so
    type: str | None = None,
    idPattern: str | None = None,
    attrs: str | None = None,
    pick: str | None = None,
    omit: str | None = None,
    q: str | None = None,
    scopeQ: str | None = None,
    georel: str | None = None,
    geometry: str | None = None,
    coordinates: str | None = None,
    geoproperty: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int, Query()] = 0,
    count: bool = False,
    options: str | None = None,
    format: str | None = None,
    lang: str | None = None,
    datasetId: str | None = None,
    join: str | None = None,
    joinLevel: int | None = None,
    geometryProperty: str | None = None,
    local: bool = False,
) -> Response:
    _known_params(broker.request, QUERY_PARAMS)
    ctx = await broker.context()
    if not any((type, attrs, q, georel, scopeQ, local)):
        raise BadRequestData("give at least one of type, attrs, q, scopeQ or a geo-query")
    query = _entity_query(
        ctx,
        ids=id.split(",") if id else None,
        types=type,
        id_pattern=idPattern,
        q=q,
        scope_q=scopeQ,
        geo=(georel, geometry, coordinates, geoproperty),
    )
    view = _view(
        ctx,
        options=options,
        fmt=format,
        attrs=attrs,
        pick=pick,
        omit=omit,
        lang=lang,
        dataset_id=datasetId,
        join=join,
        join_level=joinLevel,
        geometry_property=geometryProperty,
    )
    return await _answer_query(broker, ctx, query, view, limit=limit, offset=offset, count=count)


def _entity_query(
    ctx: ActiveContext,
    *,
    ids: list[str] | None,
    types: str | list[str] | None,
    id_pattern: str | None,
    q: str | None,
    scope_q: str | None,
    geo: tuple[str | None, Any, Any, str | None],
) -> service.EntityQuery:
    selection = None
    if types:
        selection = parse_type_selection(types if isinstance(types, str) else ",".join(types))
        for name in selection.names:
            ngsi.check_name(name, "entity type")
    query = service.EntityQuery(
        types=[ctx.expand(name) for name in selection.names] if selection else None,
        ids=[_entity_id(i.strip()) for i in ids] if ids else None,
        id_pattern=_pattern(id_pattern),
    )
    expression = parse_q(q) if q else None
    # scopeQ takes ',' for OR as well as '|'
    scope = parse_scope_q(scope_q.replace(",", "|")) if scope_q else None
    typed = selection if selection is not None and not isinstance(selection.tree, str) else None
    if expression is not None or scope is not None or typed is not None:
        query.matches = lambda entity: (
            (expression is None or expression.evaluate(entity, ctx.expand))
            and (scope is None or scope.evaluate(entity.get("scope", [])))
            and (typed is None or typed.matches(set(entity["type"]), ctx.expand))
        )
    georel, geometry, coordinates, geoproperty = geo
    if georel or geometry or coordinates:
        if not (georel and geometry and coordinates):
            raise BadRequestData("a geo-query needs georel, geometry and coordinates together")
        query.georel = parse_georel(georel)
        if isinstance(coordinates, str):
            query.geometry = geometry_from_query(str(geometry), coordinates)
        else:
            query.geometry = parse_geometry({"type": geometry, "coordinates": coordinates})
        if geoproperty:
            query.geoproperty = ctx.expand(geoproperty)
    return query


async def _answer_query(
    broker: BrokerRequest,
    ctx: ActiveContext,
    query: service.EntityQuery,
    view: views.View,
    *,
    limit: int | None,
    offset: int,
    count: bool,
) -> Response:
    page = DEFAULT_LIMIT if limit is None else limit
    if page < 0 or offset < 0:
        raise BadRequestData("limit and offset must not be negative")
    if page == 0 and not count:
        raise BadRequestData("limit=0 is only allowed with count=true")
    if page > MAX_LIMIT:
        raise TooManyResults(f"limit may be at most {MAX_LIMIT}")
    query.keep = view.matches_attrs
    if not broker.tenant_given or await service.tenant_exists(broker.session, broker.tenant):
        found, total = await service.query_entities(broker.session, query, limit=page, offset=offset)
    else:
        found, total = [], 0
    rendered = await views.render_all(found, view, _fetch(broker))
    headers = {"NGSILD-Results-Count": str(total)} if count else {}
    if broker.accept == GEO_JSON:
        features = [_feature(r, e, view) for r, e in zip(rendered, found, strict=False)]
        return broker.render({"type": "FeatureCollection", "features": features}, ctx, headers=headers)
    return broker.render(rendered, ctx, headers=headers)


@router.post("/entityOperations/query", summary="Query entities with a Query object")
async def query_entities_post(
    broker: Broker,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int, Query()] = 0,
    count: bool = False,
    options: str | None = None,
    format: str | None = None,
    lang: str | None = None,
    join: str | None = None,
    joinLevel: int | None = None,
    pick: str | None = None,
    omit: str | None = None,
    datasetId: str | None = None,
) -> Response:
    body = await broker.body()
    ctx = await broker.context(body)
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object ("type": "Query")')
    selectors = body.get("entities") or []
    if not isinstance(selectors, list) or not all(isinstance(e, dict) for e in selectors):
        raise BadRequestData("entities must be a list of entity selectors")
    types = [e["type"] for e in selectors if "type" in e]
    ids = [e["id"] for e in selectors if "id" in e]
    patterns = [e["idPattern"] for e in selectors if "idPattern" in e]
    geo_q = body.get("geoQ") or {}
    if not isinstance(geo_q, dict):
        raise BadRequestData("geoQ must be an object")
    attrs = body.get("attrs")
    if attrs is not None and not (isinstance(attrs, list) and all(isinstance(a, str) for a in attrs)):
        raise BadRequestData("attrs must be a list of attribute names")
    if not any((types, attrs, body.get("q"), geo_q, body.get("scopeQ"))):
        raise BadRequestData("give at least one of entities with a type, attrs, q, scopeQ or geoQ")
    query = _entity_query(
        ctx,
        ids=ids or None,
        types=types or None,
        id_pattern="|".join(f"(?:{p})" for p in patterns) if patterns else None,
        q=body.get("q"),
        scope_q=body.get("scopeQ"),
        geo=(geo_q.get("georel"), geo_q.get("geometry"), geo_q.get("coordinates"), geo_q.get("geoproperty")),
    )
    view = _view(
        ctx,
        options=options,
        fmt=format,
        attrs=",".join(attrs) if attrs else None,
        lang=body.get("lang", lang),
        pick=_joined(body.get("pick", pick)),
        omit=_joined(body.get("omit", omit)),
        dataset_id=_joined(body.get("datasetId", datasetId)),
        join=body.get("join", join),
        join_level=body.get("joinLevel", joinLevel),
    )
    return await _answer_query(broker, ctx, query, view, limit=limit, offset=offset, count=count)


def _joined(value: Any) -> str | None:
    """A Query object member that may be a list or a comma-separated string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    raise BadRequestData(f"expected a string or a list of strings, got {value!r}")


def _pattern(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        re.compile(text)
    except re.error as error:
        raise BadRequestData(f"idPattern is not a valid regular expression: {error}") from None
    return text


@router.put("/entities/{entity_id}", status_code=204, summary="Replace an entity")
async def replace_entity(broker: Broker, entity_id: str) -> Response:
    await broker.read_tenant()
    body = await broker.body()
    ctx = await broker.context(body)
    entity_id = _entity_id(entity_id)
    if isinstance(body, dict) and body.get("id", entity_id) != entity_id:
        raise BadRequestData("the id in the body differs from the id in the path")
    new = ngsi.expand_entity({"id": entity_id} | body if isinstance(body, dict) else body, ctx)
    entity = await service.get_entity(broker.session, entity_id)
    changes.replace(entity, new, _now())
    await service.save_entity(broker.session, entity)
    return Response(status_code=204)


@router.patch("/entities/{entity_id}", status_code=204, summary="Merge into an entity")
async def merge_entity(broker: Broker, entity_id: str) -> Response:
    await broker.read_tenant()
    body = await broker.body(merge_patch=True)
    ctx = await broker.context(body)
    if not isinstance(body, dict) or not body:
        raise BadRequestData("a merge patch must be a non-empty JSON object")
    entity_id = _entity_id(entity_id)
    if body.get("id", entity_id) != entity_id:
        raise BadRequestData("the id in the body differs from the id in the path")
    patch: dict[str, Any] = {"attrs": ngsi.expand_attributes(body, ctx, allow_null=True)}
    if "type" in body:
        patch["type"] = ngsi.expand_types(body["type"], ctx)
    if "scope" in body:
        patch["scope"] = ngsi.expand_scopes(body["scope"])
    entity = await service.get_entity(broker.session, entity_id)
    changes.merge(entity, patch, _now())
    await service.save_entity(broker.session, entity)
    return Response(status_code=204)


# -- attributes ---------------------------------------------------------------------------------


def _update_result(result: changes.UpdateResult, ctx: ActiveContext) -> Response | None:
    """204 when everything was applied, else 207 with NGSI-LD's UpdateResult."""
    if not result.not_updated:
        return None
    body = {
        "updated": [ctx.compact(iri) for iri in result.updated],
        "notUpdated": [
            {"attributeName": ctx.compact(iri), "reason": reason} for iri, reason in result.not_updated
        ],
    }
    return Response(orjson.dumps(body), status_code=207, media_type=JSON)


@router.post("/entities/{entity_id}/attrs", status_code=204, summary="Append attributes")
@router.post("/entities/{entity_id}/attrs/", status_code=204, include_in_schema=False)
async def append_attributes(broker: Broker, entity_id: str, options: str | None = None) -> Response:
    await broker.read_tenant()
    body = await broker.body()
    ctx = await broker.context(body)
    if not isinstance(body, dict):
        raise InvalidRequest("attributes must be given as a JSON object")
    attrs = ngsi.expand_attributes(body, ctx)
    overwrite = "noOverwrite" not in _options(options)
    entity = await service.get_entity(broker.session, _entity_id(entity_id))
    if "type" in body:
        entity["type"] = list(dict.fromkeys([*entity["type"], *ngsi.expand_types(body["type"], ctx)]))
    result = changes.append(entity, attrs, _now(), overwrite=overwrite)
    if "scope" in body:
        scopes = ngsi.expand_scopes(body["scope"])
        entity["scope"] = scopes if overwrite else list(dict.fromkeys([*entity.get("scope", []), *scopes]))
    await service.save_entity(broker.session, entity)
    return _update_result(result, ctx) or Response(status_code=204)


@router.patch("/entities/{entity_id}/attrs", status_code=204, summary="Update attributes")
@router.patch("/entities/{entity_id}/attrs/", status_code=204, include_in_schema=False)
async def update_attributes(broker: Broker, entity_id: str) -> Response:
    await broker.read_tenant()
    body = await broker.body()
    ctx = await broker.context(body)
    if not isinstance(body, dict):
        raise InvalidRequest("attributes must be given as a JSON object")
    attrs = ngsi.expand_attributes(body, ctx, allow_null=True)
    entity = await service.get_entity(broker.session, _entity_id(entity_id))
    result = changes.update(entity, attrs, _now())
    if "type" in body:
        entity["type"] = list(dict.fromkeys([*entity["type"], *ngsi.expand_types(body["type"], ctx)]))
        result.updated.append("type")
    if "scope" in body:
        if "scope" in entity:
            entity["scope"] = ngsi.expand_scopes(body["scope"])
            result.updated.append("scope")
        else:
            result.not_updated.append(("scope", "the entity has no scope to update"))
    if result.changed:
        await service.save_entity(broker.session, entity)
    return _update_result(result, ctx) or Response(status_code=204)


@router.patch("/entities/{entity_id}/attrs/{attr}", status_code=204, summary="Partially update an attribute")
async def partial_attribute_update(broker: Broker, entity_id: str, attr: str) -> Response:
    await broker.read_tenant()
    body = await broker.body()
    ctx = await broker.context(body)
    if not isinstance(body, dict) or not body:
        raise BadRequestData("the attribute fragment must be a non-empty JSON object")
    iri = ctx.expand(ngsi.check_name(attr, "attribute name"))
    fragment: dict[str, Any] = {}
    for key, value in body.items():
        if key == "@context":
            continue
        if key in ngsi.CORE_KEYS:
            fragment[key] = value
        else:
            sub = ctx.expand(ngsi.check_name(key, "sub-attribute name"))
            fragment[sub] = ngsi.expand_instance(sub, value, ctx, allow_null=True)
    entity = await service.get_entity(broker.session, _entity_id(entity_id))
    if not changes.partial_update(entity, iri, fragment, _now()):
        raise NotFound(f"entity {entity_id} has no attribute {attr}")
    await service.save_entity(broker.session, entity)
    return Response(status_code=204)


@router.put("/entities/{entity_id}/attrs/{attr}", status_code=204, summary="Replace an attribute")
async def replace_attribute(broker: Broker, entity_id: str, attr: str) -> Response:
    await broker.read_tenant()
    body = await broker.body()
    ctx = await broker.context(body)
    if attr in ngsi.ENTITY_KEYS:
        raise BadRequestData(f"{attr!r} is an entity member, not an attribute")
    iri = ctx.expand(ngsi.check_name(attr, "attribute name"))
    if not isinstance(body, dict):
        raise BadRequestData("the attribute must be a JSON object")
    instance = ngsi.expand_instance(iri, {k: v for k, v in body.items() if k != "@context"}, ctx)
    entity = await service.get_entity(broker.session, _entity_id(entity_id))
    if iri not in entity["attrs"]:
        raise NotFound(f"entity {entity_id} has no attribute {attr}")
    result = changes.update(entity, {iri: [instance]}, _now())
    if not result.changed:
        raise NotFound(f"entity {entity_id} has no instance of {attr} with that datasetId")
    await service.save_entity(broker.session, entity)
    return Response(status_code=204)


@router.delete("/entities/{entity_id}/attrs/{attr}", status_code=204, summary="Delete an attribute")
async def delete_attribute(
    broker: Broker,
    entity_id: str,
    attr: str,
    datasetId: str | None = None,
    deleteAll: bool = False,
) -> Response:
    await broker.read_tenant()
    ctx = await broker.context()
    if attr == "scope":
        entity = await service.get_entity(broker.session, _entity_id(entity_id))
        if not entity.pop("scope", None):
            raise NotFound(f"entity {entity_id} has no scope")
        entity["modifiedAt"] = _now()
        await service.save_entity(broker.session, entity)
        return Response(status_code=204)
    iri = ctx.expand(ngsi.check_name(attr, "attribute name"))
    if datasetId is not None:
        ngsi.require_uri(datasetId, "datasetId")
    entity = await service.get_entity(broker.session, _entity_id(entity_id))
    if not changes.delete_attribute(entity, iri, dataset_id=datasetId, delete_all=deleteAll):
        raise NotFound(
            f"entity {entity_id} has no attribute {attr}"
            + (f" with datasetId {datasetId}" if datasetId else "")
        )
    entity["modifiedAt"] = _now()
    await service.save_entity(broker.session, entity)
    return Response(status_code=204)


@router.api_route(
    "/entities/{rest:path}",
    methods=["GET", "PUT", "PATCH", "POST", "DELETE"],
    include_in_schema=False,
)
async def malformed_entity_path(rest: str) -> Response:
    """``/entities/`` or ``/entities//attrs``: the id is missing, which is the client's error."""
    raise BadRequestData(f"the entity id is missing in /entities/{rest}")


@router.delete("/entities/{entity_id}/attrs", include_in_schema=False)
@router.delete("/entities/{entity_id}/attrs/", include_in_schema=False)
async def delete_attribute_without_name(entity_id: str) -> Response:
    raise BadRequestData("the attribute name is missing in the path")


# -- discovery ----------------------------------------------------------------------------------


@router.get("/types", summary="Entity types")
async def list_types(broker: Broker, details: bool = False) -> Response:
    await broker.read_tenant()
    ctx = await broker.context()
    types = await service.entity_types(broker.session)
    if details:
        payload: Any = [
            {
                "id": iri,
                "type": "EntityType",
                "typeName": ctx.compact(iri),
                "attributeNames": sorted(ctx.compact(a) for a in attributes),
            }
            for iri, attributes in sorted(types.items())
        ]
    else:
        payload = {
            "id": f"urn:ngsi-ld:EntityTypeList:{broker.tenant}",
            "type": "EntityTypeList",
            "typeList": sorted(ctx.compact(iri) for iri in types),
        }
    return broker.render(payload, ctx)


@router.get("/attributes", summary="Attribute names")
async def list_attributes(broker: Broker, details: bool = False) -> Response:
    await broker.read_tenant()
    ctx = await broker.context()
    types = await service.entity_types(broker.session)
    by_attribute: dict[str, set[str]] = {}
    for entity_type, attributes in types.items():
        for attribute in attributes:
            by_attribute.setdefault(attribute, set()).add(entity_type)
    if details:
        payload: Any = [
            {
                "id": iri,
                "type": "Attribute",
                "attributeName": ctx.compact(iri),
                "typeNames": sorted(ctx.compact(t) for t in entity_types),
            }
            for iri, entity_types in sorted(by_attribute.items())
        ]
    else:
        payload = {
            "id": f"urn:ngsi-ld:AttributeList:{broker.tenant}",
            "type": "AttributeList",
            "attributeList": sorted(ctx.compact(iri) for iri in by_attribute),
        }
    return broker.render(payload, ctx)


@router.get("/types/{type_name:path}", summary="One entity type")
async def get_type(broker: Broker, type_name: str) -> Response:
    await broker.read_tenant()
    ctx = await broker.context()
    iri = ctx.expand(type_name)
    attributes = (await service.catalogue(broker.session)).get(iri)
    if attributes is None:
        raise NotFound(f"no entity of type {type_name}")
    payload = {
        "id": iri,
        "type": "EntityTypeInfo",
        "typeName": ctx.compact(iri),
        "entityCount": await service.count_of_type(broker.session, iri),
        "attributeDetails": [
            {"id": a, "type": "Attribute", "attributeName": ctx.compact(a), "attributeTypes": sorted(kinds)}
            for a, kinds in sorted(attributes.items())
        ],
    }
    return broker.render(payload, ctx)


@router.get("/attributes/{attribute_name:path}", summary="One attribute")
async def get_attribute(broker: Broker, attribute_name: str) -> Response:
    await broker.read_tenant()
    ctx = await broker.context()
    iri = ctx.expand(attribute_name)
    catalogue = await service.catalogue(broker.session)
    owners = sorted(t for t, attributes in catalogue.items() if iri in attributes)
    if not owners:
        raise NotFound(f"no entity has attribute {attribute_name}")
    kinds = sorted(set().union(*(catalogue[t][iri] for t in owners)))
    payload = {
        "id": iri,
        "type": "Attribute",
        "attributeName": ctx.compact(iri),
        "attributeCount": await service.count_with_attribute(broker.session, iri),
        "attributeTypes": kinds,
        "typeNames": [ctx.compact(t) for t in owners],
    }
    return broker.render(payload, ctx)
