"""The temporal API (ETSI GS CIM 009 v1.8, clauses 5.6.11–5.6.19, 5.7.3–5.7.4): attribute history.

**Keeping history.** Every committed change of an entity adds the attribute instances it wrote to
``broker_attribute_instance``, in the same transaction (a hook on ``events``); the temporal write
endpoints add instances directly, with their own observedAt. History is kept per entity id and
outlives nothing: deleting an entity through the temporal API deletes its history.

**Reading history** (time queries, temporal pagination, aggregation, the representations) is
``history``; the endpoints here parse the request and answer 206 Partial Content with a
Content-Range when the server's limit on instances cut the answer.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Table, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cityhub.hub.broker import aggregation, changes, history, ngsi, order, protection, service, sharing, views
from cityhub.hub.broker.context import ActiveContext
from cityhub.hub.broker.entities import QUERY_PARAMS, Selection, query_object
from cityhub.hub.broker.events import on_before_commit
from cityhub.hub.broker.http import (
    Broker,
    BrokerRequest,
    attribute_names,
    check_params,
    created,
    entity_id_of,
    now,
    page_size,
    parse_options,
)
from cityhub.hub.broker.models import BrokerAttributeInstance
from cityhub.hub.retention.service import Downsampled as Downsampled  # downsampling lives there
from cityhub.hub.retention.service import downsample as downsample
from cityhub.kit.db import bulk_insert, current_tenant
from cityhub.kit.errors import BadRequestData, InvalidRequest, MethodNotAllowed, NotFound
from cityhub.kit.time import parse_datetime
from cityhub.kit.web import on_event_loop

router = APIRouter(prefix="/temporal")

#: Set on a session whose writes add their own history (the temporal write endpoints).
OWN_HISTORY = "cityhub.broker.own_history"
INSTANCE_PREFIX = history.INSTANCE_PREFIX
#: The scope's deletion is kept in the history as an attribute's is, its value an empty list.
SCOPE = ngsi.NGSI_LD + "scope"
#: The representations the ``format`` parameter of temporal reads names.
TEMPORAL_FORMATS = ("normalized", "temporalValues", "aggregatedValues")


_INSTANCES: Table = BrokerAttributeInstance.__table__  # type: ignore[assignment]


# -- keeping history --------------------------------------------------------------------------------


#: Instances of one change share their timestamps: parse each string once.
_parse_time = functools.lru_cache(maxsize=4096)(parse_datetime)


def _row(tenant: str, entity_id: str, attribute: str, instance: dict[str, Any], at: str) -> dict[str, Any]:
    """A history row; it gets its id when stored (:func:`_store`)."""
    observed = instance.get("observedAt")
    return {
        "instance_id": None,
        "tenant_code": tenant,
        "entity_id": entity_id,
        "attribute": attribute,
        "dataset_id": instance.get("datasetId"),
        # (a null observedAt, which a merge may carry, leaves no time)
        "observed_at": _parse_time(observed) if isinstance(observed, str) and observed != ngsi.NULL else None,
        "recorded_at": _parse_time(instance.get("modifiedAt") or at),
        "deleted_at": None,
        "data": instance,
    }


def _deletion(
    tenant: str, entity_id: str, attribute: str, instance: dict[str, Any], at: str
) -> dict[str, Any]:
    """The mark an attribute instance's deletion leaves in the history."""
    key = ngsi.content_key(instance.get("type", "Property"))
    kind = instance.get("type", "Property")
    mark = {
        "type": kind,
        key: {"@none": ngsi.NULL} if kind == "LanguageProperty" else [] if attribute == SCOPE else ngsi.NULL,
        "deletedAt": at,
    }
    if "datasetId" in instance:
        mark["datasetId"] = instance["datasetId"]
    return _row(tenant, entity_id, attribute, mark, at) | {
        "observed_at": None,
        "deleted_at": _parse_time(at),
    }


def _store(session: Session, rows: list[dict[str, Any]]) -> None:
    # Core (COPY on PostgreSQL): no ORM bookkeeping; each row gets its instance id there
    bulk_insert(session, _INSTANCES, rows, new_id="instance_id")


