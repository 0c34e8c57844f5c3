"""``/api/v1/catalog``: datasets (register, search, read, change, remove) and sharing requests
(apply, list, read, decide). The tenant is the request's (``NGSILD-Tenant``, else the default);
access control has checked the caller's role there, and :mod:`access` decides per dataset."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from cityhub.hub.catalog import service
from cityhub.hub.catalog.access import caller_of
from cityhub.hub.catalog.models import Dataset
from cityhub.hub.catalog.schemas import (
    DatasetCreate,
    DatasetPage,
    DatasetRead,
    DatasetUpdate,
    Decision,
    Revocation,
    Sharing,
    SharingRequestCreate,
    SharingRequestPage,
    SharingRequestRead,
)
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.errors import BadRequestData
from cityhub.kit.web import TENANT_HEADER, DbSession, on_event_loop
from cityhub.systems.security.policy import Principal

router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"])


class Catalog:
    """The request's tenant (the session scoped to it) and caller."""

    def __init__(self, request: Request, session: DbSession) -> None:
        self.tenant: str = request.headers.get(TENANT_HEADER) or request.app.state.default_tenant
        if len(self.tenant) > 64 or not self.tenant.isprintable():
            raise BadRequestData(f"tenant {self.tenant!r} is not a valid tenant name")
        scope_to_tenant(session, self.tenant)
        self.session = session
        principal = getattr(request.state, "principal", None)
        security = getattr(request.app.state, "security", None)
        cascade = bool(security.cascade) if security is not None else False
        self.caller = caller_of(
            principal if isinstance(principal, Principal) else None, self.tenant, cascade=cascade
        )
        self.source = request.client.host if request.client else None


Ctx = Annotated[Catalog, Depends(on_event_loop(Catalog))]


async def _one(ctx: Catalog, dataset: Dataset) -> DatasetRead:
    return (await service.show(ctx.session, [dataset], ctx.caller))[0]


@router.get("/datasets", response_model=DatasetPage, summary="Search the catalog")
async def search_datasets(
    ctx: Ctx,
    q: Annotated[str | None, Query(max_length=200, description="Words in code, titles, description")] = None,
    sharing: Sharing | None = None,
    department_id: uuid.UUID | None = None,
    entity_type: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DatasetPage:
    found = await service.search(
        ctx.session,
        ctx.caller,
        text=q,
        sharing=sharing,
        department_id=department_id,
        entity_type=entity_type,
        limit=limit,
        offset=offset,
    )
    return DatasetPage(items=await service.show(ctx.session, found.datasets, ctx.caller), total=found.total)


@router.post(
    "/datasets", response_model=DatasetRead, status_code=status.HTTP_201_CREATED, summary="Register a dataset"
)
async def create_dataset(ctx: Ctx, body: DatasetCreate, response: Response) -> DatasetRead:
    dataset = await service.create_dataset(ctx.session, body, ctx.caller)
    response.headers["Location"] = f"{router.prefix}/datasets/{dataset.id}"
    return await _one(ctx, dataset)


@router.get("/datasets/{dataset_id}", response_model=DatasetRead, summary="One dataset with its statistics")
async def get_dataset(ctx: Ctx, dataset_id: uuid.UUID) -> DatasetRead:
    return await _one(ctx, await service.readable_dataset(ctx.session, dataset_id, ctx.caller))


@router.patch("/datasets/{dataset_id}", response_model=DatasetRead, summary="Change a dataset")
async def update_dataset(ctx: Ctx, dataset_id: uuid.UUID, body: DatasetUpdate) -> DatasetRead:
    dataset = await service.writable_dataset(ctx.session, dataset_id, ctx.caller)
    return await _one(ctx, await service.update_dataset(ctx.session, dataset, body, ctx.caller))


@router.delete("/datasets/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a dataset")
async def delete_dataset(ctx: Ctx, dataset_id: uuid.UUID) -> Response:
    await service.delete_dataset(
        ctx.session, await service.writable_dataset(ctx.session, dataset_id, ctx.caller)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/sharing-requests",
    response_model=SharingRequestRead,
    status_code=status.HTTP_201_CREATED,
    summary="Apply for a conditional dataset",
)
async def apply(ctx: Ctx, body: SharingRequestCreate, response: Response) -> SharingRequestRead:
    request = await service.apply(ctx.session, body, ctx.caller)
    response.headers["Location"] = f"{router.prefix}/sharing-requests/{request.id}"
    return SharingRequestRead.model_validate(request)


@router.get("/sharing-requests", response_model=SharingRequestPage, summary="Requests made or received")
async def list_requests(
    ctx: Ctx,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(pending|approved|rejected|expired|revoked)$")
    ] = None,
    dataset_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> SharingRequestPage:
    rows, total = await service.list_requests(
        ctx.session, ctx.caller, status=status_, dataset_id=dataset_id, limit=limit, offset=offset
    )
    return SharingRequestPage(items=[SharingRequestRead.model_validate(r) for r in rows], total=total)


@router.get(
    "/sharing-requests/{request_id}", response_model=SharingRequestRead, summary="One sharing request"
)
async def get_request(ctx: Ctx, request_id: uuid.UUID) -> SharingRequestRead:
    return SharingRequestRead.model_validate(await service.get_request(ctx.session, request_id, ctx.caller))


@router.post(
    "/sharing-requests/{request_id}/decision",
    response_model=SharingRequestRead,
    summary="Approve or reject a request (the owner department)",
)
async def decide(ctx: Ctx, request_id: uuid.UUID, body: Decision) -> SharingRequestRead:
    request = await service.get_request(ctx.session, request_id, ctx.caller)
    decided = await service.decide(ctx.session, request, body, ctx.caller, source=ctx.source)
    return SharingRequestRead.model_validate(decided)


@router.post(
    "/sharing-requests/{request_id}/revocation",
    response_model=SharingRequestRead,
    summary="End an approval now (the owner department)",
)
async def revoke(ctx: Ctx, request_id: uuid.UUID, body: Revocation) -> SharingRequestRead:
    request = await service.get_request(ctx.session, request_id, ctx.caller)
    revoked = await service.revoke(ctx.session, request, body, ctx.caller, source=ctx.source)
    return SharingRequestRead.model_validate(revoked)
