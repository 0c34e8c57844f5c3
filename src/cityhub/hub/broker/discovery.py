"""Discovery: the entity types and attributes a tenant holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from cityhub.hub.broker import service
from cityhub.hub.broker.http import Broker, check_params
from cityhub.kit.errors import NotFound

router = APIRouter()

DISCOVERY_PARAMS = frozenset({"details", "local"})


@router.get("/types", summary="Entity types")
@router.get("/types/", include_in_schema=False)
async def list_types(broker: Broker, details: bool = False) -> Response:
    check_params(broker.request, DISCOVERY_PARAMS)
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
@router.get("/attributes/", include_in_schema=False)
async def list_attributes(broker: Broker, details: bool = False) -> Response:
    check_params(broker.request, DISCOVERY_PARAMS)
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
