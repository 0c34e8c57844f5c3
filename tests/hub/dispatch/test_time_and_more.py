"""Time limits and escalation, extensions and suspension, cases opened from alerts, other case
types, attachments and the reference tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from cityhub.app import create_app
from cityhub.bus.outbox import OutboxMessage
from cityhub.config import Settings
from cityhub.hub.dispatch import service
from cityhub.hub.dispatch.casetypes import CaseAction
from cityhub.hub.dispatch.tasks import mark_all_overdue
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.time import parse_datetime, utcnow
from cityhub.plugins import Registry
from tests.hub.dispatch.support import CASES, DISPATCH, IN_ERQI, IN_JINSHUI, JINSHUI, act, city, open_case

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        bus_url="memory://",
        instance_name="test",
        outbox_poll_interval=0.05,
        data_dir=tmp_path / "data",
        dispatch_attachment_max_bytes=1024,
        dispatch_overdue_interval=0,
    )


async def _events(app: FastAPI, event_type: str) -> list[dict[str, object]]:
    async with app.state.sessions() as session:
        rows = await session.scalars(select(OutboxMessage).where(OutboxMessage.event_type == event_type))
        return [row.payload for row in rows]


async def test_overdue_cases_are_marked_recorded_and_escalated_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    case = await open_case(client, urgency="urgent")
    due = parse_datetime(case["due_at"])
    sessions = app.state.sessions
    assert await mark_all_overdue(sessions, now=due - timedelta(seconds=1)) == 0
    assert await mark_all_overdue(sessions, now=due + timedelta(seconds=1)) == 1
    assert await mark_all_overdue(sessions, now=due + timedelta(hours=1)) == 0  # once
    marked = (await client.get(f"{CASES}/{case['id']}")).json()
    assert marked["overdue"] is True
    assert marked["escalated_at"] is not None
    overdue_list = (await client.get(CASES, params={"overdue": "true"})).json()
    assert [c["id"] for c in overdue_list["items"]] == [case["id"]]
    history = (await client.get(f"{CASES}/{case['id']}/history")).json()
    assert history[-1]["action"] == "overdue"
    assert history[-1]["actor"] == "system"
    assert history[-1]["data"]["stage"] == "filing"
    escalated = await _events(app, "dispatch.case_escalated")
    assert [e["case_id"] for e in escalated] == [case["id"]]
    # the next stage has a clock of its own: the flag goes
    filed = (await act(client, case["id"], "file")).json()
    assert (filed["overdue"], filed["stage"]) == (False, "dispatch")


async def test_late_handling_counts_against_the_department(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    case = await open_case(client)
    for action in ("file", "dispatch", "accept"):
        await act(client, case["id"], action)
    handling = (await client.get(f"{CASES}/{case['id']}")).json()
    assert handling["stage"] == "handling"
    await mark_all_overdue(app.state.sessions, now=parse_datetime(handling["due_at"]) + timedelta(minutes=1))
    for action in ("feedback", "verify"):
        assert (await act(client, case["id"], action)).status_code == 200
    now = utcnow()
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    score = (await client.get(f"{DISPATCH}/evaluation", params=window)).json()["departments"][0]
    assert (score["handled"], score["on_time"], score["overdue"]) == (1, 0, 1)
    assert score["score"] == 30 + 0 + 20 + 0 + 10


async def test_extension_moves_the_due_time_and_counts(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    case = await open_case(client)
    for action in ("file", "dispatch", "accept"):
        await act(client, case["id"], action)
    before = parse_datetime((await client.get(f"{CASES}/{case['id']}")).json()["due_at"])
    assert (await act(client, case["id"], "request_extension")).status_code == 400  # needs a reason
    requested = await act(client, case["id"], "request_extension", note="需协调供电部门")
    assert requested.json()["state"] == "extension_requested"
    approved = (await act(client, case["id"], "approve_extension", extend_minutes=450)).json()
    assert approved["state"] == "handling"
    assert approved["extensions"] == 1
    after = parse_datetime(approved["due_at"])
    assert after - before >= timedelta(hours=7, minutes=30)  # one working day later, at least
    wrong = await act(client, case["id"], "feedback", extend_minutes=10)
    assert wrong.status_code == 400


async def test_suspension_stops_the_clock(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    case = await open_case(client)
    for action in ("file", "dispatch", "accept"):
        await act(client, case["id"], action)
    suspended = (await act(client, case["id"], "suspend", note="等待产权单位确认")).json()
    assert suspended["state"] == "suspended"
    assert suspended["due_at"] is None
    late = await mark_all_overdue(app.state.sessions, now=utcnow() + timedelta(days=30))
    assert late == 0  # a suspended case is never overdue
    resumed = (await act(client, case["id"], "resume")).json()
    assert resumed["state"] == "handling"
    assert resumed["due_at"] is not None


async def test_open_case_from_an_alert(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    async with app.state.sessions() as session, session.begin():
        case = await service.open_case(
            session,
            tenant="410100",
            case_type="urban_management",
            category_code="C0101",
            title="井盖位移告警",
            description="传感器报告井盖倾斜 35°",
            location=IN_ERQI,
            urgency="urgent",
            source="alert",
            source_ref="urn:ngsi-ld:Alert:manhole-17",
        )
        case_id = str(case.id)
    read = (await client.get(f"{CASES}/{case_id}")).json()
    # the category's own route (manhole covers go to municipal works) beats the district's
    assert (read["department_tenant"], read["department"]) == ("410100", "municipal-works")
    assert (read["source"], read["source_ref"]) == ("alert", "urn:ngsi-ld:Alert:manhole-17")
    history = (await client.get(f"{CASES}/{case_id}/history")).json()
    assert history[0]["actor"] == "alert"
    assert history[0]["data"]["rule"] == "category"
    opened = await _events(app, "dispatch.case_opened")
    assert [e["case_id"] for e in opened] == [case_id]


async def test_general_case_type_and_case_types_listing(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    case = await open_case(client, case_type="general")
    assert case["state"] == "open"
    assert case["allowed_actions"] == ["dispatch", "cancel"]
    for action in ("dispatch", "accept", "resolve", "close"):
        response = await act(client, case["id"], action)
        assert response.status_code == 200, response.text
    assert response.json()["state"] == "closed"
    types = {t["key"]: t for t in (await client.get(f"{DISPATCH}/case-types")).json()}
    urban = types["urban_management"]
    assert urban["initial"] == "collected"
    assert set(urban["terminal"]) == {"cancelled", "evaluated"}
    assert urban["state_titles"]["filed"] == ["案卷建立", "filing"]
    rework = next(a for a in urban["actions"] if a["name"] == "rework")
    assert (rework["sources"], rework["target"], rework["needs_reason"]) == (["feedback"], "handling", True)


def test_applications_register_case_types_with_actions() -> None:
    registry = Registry()
    apps = registry.for_app("permits")
    apps.add_case_type(
        "permit",
        title_zh="占道审批",
        title_en="Road occupation permit",
        initial="submitted",
        actions=[
            CaseAction("approve", ("submitted",), "approved", effect="close"),
            CaseAction("refuse", ("submitted",), "refused", needs_reason=True),
        ],
        terminal=["approved", "refused"],
    )
    permit = registry.case_types["permit"]
    assert permit.transitions == {"submitted": ("approved", "refused")}
    assert [a.name for a in permit.allowed("submitted")] == ["approve", "refuse"]
    apps.add_case_type("plain", title_zh="简单", title_en="Plain", initial="a", transitions={"a": ["b"]})
    assert [(a.name, a.target) for a in registry.case_types["plain"].allowed("a")] == [("b", "b")]
    with pytest.raises(ValueError, match="not among the transitions"):
        apps.add_case_type(
            "broken",
            title_zh="坏",
            title_en="Broken",
            initial="a",
            transitions={"a": ["b"]},
            actions=[CaseAction("jump", ("a",), "c")],
        )


@pytest.fixture
async def app_with_permits(settings: Settings) -> AsyncIterator[FastAPI]:
    """A hub where an application's case type is registered next to the built-in ones."""
    application = create_app(settings)
    application.state.hub.registry.for_app("permits").add_case_type(
        "permit",
        title_zh="占道审批",
        title_en="Road occupation permit",
        initial="submitted",
        actions=[CaseAction("approve", ("submitted",), "approved", effect="close")],
        terminal=["approved"],
    )
    async with application.router.lifespan_context(application):
        yield application


