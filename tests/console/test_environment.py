"""The environment page in headless Chromium against a real hub: the AQI calendar, the station and
district ranking, the good-day ratio and trend, and the station tables, on a tenant seeded with two
weeks of hourly readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.console.conftest import CITY, DISTRICT, SKIP_REASON, Hub, Session, point, prop

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

CITY_TZ = ZoneInfo("Asia/Shanghai")  # the environment app's default timezone
DAYS = 14
EAST = "urn:ngsi-ld:AirQualityObserved:env-east"
WEST = "urn:ngsi-ld:AirQualityObserved:env-west"
#: Daily PM2.5 (µg/m³) of each station, a week that repeats: the city's mean gives AQI 38 (优),
#: 50 (优), 100 (良), 123 (轻度污染), 172 (中度污染), 43 (优), 80 (良) under HJ 633-2026.
PM25 = {EAST: [10, 20, 30, 40, 60, 20, 30], WEST: [20, 50, 90, 130, 200, 40, 70]}
NOISE = "urn:ngsi-ld:NoiseLevelObserved:park"
#: The other pollutants stay low (NO2 30 µg/m³: IAQI 38 at most).
OTHERS = {"so2": 10, "no2": 30, "co": 0.6, "o3": 50, "pm10": 30}


def stations() -> list[dict[str, Any]]:
    return [
        {"id": EAST, "type": "AirQualityObserved", "name": prop("金水区监测站"), "district": prop("410105"),
         "location": point(113.70, 34.78)},
        {"id": WEST, "type": "AirQualityObserved", "name": prop("中原区监测站"), "district": prop("410102"),
         "location": point(113.60, 34.74)},
        {"id": "urn:ngsi-ld:WaterQualityObserved:jialu", "type": "WaterQualityObserved",
         "name": prop("贾鲁河断面"), "waterQualityClass": prop("IV"), "targetWaterClass": prop("III"),
         "waterQualityWorseThanTarget": prop(True), "waterQualityDeterminingItems": prop(["NH3-N"]),
         "location": point(113.66, 34.80)},
        {"id": NOISE, "type": "NoiseLevelObserved", "name": prop("碧沙岗公园"), "acousticZone": prop("1"),
         "location": point(113.63, 34.76)},
    ]  # fmt: skip


def readings(station: str, first: datetime) -> dict[str, Any]:
    """Hourly readings of every pollutant over DAYS local days from ``first`` (a local midnight)."""
    attrs: dict[str, list[dict[str, Any]]] = {}
    for h in range(DAYS * 24):
        stamp = (first + timedelta(hours=h)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        values = {**OTHERS, "pm25": PM25[station][(h // 24) % 7]}
        for name, value in values.items():
            unit = "GP" if name == "co" else "GQ"
            attrs.setdefault(name, []).append(
                {"type": "Property", "value": value, "observedAt": stamp, "unitCode": unit}
            )
    return attrs


@pytest.fixture(scope="module")
def seeded(hub: Hub) -> Hub:
    hub.create(CITY, stations())
    today = datetime.now(CITY_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    for station in (EAST, WEST):
        response = hub.http.post(
            f"/ngsi-ld/v1/temporal/entities/{station}/attrs",
            json=readings(station, today - timedelta(days=DAYS)),
            headers={"NGSILD-Tenant": CITY},
        )
        assert response.status_code == 204, response.text
    hub.patch(CITY, NOISE, {"LAeq": prop(58.5, observedAt="2026-11-21T02:00:00Z")})
    return hub


#: The row headers under a selector, joined with commas (in the page).
HEADS = "((sel) => [...document.querySelectorAll(sel)].map((c) => c.textContent).join())"
CALENDAR = "document.querySelector('[data-test=env-calendar]')"


def environment_api(hub: Hub, path: str, tenant: str = CITY, **params: Any) -> Any:
    response = hub.http.get(f"/api/v1/environment{path}", params=params, headers={"NGSILD-Tenant": tenant})
    assert response.status_code == 200, response.text
    return response.json()


def open_environment(console: Session) -> Any:
    page = console.page
    page.click("[data-test=menu-environment]")
    page.wait_for_url("**/environment")
    return page


def rows(page: Any, which: str) -> list[str]:
    return [row.inner_text() for row in page.locator(f"[data-test={which}]").all()]


def test_calendar_and_ranking_are_drawn_from_the_tenants_days(
    console: Session, seeded: Hub, shots: Path
) -> None:
    page = open_environment(console)
    calendar = page.locator("[data-test=env-calendar]")
    calendar.locator("canvas").first.wait_for()
    page.wait_for_function(f"() => Number({CALENDAR}.dataset.days) > 0")
    # the same days as the API gives for the calendar's months
    start, end = calendar.locator(".dates").inner_text().split(" – ")
    days = environment_api(seeded, "/trends", start=start, end=end)["days"]
    valid = [d for d in days if d["aqi"] is not None]
    assert DAYS - 1 <= len(valid) <= DAYS
    assert calendar.get_attribute("data-days") == str(len(valid))
    # the categories in words with their day counts, next to their colours
    legend = page.locator("[data-test=env-calendar-legend]")
    for level, low, high in (("aqi.good", 0, 50), ("aqi.moderate", 51, 100), ("aqi.light", 101, 150),
                             ("aqi.medium", 151, 200)):  # fmt: skip
        count = sum(1 for d in valid if low <= d["aqi"] <= high)
        assert count > 0
        assert legend.locator(f"[data-level='{level}']").inner_text().endswith(f"{count} 天")
    assert "轻度污染" in legend.inner_text()

    # the ranking: the cleaner station first, both named, with their mean AQI and category
    page.locator("[data-test=rank-row]").first.wait_for()
    ranked = rows(page, "rank-row")
    assert len(ranked) == 2
    assert ranked[0].startswith("1\t金水区监测站")
    assert ranked[1].startswith("2\t中原区监测站")
    api_lines = environment_api(seeded, "/rankings", **period_of(page))["lines"]
    assert [line["key"] for line in api_lines] == [EAST, WEST]
    assert f"{api_lines[1]['mean_aqi']:.1f}" in ranked[1]
    # the good-day ratio and the trend
    good = environment_api(seeded, "/good-days", **period_of(page))
    ratio = page.locator("[data-test=env-good-days] .figure")
    ratio.filter(has_text="%").wait_for()
    assert ratio.inner_text() == f"{good['ratio'] * 100:.1f}%"
    page.locator("[data-test=env-trend] canvas").first.wait_for()
    # the stations now, the water sections and the noise points, by name
    page.locator("[data-test=station-row]").first.wait_for()
    assert any("中原区监测站" in row and "中原区" in row for row in rows(page, "station-row"))
    water = rows(page, "water-row")
    assert len(water) == 1
    assert all(text in water[0] for text in ("贾鲁河断面", "IV", "未达目标"))
    noise = rows(page, "noise-row")
    assert len(noise) == 1
    assert all(text in noise[0] for text in ("碧沙岗公园", "1 类"))
    page.screenshot(path=shots / "environment.png", full_page=True)


def period_of(page: Any) -> dict[str, str]:
    start, end = page.locator("[data-test=env-period]").inner_text().split(" – ")
    return {"start": start, "end": end}


def test_ranking_by_district_worst_first_from_the_keyboard(
    console: Session, seeded: Hub, shots: Path
) -> None:
    page = open_environment(console)
    page.locator("[data-test=rank-row]").first.wait_for()
    page.locator("[data-test=env-worst]").focus()
    page.keyboard.press("Space")
    page.wait_for_function(f"() => {HEADS}('[data-test=rank-row] th') === '中原区监测站,金水区监测站'")
    # arrow keys move between the radio buttons: from stations to districts
    page.locator("[data-test=env-by-station]").focus()
    page.keyboard.press("ArrowRight")
    assert page.locator("[data-test=env-by-district]").is_checked()
    page.wait_for_function(f"() => {HEADS}('[data-test=rank-row] th') === '中原区,金水区'")
    ranked = rows(page, "rank-row")
    assert ranked[0].startswith("2\t中原区")
    assert ranked[1].startswith("1\t金水区")
    page.screenshot(path=shots / "environment-districts.png")


def test_a_custom_period_is_checked_before_it_is_asked_for(console: Session, seeded: Hub) -> None:
    page = open_environment(console)
    page.select_option("[data-test=env-preset]", "custom")
    page.fill("[data-test=env-start]", "2026-11-20")
    page.fill("[data-test=env-end]", "2026-11-01")
    page.click("[data-test=env-apply]")
    refusal = page.locator("[data-test=environment] .period [role=alert]")
    assert refusal.inner_text() == "结束日期不能早于开始日期"
    page.fill("[data-test=env-start]", "2026-10-01")
    page.click("[data-test=env-apply]")
    page.wait_for_function(
        "() => document.querySelector('[data-test=env-period]').textContent === '2026-10-01 – 2026-11-01'"
    )
    assert refusal.count() == 0


def test_the_tenant_switcher_applies_and_a_laptop_screen_fits(
    console: Session, seeded: Hub, shots: Path
) -> None:
    page = open_environment(console)
    page.locator("[data-test=station-row]").first.wait_for()
    page.select_option("[data-test=tenant]", DISTRICT)
    page.wait_for_function(f"() => {HEADS}('[data-test=station-row] th') === 'zy-1'")
    # the district has no history: an empty calendar and no ranking, said in words
    page.locator("[data-test=env-calendar] canvas").first.wait_for()
    assert page.locator("[data-test=env-calendar]").get_attribute("data-days") == "0"
    page.locator("[data-test=env-ranking]", has_text="该时段无有效数据").wait_for()
    page.select_option("[data-test=tenant]", CITY)
    page.locator("[data-test=rank-row]").first.wait_for()
    page.set_viewport_size({"width": 1366, "height": 768})
    try:
        # nothing wider than the window once the charts have followed it: no sideways scrolling
        page.wait_for_function(
            "() => document.querySelector('main').scrollWidth <= document.querySelector('main').clientWidth",
            timeout=5000,
        )
        page.screenshot(path=shots / "environment-laptop.png")
    finally:
        page.set_viewport_size({"width": 1920, "height": 1080})
