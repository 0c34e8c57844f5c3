"""The environment app in a started hub: computations, write-back to entities, daily views, forecast."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.apps.environment.aqi import Standard
from cityhub.apps.environment.tasks import Consumer
from cityhub.config import Settings
from cityhub.plugins import EntitiesChanged, Event, entities

TENANT = "410100"
DAY = {"pm25_24h": 80, "pm10_24h": 120, "no2_24h": 60, "so2_24h": 20, "co_24h": 1.2, "o3_8h": 110}


async def test_aqi_worked_example_both_versions(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/environment/aqi", json={"concentrations": DAY})
    assert r.status_code == 200
    body = r.json()
    assert (body["aqi"], body["primary_pollutants"], body["category_zh"], body["colour"]) == (
        119, ["PM2.5"], "轻度污染", "#FF7E00",
    )  # fmt: skip
    old = await client.post(
        "/api/v1/environment/aqi",
        json={"concentrations": {**DAY, "o3_1h": 150}, "standard": "HJ633-2012"},
    )
    assert (old.json()["aqi"], old.json()["exceeding_items"]) == (107, ["pm25_24h"])


async def test_missing_pollutants_are_listed(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/environment/aqi", json={"concentrations": {"pm25_1h": 40}, "period": "hour"}
    )
    assert r.status_code == 400
    assert r.json()["missing"] == ["so2_1h", "no2_1h", "co_1h", "o3_1h", "pm10_1h"]
    assert r.headers["content-type"].startswith("application/problem+json") or "missing" in r.json()


async def test_impossible_and_unknown_values(client: httpx.AsyncClient) -> None:
    bad = await client.post("/api/v1/environment/aqi", json={"concentrations": {**DAY, "pm25_24h": -4}})
    assert bad.status_code == 422
    assert bad.json()["item"] == "pm25_24h"
    unknown = await client.post("/api/v1/environment/aqi", json={"concentrations": {**DAY, "pm1_24h": 3}})
    assert unknown.status_code == 400
    water = await client.post("/api/v1/environment/water/class", json={"measures": {"COD": -1}})
    assert water.status_code == 422
    noise = await client.post("/api/v1/environment/noise/compliance", json={"zone": "5", "laeq": 40})
    assert noise.status_code == 400


async def test_water_noise_and_limits(client: httpx.AsyncClient) -> None:
    w = await client.post(
        "/api/v1/environment/water/class",
        json={
            "measures": {"DO": 6.2, "NH3-N": 1.3, "TP": 0.06},
            "water_body_type": "lake",
            "target_class": "III",
        },
    )
    assert w.json()["water_class"] == "IV"
    assert set(w.json()["determining_items"]) == {"NH3-N", "TP"}
    assert w.json()["worse_than_target"] is True
    n = await client.post(
        "/api/v1/environment/noise/compliance",
        json={"zone": "2", "laeq": 52.5, "at": "2026-11-21T15:30:00Z", "lmax": 70},  # 23:30 in Beijing
    )
    assert (n.json()["period"], n.json()["limit"], n.json()["compliant"], n.json()["excess"]) == (
        "night", 50, False, 2.5,
    )  # fmt: skip
    assert n.json()["night_lmax_compliant"] is False
    soil = await client.post("/api/v1/environment/soil/compliance", json={"ph": 7.0, "values": {"Cd": 0.45}})
    assert soil.json()[0]["exceeded"] is True
    assert soil.json()[0]["limit"] == 0.3
    dust = await client.get("/api/v1/environment/dust/compliance", params={"pm10": 120})
    assert dust.json()["exceeded"] is False
    energy = await client.post(
        "/api/v1/environment/energy/intensity", json={"consumption_tce": 500, "output": 2000, "quota": 0.2}
    )
    assert (energy.json()["intensity"], energy.json()["within_quota"]) == (0.25, False)
    src = await client.post(
        "/api/v1/environment/sources/compliance", json={"values": {"so2": 40}, "limits": {"so2": 35}}
    )
    assert src.json()[0]["ratio"] == round(40 / 35, 3)


def _air(entity_id: str, at: datetime, values: dict[str, float], district: str = "410102") -> dict[str, Any]:
    stamp = at.isoformat().replace("+00:00", "Z")
    entity: dict[str, Any] = {
        "id": entity_id,
        "type": "AirQualityObserved",
        "district": {"type": "Property", "value": district},
    }
    for name, value in values.items():
        unit = "GP" if name == "co" else "GQ"
        entity[name] = {"type": "Property", "value": value, "observedAt": stamp, "unitCode": unit}
    return entity


async def _settle(app: FastAPI) -> None:
    hub = app.state.hub
    for _ in range(20):
        if not await hub.relay.drain():
            return
        await asyncio.sleep(0.05)


async def test_readings_get_their_hourly_aqi_written_back(app: FastAPI, client: httpx.AsyncClient) -> None:
    at = datetime(2026, 11, 21, 8, 10, tzinfo=UTC)
    values = {"so2": 10, "no2": 30, "co": 0.8, "o3": 60, "pm10": 140, "pm25": 90}
    r = await client.post("/ngsi-ld/v1/entities", json=_air("urn:ngsi-ld:AirQualityObserved:s1", at, values))
    assert r.status_code == 201
    await _settle(app)
    hub = app.state.hub
    async with hub.sessions() as session:
        found = await entities.read_entity(session, TENANT, "urn:ngsi-ld:AirQualityObserved:s1")
        assert found is not None
        # 2026 hourly: PM2.5 90 on the 24h table -> 100 + 50/55*30 = 127.3 -> 128
        assert found["airQualityIndex"]["value"] == 128
        assert found["primaryPollutant"]["value"] == "PM2.5"
        assert found["aqiCategory"]["value"]["level"] == 3
        history = await entities.read_history(
            session,
            TENANT,
            found["id"],
            ["airQualityIndex"],
            at - timedelta(hours=1),
            at + timedelta(hours=1),
        )
    assert len(history["airQualityIndex"]) == 1  # its own write did not trigger another
    listed = (await client.get("/api/v1/environment/stations")).json()
    assert listed[0]["aqi"] == 128
    assert listed[0]["district"] == "410102"


async def test_reading_with_wrong_unit_gets_no_aqi(app: FastAPI, client: httpx.AsyncClient) -> None:
    at = datetime(2026, 11, 21, 8, 10, tzinfo=UTC)
    entity = _air("urn:ngsi-ld:AirQualityObserved:s2", at, {"so2": 10, "no2": 30, "co": 800, "o3": 60,
                                                            "pm10": 140, "pm25": 90})  # fmt: skip
    entity["co"]["unitCode"] = "GQ"  # CO in µg/m³: not what the scale takes
    await client.post("/ngsi-ld/v1/entities", json=entity)
    await _settle(app)
    async with app.state.hub.sessions() as session:
        found = await entities.read_entity(session, TENANT, "urn:ngsi-ld:AirQualityObserved:s2")
    assert found is not None
    assert "airQualityIndex" not in found


async def test_water_and_noise_entities_are_scored(app: FastAPI, client: httpx.AsyncClient) -> None:
    stamp = "2026-11-21T15:00:00Z"  # 23:00 local
    await client.post("/ngsi-ld/v1/entities", json={
        "id": "urn:ngsi-ld:WaterQualityObserved:w1", "type": "WaterQualityObserved",
        "name": {"type": "Property", "value": "贾鲁河东站"},
        "district": {"type": "Property", "value": "410105"},
        "O2": {"type": "Property", "value": 5.5, "observedAt": stamp},
        "NH4": {"type": "Property", "value": 1.6, "observedAt": stamp},
        "targetWaterClass": {"type": "Property", "value": "III"},
    })  # fmt: skip
    await client.post("/ngsi-ld/v1/entities", json={
        "id": "urn:ngsi-ld:NoiseLevelObserved:n1", "type": "NoiseLevelObserved",
        "name": {"type": "Property", "value": "碧沙岗公园"},
        "acousticZone": {"type": "Property", "value": "1"},
        "LAeq": {"type": "Property", "value": 48.0, "observedAt": stamp},
    })  # fmt: skip
    await client.post("/ngsi-ld/v1/entities", json={
        "id": "urn:ngsi-ld:NoiseLevelObserved:n2", "type": "NoiseLevelObserved",
        "acousticZone": {"type": "Property", "value": 2},  # a number: zone class 2
        "LAeq": {"type": "Property", "value": 58.0, "observedAt": "2026-11-21T02:00:00Z"},  # 10:00 local
    })  # fmt: skip
    await _settle(app)
    w = (await client.get("/api/v1/environment/water/stations")).json()
    assert w == [
        {
            "id": "urn:ngsi-ld:WaterQualityObserved:w1",
            "name": "贾鲁河东站",
            "district": "410105",
            "water_class": "V",
            "determining_items": ["NH3-N"],
            "target_class": "III",
            "worse_than_target": True,
        }
    ]
    n = (await client.get("/api/v1/environment/noise/stations")).json()
    assert (n[0]["period"], n[0]["limit"], n[0]["compliant"]) == ("night", 45, False)
    # the names the console's tables show; a station without one answers null
    assert (n[0]["name"], n[1]["name"], n[1]["district"]) == ("碧沙岗公园", None, None)
    assert (n[1]["period"], n[1]["limit"], n[1]["compliant"]) == ("day", 60, True)


async def _history(
    app: FastAPI, entity_id: str, start: datetime, hours: int, pm25: list[float], district: str
) -> None:
    async with app.state.hub.sessions() as session, session.begin():
        for h in range(hours):
            values = {"so2": 10, "no2": 30, "co": 0.6, "o3": 50, "pm10": 60, "pm25": pm25[h]}
            await entities.write_entities(
                session, TENANT, [_air(entity_id, start + timedelta(hours=h), values, district)]
            )


async def test_daily_rankings_good_days_and_trend(app: FastAPI, client: httpx.AsyncClient) -> None:
    start = datetime(2026, 11, 18, tzinfo=UTC) - timedelta(hours=8)  # local midnight, 18 November
    await _history(app, "urn:ngsi-ld:AirQualityObserved:clean", start, 48, [20.0] * 48, "410105")
    await _history(
        app, "urn:ngsi-ld:AirQualityObserved:dirty", start, 48, [100.0] * 24 + [30.0] * 24, "410102"
    )
    site = "urn:ngsi-ld:AirQualityObserved:site-1"  # a construction site: not in the ambient figures
    await _history(app, site, start, 48, [300.0] * 48, "410102")
    r = await client.post(
        f"/ngsi-ld/v1/entities/{site}/attrs", json={"stationType": _prop("constructionSite")}
    )
    assert r.status_code == 204
    await _settle(app)
    period = {"start": "2026-11-18", "end": "2026-11-19"}
    daily = (await client.get("/api/v1/environment/stations/urn:ngsi-ld:AirQualityObserved:dirty/daily",
                              params=period)).json()  # fmt: skip
    # PM2.5 100 -> 2026: 100 + 50/55*40 = 136.4 -> 137; day 2 is set by PM10 60 -> 57.1 -> 58
    assert [(d["day"], d["aqi"]) for d in daily] == [
        ("2026-11-18", 137),
        ("2026-11-19", 58),
    ]  # PM10 60 -> 57.1 -> 58
    hourly = await client.get(
        "/api/v1/environment/stations/urn:ngsi-ld:AirQualityObserved:dirty/hourly",
        params={"start": "2026-11-17T15:00:00Z", "end": "2026-11-17T18:00:00Z"},
    )
    # no reading before 16:00 UTC; then PM2.5 100 scored on the 24h table (2026): 137
    assert [(h["hour"][11:16], h["aqi"]) for h in hourly.json()] == [
        ("15:00", None),
        ("16:00", 137),
        ("17:00", 137),
    ]
    assert "pm25_1h" in hourly.json()[0]["missing"]
    ranking = (await client.get("/api/v1/environment/rankings", params=period)).json()
    assert [line["key"] for line in ranking["lines"]] == [
        "urn:ngsi-ld:AirQualityObserved:clean", "urn:ngsi-ld:AirQualityObserved:dirty",
    ]  # fmt: skip
    by_district = (
        await client.get("/api/v1/environment/rankings", params={**period, "by": "district"})
    ).json()
    assert [line["key"] for line in by_district["lines"]] == ["410105", "410102"]
    good = (await client.get("/api/v1/environment/good-days", params=period)).json()
    # city means: day 1 PM2.5 60 -> AQI 100 (good); day 2 PM2.5 25 -> good
    assert (good["good_days"], good["valid_days"], good["ratio"]) == (2, 2, 1.0)
    trend = (await client.get("/api/v1/environment/trends", params=period)).json()
    assert trend["slope_per_day"] < 0
    missing = (await client.get("/api/v1/environment/stations/urn:ngsi-ld:AirQualityObserved:dirty/daily",
                                params={"start": "2026-11-20", "end": "2026-11-20"})).json()  # fmt: skip
    assert missing[0]["aqi"] is None
    assert "pm25_24h" in missing[0]["missing"]
    backwards = await client.get(
        "/api/v1/environment/trends", params={"start": "2026-11-19", "end": "2026-11-18"}
    )
    assert backwards.status_code == 400
    for far in ({"start": "0001-01-01", "end": "0001-01-02"}, {"start": "9999-12-30", "end": "9999-12-31"}):
        assert (await client.get("/api/v1/environment/good-days", params=far)).status_code == 400


async def test_forecast_from_aqi_history(app: FastAPI, client: httpx.AsyncClient) -> None:
    station = "urn:ngsi-ld:AirQualityObserved:f1"
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = 24 * 15
    t = np.arange(hours)
    series = 80 + 30 * np.sin(2 * np.pi * t / 24)
    start = now - timedelta(hours=hours - 1)
    async with app.state.hub.sessions() as session, session.begin():
        for h in range(hours):
            stamp = (start + timedelta(hours=h)).isoformat().replace("+00:00", "Z")
            await entities.write_entities(session, TENANT, [{
                "id": station, "type": "AirQualityObserved",
                "airQualityIndex": {"type": "Property", "value": int(series[h]), "observedAt": stamp},
            }])  # fmt: skip
    r = await client.get(f"/api/v1/environment/stations/{station}/forecast")
    assert r.status_code == 200, r.text
    values = r.json()["values"]
    assert len(values) == 24
    # a clean daily cycle: the forecast follows it
    expected = 80 + 30 * np.sin(2 * np.pi * np.arange(hours, hours + 24) / 24)
    assert np.max(np.abs(np.array([v["aqi"] for v in values]) - expected)) < 5
    short = await client.get("/api/v1/environment/stations/urn:ngsi-ld:AirQualityObserved:none/forecast")
    assert short.status_code == 404


async def test_registrations(client: httpx.AsyncClient) -> None:
    apps = {a["name"]: a for a in (await client.get("/api/v1/apps")).json()}
    env = apps["environment"]
    assert env["state"] == "running"
    assert "aqi-high-in-district" in env["contributes"]["rule_templates"]
    indicators = (await client.get("/api/v1/indicators")).json()["indicators"]
    assert any(i["indicator"] == "smart_eco_environment" for i in indicators)


async def test_owned_entity_types_validate_ingested_measures(client: httpx.AsyncClient) -> None:
    models = {m["title"]: m for m in (await client.get("/api/v1/ingest/models")).json()}
    soil = models["SoilQualityObserved"]["properties"]
    assert soil["pH"] == {"type": "number", "minimum": 0, "maximum": 14}
    assert models["RadiationObserved"]["properties"]["gammaDoseRate"]["minimum"] == 0


async def test_ingested_impossible_reading_is_a_dead_letter_and_gets_no_aqi(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    attributes = [
        {"object_id": p, "name": p, "type": "Number", "unitCode": "GP" if p == "co" else "GQ"}
        for p in ("so2", "no2", "co", "o3", "pm10", "pm25")
    ]
    group = {"apikey": "k-air", "entity_type": "AirQualityObserved", "resource": "/iot/json",
             "attributes": attributes}  # fmt: skip
    assert (await client.post("/iot/services", json={"services": [group]})).status_code == 201
    device = {"device_id": "aq-7", "protocol": "JSON", "transport": "HTTP"}
    assert (await client.post("/iot/devices", json={"devices": [device]})).status_code == 201
    reading = {"so2": 10, "no2": 30, "co": 0.8, "o3": 60, "pm10": 140, "pm25": -5}
    refused = await client.post("/iot/json", params={"k": "k-air", "i": "aq-7"}, json=reading)
    assert refused.status_code == 400
    assert refused.json()["reason"] == "validation-failed"
    await _settle(app)
    async with app.state.hub.sessions() as session:
        found = await entities.read_entity(session, TENANT, "urn:ngsi-ld:AirQualityObserved:aq-7")
    assert found is None or "airQualityIndex" not in found
    accepted = await client.post(
        "/iot/json", params={"k": "k-air", "i": "aq-7"}, json={**reading, "pm25": 90}
    )
    assert accepted.status_code < 300
    await _settle(app)
    async with app.state.hub.sessions() as session:
        found = await entities.read_entity(session, TENANT, "urn:ngsi-ld:AirQualityObserved:aq-7")
    assert found is not None
    assert found["airQualityIndex"]["value"] == 128


async def test_the_standard_is_an_app_setting(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("CITYHUB_APP_ENVIRONMENT_AQI_STANDARD", "HJ633-2012")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            r = await http.post("/api/v1/environment/aqi", json={"concentrations": {**DAY, "o3_1h": 150}})
    assert (r.json()["standard"], r.json()["aqi"]) == ("HJ633-2012", 107)


async def test_a_bad_setting_fails_the_app_not_the_hub(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("CITYHUB_APP_ENVIRONMENT_AQI_STANDARD", "HJ633-1999")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            apps = {a["name"]: a["state"] for a in (await http.get("/api/v1/apps")).json()}
    assert apps["environment"] == "failed"
    assert {name: state for name, state in apps.items() if name != "environment"} == dict.fromkeys(
        set(apps) - {"environment"}, "running"
    )


def test_calculators_need_only_data_read() -> None:
    from cityhub.systems.security.policy import Permission, requirement

    for path in ("/api/v1/environment/aqi", "/api/v1/environment/water/class"):
        found = requirement("POST", path)
        assert found is not None
        assert found.permission is Permission.DATA_READ
    other = requirement("POST", "/api/v1/environment/aqi/extra")
    assert other is not None
    assert other.permission is Permission.DATA_WRITE


async def test_a_redelivered_change_writes_nothing_more(app: FastAPI, client: httpx.AsyncClient) -> None:
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    hub = app.state.hub
    hub.bus.subscribe("test-changes", [EntitiesChanged], record)
    at = datetime(2026, 11, 21, 8, 10, tzinfo=UTC)
    values = {"so2": 10, "no2": 30, "co": 0.8, "o3": 60, "pm10": 140, "pm25": 90}
    await client.post("/ngsi-ld/v1/entities", json=_air("urn:ngsi-ld:AirQualityObserved:r1", at, values))
    await _settle(app)
    consumer = Consumer(hub.sessions, Standard.HJ633_2026, ZoneInfo("Asia/Shanghai"), time(6), time(22))
    for event in list(seen):
        await consumer(event)  # at-least-once delivery: the same changes again
    await _settle(app)
    async with hub.sessions() as session:
        history = await entities.read_history(
            session, TENANT, "urn:ngsi-ld:AirQualityObserved:r1", ["airQualityIndex"],
            at - timedelta(hours=1), at + timedelta(hours=1),
        )  # fmt: skip
    assert [v for _, v in history["airQualityIndex"]] == [128]


def _prop(value: object) -> dict[str, object]:
    return {"type": "Property", "value": value}


async def test_sites_against_their_limits(client: httpx.AsyncClient) -> None:
    posted = [
        {"id": "urn:ngsi-ld:EnergyConsumptionObserved:steel", "type": "EnergyConsumptionObserved",
         "consumption": _prop(500), "output": _prop(2000), "quota": _prop(0.2)},
        {"id": "urn:ngsi-ld:PollutionSourceObserved:plant", "type": "PollutionSourceObserved",
         "so2": _prop(40), "nox": _prop(20), "emissionLimits": _prop({"so2": 35, "nox": 50})},
        {"id": "urn:ngsi-ld:RadiationObserved:r", "type": "RadiationObserved", "gammaDoseRate": _prop(95)},
        {"id": "urn:ngsi-ld:SoilQualityObserved:farm", "type": "SoilQualityObserved",
         "pH": _prop(8.0), "Cd": _prop(0.5), "Pb": _prop(200)},
        {"id": "urn:ngsi-ld:AirQualityObserved:site-9", "type": "AirQualityObserved",
         "stationType": _prop("constructionSite"), "pm10": _prop(180)},
        {"id": "urn:ngsi-ld:EnergyConsumptionObserved:idle", "type": "EnergyConsumptionObserved",
         "consumption": _prop(10), "output": _prop(0)},
    ]  # fmt: skip
    for entity in posted:
        assert (await client.post("/ngsi-ld/v1/entities", json=entity)).status_code == 201
    base = "/api/v1/environment"
    users = {u["id"]: u for u in (await client.get(f"{base}/energy/users")).json()}
    steel = users["urn:ngsi-ld:EnergyConsumptionObserved:steel"]
    assert (steel["intensity"], steel["within_quota"]) == (0.25, False)
    assert "not a possible value" in users["urn:ngsi-ld:EnergyConsumptionObserved:idle"]["problem"]
    [plant] = (await client.get(f"{base}/sources")).json()
    assert plant["compliant"] is False
    assert {c["item"]: c["exceeded"] for c in plant["checks"]} == {"so2": True, "nox": False}
    [station] = (await client.get(f"{base}/radiation/stations")).json()
    assert station["exceeded"] is False
    [farm] = (await client.get(f"{base}/soil/sites")).json()
    assert {c["item"]: (c["limit"], c["exceeded"]) for c in farm["checks"]} == {
        "Cd": (0.6, False), "Pb": (170, True),
    }  # fmt: skip
    [site] = (await client.get(f"{base}/dust/sites")).json()
    assert (site["id"], site["value"], site["limit"], site["exceeded"]) == (
        "urn:ngsi-ld:AirQualityObserved:site-9", 180, 150, True,
    )  # fmt: skip


async def test_hourly_aqi_under_2012_takes_rolling_means(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("CITYHUB_APP_ENVIRONMENT_AQI_STANDARD", "HJ633-2012")
    application = create_app(settings)
    station = "urn:ngsi-ld:AirQualityObserved:legacy"
    start = datetime(2026, 11, 20, tzinfo=UTC)
    async with application.router.lifespan_context(application):
        hub = application.state.hub
        async with hub.sessions() as session, session.begin():
            for h in range(19):  # 19 hours: too few for a 24-hour PM mean
                values = {"so2": 10, "no2": 30, "co": 0.6, "o3": 100, "pm10": 60, "pm25": 50}
                await entities.write_entities(
                    session, TENANT, [_air(station, start + timedelta(hours=h), values)]
                )
        await _settle(application)
        async with hub.sessions() as session:
            found = await entities.read_entity(session, TENANT, station)
            assert found is not None
            assert "airQualityIndex" not in found
        async with hub.sessions() as session, session.begin():
            await entities.write_entities(
                session, TENANT, [_air(station, start + timedelta(hours=19), values)]
            )
        await _settle(application)
        async with hub.sessions() as session:
            found = await entities.read_entity(session, TENANT, station)
    assert found is not None
    # PM2.5 24h mean 50 on the 2012 table -> 68.75 -> 69 (2026 would score the hour's 50 as 80)
    assert found["airQualityIndex"]["value"] == 69
    assert found["aqiStandard"]["value"] == "HJ633-2012"


async def test_noise_station_compliance_per_day_and_night(app: FastAPI, client: httpx.AsyncClient) -> None:
    station = "urn:ngsi-ld:NoiseLevelObserved:school"
    readings = [  # UTC; local is +8
        ("2026-11-18T02:00:00Z", 50.0),  # 10:00, day
        ("2026-11-18T06:00:00Z", 60.0),  # 14:00, day
        ("2026-11-18T15:00:00Z", 44.0),  # 23:00, night of the 18th
        ("2026-11-18T18:00:00Z", 44.0),  # 02:00 on the 19th, still the night of the 18th
    ]
    async with app.state.hub.sessions() as session, session.begin():
        for stamp, level in readings:
            await entities.write_entities(session, TENANT, [{
                "id": station, "type": "NoiseLevelObserved", "acousticZone": _prop("1"),
                "LAeq": {"type": "Property", "value": level, "observedAt": stamp},
            }])  # fmt: skip
    r = await client.get(
        f"/api/v1/environment/noise/stations/{station}/compliance",
        params={"start": "2026-11-18", "end": "2026-11-19"},
    )
    assert r.status_code == 200, r.text
    lines = [(x["day"], x["period"], x["leq"], x["readings"], x["limit"], x["compliant"]) for x in r.json()]
    assert lines == [
        ("2026-11-18", "day", 57.4, 2, 55, False),  # 10·lg((10^5 + 10^6)/2)
        ("2026-11-18", "night", 44.0, 2, 45, True),
        ("2026-11-19", "day", None, 0, 55, None),
        ("2026-11-19", "night", None, 0, 45, None),
    ]
    nozone_station = {
        "id": "urn:ngsi-ld:NoiseLevelObserved:nozone",
        "type": "NoiseLevelObserved",
        "LAeq": _prop(40),
    }
    await client.post("/ngsi-ld/v1/entities", json=nozone_station)
    nozone = await client.get(
        "/api/v1/environment/noise/stations/urn:ngsi-ld:NoiseLevelObserved:nozone/compliance"
    )
    assert nozone.status_code == 422