@on_before_commit
def keep_history(session: Session, tenant: str, entity_changes: list[dict[str, Any]]) -> None:
    """Add the instances each change wrote (new or different from before) to the history."""
    if session.info.get(OWN_HISTORY):
        return
    rows = []
    for change in entity_changes:
        entity = change["entity"]
        if entity is None:
            continue
        for name in change["deleted"]:
            for instance in change["previous"][name]:
                rows.append(_deletion(tenant, entity["id"], name, instance, entity["modifiedAt"]))
        if change.get("unscoped"):
            rows.append(_deletion(tenant, entity["id"], SCOPE, {"type": "Property"}, entity["modifiedAt"]))
        for name in (*change["created"], *change["updated"]):
            before = change["previous"].get(name, ())
            for instance in entity["attrs"].get(name, ()):
                if instance not in before and instance.get("value") != ngsi.NULL:
                    rows.append(_row(tenant, entity["id"], name, instance, entity["modifiedAt"]))
    _store(session, rows)


class TemporalParams:
    """The query parameters every temporal read shares."""

    def __init__(
        self,
        attrs: str | None = None,
        options: str | None = None,
        timerel: str | None = None,
        timeAt: str | None = None,  # NGSI-LD names its parameters so
        endTimeAt: str | None = None,
        timeproperty: str | None = None,
        lastN: str | None = None,
        aggrMethods: str | None = None,
        aggrPeriodDuration: str | None = None,
        pick: str | None = None,
        omit: str | None = None,
        datasetId: str | None = None,
        format: str | None = None,
    ) -> None:
        self.options = parse_options_temporal(options)
        if format is not None:  # format wins over options (clause 6.3.12)
            if format not in TEMPORAL_FORMATS:
                raise InvalidRequest(f"format must be {', '.join(TEMPORAL_FORMATS)}, not {format!r}")
            self.options = (self.options - set(TEMPORAL_FORMATS)) | ({format} - {"normalized"})
        self.dataset_ids = views.parse_dataset_ids(datasetId)
        self.attrs = attrs
        self.pick = views.parse_projection(pick, "pick") if pick is not None else None
        self.omit = views.parse_projection(omit, "omit") if omit is not None else None
        if attrs is not None and (pick is not None or omit is not None):
            raise BadRequestData("attrs cannot be combined with pick or omit; use pick")
        both = set(self.pick or ()) & set(self.omit or ())
        if both:
            raise BadRequestData(f"{', '.join(sorted(both))} is both picked and omitted")
        self.time = history.parse_time_query(timerel, timeAt, endTimeAt, timeproperty, lastN)
        self.aggregation = (
            history.parse_aggregation(aggrMethods, aggrPeriodDuration)
            if "aggregatedValues" in self.options
            else None
        )


def parse_options_temporal(text: str | None) -> set[str]:
    given = {item.strip() for item in (text or "").split(",") if item.strip()}
    temporal = given & {"temporalValues", "aggregatedValues"}
    if len(temporal) > 1:
        raise BadRequestData("temporalValues and aggregatedValues exclude each other")
    return temporal | parse_options(",".join(given - temporal))


def _selection(params: TemporalParams, ctx: ActiveContext, broker: BrokerRequest) -> history.Selection:
    """The attributes and datasets asked for, names expanded, within what the request may see of
    types readable in part (``sharing``)."""
    attrs = set(attribute_names(params.attrs, ctx) or []) if params.attrs else None
    if params.pick is not None:
        attrs = {ctx.expand(name) for name in params.pick if name not in ("id", "type")}
    omit = {ctx.expand(name) for name in params.omit or ()}
    access = sharing.of(broker.session)
    limits = dict(access.fields) if access is not None else {}
    return history.Selection(attrs, omit, params.dataset_ids, limits)