async def test_an_application_case_type_runs_through_the_api(app_with_permits: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app_with_permits)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        case = await open_case(client, case_type="permit", location=None)
        assert case["state"] == "submitted"
        assert case["triage"] is True  # no location and no route for its category
        approved = await act(client, case["id"], "approve")
        assert approved.json()["state"] == "approved"
        assert approved.json()["closed_at"] is not None


async def test_attachments_are_stored_checked_and_served(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    await city(app, client)
    case = await open_case(client)
    url = f"{CASES}/{case['id']}/attachments"
    response = await client.post(
        url,
        files={"file": ("井盖.png", PNG, "image/png")},
        data={"taken_at": "2026-11-21T08:00:00+08:00", "uploader": "inspector-7"},
    )
    assert response.status_code == 201, response.text
    item = response.json()
    assert (item["content_type"], item["size"]) == ("image/png", len(PNG))
    assert item["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert item["taken_at"].startswith("2026-11-21T00:00:00")
    stored = settings.data_dir / "dispatch" / "attachments" / "410100" / item["sha256"]
    assert stored.read_bytes() == PNG
    download = await client.get(item["url"])
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    listed = (await client.get(url)).json()
    assert [a["id"] for a in listed] == [item["id"]]
    text = await client.post(url, files={"file": ("note.png", b"just text", "image/png")})
    assert text.status_code == 415
    big = await client.post(url, files={"file": ("big.png", PNG + b"\x00" * 2048, "image/png")})
    assert big.status_code == 413
    naive = await client.post(
        url, files={"file": ("a.png", PNG, "image/png")}, data={"taken_at": "2026-11-21T08:00"}
    )
    assert naive.status_code == 400
    assert (await client.get(f"{url}/00000000-0000-0000-0000-000000000000")).status_code == 404
    history = (await client.get(f"{CASES}/{case['id']}/history")).json()
    assert [h["action"] for h in history].count("attach") == 1


async def test_comments(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    case = await open_case(client)
    url = f"{CASES}/{case['id']}/comments"
    response = await client.post(url, json={"body": "已电话联系物业", "author": "operator-2"})
    assert response.status_code == 201, response.text
    assert (await client.post(url, json={"body": ""})).status_code == 400
    comments = (await client.get(url)).json()
    assert [(c["author"], c["body"]) for c in comments] == [("operator-2", "已电话联系物业")]
    history = (await client.get(f"{CASES}/{case['id']}/history")).json()
    assert history[-1]["action"] == "comment"


async def test_categories_are_seeded_and_managed(client: httpx.AsyncClient) -> None:
    categories = (await client.get(f"{DISPATCH}/categories")).json()
    codes = {c["code"] for c in categories}
    assert {"C0101", "E0101", "E0502"} <= codes
    components = (await client.get(f"{DISPATCH}/categories", params={"kind": "component"})).json()
    assert all(c["kind"] == "component" for c in components)
    cover = next(c for c in categories if c["code"] == "C0101")
    assert (cover["name_zh"], cover["major_name_en"]) == ("上水井盖", "public facilities")
    assert cover["limits"]["urgent"]["handling"] < cover["limits"]["normal"]["handling"]
    new = {
        "code": "E0701",
        "kind": "event",
        "major_code": "07",
        "minor_code": "01",
        "name_zh": "共享单车乱停放",
        "name_en": "misparked shared bicycles",
        "major_name_zh": "街面秩序",
        "major_name_en": "street order",
        "limits": {"normal": {"handling": 240}},
    }
    assert (await client.post(f"{DISPATCH}/categories", json=new)).status_code == 201
    assert (await client.post(f"{DISPATCH}/categories", json=new)).status_code == 409
    bad = new | {"code": "E0702", "limits": {"normal": {"lunch": 5}}}
    assert (await client.post(f"{DISPATCH}/categories", json=bad)).status_code == 400
    changed = await client.patch(
        f"{DISPATCH}/categories/E0701", json={"limits": {"urgent": {"handling": 60}}}
    )
    assert changed.json()["limits"] == {"urgent": {"handling": 60}}
    assert (await client.delete(f"{DISPATCH}/categories/E0701")).status_code == 204
    assert (await client.get(f"{DISPATCH}/categories/E0701")).status_code == 404
    # deleting a shipped category keeps it deleted
    assert (await client.delete(f"{DISPATCH}/categories/C0101")).status_code == 204
    assert "C0101" not in {c["code"] for c in (await client.get(f"{DISPATCH}/categories")).json()}


async def test_grid_cells_and_routes_refuse_bad_input(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    url = f"{DISPATCH}/grid-cells"
    for body in (
        {"type": "Feature"},
        {"type": "FeatureCollection", "features": []},
        {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"code": "x"}}]},
        {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": ["code"]}]},
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"code": "x", "district": JINSHUI},
                    "geometry": {"type": "Point", "coordinates": [113.6, 34.7]},
                }
            ],
        },
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"code": "bow", "district": JINSHUI},
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                    },
                }
            ],
        },
    ):
        response = await client.post(url, json=body)
        assert response.status_code == 400, (body, response.text)
    located = await client.get(f"{url}/locate", params={"lon": 113.655, "lat": 34.775})
    assert located.json()["code"] == "410102001001"
    assert (await client.get(f"{url}/locate", params={"lon": 0, "lat": 0})).status_code == 404
    assert (await client.get(url, params={"district": JINSHUI})).json()["total"] == 1
    collection = (await client.get(f"{DISPATCH}/grid-cells.geojson")).json()
    assert collection["type"] == "FeatureCollection"
    assert [f["properties"]["code"] for f in collection["features"]] == ["410102001001", "410103001001"]
    again = await client.post(url, json=collection)  # the export imports as it is
    assert again.json() == {"created": 0, "updated": 2}
    routes = f"{DISPATCH}/routes"
    assert (await client.post(routes, json={"district": JINSHUI, "department": "nobody"})).status_code == 400
    again = {"district": JINSHUI, "department": "urban", "department_tenant": JINSHUI}
    assert (await client.post(routes, json=again)).status_code == 409
    no_cell = {"category": "E0101", "grid_cell": "nowhere", "department": "municipal-works"}
    assert (await client.post(routes, json=no_cell)).status_code == 400
    unknown = {"category": "Z0000", "department": "municipal-works"}
    assert (await client.post(routes, json=unknown)).status_code == 400
    by_cell = {"category": "E0101", "grid_cell": "410102001001", "department": "municipal-works"}
    created = await client.post(routes, json=by_cell)
    assert created.status_code == 201
    assert created.json()["district"] == JINSHUI
    case = await open_case(client, location=IN_JINSHUI)
    assert case["department"] == "municipal-works"  # the grid cell's own route wins
    assert (await client.delete(f"{routes}/{created.json()['id']}")).status_code == 204
    assert (await client.delete(f"{routes}/{created.json()['id']}")).status_code == 404


