"""A device key disabled as an incident response is refused over MQTT too (real Mosquitto)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.hub.tenancy.service import ensure_tenant_with_ancestors
from tests.hub.ingest.support import provision, wait_for
from tests.systems.security.conftest import add_user, bearer, client_for, secure_settings

pytestmark = pytest.mark.mqtt
COUNTY = "410105"


@pytest.fixture
async def mqtt_secure_app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(
        secure_settings(
            database_url,
            mqtt_url="mqtt://127.0.0.1:1883",
            mqtt_client_id=f"cityhub-test-{uuid.uuid4().hex[:12]}",
            mqtt_session_expiry=30,
        )
    )
    async with application.router.lifespan_context(application):
        async with application.state.hub.sessions() as session, session.begin():
            await ensure_tenant_with_ancestors(session, COUNTY)
        assert application.state.hub.mqtt.connected.is_set()
        yield application


async def test_a_disabled_key_is_refused_over_mqtt(mqtt_secure_app: FastAPI) -> None:
    app = mqtt_secure_app
    apikey = f"k-{uuid.uuid4().hex[:10]}"
    service = {"fiware-service": COUNTY, "fiware-servicepath": "/jinshui"}
    async with client_for(app) as client:
        operator = await bearer(client, await add_user(app, COUNTY, [(COUNTY, "operator")]))
        await provision(
            client,
            apikey=apikey,
            devices=[{"device_id": "air-001", "protocol": "IoTA-UL"}],
            headers={**service, **operator},
        )
        officer = await bearer(client, await add_user(app, "410100", platform_admin=True, totp=True))
        officer = {**officer, "NGSILD-Tenant": COUNTY}
        created = await client.post(
            "/api/v1/security/incidents", json={"title": "leaked key"}, headers=officer
        )
        assert created.status_code == 201, created.text
        acted = await client.post(
            f"/api/v1/security/incidents/{created.json()['id']}/actions",
            json={"action": "disable_device_key", "apikey": apikey},
            headers=officer,
        )
        assert acted.status_code == 201, acted.text

        async def refused() -> list[dict[str, Any]]:
            response = await client.get(
                "/api/v1/ingest/dead-letters",
                params={"reason": "apikey-disabled"},
                headers={**service, **operator},
            )
            assert response.status_code == 200, response.text
            return list(response.json()["deadLetters"])

        async with aiomqtt.Client("127.0.0.1", 1883) as device:
            await device.publish(f"/{apikey}/air-001/attrs", b"t|18.5", qos=1)
            letters = await wait_for(refused)
        assert letters[0]["transport"] == "mqtt"
        assert letters[0]["apikey"] == apikey
