from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from cityhub.hub.tenancy import service
from cityhub.hub.tenancy.schemas import CODE_PATTERN, TenantCreate, TenantPage, TenantRead, TenantUpdate
from cityhub.kit.web import DbSession

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])


@router.get("", response_model=TenantPage, summary="List tenants (the division tree, flat)")
async def list_tenants(
    session: DbSession,
    parent: Annotated[str | None, Query(pattern=CODE_PATTERN, description="Only children of")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> TenantPage:
    rows, total = await service.list_tenants(session, parent_code=parent, limit=limit, offset=offset)
    return TenantPage(
        items=[TenantRead.model_validate(row) for row in rows], total=total, limit=limit, offset=offset
    )


@router.post("", response_model=TenantRead, status_code=status.HTTP_201_CREATED, summary="Add a tenant")
async def create_tenant(session: DbSession, body: TenantCreate) -> TenantRead:
    return TenantRead.model_validate(await service.create_tenant(session, body))


@router.get("/{code}", response_model=TenantRead, summary="One tenant")
async def get_tenant(session: DbSession, code: str) -> TenantRead:
    return TenantRead.model_validate(await service.get_tenant(session, code))


@router.patch("/{code}", response_model=TenantRead, summary="Rename or (de)activate a tenant")
async def update_tenant(session: DbSession, code: str, body: TenantUpdate) -> TenantRead:
    return TenantRead.model_validate(await service.update_tenant(session, code, body))
