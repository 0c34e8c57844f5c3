"""The whole path of a case through the API, on SQLite and PostgreSQL: routed by its location,
dispatched, handled, failed verification, reworked, verified, closed and counted in the
department's evaluation; plus the refusals (409, triage, duplicates)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from cityhub.kit.time import isoformat, utcnow
from tests.hub.dispatch.support import (
    CASES,
    DISPATCH,
    ERQI,
    IN_ERQI,
    IN_JINSHUI,
    JINSHUI,
    OUTSIDE,
    act,
    city,
    open_case,
)


async def test_case_routed_by_location_handled_verified_closed_and_evaluated(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    case = await open_case(client, reporter="市民张三")
    assert case["state"] == "collected"
    assert (case["grid_cell"], case["district"]) == ("410102001001", JINSHUI)
    assert (case["department_tenant"], case["department"]) == (JINSHUI, "urban")
    assert case["triage"] is False
    assert case["stage"] == "filing"
    assert case["due_at"] is not None
    elsewhere = await open_case(client, location=IN_ERQI)
    assert (elsewhere["department_tenant"], elsewhere["department"]) == (ERQI, "urban")

    case_id = case["id"]
    for action in ("file", "dispatch", "accept", "feedback"):
        response = await act(client, case_id, action, actor="operator-1")
        assert response.status_code == 200, response.text
    assert response.json()["state"] == "feedback"
    refused = await act(client, case_id, "rework")
    assert refused.status_code == 400  # rework needs a reason
    response = await act(client, case_id, "rework", note="垃圾未清运干净", actor="supervisor-1")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "handling"
    assert response.json()["reworks"] == 1
    assert (await act(client, case_id, "feedback", actor="worker")).status_code == 200
    closed = await act(client, case_id, "verify", actor="supervisor-1")
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed"
    assert closed.json()["closed_at"] is not None
    assert closed.json()["allowed_actions"] == ["evaluate"]

    history = (await client.get(f"{CASES}/{case_id}/history")).json()
    steps = [(h["action"], h["from_state"], h["to_state"]) for h in history]
    assert steps == [
        ("open", None, "collected"),
        ("file", "collected", "filed"),
        ("dispatch", "filed", "dispatched"),
        ("accept", "dispatched", "handling"),
        ("feedback", "handling", "feedback"),
        ("rework", "feedback", "handling"),
        ("feedback", "handling", "feedback"),
        ("verify", "feedback", "closed"),
    ]
    assert history[0]["actor"] == "市民张三"
    assert history[5]["actor"] == "supervisor-1"
    assert history[5]["note"] == "垃圾未清运干净"

    now = utcnow()
    window = {"from": isoformat(now - timedelta(hours=1)), "to": isoformat(now + timedelta(hours=1))}
    evaluation = (await client.get(f"{DISPATCH}/evaluation", params=window)).json()
    assert evaluation["weights"] == {
        "handling": 30.0,
        "on_time": 20.0,
        "rework": 20.0,
        "overdue": 20.0,
        "extension": 10.0,
    }
    jinshui = [d for d in evaluation["departments"] if d["department_tenant"] == JINSHUI]
    assert len(jinshui) == 1
    score = jinshui[0]
    assert (score["dispatched"], score["handled"], score["on_time"], score["reworked"]) == (1, 1, 1, 1)
    assert (score["handling_rate"], score["rework_rate"], score["overdue_rate"]) == (1.0, 1.0, 0.0)
    assert score["score"] == 80.0  # 30·1 + 20·1 + 20·(1 − 1) + 20·(1 − 0) + 10·(1 − 0)
    # the 二七 case was never dispatched: it is not counted
    assert all(d["department_tenant"] != ERQI for d in evaluation["departments"])


async def test_case_is_an_ngsi_ld_entity(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    case = await open_case(client)
    await act(client, case["id"], "file")
    response = await client.get(f"/ngsi-ld/v1/entities/{case['entity_id']}", params={"options": "keyValues"})
    assert response.status_code == 200, response.text
    entity = response.json()
    assert entity["type"] == "CityCase"
    assert entity["state"] == "filed"
    assert entity["category"] == "E0101"
    assert entity["district"] == JINSHUI
    assert entity["department"] == "urban"
    assert entity["location"] == IN_JINSHUI
    found = await client.get("/ngsi-ld/v1/entities", params={"type": "CityCase", "q": 'state=="filed"'})
    assert [e["id"] for e in found.json()] == [case["entity_id"]]


async def test_invalid_transition_answers_409_with_the_allowed_actions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    case = await open_case(client)
    response = await act(client, case["id"], "verify")
    assert response.status_code == 409
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["state"] == "collected"
    assert problem["allowed_actions"] == ["file", "cancel"]
    assert problem["allowed_states"] == ["filed", "cancelled"]
    assert "file" in problem["detail"]
    unknown = await act(client, case["id"], "teleport")
    assert unknown.status_code == 409
    cancelled = await act(client, case["id"], "cancel", note="重复上报")
    assert cancelled.json()["state"] == "cancelled"
    final = await act(client, case["id"], "file")
    assert final.status_code == 409
    assert final.json()["allowed_actions"] == []
    missing = await act(client, "00000000-0000-0000-0000-000000000000", "file")
    assert missing.status_code == 404


async def test_unknown_category_and_outside_every_cell_go_to_triage(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    unknown = await open_case(client, category="X9999", title="不明事项")
    outside = await open_case(client, location=OUTSIDE)
    routed = await open_case(client, location=IN_ERQI)
    assert unknown["triage"]
    assert "unknown category" in unknown["triage_reason"]
    assert outside["triage"]
    assert "outside every grid cell" in outside["triage_reason"]
    assert unknown["department"] is None
    queue = (await client.get(CASES, params={"triage": "true"})).json()
    assert queue["total"] == 2
    assert {c["id"] for c in queue["items"]} == {unknown["id"], outside["id"]}
    assert routed["id"] not in {c["id"] for c in queue["items"]}
    # a person decides: filed, then dispatched to a named department, which leaves the queue
    await act(client, outside["id"], "file")
    no_department = await act(client, outside["id"], "dispatch")
    assert no_department.status_code == 400
    dispatched = await act(client, outside["id"], "dispatch", department="municipal-works")
    assert dispatched.status_code == 200, dispatched.text
    assert dispatched.json()["triage"] is False
    assert dispatched.json()["department_tenant"] == "410100"
    assert (await client.get(CASES, params={"triage": "true"})).json()["total"] == 1
    await act(client, unknown["id"], "cancel", note="无法核实")
    assert (await client.get(CASES, params={"triage": "true"})).json()["total"] == 0  # no longer waiting
    closed = (await client.get(CASES, params={"open": "false"})).json()
    assert [c["id"] for c in closed["items"]] == [unknown["id"]]
    assert (await client.get(CASES, params={"open": "true"})).json()["total"] == 2
    later = {"opened_after": isoformat(utcnow() + timedelta(hours=1))}
    assert (await client.get(CASES, params=later)).json()["total"] == 0
    naive = await client.get(CASES, params={"opened_after": "2026-11-21T08:00:00"})
    assert naive.status_code == 400


async def test_duplicate_reports_nearby_are_linked_not_multiplied(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    first = await open_case(client)
    lon, lat = IN_JINSHUI["coordinates"]
    near = {"type": "Point", "coordinates": [lon + 0.0002, lat]}  # about 18 m east
    far = {"type": "Point", "coordinates": [lon + 0.002, lat]}  # about 180 m east
    second = await open_case(client, location=near, title="这里有垃圾")
    assert second["state"] == "merged"
    assert second["duplicate_of"] == first["id"]
    assert second["allowed_actions"] == []
    other_category = await open_case(client, location=near, category="E0102")
    assert other_category["duplicate_of"] is None
    elsewhere = await open_case(client, location=far)
    assert elsewhere["duplicate_of"] is None
    original = (await client.get(f"{CASES}/{first['id']}")).json()
    assert original["duplicates"] == 1
    linked = (await client.get(CASES, params={"duplicate_of": first["id"]})).json()
    assert [c["id"] for c in linked["items"]] == [second["id"]]
    refused = await act(client, second["id"], "file")
    assert refused.status_code == 409
    assert first["id"] in refused.json()["detail"]
    # a closed case takes no more duplicates
    await act(client, first["id"], "cancel", note="已处理")
    third = await open_case(client, location=near)
    assert third["duplicate_of"] is None


async def test_list_filters_and_pages(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    for index in range(3):
        lon, lat = IN_JINSHUI["coordinates"]
        await open_case(client, location={"type": "Point", "coordinates": [lon + index * 0.002, lat]})
    await open_case(client, location=IN_ERQI)
    page = (await client.get(CASES, params={"district": JINSHUI, "limit": 2})).json()
    assert (page["total"], len(page["items"])) == (3, 2)
    rest = (await client.get(CASES, params={"district": JINSHUI, "limit": 2, "offset": 2})).json()
    assert len(rest["items"]) == 1
    assert (await client.get(CASES, params={"department": "urban", "state": "collected"})).json()[
        "total"
    ] == 4
    assert (await client.get(CASES, params={"grid_cell": "410103001001"})).json()["total"] == 1
    assert (await client.get(CASES, params={"overdue": "true"})).json()["total"] == 0
    bad = await client.get(CASES, params={"limit": 0})
    assert bad.status_code == 400


async def test_bad_case_input_is_a_clear_4xx(app: FastAPI, client: httpx.AsyncClient) -> None:
    for body, status in (
        ({"category": "E0101", "title": "x", "location": {"type": "Point", "coordinates": [200, 0]}}, 400),
        (
            {"category": "E0101", "title": "x", "location": {"type": "LineString", "coordinates": [[0, 0]]}},
            400,
        ),
        ({"category": "E0101", "title": "x", "case_type": "nope"}, 400),
        ({"category": "E0101", "title": "x", "urgency": "whenever"}, 400),
        ({"category": "E0101"}, 400),
    ):
        response = await client.post(CASES, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["detail"]
    assert (await client.get(f"{CASES}/not-a-case")).status_code == 404


async def test_correcting_a_triaged_case_routes_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    unknown = await open_case(client, category="X9999", title="不明事项")
    assert unknown["due_at"] is None
    response = await client.patch(
        f"{CASES}/{unknown['id']}", json={"category": "E0101", "actor": "operator-3"}
    )
    assert response.status_code == 200, response.text
    corrected = response.json()
    assert corrected["triage"] is False
    assert (corrected["department_tenant"], corrected["department"]) == (JINSHUI, "urban")
    assert corrected["due_at"] is not None
    outside = await open_case(client, location=OUTSIDE)
    moved = (await client.patch(f"{CASES}/{outside['id']}", json={"location": IN_ERQI})).json()
    assert (moved["district"], moved["department_tenant"], moved["triage"]) == (ERQI, ERQI, False)
    urgent = (await client.patch(f"{CASES}/{moved['id']}", json={"urgency": "urgent"})).json()
    assert urgent["due_at"] < moved["due_at"]
    history = (await client.get(f"{CASES}/{unknown['id']}/history")).json()
    assert history[-1]["action"] == "correct"
    assert history[-1]["actor"] == "operator-3"
    assert history[-1]["data"]["category_code"] == {"from": "X9999", "to": "E0101"}
    bad = await client.patch(f"{CASES}/{unknown['id']}", json={"title": None})
    assert bad.status_code == 400
    await act(client, unknown["id"], "cancel", note="误报")
    closed = await client.patch(f"{CASES}/{unknown['id']}", json={"title": "新标题"})
    assert closed.status_code == 409


async def test_nul_characters_and_huge_numbers_are_a_clear_400(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    case = await open_case(client)
    for method, path, kwargs in (
        ("POST", CASES, {"json": {"category": "E0101", "title": "bad\u0000title"}}),
        ("GET", CASES, {"params": {"state": "a\u0000b"}}),
        ("GET", CASES, {"params": {"offset": 2**70}}),
        ("GET", f"{DISPATCH}/categories/C%000101", {}),
        ("POST", f"{CASES}/{case['id']}/comments", {"json": {"body": "x\u0000"}}),
        ("POST", f"{CASES}/{case['id']}/transitions", {"json": {"action": "file", "note": "\u0000"}}),
        ("GET", f"{DISPATCH}/evaluation", {"params": {"period": "0000-01"}}),
        ("GET", f"{DISPATCH}/evaluation", {"params": {"period": "9999-12"}}),
        ("PATCH", f"{DISPATCH}/categories/E0101", {"json": {"limits": {"normal": {"handling": 10**12}}}}),
    ):
        response = await client.request(method, path, **kwargs)
        assert response.status_code == 400, (method, path, response.text)


async def test_redispatch_after_failed_verification_goes_to_another_department(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    case = await open_case(client)
    for action in ("file", "dispatch", "accept", "feedback"):
        await act(client, case["id"], action)
    again = await act(client, case["id"], "redispatch", note="不属于城管职责,应由市政处理")
    assert again.json()["state"] == "filed"
    assert again.json()["reworks"] == 1
    moved = await act(client, case["id"], "dispatch", department="municipal-works")
    assert (moved.json()["department_tenant"], moved.json()["department"]) == ("410100", "municipal-works")
    for action in ("accept", "feedback", "verify"):
        assert (await act(client, case["id"], action)).status_code == 200
    now = utcnow()
    window = {"from": isoformat(now - timedelta(hours=1)), "to": isoformat(now + timedelta(hours=1))}
    departments = (await client.get(f"{DISPATCH}/evaluation", params=window)).json()["departments"]
    assert [(d["department"], d["handled"], d["reworked"]) for d in departments] == [
        ("municipal-works", 1, 1)
    ]
    history = (await client.get(f"{CASES}/{case['id']}/history")).json()
    dispatches = [h["data"]["department"] for h in history if h["action"] == "dispatch"]
    assert dispatches == ["urban", "municipal-works"]
