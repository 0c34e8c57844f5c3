"""The NGSI-LD API (ETSI GS CIM 009 v1.8) under ``/ngsi-ld/v1``, assembled from its parts."""

from __future__ import annotations

from fastapi import APIRouter, Response

from cityhub.hub.broker import attributes, batch, discovery, entities
from cityhub.kit.errors import BadRequestData

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD"])
router.include_router(batch.router)  # first: DELETE /entities is purge
router.include_router(entities.router)
router.include_router(attributes.router)
router.include_router(discovery.router)


@router.api_route(
    "/entities/{rest:path}",
    methods=["GET", "PUT", "PATCH", "POST"],
    include_in_schema=False,
)
async def malformed_entity_path(rest: str) -> Response:
    """``/entities/`` or ``/entities//attrs``: the id is missing, which is the client's error."""
    raise BadRequestData(f"the entity id is missing in /entities/{rest}")
