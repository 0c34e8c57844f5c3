"""The alert centre and the case centre in headless Chromium against a real hub: an alert raised by
a rule is acknowledged and turned into a case; a case is dispatched, handled and closed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import CITY, DISTRICT, SKIP_REASON, Hub, Session, point, prop

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

PM25_HIGH = {
    "name": "PM2.5 high",
    "entity_type": "AirQualityObserved",
    "when": {"attr": "pm25", "op": ">", "value": 75},
    "severity": "major",
    "message_zh": "{entity} PM2.5 超标：{value}",
    "message_en": "{entity} PM2.5 high: {value}",
}
#: A grid cell of the district and a point inside it.
CELL = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"code": "410102001001", "district": DISTRICT, "name": "网格一"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[113.65, 34.77], [113.66, 34.77], [113.66, 34.78], [113.65, 34.78], [113.65, 34.77]]
                ],
            },
        }
    ],
}
IN_CELL = {"type": "Point", "coordinates": [113.655, 34.775]}


def wait_for(what: str, check: Any) -> Any:
    """Poll ``check`` until it answers something true (the hub works in the background)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} in 30 s")


def in_city(hub: Hub, method: str, path: str, tenant: str = CITY, **given: Any) -> Any:
    response = hub.http.request(method, path, headers={"NGSILD-Tenant": tenant}, **given)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def test_acknowledge_an_alert_and_open_a_case(console: Session, hub: Hub, shots: Path) -> None:
    in_city(hub, "POST", "/api/v1/rules", json={"definition": PM25_HIGH, "enabled": True})
    hub.create(CITY, [{"id": "urn:ngsi-ld:AirQualityObserved:hot-1", "type": "AirQualityObserved",
                       "pm25": prop(120), "location": point(113.655, 34.775)}])  # fmt: skip
    alert = wait_for(
        "alert",
        lambda: in_city(
            hub, "GET", "/api/v1/alerts", params={"entity": "urn:ngsi-ld:AirQualityObserved:hot-1"}
        )["items"],
    )[0]
    page = console.page
    page.click("[data-test=menu-alerts]")
    page.wait_for_url("**/alerts")
    page.select_option("[data-test=filter-severity]", "major")
    row = page.locator("[data-test=alert-row]", has_text="hot-1")
    row.wait_for()
    # severity as a colour and a text
    assert "严重" in row.inner_text()
    row.click()
    page.locator("[data-test=alert-details]").wait_for()
    assert page.locator("[data-test=alert-state]").inner_text() == "未确认"
    page.click("[data-test=alert-acknowledge]")
    page.wait_for_function(
        "() => document.querySelector('[data-test=alert-state]')?.textContent === '已确认'"
    )
    page.wait_for_function(
        "() => document.querySelector('[data-test=alert-history]')?.textContent.includes('acknowledged')"
    )
    page.select_option("[data-test=alert-category]", "E0101")
    page.click("[data-test=alert-open-case]")
    page.wait_for_function(
        "() => (document.querySelector('[data-test=alert-case]')?.textContent ?? '—') !== '—'"
    )
    page.screenshot(path=shots / "alert-centre.png")
    answer = in_city(hub, "GET", f"/api/v1/alerts/{alert['id']}")
    assert answer["state"] == "acknowledged"
    assert answer["case_id"] == page.locator("[data-test=alert-case]").inner_text()


def test_dispatch_handle_and_close_a_case(console: Session, hub: Hub, shots: Path) -> None:
    for tenant in (CITY, DISTRICT):
        in_city(hub, "POST", "/api/v1/departments", tenant, json={"code": "urban", "name": "城市管理局"})
    in_city(hub, "POST", "/api/v1/dispatch/grid-cells", json=CELL)
    in_city(hub, "POST", "/api/v1/dispatch/routes",
            json={"district": DISTRICT, "department": "urban", "department_tenant": DISTRICT})  # fmt: skip
    case = in_city(
        hub,
        "POST",
        "/api/v1/cases",
        json={"category": "E0102", "case_type": "general", "title": "暴露垃圾", "location": IN_CELL},
    )
    assert case["state"] == "open"
    page = console.page
    page.click("[data-test=menu-cases]")
    page.wait_for_url("**/cases")
    page.click("[data-test='queue-state.open']")
    page.locator("[data-test=case-row]", has_text="暴露垃圾").first.click()
    details = page.locator("[data-test=case-details]")
    details.wait_for()
    assert "剩余" in page.locator("[data-test=case-time-left]").inner_text()
    # dispatch needs a department: the form says so before anything is sent
    page.click("[data-test=case-action-dispatch]")
    page.click("[data-test=case-submit]")
    assert page.locator("[data-test=case-error]").inner_text() == "请选择处置部门"
    page.select_option("[data-test=case-department-choice]", "urban")
    page.click("[data-test=case-submit]")
    page.wait_for_function("() => document.querySelector('[data-test=case-state]')?.textContent === '已派遣'")
    assert page.locator("[data-test=case-department]").inner_text() == "urban"
    page.screenshot(path=shots / "case-dispatched.png")
    for action, state in (("accept", "办理中"), ("resolve", "已办结"), ("close", "已结案")):
        page.click(f"[data-test=case-action-{action}]")
        page.click("[data-test=case-submit]")
        page.wait_for_function(
            f"() => document.querySelector('[data-test=case-state]')?.textContent === '{state}'"
        )
    assert page.locator("[data-test=case-history] li").count() >= 4
    page.screenshot(path=shots / "case-closed.png")
    assert in_city(hub, "GET", f"/api/v1/cases/{case['id']}")["state"] == "closed"


def test_the_alert_is_on_the_map_in_its_severity(console: Session, hub: Hub, shots: Path) -> None:
    alert = in_city(hub, "GET", "/api/v1/alerts", params={"entity": "urn:ngsi-ld:AirQualityObserved:hot-1"})
    entity = alert["items"][0]["alert_entity"]
    page = console.page
    page.click("[data-test=menu-map]")
    page.wait_for_url("**/map")
    page.wait_for_selector("[data-test=map][data-ready=true]")
    level = """(id) => window.cityhubMap.queryRenderedFeatures({layers: ["alerts"]})
                         .filter((f) => f.properties.id === id).map((f) => f.properties._level)[0] ?? null"""
    page.wait_for_function(f"(id) => ({level})(id) === 'severity.major'", arg=entity)
    assert "严重" in page.locator(".controls").inner_text()
    page.screenshot(path=shots / "alert-on-map.png")