async def test_calendar_api(client: httpx.AsyncClient) -> None:
    url = f"{DISPATCH}/calendar"
    current = (await client.get(url)).json()
    assert current["hours"] == [["09:00", "12:00"], ["13:00", "17:30"]]
    assert current["timezone"] == "Asia/Shanghai"
    new = current | {"holidays": ["2027-01-01"], "workdays": ["2027-01-04"]}
    assert (await client.put(url, json=new)).json()["holidays"] == ["2027-01-01"]
    assert (await client.put(url, json=new | {"hours": [["18:00", "09:00"]]})).status_code == 400
    assert (await client.get(url)).json()["holidays"] == ["2027-01-01"]


async def test_evaluation_period_checks(client: httpx.AsyncClient) -> None:
    url = f"{DISPATCH}/evaluation"
    month = await client.get(url, params={"period": "2026-11"})
    assert month.status_code == 200, month.text
    assert month.json()["start"].startswith("2026-10-31T16:00:00")  # 1 November in Shanghai
    assert month.json()["departments"] == []
    for params in (
        {"period": "2026-13"},
        {"period": "November"},
        {},
        {"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
        {"period": "2026-11", "weights": "1,2,3"},
    ):
        assert (await client.get(url, params=params)).status_code == 400, params
    weighted = await client.get(url, params={"period": "2026-11", "weights": "20,20,20,20,20"})
    assert weighted.json()["weights"]["extension"] == 20


async def test_cases_stay_in_their_tenant(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    case = await open_case(client)
    other = {"NGSILD-Tenant": JINSHUI}
    assert (await client.get(f"{CASES}/{case['id']}", headers=other)).status_code == 404
    assert (await client.get(CASES, headers=other)).json()["total"] == 0
    async with app.state.sessions() as session:
        scope_to_tenant(session, JINSHUI)
        assert await service.list_cases(session, service.CaseFilter(), limit=10, offset=0) == ([], 0)


async def test_reports_arriving_together_are_linked_not_both_opened(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)

    async def report(title: str) -> str:
        async with app.state.sessions() as session, session.begin():
            case = await service.open_case(
                session,
                tenant="410100",
                case_type="urban_management",
                category_code="E0101",
                title=title,
                description="",
                location=IN_JINSHUI,
                urgency="normal",
                source="citizen",
                source_ref=None,
            )
            return case.state

    states = await asyncio.gather(*(report(f"report {n}") for n in range(4)))
    assert sorted(states) == ["collected", "merged", "merged", "merged"]
