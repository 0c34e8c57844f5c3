"""Provisioning helpers for the ingest tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

BASE = "/ngsi-ld/v1"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
SERVICE = {"fiware-service": "smartcity", "fiware-servicepath": "/jinshui"}


async def provision(
    client: httpx.AsyncClient,
    *,
    apikey: str = "k-air",
    entity_type: str = "AirQualityObserved",
    devices: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **group: Any,
) -> None:
    headers = headers or SERVICE
    body = {
        "services": [
            {
                "apikey": apikey,
                "cbroker": "http://orion:1026",  # FIWARE clients send it; ignored
                "entity_type": entity_type,
                "resource": "/iot/d",
                "attributes": [
                    {"object_id": "t", "name": "temperature", "type": "Number", "unitCode": "CEL"},
                    {"object_id": "h", "name": "relativeHumidity", "type": "Number"},
                    {
                        "object_id": "p",
                        "name": "pm25",
                        "type": "Number",
                        "metadata": {"unitCode": {"type": "Text", "value": "GQ"}},
                    },
                ],
                **group,
            }
        ]
    }
    response = await client.post("/iot/services", json=body, headers=headers)
    assert response.status_code == 201, response.text
    devices = (
        devices if devices is not None else [{"device_id": "air-001", "protocol": "PDI-IoTA-UltraLight"}]
    )
    if devices:
        response = await client.post("/iot/devices", json={"devices": devices}, headers=headers)
        assert response.status_code == 201, response.text


async def entity(client: httpx.AsyncClient, entity_id: str, tenant: str = "smartcity") -> dict[str, Any]:
    response = await client.get(f"{BASE}/entities/{entity_id}", headers={"NGSILD-Tenant": tenant})
    assert response.status_code == 200, response.text
    return response.json()


async def dead_letters(
    client: httpx.AsyncClient, tenant: str = "smartcity", **params: str
) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/ingest/dead-letters", params=params, headers={"fiware-service": tenant}
    )
    assert response.status_code == 200, response.text
    return response.json()["deadLetters"]


class DeviceEndpoint:
    """A device's own HTTP endpoint on 127.0.0.1: records each command and answers ``reply``."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> DeviceEndpoint:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/device"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        await self.received.put(await reader.readexactly(length))
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(self.reply)}\r\n\r\n".encode()
            + self.reply
        )
        await writer.drain()
        writer.close()


async def wait_for(check: Any, *, timeout: float = 20.0) -> Any:
    """Poll ``check`` (an async callable) until it returns something truthy; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.05)
