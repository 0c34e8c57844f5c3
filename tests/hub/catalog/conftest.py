"""A hub with access control on, departments and users placed in them, for the catalog's tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from cityhub.systems.security import service
from cityhub.systems.security.models import User
from cityhub.systems.security.schemas import DepartmentCreate
from tests.systems.security.conftest import (  # noqa: F401  (fixtures)
    Account,
    add_user,
    bearer,
    sclient,
    secure_app,
    security_overrides,
)


async def add_department(app: FastAPI, tenant: str, code: str, name: str) -> uuid.UUID:
    async with app.state.hub.sessions() as session, session.begin():
        department = await service.create_department(
            session, DepartmentCreate(code=code, name=name, name_en=code), tenant=tenant, actor="test"
        )
        return department.id


async def place(app: FastAPI, account: Account, department_id: uuid.UUID | None) -> None:
    async with app.state.hub.sessions() as session, session.begin():
        await session.execute(
            update(User).where(User.id == account.user.id).values(department_id=department_id)
        )
    app.state.security.forget(account.user.id)


async def person(
    app: FastAPI, client: httpx.AsyncClient, tenant: str, role: str, department_id: uuid.UUID | None
) -> dict[str, str]:
    """Headers of a new user with ``role`` in ``tenant``, placed in ``department_id``."""
    account = await add_user(app, tenant, [(tenant, role)])
    await place(app, account, department_id)
    return await bearer(client, account)


def in_tenant(headers: dict[str, str], tenant: str, **extra: Any) -> dict[str, str]:
    return headers | {"NGSILD-Tenant": tenant} | {k.replace("_", "-"): str(v) for k, v in extra.items()}
