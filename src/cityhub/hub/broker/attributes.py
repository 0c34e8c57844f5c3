"""Attributes of one entity: append, update, partial update, replace, delete."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Response

from cityhub.hub.broker import changes, ngsi, service
from cityhub.hub.broker.context import ActiveContext
from cityhub.hub.broker.http import (
    JSON,
    Broker,
    entity_id_of,
    now,
    parse_options,
)
from cityhub.kit.errors import BadRequestData, InvalidRequest, NotFound

router = APIRouter()


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
    overwrite = "noOverwrite" not in parse_options(options)
    entity = await service.get_entity(broker.session, entity_id_of(entity_id), for_update=True)
    if "type" in body:
        changes.add_types(entity, ngsi.expand_types(body["type"], ctx))
    result = changes.append(entity, attrs, now(), overwrite=overwrite)
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
    entity = await service.get_entity(broker.session, entity_id_of(entity_id), for_update=True)
    result = changes.update(entity, attrs, now(), add_missing=True)
    if "type" in body:
        changes.add_types(entity, ngsi.expand_types(body["type"], ctx))
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
    body = await broker.body(merge_patch=True)
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
    entity = await service.get_entity(broker.session, entity_id_of(entity_id), for_update=True)
    if not changes.partial_update(entity, iri, fragment, now()):
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
    entity = await service.get_entity(broker.session, entity_id_of(entity_id), for_update=True)
    if iri not in entity["attrs"]:
        raise NotFound(f"entity {entity_id} has no attribute {attr}")
    result = changes.update(entity, {iri: [instance]}, now())
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
        entity = await service.get_entity(broker.session, entity_id_of(entity_id), for_update=True)
        if not entity.pop("scope", None):
            raise NotFound(f"entity {entity_id} has no scope")
        entity["modifiedAt"] = now()
        await service.save_entity(broker.session, entity)
        return Response(status_code=204)
    iri = ctx.expand(ngsi.check_name(attr, "attribute name"))
    if datasetId is not None:
        ngsi.require_uri(datasetId, "datasetId")
    entity = await service.get_entity(broker.session, entity_id_of(entity_id), for_update=True)
    if not changes.delete_attribute(entity, iri, dataset_id=datasetId, delete_all=deleteAll):
        raise NotFound(
            f"entity {entity_id} has no attribute {attr}"
            + (f" with datasetId {datasetId}" if datasetId else "")
        )
    entity["modifiedAt"] = now()
    await service.save_entity(broker.session, entity)
    return Response(status_code=204)
