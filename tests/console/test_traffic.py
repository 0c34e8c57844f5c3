"""The console's traffic page in headless Chromium against a real hub with a small imported OSM
network: congestion on the map with its legend and popups, the TPI curves and district table, the
route planner by keyboard and by clicks on the map, its 404 answers, and the tenant switcher."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cityhub.plugins import isoformat, utcnow
from tests.console.conftest import CITY, DISTRICT, SKIP_REASON, Hub, Session, prop

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

NETWORK = Path(__file__).resolve().parents[1] / "apps" / "traffic" / "data" / "small.osm"
SEG = "urn:ngsi-ld:RoadSegment:"
RENDERED = """(layer) => [...new Set(window.cityhubMap.queryRenderedFeatures({layers: [layer]})
                                  .map((f) => f.properties.id))].sort()"""
ROUTE_DRAWN = "() => window.cityhubMap.queryRenderedFeatures({layers: ['traffic-route']}).length > 0"
LEVEL_OF = """([layer, id]) => window.cityhubMap.queryRenderedFeatures({layers: [layer]})
                                  .filter((f) => f.properties.id === id)
                                  .map((f) => f.properties._level)[0] ?? null"""


def observe(hub: Hub, detector: str, segment: str, kmh: float) -> None:
    """A detector of the whole road (both directions) reading ``kmh`` now."""
    now = isoformat(utcnow())
    hub.create(
        CITY,
        [
            {
                "id": f"urn:ngsi-ld:TrafficFlowObserved:{detector}",
                "type": "TrafficFlowObserved",
                "refRoadSegment": {"type": "Relationship", "object": SEG + segment},
                "averageVehicleSpeed": prop(kmh, observedAt=now, unitCode="KMH"),
                "intensity": prop(600, observedAt=now),
            }
        ],
    )


@pytest.fixture(scope="module")
def traffic(hub: Hub) -> Hub:
    """The city's network (Jianshe Road, Tongbai Road, a street connected to nothing) in district
    410102, Jianshe Road's first stretch in severe congestion, and two index write-backs."""
    headers = {"NGSILD-Tenant": CITY}
    files = {"file": ("small.osm", NETWORK.read_bytes(), "application/xml")}
    imported = hub.http.post(
        "/api/v1/traffic/network", files=files, data={"district": DISTRICT}, headers=headers
    )
    assert imported.status_code == 201, imported.text
    observe(hub, "d1", "osm-100-1", 55.0)
    seen(hub, lambda state: state["by_state"]["free"] == 2)
    assert hub.http.post("/api/v1/traffic/indices/publish", headers=headers).status_code == 200
    observe(hub, "d2", "osm-100-0", 10.0)  # an arterial at 10 km/h: severe, both directions
    seen(hub, lambda state: state["by_state"]["severe"] == 2)
    published = hub.http.post("/api/v1/traffic/indices/publish", headers=headers)
    assert published.status_code == 200, published.text
    return hub


