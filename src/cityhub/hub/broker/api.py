"""The NGSI-LD API (ETSI GS CIM 009 v1.8) under ``/ngsi-ld/v1``, assembled from its parts."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from cityhub.hub.broker import (
    attributes,
    batch,
    csource_subscriptions,
    discovery,
    entities,
    jsonld,
    registrations,
    subscriptions,
    temporal,
)
from cityhub.kit.errors import BadRequestData, MethodNotAllowed

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD"])
router.include_router(batch.router)  # first: DELETE /entities is purge
router.include_router(entities.router)
router.include_router(attributes.router)
router.include_router(discovery.router)
router.include_router(subscriptions.router)
router.include_router(temporal.router)
router.include_router(jsonld.router)
router.include_router(registrations.router)
router.include_router(csource_subscriptions.router)


@router.api_route(
    "/entities/{rest:path}",
    methods=["GET", "PUT", "PATCH", "POST", "DELETE"],
    include_in_schema=False,
)
async def malformed_entity_path(request: Request, rest: str) -> Response:
    """``/entities/`` or ``/entities//attrs``: the id is missing, which is the client's error.
    ``DELETE /entities/{id}/attrs/`` names a collection that cannot be deleted: 405."""
    if request.method == "DELETE" and re.fullmatch(r"[^/]+/attrs/?", rest):
        raise MethodNotAllowed("DELETE needs an attribute name: /entities/{id}/attrs/{attrId}")
    raise BadRequestData(f"the entity id is missing in /entities/{rest}")
