"""The console's map layers, ``/api/v1/console/features``: one answer per layer, only the asked
properties, the tenant's entities only, and the broker's access control and privacy masking."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from cityhub.app import create_app
from cityhub.hub.broker.context import core_context
from cityhub.hub.broker.protection import Disclosure
from cityhub.hub.console.service import layer_features
from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors
from cityhub.kit.db import in_tenant
from cityhub.systems.security.models import AuditRecord
from cityhub.systems.security.policy import requirement
from tests.hub.test_console import _settings
from tests.systems.security.conftest import add_user, bearer, client_for, secure_settings

FEATURES = "/api/v1/console/features"
AQ = "AirQualityObserved"
DISTRICT, OTHER = "410102", "410105"
KEY = "k1:" + base64.b64encode(b"1" * 32).decode()


def station(key: str, aqi: int, lon: float, lat: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{AQ}:{key}",
        "type": AQ,
        "airQualityIndex": {"type": "Property", "value": aqi},
        "pm25": {
            "type": "Property",
            "value": aqi / 2,
            "unitCode": "GQ",
            "observedAt": "2026-11-21T07:00:00Z",
        },
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        **extra,
    }


@pytest.fixture
async def open_app(database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    application = create_app(_settings(database_url, console_dir=tmp_path / "none"))
    async with application.router.lifespan_context(application):
        yield application


async def _create(
    http: Any, tenant: str, entities: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> None:
    response = await http.post(
        "/ngsi-ld/v1/entityOperations/create",
        json=entities,
        headers={"NGSILD-Tenant": tenant} | (headers or {}),
    )
    assert response.status_code == 201, response.text


async def test_a_layer_is_the_tenants_entities_of_the_type_with_the_asked_properties(
    open_app: FastAPI,
) -> None:
    async with client_for(open_app) as http:
        named = {"name": {"type": "Property", "value": "市监测站"}}
        await _create(
            http,
            DISTRICT,
            [
                station("a", 42, 113.60, 34.75, **named),
                station("b", 180, 113.70, 34.80),
                {
                    "id": "urn:ngsi-ld:Device:d1",
                    "type": "Device",
                    "location": station("x", 1, 1, 1)["location"],
                },
                {
                    "id": f"urn:ngsi-ld:{AQ}:nowhere",
                    "type": AQ,
                    "airQualityIndex": {"type": "Property", "value": 7},
                },
            ],
        )
        await _create(http, OTHER, [station("elsewhere", 300, 113.65, 34.70)])
        response = await http.get(
            FEATURES,
            params={"type": AQ, "attrs": "airQualityIndex,name"},
            headers={"NGSILD-Tenant": DISTRICT},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["type"] == "FeatureCollection"
        assert body["truncated"] is False
        features = body["features"]
        # creation order, this tenant's stations only, no device
        assert [f["id"] for f in features] == [f"urn:ngsi-ld:{AQ}:{n}" for n in ("a", "b", "nowhere")]
        first, second, third = features
        assert first == {
            "type": "Feature",
            "id": f"urn:ngsi-ld:{AQ}:a",
            "geometry": {"type": "Point", "coordinates": [113.60, 34.75]},
            "properties": {"type": AQ, "airQualityIndex": 42, "name": "市监测站"},
        }
        # pm25 was not asked for; an absent attribute is absent, not null
        assert second["properties"] == {"type": AQ, "airQualityIndex": 180}
        assert third["geometry"] is None
        # without attrs: every attribute, location as the geometry only
        every = await http.get(FEATURES, params={"type": AQ}, headers={"NGSILD-Tenant": OTHER})
        assert every.json()["features"] == [
            {
                "type": "Feature",
                "id": f"urn:ngsi-ld:{AQ}:elsewhere",
                "geometry": {"type": "Point", "coordinates": [113.65, 34.70]},
                "properties": {"type": AQ, "airQualityIndex": 300, "pm25": 150.0},
            }
        ]
        # several layers in one answer, each feature with its type, in creation order (then by id)
        both = await http.get(
            FEATURES,
            params={"type": f"Device,{AQ},Alert", "attrs": "name"},
            headers={"NGSILD-Tenant": DISTRICT},
        )
        assert [(f["id"].split(":")[-1], f["properties"]["type"]) for f in both.json()["features"]] == [
            ("a", AQ),
            ("b", AQ),
            ("nowhere", AQ),
            ("d1", "Device"),
        ]
        assert both.json()["features"][0]["properties"] == {"type": AQ, "name": "市监测站"}
        # a tenant the broker has never seen, and a type nobody has: an empty layer
        for tenant, entity_type in (("410122", AQ), (DISTRICT, "OffStreetParking")):
            empty = await http.get(FEATURES, params={"type": entity_type}, headers={"NGSILD-Tenant": tenant})
            assert empty.status_code == 200
            assert empty.json()["features"] == []


async def test_bad_layer_requests_say_what_is_wrong(open_app: FastAPI) -> None:
    async with client_for(open_app) as http:
        cases = [
            {},
            {"type": "Air Quality<"},
            {"type": AQ, "attrs": "location"},
            {"type": AQ, "attrs": ","},
            {"type": ","},
            {"type": ",".join(f"T{n}" for n in range(51))},
            {"type": AQ, "attrs": "id"},
            {"type": AQ, "attrs": "bad<name"},
            {"type": AQ, "attrs": ",".join(f"a{n}" for n in range(51))},
        ]
        for params in cases:
            response = await http.get(FEATURES, params=params)
            assert 400 <= response.status_code < 500, (params, response.text)
            assert response.headers["content-type"].startswith("application/problem+json"), params
        bad_tenant = await http.get(FEATURES, params={"type": AQ}, headers={"NGSILD-Tenant": "x" * 65})
        assert bad_tenant.status_code == 400


async def test_a_layer_beyond_the_limit_says_it_is_cut(open_app: FastAPI) -> None:
    async with client_for(open_app) as http:
        await _create(http, DISTRICT, [station(f"s{n}", n, 113.6, 34.7) for n in range(3)])
    async with open_app.state.hub.sessions() as session:
        with in_tenant(session, DISTRICT):
            iri = core_context().expand(AQ)
            found, cut = await layer_features(session, [iri], None, Disclosure(clear=True), limit=2)
            assert [f["id"] for f in found] == [f"urn:ngsi-ld:{AQ}:s0", f"urn:ngsi-ld:{AQ}:s1"]
            assert cut is True
            found, cut = await layer_features(session, [iri], None, Disclosure(clear=True), limit=3)
            assert len(found) == 3
            assert cut is False


def test_a_layer_is_a_data_read_in_the_tenant() -> None:
    needed = requirement("GET", FEATURES)
    assert needed is not None
    assert (needed.permission, needed.scope) == ("data:read", "tenant")


@pytest.fixture
async def secure_app(database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    application = create_app(secure_settings(database_url, data_keys=KEY, console_dir=tmp_path / "none"))
    async with application.router.lifespan_context(application):
        async with application.state.hub.sessions() as session, session.begin():
            for county in (DISTRICT, OTHER):
                await ensure_tenant_with_ancestors(session, county)
            await ensure_tenant_with_ancestors(session, "410200")
        yield application


RESIDENT = {
    "id": "urn:ngsi-ld:Resident:410102-0001",
    "type": "Resident",
    "name": {"type": "Property", "value": "张三丰"},
    "phone": {"type": "Property", "value": "13812345678"},
    "householdSize": {"type": "Property", "value": 3},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.66, 34.77]}},
}


async def test_layers_keep_access_control_and_privacy(secure_app: FastAPI) -> None:
    async with client_for(secure_app) as http:
        params = {"type": "Resident", "attrs": "name,phone,householdSize"}
        assert (await http.get(FEATURES, params=params)).status_code == 401
        writer = await add_user(secure_app, "410100", [("410100", "operator")])
        await _create(http, "410100", [RESIDENT], await bearer(http, writer))
        viewer = await add_user(secure_app, "410100", [("410100", "viewer")])
        county = await add_user(secure_app, DISTRICT, [(DISTRICT, "viewer")])
        officer = await add_user(secure_app, "410100", [("410100", "data_officer")])
        city = {"NGSILD-Tenant": "410100"}
        # another city, and a county's viewer in its city: refused as the broker refuses them
        elsewhere = await http.get(
            FEATURES, params=params, headers=await bearer(http, viewer) | {"NGSILD-Tenant": "410200"}
        )
        assert elsewhere.status_code == 403
        upward = await http.get(FEATURES, params=params, headers=await bearer(http, county) | city)
        assert upward.status_code == 403
        own = await http.get(
            FEATURES, params=params, headers=await bearer(http, county) | {"NGSILD-Tenant": DISTRICT}
        )
        assert own.status_code == 200
        assert own.json()["features"] == []
        # a viewer sees personal information masked, as in the broker's answers
        masked = await http.get(FEATURES, params=params, headers=await bearer(http, viewer) | city)
        assert masked.status_code == 200, masked.text
        properties = masked.json()["features"][0]["properties"]
        assert properties["householdSize"] == 3
        assert properties["phone"] == "138****5678"
        assert properties["name"] == "张**"
        assert "13812345678" not in masked.text
        assert "张三丰" not in masked.text
        async with secure_app.state.hub.sessions() as session:
            reads = (
                await session.scalars(select(AuditRecord).where(AuditRecord.action == "personal.read"))
            ).all()
        assert reads == []
        # a data officer sees them as written, and the read is audited
        plain = await http.get(FEATURES, params=params, headers=await bearer(http, officer) | city)
        assert plain.json()["features"][0]["properties"]["phone"] == "13812345678"
        async with secure_app.state.hub.sessions() as session:
            reads = (
                await session.scalars(select(AuditRecord).where(AuditRecord.action == "personal.read"))
            ).all()
        assert len(reads) == 1
        assert reads[0].detail["entities"] == [RESIDENT["id"]]
        assert set(reads[0].detail["attributes"]) == {"name", "phone"}