def seen(hub: Hub, done: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> None:
    """Wait until the hub's live traffic state (fed by the event bus) satisfies ``done``."""
    deadline = time.monotonic() + timeout
    while True:
        state = hub.http.get("/api/v1/traffic/state", headers={"NGSILD-Tenant": CITY}).json()
        if done(state):
            return
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def open_traffic(console: Session) -> Any:
    page = console.page
    page.click("[data-test=menu-traffic]")
    page.wait_for_url("**/traffic")
    page.wait_for_selector("[data-test=map][data-ready=true]")
    return page


def test_congestion_map_cards_and_tpi_curves(traffic: Hub, console: Session, shots: Path) -> None:
    page = open_traffic(console)
    assert page.locator("[data-test=menu-traffic]").inner_text() == "交通运行"
    drawn = page.evaluate(RENDERED, "road-segments")
    assert SEG + "osm-100-0" in drawn
    assert SEG + "osm-200-1" in drawn
    assert page.evaluate(LEVEL_OF, ["road-segments", SEG + "osm-100-0"]) == "congestion.heavy"
    assert page.evaluate(LEVEL_OF, ["road-segments", SEG + "osm-100-1"]) == "congestion.free"
    # the traffic page draws the congestion and the base map, not the city's other layers
    assert page.locator("[data-test=layer-air-quality]").count() == 0
    legend = page.locator(".controls").inner_text()
    for label in ("畅通", "基本畅通", "轻度拥堵", "中度拥堵", "严重拥堵"):
        assert label in legend
    # the network's index now, and each state's count with its label
    page.locator("[data-test=traffic-network]").wait_for()
    assert page.locator("[data-test=traffic-network-level]").inner_text() == "严重拥堵"
    assert "严重拥堵 2" in page.locator("[data-test=traffic-states]").inner_text()
    rows = page.locator("[data-test=traffic-districts] tbody tr")
    assert rows.count() == 2
    assert "全路网" in rows.nth(0).inner_text()
    assert "中原区" in rows.nth(1).inner_text()
    # the TPI curves of the network and the district over the last day
    page.wait_for_selector("[data-test=tpi-chart] canvas")
    assert page.locator("[data-test=tpi-chart]").get_attribute("data-series") == "2"
    assert page.locator("[data-test=tpi-empty]").count() == 0
    page.screenshot(path=shots / "traffic.png")


def click_at(page: Any, lon: float, lat: float) -> None:
    x, y = page.evaluate(
        "([lon, lat]) => { const p = window.cityhubMap.project([lon, lat]); return [p.x, p.y]; }", [lon, lat]
    )
    box = page.locator("[data-test=map]").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def test_a_segments_popup_names_its_state(traffic: Hub, console: Session, shots: Path) -> None:
    page = open_traffic(console)
    click_at(page, 113.605, 34.75)
    popup = page.locator("[data-test=segment-popup]")
    popup.wait_for()
    text = popup.inner_text()
    assert "建设路" in text
    assert "严重拥堵" in text
    assert "10.0 km/h" in text
    page.screenshot(path=shots / "traffic-popup.png")


def test_plan_a_route_from_the_keyboard(traffic: Hub, console: Session, shots: Path) -> None:
    page = open_traffic(console)
    page.locator("[data-test=route-origin]").focus()
    page.keyboard.type("113.6001,34.7501")
    page.keyboard.press("Tab")  # the origin's pick-on-map button
    page.keyboard.press("Tab")
    page.keyboard.type("113.62,34.75")
    page.keyboard.press("Enter")
    routes = page.locator("[data-test=routes]")
    routes.wait_for()
    first = page.locator("[data-test=route-time]").first.inner_text()
    assert "分钟" in first
    assert page.locator("[data-test=route-length]").first.inner_text() == "1.8 km"
    assert "严重拥堵" in routes.inner_text()  # the fastest route runs through the jam
    page.wait_for_function(
        "() => window.cityhubMap.queryRenderedFeatures({layers: ['traffic-route']}).length > 0"
    )
    ends = page.evaluate(RENDERED, "traffic-route-ends")
    assert ends == ["destination", "origin"]
    page.screenshot(path=shots / "traffic-route.png")

    # the same, keeping off severe congestion, picked by searching a road by name
    page.click("[data-test=route-clear]")
    page.fill("[data-test=segment-search]", "建设")
    page.locator("[data-test=segment-matches] li").first.wait_for()
    assert page.locator("[data-test=segment-matches] li").count() == 4
    page.locator("[data-test=segment-matches] li", has_text="严重拥堵").first.locator(
        "[data-test=as-origin]"
    ).click()
    assert page.input_value("[data-test=route-origin]") in ("113.600000,34.750000", "113.610000,34.750000")


def test_unconnected_destination_is_a_message(traffic: Hub, console: Session, shots: Path) -> None:
    page = open_traffic(console)
    page.fill("[data-test=route-origin]", "113.6,34.75")
    page.fill("[data-test=route-destination]", "113.6,34.73")  # on a street connected to no other
    page.click("[data-test=route-plan]")
    problem = page.locator("[data-test=route-problem]")
    problem.wait_for()
    assert "不连通" in problem.inner_text()
    assert "cannot be reached" in problem.inner_text()
    assert page.locator("[data-test=routes]").count() == 0
    page.fill("[data-test=route-destination]", "east")
    page.click("[data-test=route-plan]")
    assert page.locator("[data-test=route-destination]").get_attribute("aria-invalid") == "true"


def test_pick_origin_and_destination_on_the_map(traffic: Hub, console: Session, shots: Path) -> None:
    page = open_traffic(console)
    page.set_viewport_size({"width": 1366, "height": 768})  # a laptop
    page.click("[data-test=pick-origin]")
    assert "起点" in page.locator("[data-test=picking]").inner_text()
    page.locator("[data-test=map]").scroll_into_view_if_needed()
    # the earlier route zoomed the map in: show Jianshe Road whole again
    page.evaluate(
        "() => { window.cityhubMap.resize(); window.cityhubMap.jumpTo({center: [113.61, 34.75], zoom: 13}); }"
    )
    click_at(page, 113.6, 34.75)
    page.wait_for_function(
        "() => document.querySelector('[data-test=picking]')?.textContent.includes('终点')"
    )
    lon, lat = map(float, page.input_value("[data-test=route-origin]").split(","))
    assert (lon, lat) == (pytest.approx(113.6, abs=2e-4), pytest.approx(34.75, abs=2e-4))
    click_at(page, 113.62, 34.75)
    page.locator("[data-test=routes]").wait_for()
    assert page.locator("[data-test=picking]").count() == 0
    page.wait_for_function(
        "() => window.cityhubMap.queryRenderedFeatures({layers: ['traffic-route']}).length > 0"
    )
    page.screenshot(path=shots / "traffic-laptop.png", full_page=True)
    page.set_viewport_size({"width": 1920, "height": 1080})


def test_a_tenant_without_a_network_says_so(traffic: Hub, console: Session, shots: Path) -> None:
    page = open_traffic(console)
    page.select_option("[data-test=tenant]", DISTRICT)
    problem = page.locator("[data-test=traffic-problem]")
    problem.wait_for()
    assert "尚未导入路网" in problem.inner_text()
    page.screenshot(path=shots / "traffic-no-network.png")
    page.select_option("[data-test=tenant]", CITY)
    page.locator("[data-test=traffic-network]").wait_for()


def test_the_page_in_english(traffic: Hub, console: Session, shots: Path) -> None:
    page = open_traffic(console)
    page.select_option("[data-test=language]", "en")
    try:
        assert page.locator("[data-test=menu-traffic]").inner_text() == "Traffic"
        assert page.locator("[data-test=traffic-network-level]").inner_text() == "Heavy congestion"
        assert "Heavy congestion" in page.locator(".controls").inner_text()
        assert page.locator("#planner-title").inner_text() == "Route planner"
        page.screenshot(path=shots / "traffic-en.png")
    finally:
        page.select_option("[data-test=language]", "zh-CN")
