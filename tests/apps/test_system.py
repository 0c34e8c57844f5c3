"""The built-in system app, loaded through its entry point by a started hub."""

from __future__ import annotations

import httpx


async def test_status_for_the_default_tenant(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/system/status")
    assert response.status_code == 200
    body = response.json()
    assert body["tenant"]["code"] == "410100"
    assert body["tenant"]["name"] == "郑州市"
    assert body["platform"]["database"] in {"sqlite", "postgresql"}
    assert body["platform"]["bus"] == "memory"
    assert body["platform"]["checks"] == {"database": "ok", "bus": "ok"}
    [system] = [app for app in body["apps"] if app["name"] == "system"]
    assert system["state"] == "running"


async def test_status_per_tenant(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/tenants", json={"code": "410105"})
    city = (await client.get("/api/v1/system/status")).json()
    assert city["tenant"]["children"] == ["410105"]
    district = await client.get("/api/v1/system/status", headers={"NGSILD-Tenant": "410105"})
    assert district.status_code == 200
    assert district.json()["tenant"]["parent_code"] == "410100"
    assert district.json()["events"]["pending"] + district.json()["events"]["published_last_24h"] == 1


async def test_unknown_or_malformed_tenant_header(client: httpx.AsyncClient) -> None:
    for header in ("410199", "zhengzhou"):
        response = await client.get("/api/v1/system/status", headers={"NGSILD-Tenant": header})
        assert response.status_code == 404
        assert response.json()["type"].endswith("NonexistentTenant")


async def test_apps_listing_shows_contributions(client: httpx.AsyncClient) -> None:
    [system] = [app for app in (await client.get("/api/v1/apps")).json() if app["name"] == "system"]
    assert system["state"] == "running"
    assert system["contributes"]["routers"] == ["/api/v1/system"]
    assert system["contributes"]["indicators"] == ["city_hub_platform"]


async def test_hub_platform_indicator_counts_the_subtree(client: httpx.AsyncClient) -> None:
    for code in ("410102", "410105"):
        await client.post("/api/v1/tenants", json={"code": code})
    body = (await client.get("/api/v1/indicators")).json()
    [value] = [i for i in body["indicators"] if i["indicator"] == "city_hub_platform"]
    assert (value["indicator"], value["task_area"], value["value"]) == (
        "city_hub_platform",
        "infrastructure",
        3,
    )
    province = (await client.get("/api/v1/indicators", headers={"NGSILD-Tenant": "410000"})).json()
    [value] = [i for i in province["indicators"] if i["indicator"] == "city_hub_platform"]
    assert value["value"] == 4


async def test_openapi_includes_app_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/system/status" in paths
    assert "/api/v1/tenants" in paths


async def test_activity_tally_and_event_feed(app, client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/tenants", json={"code": "410105"})
    await client.patch("/api/v1/tenants/410105", json={"name_en": "Jinshui"})
    await client.patch("/api/v1/tenants/410105", json={"active": True})  # no change, no event
    await app.state.hub.relay.drain()
    district = {"NGSILD-Tenant": "410105"}
    status = (await client.get("/api/v1/system/status", headers=district)).json()
    assert [(a["event_type"], a["count"]) for a in status["activity"]] == [
        ("tenant.created", 1),
        ("tenant.updated", 1),
    ]
    feed = (await client.get("/api/v1/system/events", headers=district)).json()
    assert feed["instance"] == "test"
    assert [e["event_type"] for e in feed["events"]] == ["tenant.updated", "tenant.created"]
    city_activity = (await client.get("/api/v1/system/status")).json()["activity"]
    assert [(a["event_type"], a["count"]) for a in city_activity] == [("tenant.created", 1)]
    limited = (await client.get("/api/v1/system/events", headers=district, params={"limit": 1})).json()
    assert len(limited["events"]) == 1
    assert (await client.get("/api/v1/system/events", params={"limit": 0})).status_code == 400


async def test_redelivered_event_is_counted_once(app, client: httpx.AsyncClient) -> None:
    from cityhub.apps.system.service import record_in_tally
    from cityhub.plugins import TenantUpdated

    event = TenantUpdated(tenant="410100", code="410100", changes={"name_en": "Zhengzhou City"})
    for _ in range(3):
        await record_in_tally(app.state.hub.sessions, event)
    status = (await client.get("/api/v1/system/status")).json()
    assert ("tenant.updated", 1) in [(a["event_type"], a["count"]) for a in status["activity"]]
