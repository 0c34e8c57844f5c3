"""``/api/v1/infrastructure``: coverage of the city's network resources."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cityhub.hub.ingest.api import Iot
from cityhub.kit.errors import BadRequestData
from cityhub.systems.infrastructure import service
from cityhub.systems.infrastructure.schemas import (
    CoverageAt,
    CoveringResource,
    DeviceCoverageOut,
    KindCoverage,
)

router = APIRouter(prefix="/api/v1/infrastructure", tags=["Information infrastructure"])


def _kinds(kind: str | None) -> list[str] | None:
    if kind is None:
        return None
    kinds = [part.strip() for part in kind.split(",") if part.strip()]
    unknown = set(kinds) - set(service.KINDS.values())
    if unknown:
        raise BadRequestData(
            f"kind must be among {', '.join(service.KINDS.values())}, not {', '.join(sorted(unknown))}"
        )
    return kinds


@router.get("/coverage", summary="Which network resources cover a point", response_model=CoverageAt)
async def coverage_at(
    iot: Iot,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    kind: Annotated[str | None, Query(description="5G, NB-IoT, fibre (comma-separated)")] = None,
) -> CoverageAt:
    kinds = _kinds(kind)
    found = await service.resources(iot.session, iot.gateway.expand, kinds)
    hits = service.covering(found, lon, lat)
    covered = {resource.kind for resource, _ in hits}
    return CoverageAt(
        point=[lon, lat],
        covered={k: k in covered for k in (kinds or service.KINDS.values())},
        coveredBy=[
            CoveringResource(id=r.id, type=r.type, kind=r.kind, distance=round(d, 1), coverageRadius=r.radius)
            for r, d in hits
        ],
    )


@router.get(
    "/coverage/devices",
    summary="How many provisioned devices each network kind covers",
    response_model=DeviceCoverageOut,
)
async def device_coverage(iot: Iot) -> DeviceCoverageOut:
    found = await service.device_coverage(iot.session, iot.gateway.expand)
    return DeviceCoverageOut(
        located=found.located,
        unlocated=found.unlocated,
        byKind=[
            KindCoverage(
                kind=kind,
                covered=found.covered[kind],
                ratio=round(found.covered[kind] / found.located, 4) if found.located else None,
                uncovered=found.uncovered[kind],
            )
            for kind in service.KINDS.values()
        ],
    )
