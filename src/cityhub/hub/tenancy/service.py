"""Tenant logic. Functions take the session first and never commit (the request or task does)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.bus import enqueue
from cityhub.hub.tenancy.events import TenantCreated, TenantUpdated
from cityhub.hub.tenancy.models import Tenant
from cityhub.hub.tenancy.schemas import TenantCreate, TenantUpdate
from cityhub.kit.errors import AlreadyExists, BadRequestData, NonexistentTenant
from cityhub.systems.standards import divisions


async def get_tenant(session: AsyncSession, code: str) -> Tenant:
    tenant = await session.get(Tenant, code)
    if tenant is None:
        raise NonexistentTenant(f"tenant {code} does not exist")
    return tenant


async def require_active(session: AsyncSession, code: str) -> None:
    """Raise NonexistentTenant unless ``code`` is an active tenant (used for every request)."""
    active = await session.scalar(select(Tenant.active).where(Tenant.code == code))
    if not active:
        raise NonexistentTenant(f"tenant {code} does not exist or is not active")


async def list_tenants(
    session: AsyncSession, *, parent_code: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[Sequence[Tenant], int]:
    query = select(Tenant)
    if parent_code is not None:
        query = query.where(Tenant.parent_code == parent_code)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(Tenant.code).limit(limit).offset(offset))
    return rows.all(), int(total or 0)


async def children(session: AsyncSession, code: str) -> list[str]:
    rows = await session.scalars(select(Tenant.code).where(Tenant.parent_code == code).order_by(Tenant.code))
    return list(rows)


async def subtree(session: AsyncSession, code: str) -> list[str]:
    """``code`` and every tenant below it (a city and its counties)."""
    found = [code]
    frontier = [code]
    while frontier:
        rows = await session.scalars(select(Tenant.code).where(Tenant.parent_code.in_(frontier)))
        frontier = list(rows)
        found.extend(frontier)
    return found


async def create_tenant(session: AsyncSession, data: TenantCreate) -> Tenant:
    code = data.code
    if not divisions.is_valid_code(code):
        raise BadRequestData(f"{code} is not a GB/T 2260 division code")
    if await session.get(Tenant, code) is not None:
        raise AlreadyExists(f"tenant {code} already exists")
    level = divisions.level_of(code)
    parent_code = data.parent_code if data.parent_code is not None else divisions.parent_of(code)
    if parent_code is not None:
        if parent_code not in divisions.lineage(code)[:-1]:
            raise BadRequestData(f"{parent_code} is not above {code} in the division tree")
        parent = await session.get(Tenant, parent_code)
        if parent is None:
            raise BadRequestData(f"parent tenant {parent_code} does not exist; create it first")
    known = divisions.lookup(code)
    name = data.name or (known.name if known else None)
    if name is None:
        raise BadRequestData(f"{code} is not in the built-in code table; give its name")
    tenant = Tenant(
        code=code,
        name=name,
        name_en=data.name_en or (known.name_en if known else None),
        level=level.value,
        parent_code=parent_code,
        active=True,
    )
    session.add(tenant)
    await session.flush()
    enqueue(
        session,
        TenantCreated(tenant=code, code=code, name=tenant.name, level=tenant.level, parent_code=parent_code),
    )
    return tenant


async def update_tenant(session: AsyncSession, code: str, data: TenantUpdate) -> Tenant:
    tenant = await get_tenant(session, code)
    changes = data.model_dump(exclude_unset=True)
    for key in ("name", "active"):
        if key in changes and changes[key] is None:
            raise BadRequestData(f"{key} cannot be null")
    changes = {key: value for key, value in changes.items() if getattr(tenant, key) != value}
    if changes:
        for key, value in changes.items():
            setattr(tenant, key, value)
        await session.flush()
        enqueue(session, TenantUpdated(tenant=code, code=code, changes=changes))
    return tenant


async def ensure_tenant_with_ancestors(session: AsyncSession, code: str) -> list[Tenant]:
    """Create ``code`` and the divisions above it from the code table where missing (first start)."""
    created = []
    for item in divisions.lineage(code):
        if await session.get(Tenant, item) is None:
            created.append(await create_tenant(session, TenantCreate(code=item)))
    return created
