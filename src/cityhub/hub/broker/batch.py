"""Batch entity operations (``/entityOperations/create|upsert|update|delete|merge``) and purge.

Each entity of a batch is applied whole or not at all: every check that can refuse an entity runs
before any of its rows is written (no savepoints, which SQLite's driver handles poorly). The answer
is 201/204 when every entity succeeded, else 207 with NGSI-LD's BatchOperationResult.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Response

from cityhub.hub.broker import changes, ngsi, service
from cityhub.hub.broker.context import ActiveContext
from cityhub.hub.broker.entities import entity_query
from cityhub.hub.broker.http import (
    JSON,
    JSON_LD,
    Broker,
    BrokerRequest,
    attribute_names,
    check_params,
    entity_id_of,
    now,
    parse_options,
)
from cityhub.kit.errors import AlreadyExists, BadRequestData, HubError, InvalidRequest, NotFound

router = APIRouter()

MAX_BATCH = 1000
PURGE_PARAMS = frozenset({"type", "id", "idPattern", "q", "scopeQ", "keep", "drop", "local"})

Apply = Callable[[BrokerRequest, Any], Awaitable[str | None]]


async def _items(broker: BrokerRequest) -> list[Any]:
    if broker.content_type == JSON_LD and broker.request.headers.get("link"):
        raise BadRequestData("JSON-LD entities carry their own @context: drop the Link header")
    body = await broker.body()
    if not isinstance(body, list):
        raise InvalidRequest("a batch operation takes a JSON array")
    if not body:
        raise BadRequestData("the batch is empty")
    if len(body) > MAX_BATCH:
        raise BadRequestData(f"a batch may hold at most {MAX_BATCH} items")
    return body


async def _run(
    broker: BrokerRequest, items: list[Any], apply: Apply
) -> tuple[list[str], list[dict[str, Any]]]:
    """Apply each item; returns (successes, errors)."""
    success: list[str] = []
    errors: list[dict[str, Any]] = []
    for item in items:
        entity_id = item.get("id") if isinstance(item, dict) else item
        try:
            outcome = await apply(broker, item)
        except HubError as error:
            errors.append({"entityId": str(entity_id), "error": error.to_problem()})
            continue
        if outcome is not None:
            success.append(outcome)
    return success, errors


def _result(success: list[str], errors: list[dict[str, Any]], *, status: int, body: Any = None) -> Response:
    if errors:
        payload = {"success": success, "errors": errors}
        return Response(orjson.dumps(payload), status_code=207, media_type=JSON)
    if body is None:
        return Response(status_code=status)
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


async def _expand(broker: BrokerRequest, item: Any, linked: ActiveContext | None = None) -> dict[str, Any]:
    """One entity of a batch, expanded. ``linked`` is the Link header's @context, resolved once per
    batch when the body is plain JSON, where no item may carry its own."""
    if not isinstance(item, dict):
        raise BadRequestData("each entity of the batch must be a JSON object")
    if linked is not None and "@context" not in item:
        return ngsi.expand_entity(item, linked)
    ctx = await broker.context(item)
    return ngsi.expand_entity(item, ctx)


async def _write_batch(
    broker: BrokerRequest, items: list[Any], *, create_only: bool, update: bool = False
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Create (and, unless ``create_only``, replace or update) a batch with set-based writes:
    one query loads the entities that exist, changes are made in memory, two statements store them.
    Returns (created ids, updated ids, errors)."""
    expanded: list[tuple[Any, dict[str, Any] | HubError]] = []
    linked = None
    if broker.content_type != JSON_LD:
        with contextlib.suppress(HubError):  # each item then fails with that error, as its own
            linked = await broker.context()
    for item in items:
        try:
            expanded.append((item, await _expand(broker, item, linked)))
        except HubError as error:
            expanded.append((item, error))
    ids = [e["id"] for _, e in expanded if isinstance(e, dict)]
    before = await service.stored_entities(broker.session, ids, for_update=True)
    current: dict[str, dict[str, Any]] = {}  # each entity as this batch leaves it
    moment = now()
    created: list[str] = []
    updated: list[str] = []
    errors: list[dict[str, Any]] = []
    retyped: list[str] = []
    for item, entity in expanded:
        if isinstance(entity, HubError):
            entity_id = item.get("id") if isinstance(item, dict) else item
            errors.append({"entityId": str(entity_id), "error": entity.to_problem()})
            continue
        entity_id = entity["id"]
        existing = current[entity_id] if entity_id in current else before.get(entity_id)
        if existing is None:
            changes.stamp(entity, moment, created=True)
            current[entity_id] = entity
            created.append(entity_id)
            continue
        if create_only:
            duplicate = AlreadyExists(f"entity {entity_id} already exists")
            errors.append({"entityId": entity_id, "error": duplicate.to_problem()})
            continue
        types = set(existing["type"])
        if update:
            # the stored entity is shared with ``before``: change a copy of it
            target = existing if entity_id in current else service.writable(existing)
            changes.add_types(target, entity["type"])
            changes.append(target, entity["attrs"], moment)
        else:
            target = changes.replaced(existing, entity, moment)
        current[entity_id] = target
        if set(target["type"]) != types:
            retyped.append(entity_id)
        if entity_id not in created:
            updated.append(entity_id)
    written = [current[i] for i in dict.fromkeys([*created, *updated])]
    await service.write_many(broker.session, written, before=before, retyped=retyped)
    return created, updated, errors


