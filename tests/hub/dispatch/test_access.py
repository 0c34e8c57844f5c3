"""With access control on: the history names the caller, and a department's staff take only the
department's actions on the department's own cases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from cityhub.app import create_app
from cityhub.systems.security.models import Department, User
from tests.hub.dispatch.support import CASES, IN_ERQI, IN_JINSHUI, JINSHUI, city
from tests.systems.security.conftest import add_user, client_for, secure_settings, token_for


@pytest.fixture
async def secure_app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(secure_settings(database_url))
    async with application.router.lifespan_context(application):
        yield application


async def _client(
    app: FastAPI, username: str, roles: list[tuple[str, str]], department: str | None
) -> httpx.AsyncClient:
    account = await add_user(app, "410100", roles, username=username)
    if department is not None:
        async with app.state.hub.sessions() as session, session.begin():
            found = (
                await session.scalars(
                    select(Department).where(Department.tenant_code == JINSHUI, Department.code == department)
                )
            ).one()
            user = await session.get(User, account.user.id)
            assert user is not None
            user.department_id = found.id
    client = client_for(app)
    token = (await token_for(client, account))["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


async def test_department_staff_act_only_on_their_cases(secure_app: FastAPI) -> None:
    centre = await _client(secure_app, "centre-operator", [("410100", "operator")], None)
    await city(secure_app, centre)
    bureau = await _client(secure_app, "jinshui-worker", [("410100", "operator")], "urban")
    try:
        ours = (
            await centre.post(CASES, json={"category": "E0101", "title": "垃圾", "location": IN_JINSHUI})
        ).json()
        theirs = (
            await centre.post(CASES, json={"category": "E0101", "title": "垃圾", "location": IN_ERQI})
        ).json()
        assert ours["reporter"] == "centre-operator"
        for case in (ours, theirs):
            for action in ("file", "dispatch"):
                response = await centre.post(f"{CASES}/{case['id']}/transitions", json={"action": action})
                assert response.status_code == 200, response.text
        refused = await bureau.post(
            f"{CASES}/{ours['id']}/transitions", json={"action": "return", "note": "x"}
        )
        assert refused.status_code == 200  # a department action on its own case
        await centre.post(f"{CASES}/{ours['id']}/transitions", json={"action": "dispatch"})
        accepted = await bureau.post(
            f"{CASES}/{ours['id']}/transitions", json={"action": "accept", "actor": "someone"}
        )
        assert accepted.status_code == 200, accepted.text
        other = await bureau.post(f"{CASES}/{theirs['id']}/transitions", json={"action": "accept"})
        assert other.status_code == 403
        await bureau.post(f"{CASES}/{ours['id']}/transitions", json={"action": "feedback"})
        verify = await bureau.post(f"{CASES}/{ours['id']}/transitions", json={"action": "verify"})
        assert verify.status_code == 403  # the supervision centre verifies
        assert (
            await centre.post(f"{CASES}/{ours['id']}/transitions", json={"action": "verify"})
        ).status_code == 200
        history = (await centre.get(f"{CASES}/{ours['id']}/history")).json()
        actors = {(h["action"], h["actor"]) for h in history}
        assert ("accept", "jinshui-worker") in actors  # the caller, not the name given
        assert ("verify", "centre-operator") in actors
        assert (await client_for(secure_app).get(CASES)).status_code == 401
    finally:
        await centre.aclose()
        await bureau.aclose()
