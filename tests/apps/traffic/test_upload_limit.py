"""A network file may exceed the hub's body limit (CITYHUB_MAX_BODY_BYTES): the traffic app's upload
declares its own (CITYHUB_APP_TRAFFIC_MAX_UPLOAD_MB); every other path keeps the hub's."""

from __future__ import annotations

import httpx
import pytest

from cityhub.config import Settings
from tests.apps.traffic.test_api import DATA, import_osm
from tests.conftest import hub_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return hub_settings(database_url, max_body_bytes=1024)  # smaller than data/small.osm


async def test_the_network_upload_has_its_own_limit(client: httpx.AsyncClient) -> None:
    assert (DATA / "small.osm").stat().st_size > 1024
    answer = await import_osm(client)
    assert answer.status_code == 201, answer.text
    assert answer.json()["segments_imported"] == 9
    # elsewhere the hub's limit holds, announced or streamed
    entity = {
        "id": "urn:ngsi-ld:Thing:big",
        "type": "Thing",
        "note": {"type": "Property", "value": "x" * 2000},
    }
    refused = await client.post("/ngsi-ld/v1/entities", json=entity)
    assert refused.status_code == 413, refused.text
    assert refused.json()["detail"] == "request body exceeds 1024 bytes"

    async def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(4):
            yield b"x" * 400

    streamed = await client.post("/api/v1/traffic/segments", content=chunks())
    assert streamed.status_code == 413, streamed.text
