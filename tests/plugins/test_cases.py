"""The case facade applications use: open, find, act and evaluate from a session of no tenant,
which is left as it was, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from cityhub.kit.db import current_tenant
from cityhub.kit.errors import Conflict
from cityhub.kit.time import utcnow
from cityhub.plugins import cases
from tests.hub.dispatch.support import IN_JINSHUI, JINSHUI, city


async def test_an_application_opens_and_works_a_case(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    async with app.state.sessions() as session, session.begin():
        opened = await cases.open_case(
            session,
            tenant="410100",
            case_type="urban_management",
            category_code="E0101",
            title="巡查发现暴露垃圾",
            description="",
            location=IN_JINSHUI,
            urgency="normal",
            source="inspector",
            source_ref="patrol-2026-11-21-07",
            reporter="inspector-7",
        )
        assert current_tenant(session) is None
        assert (opened.department_tenant, opened.department, opened.state) == (JINSHUI, "urban", "collected")
        for action in ("file", "dispatch", "accept", "feedback", "verify"):
            done = await cases.take_action(session, "410100", opened.id, action, actor="urban-app")
        assert done.state == "closed"
        with pytest.raises(Conflict):
            await cases.take_action(session, "410100", opened.id, "file", actor="urban-app")
    async with app.state.sessions() as session:
        found, total = await cases.find_cases(session, "410100", state="closed", district=JINSHUI)
        assert (total, [c.id for c in found]) == (1, [opened.id])
        assert (await cases.read_case_of(session, "410100", opened.id)).closed_at is not None
        assert (await cases.find_cases(session, JINSHUI))[1] == 0
        now = utcnow()
        scores = await cases.evaluate_departments(
            session, "410100", now - timedelta(hours=1), now + timedelta(hours=1)
        )
        assert [(s.department, s.handled, s.score) for s in scores] == [("urban", 1, 100.0)]
        kinds = {c.kind for c in await cases.list_categories(session, "410100")}
        assert kinds == {"component", "event"}
        assert current_tenant(session) is None
