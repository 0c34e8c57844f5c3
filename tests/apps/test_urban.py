"""The urban management application on SQLite and PostgreSQL: the component inventory (codes
checked against the divisions and component categories, import with a report per row, state
following a case), the centres' queues, grid statistics, and the monthly report's figures for a
known set of cases, in HTML and CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from tests.hub.dispatch.support import ERQI, IN_ERQI, IN_JINSHUI, JINSHUI, act, city, open_case

URBAN = "/api/v1/urban"
#: 410102 (division) 01 01 (C0101 上水井盖) 000001
COVER = "4101020101000001"
LAMP = "4101020104000007"


def component(**given: Any) -> dict[str, Any]:
    return {
        "name": "上水井盖",
        "location": IN_JINSHUI,
        "department": "urban",
        "department_tenant": JINSHUI,
    } | given


def this_month() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")


async def test_inventory_crud_and_code_checks(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    created = await client.put(f"{URBAN}/components/{COVER}", json=component(address="花园路 1 号"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["division"], body["category"], body["serial"]) == (JINSHUI, "C0101", "000001")
    assert body["state"] == "intact"
    assert body["entity_id"] == f"urn:ngsi-ld:UrbanComponent:{COVER}"
    again = await client.put(f"{URBAN}/components/{COVER}", json=component(name="上水井盖（东）"))
    assert again.status_code == 200
    lamp = await client.put(f"{URBAN}/components/{LAMP}", json=component(name="路灯", state="damaged"))
    assert lamp.status_code == 201

    entity = await client.get(
        f"/ngsi-ld/v1/entities/urn:ngsi-ld:UrbanComponent:{COVER}", params={"options": "keyValues"}
    )
    assert entity.status_code == 200
    assert entity.json()["type"] == "UrbanComponent"
    assert entity.json()["name"] == "上水井盖（东）"

    listed = (await client.get(f"{URBAN}/components")).json()
    assert {c["code"] for c in listed} == {COVER, LAMP}
    damaged = (await client.get(f"{URBAN}/components", params={"state": "damaged"})).json()
    assert [c["code"] for c in damaged] == [LAMP]
    lamps = (await client.get(f"{URBAN}/components", params={"category": "C0104"})).json()
    assert [c["code"] for c in lamps] == [LAMP]

    by_division = await client.get(f"{URBAN}/components", params={"division": JINSHUI})
    assert {c["code"] for c in by_division.json()} == {COVER, LAMP}
    assert (await client.get(f"{URBAN}/components", params={"division": ERQI})).json() == []
    assert (await client.get(f"{URBAN}/components", params={"state": 'x" or "1'})).status_code == 400
    assert (await client.patch(f"{URBAN}/components/{COVER}", json={"state": "gone"})).status_code == 400
    assert (await client.delete(f"{URBAN}/components/4101020101999999")).status_code == 404
    patched = await client.patch(f"{URBAN}/components/{COVER}", json={"state": "lost"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["state"] == "lost"
    assert patched.json()["name"] == "上水井盖（东）"
    assert (await client.delete(f"{URBAN}/components/{LAMP}")).status_code == 204
    assert (await client.get(f"{URBAN}/components/{LAMP}")).status_code == 404

    for code, said in (
        ("41010201010001", "16 digits"),
        ("9900000101000001", "no division"),
        ("4101029901000001", "no component category"),
        ("4101020101000000", "serial"),
    ):
        response = await client.put(f"{URBAN}/components/{code}", json=component())
        assert response.status_code == 400, (code, response.text)
        assert said in response.json()["detail"]
    for wrong in ({"state": "broken"}, {"location": {"type": "Point", "coordinates": [200, 34]}}):
        response = await client.put(f"{URBAN}/components/{COVER}", json=component(**wrong))
        assert response.status_code == 400, response.text


async def test_import_csv_and_geojson_reports_each_wrong_row(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    await client.put(f"{URBAN}/components/{COVER}", json=component())
    text = (
        "code,name,lon,lat,department,department_tenant,state,address\n"
        f"{COVER},上水井盖,113.655,34.775,urban,{JINSHUI},intact,花园路\n"
        "4101020104000001,路灯,113.656,34.776,urban,410102,intact,\n"
        "4101020104000002,路灯,,34.776,urban,410102,intact,\n"
        "4101029901000003,未知部件,113.656,34.776,urban,410102,intact,\n"
        "4101020104000001,路灯重复,113.656,34.776,urban,410102,intact,\n"
    )
    response = await client.post(
        f"{URBAN}/components/import", content=("\ufeff" + text).encode(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["rejected"]) == (1, 1, 3)
    assert [(e["row"], e["code"]) for e in report["errors"]] == [
        (3, "4101020104000002"),
        (4, "4101029901000003"),
        (5, "4101020104000001"),
    ]
    assert "location" in report["errors"][0]["error"]

    geojson = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": IN_ERQI,
                "properties": {"code": "4101030302000001", "name": "垃圾箱", "department": "urban"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "LineString"},
                "properties": {"code": "4101030302000002"},
            },
            "not a feature",
        ],
    }
    response = await client.post(
        f"{URBAN}/components/import",
        content=json.dumps(geojson),
        headers={"content-type": "application/geo+json"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["rejected"]) == (1, 2)
    assert [e["row"] for e in report["errors"]] == [2, 3]
    assert len((await client.get(f"{URBAN}/components")).json()) == 3

    for content, kind in ((b"name\nx\n", "text/csv"), (b"{}", "application/json"), (b"x", "text/plain")):
        refused = await client.post(
            f"{URBAN}/components/import", content=content, headers={"content-type": kind}
        )
        assert refused.status_code == 400, refused.text


async def _component_state(client: httpx.AsyncClient, code: str, wanted: str) -> dict[str, Any]:
    """The component once its state is ``wanted`` (the change comes from a bus consumer)."""
    for _ in range(200):
        body: dict[str, Any] = (await client.get(f"{URBAN}/components/{code}")).json()
        if body["state"] == wanted:
            return body
        await asyncio.sleep(0.05)
    return body


async def test_component_state_follows_its_case(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    await client.put(f"{URBAN}/components/{COVER}", json=component())
    opened = await client.post(f"{URBAN}/components/{COVER}/cases", json={"description": "井盖破损"})
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["case"]
    case = (await client.get(f"/api/v1/cases/{case_id}")).json()
    assert case["category"] == "C0101"
    assert case["source_ref"] == f"urn:ngsi-ld:UrbanComponent:{COVER}"
    assert case["department"] == "municipal-works"
    shown = (await client.get(f"{URBAN}/components/{COVER}")).json()
    assert (shown["state"], shown["active_case"]) == ("damaged", case_id)

    for action in ("file", "dispatch", "accept", "feedback", "verify"):
        assert (await act(client, case_id, action)).status_code == 200
    repaired = await _component_state(client, COVER, "intact")
    assert (repaired["state"], repaired["active_case"]) == ("intact", None)

    # a case opened elsewhere that names the component: the consumer marks it
    lost = await client.patch(f"{URBAN}/components/{COVER}", json={"state": "lost"})
    assert lost.status_code == 200
    other = await open_case(
        client, category="C0101", source_ref=f"urn:ngsi-ld:UrbanComponent:{COVER}", location=IN_ERQI
    )
    damaged = await _component_state(client, COVER, "damaged")
    assert damaged["active_case"] == other["id"]
    for action, note in (("file", None), ("cancel", "误报")):
        assert (await act(client, other["id"], action, note=note)).status_code == 200
    back = await _component_state(client, COVER, "lost")
    assert (back["state"], back["active_case"]) == ("lost", None)


async def test_queues(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    collected = await open_case(client)
    filed = await open_case(client, category="E0102")
    await act(client, filed["id"], "file")
    extension = await open_case(client, category="E0201")
    for action in ("file", "dispatch", "accept"):
        await act(client, extension["id"], action)
    await act(client, extension["id"], "request_extension", note="需要更多时间")
    feedback = await open_case(client, category="E0301")
    for action in ("file", "dispatch", "accept", "feedback"):
        await act(client, feedback["id"], action)

    body = (await client.get(f"{URBAN}/queues")).json()
    supervision = body["supervision"]["queues"]
    command = body["command"]["queues"]
    assert supervision["to_file"]["count"] == 1
    assert supervision["to_file"]["items"][0]["id"] == collected["id"]
    assert supervision["to_file"]["items"][0]["minutes_left"] > 0
    assert supervision["to_verify"]["count"] == 1
    assert supervision["to_verify"]["items"][0]["id"] == feedback["id"]
    assert supervision["to_evaluate"]["count"] == 0
    assert command["to_dispatch"]["count"] == 1
    assert command["to_dispatch"]["items"][0]["id"] == filed["id"]
    assert command["extension_requests"]["count"] == 1
    assert command["overdue"]["count"] == 0
    assert body["command"]["title_zh"] == "指挥中心"
    assert (await client.get(f"{URBAN}/queues", params={"limit": 0})).status_code == 400


async def known_month(client: httpx.AsyncClient) -> dict[str, str]:
    """Four cases and a duplicate: two in the 金水 cell handled (one reworked and extended), one in
    the 二七 cell dispatched and not handled, one never dispatched."""
    a = await open_case(client, category="E0101")
    for action in ("file", "dispatch", "accept", "feedback", "verify"):
        assert (await act(client, a["id"], action)).status_code == 200
    duplicate = await open_case(client, category="E0101", source="citizen")
    assert duplicate["duplicate_of"] == a["id"] or duplicate["state"] == "merged"
    b = await open_case(client, category="E0501")
    for action, note in (
        ("file", None),
        ("dispatch", None),
        ("accept", None),
        ("request_extension", "需协调"),
        ("approve_extension", None),
        ("feedback", None),
        ("rework", "未清理干净"),
        ("feedback", None),
        ("verify", None),
    ):
        assert (await act(client, b["id"], action, note=note)).status_code == 200
    c = await open_case(client, category="E0101", location=IN_ERQI)
    for action in ("file", "dispatch"):
        assert (await act(client, c["id"], action)).status_code == 200
    d = await open_case(client, category="E0201")
    return {"a": a["id"], "b": b["id"], "c": c["id"], "d": d["id"]}


async def test_grid_statistics_and_evaluation(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    await known_month(client)
    stats = (await client.get(f"{URBAN}/statistics/grid", params={"period": this_month()})).json()
    assert (stats["cases"], stats["reports"]) == (4, 5)
    cells = {line["grid_cell"]: line for line in stats["cells"]}
    assert cells["410102001001"]["cases"] == 3
    assert cells["410102001001"]["reports"] == 4
    assert cells["410102001001"]["categories"] == {"E0101": 1, "E0201": 1, "E0501": 1}
    assert cells["410103001001"]["categories"] == {"E0101": 1}
    assert [h["grid_cell"] for h in stats["hot_spots"]] == ["410102001001", "410103001001"]
    assert stats["categories"][0] == {
        "category": "E0101",
        "name_zh": "暴露垃圾",
        "name_en": stats["categories"][0]["name_en"],
        "cases": 2,
    }
    assert (await client.get(f"{URBAN}/statistics/grid", params={"period": "2026-13"})).status_code == 400
    assert (await client.get(f"{URBAN}/statistics/grid")).status_code == 400

    evaluation = (await client.get(f"{URBAN}/evaluation", params={"period": this_month()})).json()
    scores = {line["department_tenant"]: line for line in evaluation["departments"]}
    assert scores[JINSHUI]["score"] == 85.0  # 30·1 + 20·1 + 20·(1 − ½) + 20·1 + 10·(1 − ½)
    assert scores[JINSHUI]["name"] == "金水区城市管理局"
    assert scores[ERQI]["score"] == 50.0  # nothing handled: 20 + 20 + 10
    custom = (
        await client.get(f"{URBAN}/evaluation", params={"period": this_month(), "weights": "50,50,0,0,0"})
    ).json()
    assert {line["department_tenant"]: line["score"] for line in custom["departments"]} == {
        JINSHUI: 100.0,
        ERQI: 0.0,
    }
    assert (
        await client.get(f"{URBAN}/evaluation", params={"period": this_month(), "weights": "1,2"})
    ).status_code == 400


async def test_monthly_report_html_and_csv(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    await known_month(client)
    month = this_month()
    page = await client.get(f"{URBAN}/reports/{month}")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="zh-CN">' in html
    assert "城市管理月度报告" in html
    assert "金水区城市管理局" in html
    assert "<td>85.00</td>" in html
    assert "<td>50.00</td>" in html
    assert "<td>50.0%</td>" in html  # the rework and extension rates of 金水
    for external in ("src=", "href=", "http"):  # self-contained
        assert external not in html

    sheet = await client.get(f"{URBAN}/reports/{month}", params={"format": "csv"})
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/csv")
    assert sheet.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    header = rows.index(["部门综合评价"]) + 1
    columns = rows[header]
    lines = {row[2]: dict(zip(columns, row, strict=True)) for row in rows[header + 1 : header + 3]}
    jinshui = lines[JINSHUI]
    assert (jinshui["部门"], jinshui["派遣数"], jinshui["处置数"], jinshui["返工数"], jinshui["延期数"]) == (
        "金水区城市管理局",
        "2",
        "2",
        "1",
        "1",
    )
    assert (jinshui["处置率"], jinshui["返工率"], jinshui["延期率"], jinshui["得分"]) == (
        "1.0",
        "0.5",
        "0.5",
        "85.0",
    )
    assert lines[ERQI]["得分"] == "50.0"
    hot = rows.index(["网格热点"]) + 2
    assert rows[hot] == ["410102001001", "410102001001", JINSHUI, "3", "4"]
    assert (await client.get(f"{URBAN}/reports/{month}", params={"format": "pdf"})).status_code == 400
    assert (await client.get(f"{URBAN}/reports/2026-00")).status_code == 400


async def test_indicator(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    await known_month(client)
    body = (await client.get("/api/v1/indicators")).json()
    [value] = [v for v in body["indicators"] if v["indicator"] == "smart_urban_management"]
    assert value["value"] == round(100 * 2 / 3, 1)
    assert value["unit"] == "%"


async def test_contributions(client: httpx.AsyncClient) -> None:
    [urban] = [a for a in (await client.get("/api/v1/apps")).json() if a["name"] == "urban"]
    assert urban["state"] == "running"
    assert urban["contributes"]["routers"] == ["/api/v1/urban"]
    assert urban["contributes"]["entity_types"] == ["UrbanComponent"]
    assert urban["contributes"]["rule_templates"] == ["manhole-cover-displaced"]
    assert urban["contributes"]["indicators"] == ["smart_urban_management"]
    assert urban["contributes"]["consumers"] == ["urban-components"]
