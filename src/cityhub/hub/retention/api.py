"""``/api/v1/broker/retention-policies``: the standing retention policies of the request's tenant.

The tenant is the broker's: the ``NGSILD-Tenant`` header (any broker tenant name), or the hub's
default tenant without it. A tenant named in the header must exist (have had a broker write),
except to create a policy, which creates it as NGSI-LD's first write does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.broker import service as broker
from cityhub.hub.broker.models import TENANT_NAME_LENGTH
from cityhub.hub.retention import service
from cityhub.hub.retention.schemas import PolicyCreate, PolicyPage, PolicyRead, PolicyUpdate
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.errors import BadRequestData
from cityhub.kit.web import TENANT_HEADER, DbSession, on_event_loop

router = APIRouter(prefix="/api/v1/broker/retention-policies", tags=["broker"])


class PolicyTenant:
    """The request's broker tenant; the session is scoped to it."""

    def __init__(self, request: Request, session: DbSession) -> None:
        header = request.headers.get(TENANT_HEADER)
        self.name: str = header or request.app.state.default_tenant
        self.given = header is not None
        if len(self.name) > TENANT_NAME_LENGTH or not self.name.isprintable():
            raise BadRequestData(f"tenant {self.name!r} is not a valid tenant name")
        self.session = session
        scope_to_tenant(session, self.name)

    async def existing(self) -> AsyncSession:
        if self.given:
            await broker.require_tenant(self.session, self.name)
        return self.session


Tenant = Annotated[PolicyTenant, Depends(on_event_loop(PolicyTenant), scope="function")]


@router.get("", response_model=PolicyPage, summary="The tenant's retention policies")
async def list_policies(tenant: Tenant) -> PolicyPage:
    policies = await service.list_policies(await tenant.existing())
    return PolicyPage(items=[service.read(p) for p in policies], total=len(policies))


@router.post("", response_model=PolicyRead, status_code=status.HTTP_201_CREATED, summary="Add a policy")
async def create_policy(tenant: Tenant, body: PolicyCreate, response: Response) -> PolicyRead:
    if tenant.given:
        await broker.ensure_tenant(tenant.session, tenant.name)
    policy = await service.create_policy(tenant.session, body)
    response.headers["Location"] = f"{router.prefix}/{policy.policy_id}"
    return service.read(policy)


@router.get("/{policy_id}", response_model=PolicyRead, summary="One retention policy")
async def get_policy(tenant: Tenant, policy_id: str) -> PolicyRead:
    return service.read(await service.get_policy(await tenant.existing(), policy_id))


@router.patch("/{policy_id}", response_model=PolicyRead, summary="Change a retention policy")
async def update_policy(tenant: Tenant, policy_id: str, body: PolicyUpdate) -> PolicyRead:
    return service.read(await service.update_policy(await tenant.existing(), policy_id, body))


@router.delete("/{policy_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a retention policy")
async def delete_policy(tenant: Tenant, policy_id: str) -> Response:
    await service.delete_policy(await tenant.existing(), policy_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