async def _answer(
    broker: BrokerRequest, entities: list[dict[str, Any]], params: TemporalParams, ctx: ActiveContext
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The temporal representations of ``entities`` and the headers of a cut answer (206)."""
    ids = [e["id"] for e in entities]
    if params.aggregation is not None:  # computed by the database; no server limit applies
        aggregated = await aggregation.read(
            broker.session, ids, _selection(params, ctx, broker), params.time, params.aggregation
        )
        shown = [
            history.render(
                entity,
                {},
                ctx,
                options=params.options,
                query=params.time,
                aggregated=aggregated.get(entity["id"], {}),
                disclosure=broker.disclosure,
            )
            for entity in entities
        ]
        content_range = None
    else:
        settings = broker.request.app.state.hub.settings
        found = await history.read(
            broker.session,
            ids,
            _selection(params, ctx, broker),
            params.time,
            limit=settings.broker_temporal_limit,
        )
        shown = [
            history.render(
                entity,
                found.entities.get(entity["id"], {}),
                ctx,
                options=params.options,
                query=params.time,
                disclosure=broker.disclosure,
            )
            for entity in entities
        ]
        content_range = found.content_range
    for item in shown:
        for member in ("id", "type"):
            if (params.pick is not None and member not in params.pick) or member in (params.omit or ()):
                item.pop(member, None)
    partial = {"Content-Range": content_range} if content_range else {}
    return shown, partial


@router.get("/entities/{entity_id}", summary="Retrieve the temporal evolution of an entity")
async def retrieve_temporal(
    broker: Broker, entity_id: str, params: Annotated[TemporalParams, Depends(on_event_loop(TemporalParams))]
) -> Response:
    await broker.read_tenant()
    ctx = await broker.context()
    entity = await service.get_entity(broker.session, entity_id_of(entity_id))
    answer, partial = await _answer(broker, [entity], params, ctx)
    shown = answer[0]
    asked = params.attrs is not None or params.pick is not None
    if asked and not set(shown) - {"id", "type", "scope", "createdAt", "modifiedAt"}:
        raise NotFound(f"entity {entity_id} has no history of the attributes asked for")
    if not shown:
        raise NotFound(f"pick and omit leave nothing of entity {entity_id}")
    return broker.render(shown, ctx, status=206 if partial else 200, headers=partial)


#: What GET /temporal/entities understands: the entity query's parameters and the time ones.
TEMPORAL_QUERY_PARAMS = QUERY_PARAMS | {
    "timerel",
    "timeAt",
    "endTimeAt",
    "timeproperty",
    "lastN",
    "aggrMethods",
    "aggrPeriodDuration",
}


@router.get("/entities", summary="Query the temporal evolution of entities")
@router.get("/entities/", include_in_schema=False)
async def query_temporal(
    broker: Broker,
    params: Annotated[TemporalParams, Depends(on_event_loop(TemporalParams))],
    selection: Annotated[Selection, Depends(on_event_loop(Selection))],
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int, Query()] = 0,
    count: bool = False,
    orderBy: str | None = None,
) -> Response:
    check_params(broker.request, TEMPORAL_QUERY_PARAMS)
    ctx = await broker.context()
    if not selection.narrows(params.attrs):
        raise BadRequestData("give at least one of type, attrs, q, scopeQ, a geo-query or local=true")
    query = selection.query(ctx)
    if orderBy is not None:
        query.order = order.ordering(order.parse_order_by(orderBy), ctx.expand, broker.disclosure.orderable)
    return await _page(broker, ctx, query, params, limit=limit, offset=offset, count=count)


async def _page(
    broker: BrokerRequest,
    ctx: ActiveContext,
    query: service.EntityQuery,
    params: TemporalParams,
    *,
    limit: int | None,
    offset: int,
    count: bool,
) -> Response:
    page = page_size(limit, offset, count)
    chosen = _selection(params, ctx, broker)
    if chosen.attrs is not None and not chosen.attrs:  # pick of id/type alone: history of any attribute
        chosen = dataclasses.replace(chosen, attrs=None)
    query.where = history.has_history(chosen, params.time)
    query.matches = broker.disclosure.guard_query(query.matches)
    if not broker.tenant_given or await service.tenant_exists(broker.session, broker.tenant):
        found, total = await service.query_entities(broker.session, query, limit=page, offset=offset)
    else:
        found, total = [], 0
    answer, partial = await _answer(broker, found, params, ctx)
    headers = partial | ({"NGSILD-Results-Count": str(total)} if count else {})
    return broker.render(answer, ctx, status=206 if partial else 200, headers=headers)


@router.post("/entityOperations/query", summary="Query temporal evolution with a Query object")
async def query_temporal_post(
    broker: Broker,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int, Query()] = 0,
    count: bool = False,
    options: str | None = None,
    aggrMethods: str | None = None,
    aggrPeriodDuration: str | None = None,
    format: str | None = None,
    datasetId: str | None = None,
) -> Response:
    body = await broker.body()
    ctx = await broker.context(body)
    query, attrs = query_object(body, ctx, selective=False)
    temporal = body.get("temporalQ") or {}
    if not isinstance(temporal, dict):
        raise BadRequestData("temporalQ must be an object")
    datasets = body.get("datasetId", datasetId)
    if isinstance(datasets, list) and all(isinstance(d, str) for d in datasets):
        datasets = ",".join(datasets)
    elif datasets is not None and not isinstance(datasets, str):
        raise BadRequestData("datasetId must be a string or a list of strings")
    params = TemporalParams(
        attrs=",".join(attrs) if attrs else None,
        options=options,
        timerel=temporal.get("timerel"),
        timeAt=temporal.get("timeAt"),
        endTimeAt=temporal.get("endTimeAt"),
        timeproperty=temporal.get("timeproperty"),
        lastN=temporal.get("lastN"),
        aggrMethods=aggrMethods,
        aggrPeriodDuration=aggrPeriodDuration,
        datasetId=datasets,
        format=format,
    )
    return await _page(broker, ctx, query, params, limit=limit, offset=offset, count=count)


# -- writing history --------------------------------------------------------------------------------


def _instances(body: dict[str, Any], ctx: ActiveContext) -> dict[str, list[dict[str, Any]]]:
    """A temporal payload's attributes: each a list of instances, any number per datasetId."""
    attrs: dict[str, list[dict[str, Any]]] = {}
    for name, raw in body.items():
        if name in ngsi.ENTITY_KEYS:
            continue
        iri = ctx.expand(ngsi.check_name(name, "attribute name"))
        items = raw if isinstance(raw, list) and raw and all(isinstance(i, dict) for i in raw) else [raw]
        attrs[iri] = [ngsi.expand_instance(iri, item, ctx) for item in items]
    return attrs


def _latest(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The current instance per datasetId: the one observed last (or given last)."""
    latest: dict[str | None, dict[str, Any]] = {}
    for instance in sorted(instances, key=lambda i: i.get("observedAt") or ""):
        latest[instance.get("datasetId")] = instance
    return [copy.deepcopy(i) for i in latest.values()]


async def _add_history(
    broker: BrokerRequest,
    entity_id: str,
    attrs: dict[str, list[dict[str, Any]]],
    at: str,
    *,
    types: list[str],
    replace: bool = True,
) -> None:
    """Write the instances a temporal request gives, the way ``keep_history`` writes changes. An
    instance of the same attribute, datasetId and observedAt as one stored replaces it (``replace``;
    False for a new entity, which has none)."""
    tenant = current_tenant(broker.session)
    assert tenant is not None
    if replace:
        await _drop_replaced(broker.session, entity_id, attrs)
    rows = [
        _row(tenant, entity_id, name, {"createdAt": at, "modifiedAt": at} | instance, at)
        for name, instances in attrs.items()
        for instance in protection.seal_instances(entity_id, types, name, instances)
    ]
    await broker.session.run_sync(_store, rows)


async def _drop_replaced(
    session: AsyncSession, entity_id: str, attrs: dict[str, list[dict[str, Any]]]
) -> None:
    for name, instances in attrs.items():
        moments: dict[str | None, set[datetime]] = {}
        for instance in instances:
            if instance.get("observedAt"):
                moment = parse_datetime(instance["observedAt"])
                moments.setdefault(instance.get("datasetId"), set()).add(moment)
        for dataset, observed in moments.items():
            column = BrokerAttributeInstance.dataset_id
            await session.execute(
                delete(BrokerAttributeInstance).where(
                    BrokerAttributeInstance.entity_id == entity_id,
                    BrokerAttributeInstance.attribute == name,
                    column.is_(None) if dataset is None else column == dataset,
                    BrokerAttributeInstance.observed_at.in_(observed),
                    BrokerAttributeInstance.deleted_at.is_(None),
                )
            )


@router.post("/entities", summary="Create or add to the temporal representation of an entity")
@router.post("/entities/", include_in_schema=False)
async def create_temporal(broker: Broker) -> Response:
    body = await broker.body()
    if not isinstance(body, dict):
        raise InvalidRequest("a temporal entity must be a JSON object")
    ctx = await broker.context(body)
    if "id" not in body or "type" not in body:
        raise BadRequestData("a temporal entity needs an id and a type")
    entity_id = entity_id_of(body["id"])
    types = ngsi.expand_types(body["type"], ctx)
    attrs = _instances(body, ctx)
    await broker.write_tenant()
    broker.session.sync_session.info[OWN_HISTORY] = True
    moment = now()
    # locked: what is written back below is what this request read, not what another writer replaced
    stored = (await service.get_entities(broker.session, [entity_id], for_update=True)).get(entity_id)
    if stored is None:
        entity = {"id": entity_id, "type": types, "attrs": {n: _latest(i) for n, i in attrs.items()}}
        if "scope" in body:
            entity["scope"] = ngsi.expand_scopes(body["scope"])
        changes.stamp(entity, moment, created=True)
        await service.create_entity(broker.session, entity)
        status = 201
    else:
        changes.add_types(stored, types)
        for name, instances in attrs.items():
            stored["attrs"].setdefault(name, _latest(instances))
        changes.stamp(stored, moment)
        await service.save_entity(broker.session, stored)
        status = 204
    await _add_history(broker, entity_id, attrs, moment, types=types, replace=status == 204)
    location = f"/ngsi-ld/v1/temporal/entities/{entity_id}" if status == 201 else None
    return created(broker, location, status)


@router.post("/entities/{entity_id}/attrs", status_code=204, summary="Add attribute instances")
async def add_instances(broker: Broker, entity_id: str) -> Response:
    await broker.read_tenant()
    body = await broker.body()
    if not isinstance(body, dict):
        raise InvalidRequest("the attributes must be a JSON object")
    ctx = await broker.context(body)
    attrs = _instances(body, ctx)
    if not attrs:
        raise BadRequestData("no attributes were given")
    broker.session.sync_session.info[OWN_HISTORY] = True
    stored = await service.get_entity(broker.session, entity_id_of(entity_id), for_update=True)
    for name, instances in attrs.items():
        stored["attrs"].setdefault(name, _latest(instances))
    moment = now()
    changes.stamp(stored, moment)
    await service.save_entity(broker.session, stored)
    await _add_history(broker, stored["id"], attrs, moment, types=stored["type"])
    return Response(status_code=204)


@router.delete("/entities/{entity_id}", status_code=204, summary="Delete an entity and its history")
async def delete_temporal(broker: Broker, entity_id: str) -> Response:
    await broker.read_tenant()
    entity_id = entity_id_of(entity_id)
    await service.delete_entity(broker.session, entity_id)
    await broker.session.execute(
        delete(BrokerAttributeInstance).where(BrokerAttributeInstance.entity_id == entity_id)
    )
    return Response(status_code=204)


@router.delete("/entities/{entity_id}/attrs/{attr}", status_code=204, summary="Delete an attribute's history")
async def delete_attribute_history(
    broker: Broker, entity_id: str, attr: str, datasetId: str | None = None, deleteAll: bool = False
) -> Response:
    await broker.read_tenant()
    ctx = await broker.context()
    entity_id = entity_id_of(entity_id)
    iri = ctx.expand(ngsi.check_name(attr, "attribute name"))
    await service.get_entity(broker.session, entity_id)
    statement = delete(BrokerAttributeInstance).where(
        BrokerAttributeInstance.entity_id == entity_id, BrokerAttributeInstance.attribute == iri
    )
    if not deleteAll:
        if datasetId is None:
            statement = statement.where(BrokerAttributeInstance.dataset_id.is_(None))
        else:
            statement = statement.where(
                BrokerAttributeInstance.dataset_id == ngsi.require_uri(datasetId, "datasetId")
            )
    result = await broker.session.execute(statement)
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"entity {entity_id} has no history of {attr}")
    return Response(status_code=204)


async def _instance(
    broker: BrokerRequest, entity_id: str, attr: str, instance_id: str
) -> BrokerAttributeInstance:
    ctx = await broker.context()
    entity_id = entity_id_of(entity_id)
    iri = ctx.expand(ngsi.check_name(attr, "attribute name"))
    ngsi.require_uri(instance_id, "instanceId")
    try:
        key = uuid.UUID(instance_id.removeprefix(INSTANCE_PREFIX))
    except ValueError:
        raise NotFound(f"no instance {instance_id}") from None
    row = await broker.session.get(BrokerAttributeInstance, key)
    if row is None or row.entity_id != entity_id or row.attribute != iri:
        raise NotFound(f"entity {entity_id} has no instance {instance_id} of {attr}")
    await service.stored_entities(broker.session, [entity_id])  # 403 for a type not to be changed
    return row


@router.patch(
    "/entities/{entity_id}/attrs/{attr}/{instance_id}", status_code=204, summary="Modify an instance"
)
async def modify_instance(broker: Broker, entity_id: str, attr: str, instance_id: str) -> Response:
    await broker.read_tenant()
    body = await broker.body()
    if not isinstance(body, dict):
        raise InvalidRequest("the instance must be a JSON object")
    ctx = await broker.context(body)
    row = await _instance(broker, entity_id, attr, instance_id)
    fragment = {k: v for k, v in body.items() if k != "@context"}
    raw = fragment.get(attr, fragment.get(row.attribute, fragment))
    instance = ngsi.expand_instance(row.attribute, raw, ctx)
    stored = (await service.get_entities(broker.session, [row.entity_id])).get(row.entity_id)
    types = stored["type"] if stored is not None else []
    (instance,) = protection.seal_instances(row.entity_id, types, row.attribute, [instance])
    updated = row.data | instance | {"modifiedAt": now()}
    row.data = updated
    observed = updated.get("observedAt")
    row.observed_at = parse_datetime(observed) if observed else None
    return Response(status_code=204)


@router.delete(
    "/entities/{entity_id}/attrs/{attr}/{instance_id}", status_code=204, summary="Delete an instance"
)
async def delete_instance(broker: Broker, entity_id: str, attr: str, instance_id: str) -> Response:
    await broker.read_tenant()
    row = await _instance(broker, entity_id, attr, instance_id)
    await broker.session.delete(row)
    return Response(status_code=204)


@router.api_route(
    "/entities/{rest:path}", methods=["GET", "POST", "PATCH", "DELETE"], include_in_schema=False
)
async def malformed_temporal_path(request: Request, rest: str) -> Response:
    """A path with an empty segment: 400 when it is the entity id (``/temporal/entities//attrs``);
    otherwise (``/temporal/entities/``, ``…/attrs/speed/``, ``…/attrs//{instanceId}``) 405 when the
    resource it names, empty segments left out, does not take the method, else 400."""
    if rest.startswith("/"):
        raise BadRequestData(f"the entity id is missing in /temporal/entities/{rest}")
    segments = ["entities", *(part for part in rest.split("/") if part)]
    allowed = _TEMPORAL_METHODS.get(len(segments) if segments[2:3] in ([], ["attrs"]) else 0, ())
    if allowed and request.method not in allowed:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on /temporal/{'/'.join(segments)}; use {', '.join(allowed)}"
        )
    raise BadRequestData(f"a part of the path /temporal/entities/{rest} is missing")


#: The methods of each temporal resource, by its number of path segments after /temporal.
_TEMPORAL_METHODS = {
    1: ("GET", "POST"),  # /entities
    2: ("GET", "DELETE"),  # /entities/{id}
    3: ("POST",),  # /entities/{id}/attrs
    4: ("DELETE",),  # /entities/{id}/attrs/{attr}
    5: ("PATCH", "DELETE"),  # /entities/{id}/attrs/{attr}/{instanceId}
}
