"""Entities: create, retrieve, replace, merge, delete, and queries (GET and POST)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from cityhub.hub.broker import changes, ngsi, service, views
from cityhub.hub.broker.context import ActiveContext
from cityhub.hub.broker.http import (
    GEO_JSON,
    Broker,
    BrokerRequest,
    attribute_names,
    check_params,
    created,
    entity_id_of,
    now,
    page_size,
    parse_options,
    pick_format,
)
from cityhub.hub.broker.order import ordering, parse_order_by
from cityhub.hub.broker.q import parse_q, parse_scope_q, parse_type_selection
from cityhub.kit.errors import BadRequestData, InvalidRequest, NotFound
from cityhub.kit.geo import parse_georel, query_geometry
from cityhub.kit.web import on_event_loop

router = APIRouter()

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
    "orderBy",
    "csf",
    "expandValues",
    "collect",
}


@router.post("/entities", status_code=201, summary="Create an entity")
@router.post("/entities/", status_code=201, include_in_schema=False)
async def create_entity(broker: Broker) -> Response:
    check_params(broker.request, frozenset({"local"}))
    body = await broker.body()
    if not isinstance(body, dict) or not (set(body) - {"@context"}):
        raise InvalidRequest("an entity must be a non-empty JSON object")
    ctx = await broker.context(body)
    entity = ngsi.expand_entity(body, ctx)
    changes.stamp(entity, now(), created=True)
    await broker.write_tenant()
    await service.create_entity(broker.session, entity)
    return created(broker, f"/ngsi-ld/v1/entities/{entity['id']}")


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
    opts = parse_options(options)
    return views.View(
        ctx,
        fmt=pick_format(opts, fmt),
        sys_attrs="sysAttrs" in opts,
        languages=views.parse_languages(lang),
        pick=views.parse_projection(pick, "pick") if pick is not None else None,
        omit=views.parse_projection(omit, "omit") if omit is not None else None,
        attrs=set(attribute_names(attrs, ctx) or []) if attrs is not None else None,
        dataset_ids=views.parse_dataset_ids(dataset_id),
        join=join,
        join_level=join_level or 1,
        geometry_property=ctx.expand(geometry_property) if geometry_property else service.LOCATION,
    )


class ViewParams:
    """The query parameters that shape how entities are shown (retrieve and query alike)."""

    def __init__(
        self,
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
    ) -> None:
        self.attrs = attrs
        self.pick = pick
        self.omit = omit
        self.options = options
        self.format = format
        self.lang = lang
        self.dataset_id = datasetId
        self.join = join
        self.join_level = joinLevel
        self.geometry_property = geometryProperty

    def view(self, ctx: ActiveContext) -> views.View:
        return _view(
            ctx,
            options=self.options,
            fmt=self.format,
            attrs=self.attrs,
            pick=self.pick,
            omit=self.omit,
            lang=self.lang,
            dataset_id=self.dataset_id,
            join=self.join,
            join_level=self.join_level,
            geometry_property=self.geometry_property,
        )


Shown = Annotated[ViewParams, Depends(on_event_loop(ViewParams))]


def _fetch(broker: BrokerRequest) -> views.Fetch:
    async def fetch(ids: list[str] | Any) -> dict[str, dict[str, Any]]:
        return await service.get_entities(broker.session, list(ids))

    return fetch


@router.get("/entities/{entity_id}", summary="Retrieve an entity")
async def retrieve_entity(broker: Broker, entity_id: str, shown: Shown) -> Response:
    check_params(broker.request, RETRIEVE_PARAMS)
    await broker.read_tenant()
    ctx = await broker.context()
    view = shown.view(ctx)
    view.disclosure = broker.disclosure
    entity = await service.get_entity(broker.session, entity_id_of(entity_id))
    if not view.matches_attrs(entity):
        raise NotFound(f"entity {entity_id} has none of the attributes asked for")
    rendered = await views.render_all([entity], view, _fetch(broker))
    if not rendered[0]:
        raise NotFound(f"nothing of entity {entity_id} is left after pick and omit")
    if broker.accept == GEO_JSON:
        return broker.render(views.feature(rendered[0], entity, view.geometry_property), ctx)
    return broker.render(rendered if len(rendered) > 1 else rendered[0], ctx)


@router.delete("/entities/{entity_id}", status_code=204, summary="Delete an entity")
async def delete_entity(broker: Broker, entity_id: str) -> Response:
    await broker.read_tenant()
    await service.delete_entity(broker.session, entity_id_of(entity_id))
    return Response(status_code=204)


@router.get("/entities", summary="Query entities")
@router.get("/entities/", include_in_schema=False)
async def query_entities(
    broker: Broker,
    shown: Shown,
    selection: Annotated[Selection, Depends(on_event_loop(Selection))],
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int, Query()] = 0,
    count: bool = False,
    orderBy: str | None = None,
) -> Response:
    check_params(broker.request, QUERY_PARAMS)
    ctx = await broker.context()
    if not selection.narrows(shown.attrs):
        raise BadRequestData("give at least one of type, attrs, q, scopeQ or a geo-query")
    query = selection.query(ctx)
    if orderBy:
        query.order = ordering(parse_order_by(orderBy), ctx.expand, broker.disclosure.orderable)
    view = shown.view(ctx)
    return await _answer_query(broker, ctx, query, view, limit=limit, offset=offset, count=count)


class Selection:
    """The parameters that select entities, as GET /entities and GET /temporal/entities share
    them (NGSI-LD names them so)."""

    def __init__(
        self,
        id: str | None = None,
        type: str | None = None,
        idPattern: str | None = None,
        q: str | None = None,
        scopeQ: str | None = None,
        georel: str | None = None,
        geometry: str | None = None,
        coordinates: str | None = None,
        geoproperty: str | None = None,
        local: bool = False,
    ) -> None:
        self.ids = id.split(",") if id else None
        self.type, self.id_pattern, self.q, self.scope_q = type, idPattern, q, scopeQ
        self.geo = (georel, geometry, coordinates, geoproperty)
        self.local = local

    def narrows(self, attrs: str | None) -> bool:
        """Whether the request narrows the entities at all (NGSI-LD refuses to list them all)."""
        return any((self.type, attrs, self.q, self.geo[0], self.scope_q, self.local))

    def query(self, ctx: ActiveContext) -> service.EntityQuery:
        return entity_query(
            ctx,
            ids=self.ids,
            types=self.type,
            id_pattern=self.id_pattern,
            q=self.q,
            scope_q=self.scope_q,
            geo=self.geo,
        )


def entity_query(
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
        ids=[entity_id_of(i.strip()) for i in ids] if ids else None,
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
        query.geometry = query_geometry(geometry, coordinates)
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
    page = page_size(limit, offset, count)
    view.disclosure = broker.disclosure
    query.matches = broker.disclosure.guard_query(query.matches)
    query.keep = view.matches_attrs
    if not broker.tenant_given or await service.tenant_exists(broker.session, broker.tenant):
        found, total = await service.query_entities(broker.session, query, limit=page, offset=offset)
    else:
        found, total = [], 0
    rendered = await views.render_all(found, view, _fetch(broker))
    headers = {"NGSILD-Results-Count": str(total)} if count else {}
    if broker.accept == GEO_JSON:
        features = [
            views.feature(r, e, view.geometry_property) for r, e in zip(rendered, found, strict=False)
        ]
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
    query, attrs = query_object(body, ctx, selective=True)
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


def query_object(
    body: Any, ctx: ActiveContext, *, selective: bool
) -> tuple[service.EntityQuery, list[str] | None]:
    """The entity query and the ``attrs`` of a Query object (clause 5.2.23), as POST
    /entityOperations/query and its temporal twin take it. ``selective``: the query must name
    at least one of entities with a type, attrs, q, scopeQ or geoQ."""
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object ("type": "Query")')
    selectors = body.get("entities") or []
    if not isinstance(selectors, list) or not all(isinstance(e, dict) for e in selectors):
        raise BadRequestData("entities must be a list of entity selectors")
    types = [e["type"] for e in selectors if "type" in e]
    patterns = [e["idPattern"] for e in selectors if "idPattern" in e]
    geo_q = body.get("geoQ") or {}
    if not isinstance(geo_q, dict):
        raise BadRequestData("geoQ must be an object")
    attrs = body.get("attrs")
    if attrs is not None and not (isinstance(attrs, list) and all(isinstance(a, str) for a in attrs)):
        raise BadRequestData("attrs must be a list of attribute names")
    if selective and not any((types, attrs, body.get("q"), geo_q, body.get("scopeQ"))):
        raise BadRequestData("give at least one of entities with a type, attrs, q, scopeQ or geoQ")
    query = entity_query(
        ctx,
        ids=[e["id"] for e in selectors if "id" in e] or None,
        types=types or None,
        id_pattern="|".join(f"(?:{p})" for p in patterns) if patterns else None,
        q=body.get("q"),
        scope_q=body.get("scopeQ"),
        geo=(geo_q.get("georel"), geo_q.get("geometry"), geo_q.get("coordinates"), geo_q.get("geoproperty")),
    )
    return query, attrs


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
    entity_id = entity_id_of(entity_id)
    if isinstance(body, dict) and body.get("id", entity_id) != entity_id:
        raise BadRequestData("the id in the body differs from the id in the path")
    new = ngsi.expand_entity({"id": entity_id} | body if isinstance(body, dict) else body, ctx)
    entity = await service.get_entity(broker.session, entity_id, for_update=True)
    changes.replace(entity, new, now())
    await service.save_entity(broker.session, entity)
    return Response(status_code=204)


@router.patch("/entities/{entity_id}", status_code=204, summary="Merge into an entity")
async def merge_entity(broker: Broker, entity_id: str) -> Response:
    await broker.read_tenant()
    body = await broker.body(merge_patch=True)
    ctx = await broker.context(body)
    if not isinstance(body, dict) or not body:
        raise BadRequestData("a merge patch must be a non-empty JSON object")
    entity_id = entity_id_of(entity_id)
    if body.get("id", entity_id) != entity_id:
        raise BadRequestData("the id in the body differs from the id in the path")
    patch = ngsi.expand_merge_patch(body, ctx)
    entity = await service.get_entity(broker.session, entity_id, for_update=True)
    changes.merge(entity, patch, now())
    await service.save_entity(broker.session, entity)
    return Response(status_code=204)
