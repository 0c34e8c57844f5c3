"""Open311 GeoReport v2 on SQLite and PostgreSQL: a citizen's report becomes a case, the case is
worked through /api/v1/cases and its closure and note are seen through Open311; filters, XML,
errors in Open311's format, duplicates, personal data kept out of the answers."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from cityhub.hub.dispatch.open311_models import Open311Report
from tests.hub.dispatch.support import CASES, JINSHUI, act, city

OPEN311 = "/open311/v2"
#: lat/long inside the 金水区 cell (the support module's IN_JINSHUI point)
WHERE = {"lat": "34.775", "long": "113.655"}
PERSONAL = {
    "email": "zhang.san@example.cn",
    "phone": "13800000000",
    "first_name": "三",
    "last_name": "张",
    "device_id": "device-42",
    "account_id": "acct-7",
}


async def post(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    body = {"service_code": "E0101", "description": "路口有暴露垃圾"} | WHERE | fields
    return await client.post(f"{OPEN311}/requests.json", data=body)


async def one(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    response = await client.get(f"{OPEN311}/requests/{request_id}.json")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    assert len(found) == 1
    return found[0]


async def test_citizen_report_becomes_a_case_and_its_closure_shows(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    response = await post(client, **PERSONAL)
    assert response.status_code == 201, response.text
    [created] = response.json()
    request_id = created["service_request_id"]
    assert created["service_notice"] is None

    case = (await client.get(f"{CASES}/{request_id}")).json()
    assert case["source"] == "citizen"
    assert case["category"] == "E0101"
    assert (case["department_tenant"], case["department"]) == (JINSHUI, "urban")
    assert case["state"] == "collected"

    opened = await one(client, request_id)
    assert opened["status"] == "open"
    assert opened["service_code"] == "E0101"
    assert opened["service_name"] == "暴露垃圾"
    assert opened["agency_responsible"] == "金水区城市管理局"
    assert opened["description"] == "路口有暴露垃圾"
    assert (opened["lat"], opened["long"]) == (34.775, 113.655)
    assert opened["expected_datetime"] is not None

    for action in ("file", "dispatch", "accept", "feedback"):
        assert (await act(client, request_id, action)).status_code == 200
    closed = await act(client, request_id, "verify", note="垃圾已清运，现场已恢复整洁")
    assert closed.status_code == 200, closed.text

    shown = await one(client, request_id)
    assert shown["status"] == "closed"
    assert shown["status_notes"] == "垃圾已清运，现场已恢复整洁"
    assert shown["expected_datetime"] is None
    # what the reporter said about themselves is kept, never shown
    text = (await client.get(f"{OPEN311}/requests.json")).text + str(shown)
    for value in PERSONAL.values():
        assert value not in text
    assert not set(PERSONAL) & set(shown)
    async with app.state.sessions() as session:
        stored = (await session.scalars(select(Open311Report))).one()
    assert (stored.email, stored.phone, stored.device_id) == (
        PERSONAL["email"],
        PERSONAL["phone"],
        PERSONAL["device_id"],
    )
    assert str(stored.case_id) == request_id


async def test_a_duplicate_report_is_linked_and_follows_the_case_doing_the_work(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await city(app, client)
    first = (await post(client)).json()[0]["service_request_id"]
    second_answer = await post(client, lat="34.7751", long="113.6551", description="同一处垃圾")
    assert second_answer.status_code == 201
    second = second_answer.json()[0]
    assert second["service_request_id"] != first
    assert first in second["service_notice"]

    duplicate = (await client.get(f"{CASES}/{second['service_request_id']}")).json()
    assert duplicate["duplicate_of"] == first
    assert duplicate["state"] == "merged"
    original = (await client.get(f"{CASES}/{first}")).json()
    assert original["duplicates"] == 1

    for action in ("file", "cancel"):
        assert (await act(client, first, action, note="已在别处处理")).status_code == 200
    followed = await one(client, second["service_request_id"])
    assert followed["status"] == "closed"
    assert followed["status_notes"] == "已在别处处理"
    assert followed["duplicate_of"] == first


async def test_services_definitions_and_json_body(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    services = (await client.get(f"{OPEN311}/services.json")).json()
    codes = {s["service_code"] for s in services}
    assert {"E0101", "C0101"} <= codes
    garbage = next(s for s in services if s["service_code"] == "E0101")
    assert garbage["service_name"] == "暴露垃圾"
    assert garbage["metadata"] is False

    question = {
        "code": "size",
        "description": "垃圾大约有多少？",
        "datatype": "singlevaluelist",
        "required": True,
        "values": [{"key": "small", "name": "一袋以内"}, {"key": "large", "name": "成堆"}],
    }
    response = await client.put("/api/v1/open311/services/E0101", json={"attributes": [question]})
    assert response.status_code == 200, response.text
    closed = await client.put("/api/v1/open311/services/C0101", json={"public": False})
    assert closed.status_code == 200
    services = (await client.get(f"{OPEN311}/services.json")).json()
    assert "C0101" not in {s["service_code"] for s in services}
    assert next(s for s in services if s["service_code"] == "E0101")["metadata"] is True
    definition = (await client.get(f"{OPEN311}/services/E0101.json")).json()
    assert definition["service_code"] == "E0101"
    assert definition["attributes"][0]["code"] == "size"
    assert (await client.get(f"{OPEN311}/services/C0101.json")).status_code == 404

    missing = await post(client)
    assert missing.status_code == 400
    assert missing.json()[0]["description"].startswith("attribute[size] is required")
    wrong = await post(client, **{"attribute[size]": "huge"})
    assert wrong.status_code == 400
    ok = await post(client, **{"attribute[size]": "large"})
    assert ok.status_code == 201, ok.text
    as_json = await client.post(
        f"{OPEN311}/requests.json",
        json={
            "service_code": "E0101",
            "lat": 34.725,
            "long": 113.645,
            "description": "二七区也有",
            "attribute": {"size": "small"},
        },
    )
    assert as_json.status_code == 201, as_json.text
    closed_post = await post(client, service_code="C0101")
    assert closed_post.status_code == 404


async def test_filters_and_xml(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    garbage = (await post(client)).json()[0]["service_request_id"]
    cover = (await post(client, service_code="C0101", description="井盖缺失")).json()[0]["service_request_id"]
    for action in ("file", "cancel"):
        await act(client, cover, action, note="重复上报")

    async def ids(**params: str) -> set[str]:
        response = await client.get(f"{OPEN311}/requests.json", params=params)
        assert response.status_code == 200, response.text
        return {r["service_request_id"] for r in response.json()}

    assert await ids() == {garbage, cover}
    assert await ids(service_code="C0101") == {cover}
    assert await ids(status="open") == {garbage}
    assert await ids(status="closed") == {cover}
    assert await ids(status="open,closed") == {garbage, cover}
    assert await ids(service_request_id=f"{garbage},{cover}") == {garbage, cover}
    assert await ids(start_date="2000-01-01T00:00:00Z", end_date="2000-02-01T00:00:00Z") == set()
    assert await ids(start_date="2000-01-01T00:00:00+08:00") == {garbage, cover}

    xml = await client.get(f"{OPEN311}/requests/{garbage}.xml")
    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(xml.content)
    assert root.tag == "service_requests"
    [item] = root.findall("request")
    assert item.findtext("service_request_id") == garbage
    assert item.findtext("status") == "open"
    services = ElementTree.fromstring((await client.get(f"{OPEN311}/services.xml")).content)
    assert services.tag == "services"
    assert "E0101" in {s.findtext("service_code") for s in services.findall("service")}
    discovery = ElementTree.fromstring((await client.get(f"{OPEN311}/discovery.xml")).content)
    assert discovery.find("endpoints/endpoint/specification") is not None
    assert (await client.get(f"{OPEN311}/discovery.json")).json()["endpoints"][0]["formats"] == [
        "application/json",
        "text/xml",
    ]
    posted = await client.post(
        f"{OPEN311}/requests.xml", data={"service_code": "E0101", "address_string": "花园路 1 号"}
    )
    assert posted.status_code == 201
    assert ElementTree.fromstring(posted.content).findtext("request/service_request_id")


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("GET", "/requests/not-an-id.json", None, 404),
        ("GET", "/requests/00000000-0000-0000-0000-000000000000.json", None, 404),
        ("GET", "/requests.json?status=pending", None, 400),
        ("GET", "/requests.json?start_date=yesterday", None, 400),
        ("GET", "/requests.json?start_date=2026-11-01T00:00:00", None, 400),
        ("GET", "/requests.json?service_request_id=1,2", None, 400),
        ("GET", "/requests.json?jurisdiction_id=abc", None, 400),
        ("GET", "/requests.json?jurisdiction_id=990000", None, 404),
        ("GET", "/requests.csv", None, 404),
        ("GET", "/services/Z9999.json", None, 404),
        ("GET", "/nothing.json", None, 404),
        ("POST", "/requests.json", {"description": "no code", **WHERE}, 400),
        ("POST", "/requests.json", {"service_code": "E0101"}, 400),
        ("POST", "/requests.json", {"service_code": "E0101", "lat": "34.7"}, 400),
        ("POST", "/requests.json", {"service_code": "E0101", "lat": "north", "long": "east"}, 400),
        ("POST", "/requests.json", {"service_code": "E0101", "lat": "134", "long": "113"}, 400),
        ("POST", "/requests.json", {"service_code": "Z9999", **WHERE}, 404),
        ("POST", "/requests.json", {"service_code": "E0101", "email": "x" * 300, **WHERE}, 400),
    ],
)
async def test_errors_in_open311_format(
    app: FastAPI, client: httpx.AsyncClient, method: str, path: str, body: dict[str, str] | None, code: int
) -> None:
    await city(app, client)
    response = await client.request(method, f"{OPEN311}{path}", data=body)
    assert response.status_code == code, response.text
    assert response.json() == [{"code": code, "description": response.json()[0]["description"]}]
    assert response.json()[0]["description"]


async def test_bad_bodies(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    for content, kind in (
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"service_code=E0101", "text/plain"),
    ):
        response = await client.post(
            f"{OPEN311}/requests.json", content=content, headers={"content-type": kind}
        )
        assert response.status_code == 400, response.text
        assert response.json()[0]["code"] == 400
    xml = await client.post(f"{OPEN311}/requests.xml", data={"service_code": "E0101"})
    assert xml.status_code == 400
    assert ElementTree.fromstring(xml.content).findtext("error/code") == "400"


async def test_jurisdictions_keep_their_requests_apart(app: FastAPI, client: httpx.AsyncClient) -> None:
    await city(app, client)
    request_id = (await post(client)).json()[0]["service_request_id"]
    default = app.state.default_tenant
    assert [r["service_request_id"] for r in (await client.get(f"{OPEN311}/requests.json")).json()] == [
        request_id
    ]
    mine = await client.get(f"{OPEN311}/requests.json", params={"jurisdiction_id": default})
    assert [r["service_request_id"] for r in mine.json()] == [request_id]
    other = await client.get(f"{OPEN311}/requests.json", params={"jurisdiction_id": JINSHUI})
    assert other.status_code == 200
    assert other.json() == []
    hidden = await client.get(f"{OPEN311}/requests/{request_id}.json", params={"jurisdiction_id": JINSHUI})
    assert hidden.status_code == 404
