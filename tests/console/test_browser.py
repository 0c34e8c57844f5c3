"""The console in headless Chromium against a real hub: sign-in, the map and its layers, details,
tenants, live updates, keyboard use, and nothing loaded from outside the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import CITY, DISTRICT, SKIP_REASON, Hub, Session, point, prop, square

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

RENDERED = """(layer) => [...new Set(window.cityhubMap.queryRenderedFeatures({layers: [layer]})
                                  .map((f) => f.properties.id))].sort()"""
LEVEL_OF = """([layer, id]) => window.cityhubMap.queryRenderedFeatures({layers: [layer]})
                                  .filter((f) => f.properties.id === id)
                                  .map((f) => f.properties._level)[0] ?? null"""


def open_map(console: Session) -> Any:
    page = console.page
    page.click("[data-test=menu-map]")
    page.wait_for_url("**/map")
    page.wait_for_selector("[data-test=map][data-ready=true]")
    return page


def test_sign_in_lands_on_the_cockpit_with_its_map(console: Session, shots: Path) -> None:
    page = console.page
    page.wait_for_selector("[data-test=map][data-ready=true]")
    assert page.locator("[data-test=kpi-online]").is_visible()
    # the evaluation indicators the apps provide, under their task areas (the hub's own: infrastructure)
    page.locator("[data-test=kpi-indicators] dt").first.wait_for()
    assert "基础设施集约化" in page.locator("[data-test=kpi-indicators]").inner_text()
    page.wait_for_selector("[data-test=kpis][data-ready=true]")
    # the first frames are drawn at a lower resolution; a ready map is drawn at the full one
    assert page.evaluate("() => window.cityhubMap.getPixelRatio() === window.devicePixelRatio")
    assert page.evaluate("() => performance.getEntriesByName('cityhub:kpis-shown').length") == 1
    assert page.locator("canvas.maplibregl-canvas").count() == 1
    # the administrator's menu, in Chinese by default
    assert page.locator("[data-test=menu-map]").inner_text() == "城市地图"
    page.screenshot(path=shots / "cockpit.png")


def test_map_layers_hold_the_tenants_entities(console: Session, shots: Path) -> None:
    page = open_map(console)
    stations = page.evaluate(RENDERED, "air-quality")
    assert stations == [f"urn:ngsi-ld:AirQualityObserved:aq-{n}" for n in (1, 2, 3)]
    assert page.evaluate(RENDERED, "districts") == [
        "urn:ngsi-ld:AdministrativeArea:410102",
        "urn:ngsi-ld:AdministrativeArea:410105",
    ]
    assert page.evaluate(RENDERED, "road-segments") == ["urn:ngsi-ld:RoadSegment:zhongyuan-1"]
    assert (
        page.evaluate(LEVEL_OF, ["road-segments", "urn:ngsi-ld:RoadSegment:zhongyuan-1"])
        == "congestion.medium"
    )
    assert page.evaluate(LEVEL_OF, ["devices", "urn:ngsi-ld:Device:d-2"]) == "device.offline"
    assert page.evaluate(LEVEL_OF, ["air-quality", "urn:ngsi-ld:AirQualityObserved:aq-2"]) == "aqi.light"
    # each state is a colour and a text: the legend names them
    legend = page.locator(".controls").inner_text()
    assert "轻度污染" in legend
    assert "中度拥堵" in legend
    assert page.locator("[data-test=count-air-quality]").inner_text() == "3"
    page.screenshot(path=shots / "map.png")


LABELS = """(layer) => [...new Set(window.cityhubMap.queryRenderedFeatures({layers: [layer]})
                                 .map((f) => f.properties.name))].sort()"""
JUMP = """([center, zoom]) => new Promise((resolve) => {
  const map = window.cityhubMap;
  map.once('idle', resolve);
  map.jumpTo({center, zoom});
})"""


def test_districts_and_roads_are_labelled_without_fetching_glyphs(console: Session, shots: Path) -> None:
    page = open_map(console)
    # placed labels: their glyphs were drawn, here, with the browser's own fonts
    assert page.evaluate(LABELS, "districts-label") == ["中原区", "金水区"]
    before = page.evaluate("() => [window.cityhubMap.getCenter().toArray(), window.cityhubMap.getZoom()]")
    page.evaluate(JUMP, [[113.65, 34.75], 11])
    assert page.evaluate(LABELS, "roads-label") == []  # road names from zoom 12
    assert page.evaluate(LABELS, "districts-label") == ["中原区", "金水区"]
    page.evaluate(JUMP, [[113.65, 34.75], 14])
    assert page.evaluate(LABELS, "roads-label") == ["中原路"]
    page.screenshot(path=shots / "labels.png")
    page.evaluate(JUMP, before)
    assert not [url for url in console.requests if "glyph" in url or url.endswith(".pbf")]


def click_entity(page: Any, lon: float, lat: float) -> None:
    x, y = page.evaluate(
        "([lon, lat]) => { const p = window.cityhubMap.project([lon, lat]); return [p.x, p.y]; }", [lon, lat]
    )
    box = page.locator("[data-test=map]").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def test_click_shows_details_and_history(console: Session, shots: Path) -> None:
    page = open_map(console)
    click_entity(page, 113.58, 34.78)
    details = page.locator("[data-test=details]")
    details.wait_for()
    assert "urn:ngsi-ld:AirQualityObserved:aq-1" in details.inner_text()
    assert "28 GQ" in page.locator("[data-test=attr-pm25]").inner_text()
    page.wait_for_selector("[data-test=history-chart] canvas")
    page.screenshot(path=shots / "details.png")
    page.click("[data-test=details-close]")
    assert page.locator("[data-test=details]").count() == 0


def test_switching_tenant_shows_only_that_tenants_entities(console: Session, shots: Path) -> None:
    page = open_map(console)
    page.select_option("[data-test=tenant]", DISTRICT)
    page.wait_for_function(
        "() => document.querySelector('[data-test=count-air-quality]')?.textContent === '1'"
    )
    page.wait_for_selector("[data-test=map][data-ready=true]")
    assert page.evaluate(RENDERED, "air-quality") == ["urn:ngsi-ld:AirQualityObserved:zy-1"]
    assert page.evaluate(LEVEL_OF, ["air-quality", "urn:ngsi-ld:AirQualityObserved:zy-1"]) == "aqi.heavy"
    page.screenshot(path=shots / "district.png")
    page.select_option("[data-test=tenant]", CITY)
    page.wait_for_function(
        "() => document.querySelector('[data-test=count-air-quality]')?.textContent === '3'"
    )


def test_an_update_arrives_live(console: Session, hub: Hub, shots: Path) -> None:
    page = open_map(console)
    page.wait_for_selector("[data-test=map][data-live=true]")
    station = "urn:ngsi-ld:AirQualityObserved:aq-3"
    assert page.evaluate(LEVEL_OF, ["air-quality", station]) == "aqi.moderate"
    hub.patch(CITY, station, {"airQualityIndex": prop(320)})
    page.wait_for_function(
        f"([layer, id]) => ({LEVEL_OF})([layer, id]) === 'aqi.severe'", arg=["air-quality", station]
    )
    hub.create(CITY, [{"id": "urn:ngsi-ld:AirQualityObserved:aq-4", "type": "AirQualityObserved",
                       "airQualityIndex": prop(20), "location": {"type": "GeoProperty",
                       "value": {"type": "Point", "coordinates": [113.64, 34.79]}}}])  # fmt: skip
    page.wait_for_function(
        "() => document.querySelector('[data-test=count-air-quality]')?.textContent === '4'"
    )
    page.screenshot(path=shots / "live.png")


def test_menu_works_from_the_keyboard_and_in_english(console: Session) -> None:
    page = console.page
    page.locator("[data-test=menu-cockpit]").focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("() => document.activeElement.dataset.test") == "menu-map"
    page.keyboard.press("End")
    assert page.evaluate("() => document.activeElement.dataset.test") == "menu-cases"
    page.keyboard.press("Enter")
    page.wait_for_url("**/cases")
    page.select_option("[data-test=language]", "en")
    assert page.locator("[data-test=menu-map]").inner_text() == "City map"
    page.select_option("[data-test=language]", "zh-CN")


def test_nothing_is_loaded_from_outside_the_hub(console: Session, hub: Hub) -> None:
    assert console.requests, "the page made no requests at all"
    outside = [url for url in console.requests if not url.startswith((hub.url, "data:", "blob:"))]
    assert outside == []


def test_a_hidden_layer_is_drawn_when_shown(console: Session, hub: Hub) -> None:
    # grid cells are hidden by default: the map is given their features only when they are shown,
    # those it loaded and those that arrived live meanwhile
    hub.create(CITY, [{"id": "urn:ngsi-ld:GridCell:cell-1", "type": "GridCell", "name": prop("网格一"),
                       "location": square(113.60, 34.75, 0.01)}])  # fmt: skip
    page = open_map(console)
    page.wait_for_selector("[data-test=map][data-live=true]")
    assert page.evaluate(RENDERED, "grid-cells") == []
    hub.create(CITY, [{"id": "urn:ngsi-ld:GridCell:cell-2", "type": "GridCell", "name": prop("网格二"),
                       "location": square(113.62, 34.75, 0.01)}])  # fmt: skip
    page.wait_for_function(
        "() => document.querySelector('[data-test=count-grid-cells]')?.textContent === '2'"
    )
    page.click("[data-test=layer-grid-cells]")
    page.wait_for_function(f"() => ({RENDERED})('grid-cells').length === 2")
    assert page.evaluate(RENDERED, "grid-cells") == [
        "urn:ngsi-ld:GridCell:cell-1",
        "urn:ngsi-ld:GridCell:cell-2",
    ]


def test_an_empty_layer_is_switched_on_by_its_first_feature(console: Session, hub: Hub) -> None:
    # a layer with no features is off on the map (no tiles are made for it); the first one that
    # arrives live switches it on and is drawn
    page = open_map(console)
    page.wait_for_selector("[data-test=map][data-live=true]")
    assert page.evaluate("() => window.cityhubMap.getLayoutProperty('noise', 'visibility')") == "none"
    hub.create(CITY, [{"id": "urn:ngsi-ld:NoiseLevelObserved:n-1", "type": "NoiseLevelObserved",
                       "LAeq": prop(52), "location": point(113.64, 34.77)}])  # fmt: skip
    page.wait_for_function(f"() => ({RENDERED})('noise').length === 1")
    assert page.evaluate(RENDERED, "noise") == ["urn:ngsi-ld:NoiseLevelObserved:n-1"]