@router.post("/entityOperations/create", summary="Create a batch of entities")
async def batch_create(broker: Broker) -> Response:
    items = await _items(broker)
    await broker.write_tenant()
    created, _, errors = await _write_batch(broker, items, create_only=True)
    return _result(created, errors, status=201, body=created)


@router.post("/entityOperations/upsert", summary="Create or update a batch of entities")
async def batch_upsert(broker: Broker, options: str | None = None) -> Response:
    opts = parse_options(options)
    if {"replace", "update"} <= opts:
        raise BadRequestData("options replace and update exclude each other")
    items = await _items(broker)
    await broker.write_tenant()
    created, updated, errors = await _write_batch(broker, items, create_only=False, update="update" in opts)
    if errors:
        return _result([*created, *updated], errors, status=207)
    return _result(created, [], status=201, body=created) if created else Response(status_code=204)


async def _lock(broker: BrokerRequest, items: list[Any]) -> None:
    """Lock the batch's entities in id order before changing them one by one, so that two batches
    naming the same entities in another order wait for each other instead of deadlocking."""
    ids = [item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)]
    await service.stored_versions(broker.session, sorted(set(ids)), for_update=True)


@router.post("/entityOperations/update", summary="Update a batch of entities")
async def batch_update(broker: Broker, options: str | None = None) -> Response:
    overwrite = "noOverwrite" not in parse_options(options)
    items = await _items(broker)
    await broker.read_tenant()

    async def update(broker: BrokerRequest, item: Any) -> str:
        entity = await _expand(broker, item)
        stored = await service.get_entity(broker.session, entity["id"], for_update=True)
        changes.add_types(stored, entity["type"])
        result = changes.append(stored, entity["attrs"], now(), overwrite=overwrite)
        if result.not_updated:
            names = ", ".join(iri for iri, _ in result.not_updated)
            raise BadRequestData(f"not updated (noOverwrite): {names}")
        await service.save_entity(broker.session, stored)
        return str(entity["id"])

    await _lock(broker, items)
    success, errors = await _run(broker, items, update)
    return _result(success, errors, status=204)


@router.post("/entityOperations/merge", summary="Merge a batch of entities")
async def batch_merge(broker: Broker) -> Response:
    items = await _items(broker)
    await broker.read_tenant()

    async def merge(broker: BrokerRequest, item: Any) -> str:
        if not isinstance(item, dict):
            raise BadRequestData("each entity of the batch must be a JSON object")
        ctx = await broker.context(item)
        entity_id = ngsi.require_uri(item.get("id"), "entity id")
        patch = ngsi.expand_merge_patch(item, ctx)
        stored = await service.get_entity(broker.session, entity_id, for_update=True)
        changes.merge(stored, patch, now())
        await service.save_entity(broker.session, stored)
        return entity_id

    await _lock(broker, items)
    success, errors = await _run(broker, items, merge)
    return _result(success, errors, status=204)


@router.post("/entityOperations/delete", summary="Delete a batch of entities")
async def batch_delete(broker: Broker) -> Response:
    items = await _items(broker)
    await broker.read_tenant()

    async def delete(broker: BrokerRequest, item: Any) -> str:
        entity_id = ngsi.require_uri(item, "entity id")
        await service.delete_entity(broker.session, entity_id)
        return entity_id

    success, errors = await _run(broker, items, delete)
    return _result(success, errors, status=204)


@router.delete("/entities", status_code=204, summary="Purge entities")
@router.delete("/entities/", status_code=204, include_in_schema=False)
async def purge_entities(
    broker: Broker,
    type: str | None = None,
    id: str | None = None,
    idPattern: str | None = None,
    q: str | None = None,
    scopeQ: str | None = None,
    keep: str | None = None,
    drop: str | None = None,
    local: bool = False,
) -> Response:
    """Delete every matching entity, or with ``keep``/``drop`` only some of their attributes."""
    check_params(broker.request, PURGE_PARAMS)
    if keep is not None and drop is not None:
        raise BadRequestData("keep and drop exclude each other")
    if not any((type, id, idPattern, q, scopeQ, local)):
        raise BadRequestData("give at least one of type, id, idPattern, q, scopeQ or local=true")
    await broker.read_tenant()
    ctx = await broker.context()
    query = entity_query(
        ctx,
        ids=id.split(",") if id else None,
        types=type,
        id_pattern=idPattern,
        q=q,
        scope_q=scopeQ,
        geo=(None, None, None, None),
    )
    found, total = await service.query_entities(broker.session, query, limit=1_000_000, offset=0)
    if total == 0:
        raise NotFound("no entity matches")
    keep_names = set(attribute_names(keep, ctx) or []) if keep is not None else None
    drop_names = set(attribute_names(drop, ctx) or []) if drop is not None else None
    ids = [entity_id_of(entity["id"]) for entity in found]
    if keep_names is None and drop_names is None:
        for entity_id in ids:
            await service.delete_entity(broker.session, entity_id)
        return Response(status_code=204)
    # read again, locked: what is written back is what this request read, not what another
    # writer has replaced since the query
    locked = await service.get_entities(broker.session, ids, for_update=True)
    for entity in locked.values():
        for name in list(entity["attrs"]):
            if (keep_names is not None and name not in keep_names) or (drop_names and name in drop_names):
                del entity["attrs"][name]
        entity["modifiedAt"] = now()
        await service.save_entity(broker.session, entity)
    return Response(status_code=204)
