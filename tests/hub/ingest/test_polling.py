"""Commands to devices that poll for them over HTTP (transport HTTP, no endpoint), as FIWARE's IoT
Agents serve them: ``getCmd=1`` collects the pending commands (PENDING → DELIVERED), a later
request carries the result (→ OK or ERROR), and commands nobody collects expire."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.config import Settings
from tests.hub.ingest.support import BASE, SERVICE, dead_letters, entity, provision, wait_for

TENANT = {"NGSILD-Tenant": "smartcity"}
LAMP = "urn:ngsi-ld:Streetlight:lamp-1"
VALVE = "urn:ngsi-ld:Streetlight:valve-1"


async def _command(client: httpx.AsyncClient, entity_id: str, name: str, value: object) -> None:
    response = await client.patch(
        f"{BASE}/entities/{entity_id}/attrs/{name}", json={"type": "Property", "value": value}, headers=TENANT
    )
    assert response.status_code == 204, response.text


async def _commands(client: httpx.AsyncClient, device_id: str) -> list[tuple[str, object, str]]:
    response = await client.get(f"/api/v1/ingest/devices/{device_id}/commands", headers=SERVICE)
    assert response.status_code == 200, response.text
    return [(c["name"], c["value"], c["status"]) for c in reversed(response.json())]


async def _recorded(client: httpx.AsyncClient, device_id: str, count: int) -> list | None:
    found = await _commands(client, device_id)
    return found if len(found) >= count else None


async def _status(client: httpx.AsyncClient, entity_id: str, name: str, status: str) -> bool:
    """Whether the command's status on the entity is ``status`` (sending the next command only
    then: the hub records a command's status on the entity after the change that sent it)."""
    return bool((await entity(client, entity_id))[f"{name}_status"]["value"] == status)


async def _provision(client: httpx.AsyncClient) -> None:
    await provision(
        client,
        apikey="k-lamp",
        entity_type="Streetlight",
        devices=[
            {
                "device_id": "lamp-1",
                "protocol": "PDI-IoTA-UltraLight",
                "transport": "HTTP",
                "commands": [{"name": "dim", "type": "command"}, {"name": "switch", "type": "command"}],
            },
            {
                "device_id": "valve-1",
                "protocol": "IoTA-JSON",
                "transport": "HTTP",
                "commands": [{"name": "open", "type": "command"}],
            },
        ],
    )


async def test_ultralight_device_polls_for_its_commands_and_answers(client: httpx.AsyncClient) -> None:
    await _provision(client)
    await _command(client, LAMP, "dim", 40)
    await wait_for(lambda: _status(client, LAMP, "dim", "PENDING"))
    await _command(client, LAMP, "switch", {"state": "on", "level": 3})
    await wait_for(lambda: _status(client, LAMP, "switch", "PENDING"))
    # no endpoint to push to: the commands wait for the device
    recorded = await _commands(client, "lamp-1")
    assert recorded == [("dim", 40, "PENDING"), ("switch", {"state": "on", "level": 3}, "PENDING")]

    poll = await client.get("/iot/d", params={"k": "k-lamp", "i": "lamp-1", "getCmd": "1"})
    assert poll.status_code == 200, poll.text
    assert poll.headers["content-type"].startswith("text/plain")
    assert poll.text.splitlines() == ["lamp-1@dim|40", "lamp-1@switch|state=on|level=3"]
    assert [status for _, _, status in await _commands(client, "lamp-1")] == ["DELIVERED", "DELIVERED"]
    assert (await entity(client, LAMP))["switch_status"]["value"] == "DELIVERED"
    again = await client.get("/iot/d", params={"k": "k-lamp", "i": "lamp-1", "getCmd": "1"})
    assert again.status_code == 200
    assert again.text == ""  # collected once

    # the results, in UltraLight on the measures resource
    response = await client.post(
        "/iot/d", params={"k": "k-lamp", "i": "lamp-1"}, content="lamp-1@dim|dimmed to 40"
    )
    assert response.status_code == 200, response.text
    response = await client.post(
        "/iot/d", params={"k": "k-lamp", "i": "lamp-1"}, content="lamp-1@switch|ERROR: relay stuck"
    )
    assert response.status_code == 200, response.text
    lamp = await entity(client, LAMP)
    assert (lamp["dim_status"]["value"], lamp["dim_info"]["value"]) == ("OK", "dimmed to 40")
    assert (lamp["switch_status"]["value"], lamp["switch_info"]["value"]) == ("ERROR", "ERROR: relay stuck")
    # a result nothing waits for is refused and kept
    late = await client.post("/iot/d", params={"k": "k-lamp", "i": "lamp-1"}, content="lamp-1@dim|again")
    assert late.status_code == 404
    assert late.json()["reason"] == "unknown-command"
    letters = await dead_letters(client, reason="unknown-command")
    assert [(letter["transport"], letter["payload"]) for letter in letters] == [("http", "lamp-1@dim|again")]

    # measures and a poll in one request: the measures are stored, the answer holds the command
    await _command(client, LAMP, "dim", 10)
    await wait_for(lambda: _recorded(client, "lamp-1", 3))
    both = await client.post("/iot/d", params={"k": "k-lamp", "i": "lamp-1", "getCmd": "1"}, content="t|21.5")
    assert both.status_code == 200, both.text
    assert both.text == "lamp-1@dim|10"
    assert (await entity(client, LAMP))["temperature"]["value"] == 21.5
    # measures in the query, as a GET
    response = await client.get("/iot/d", params={"k": "k-lamp", "i": "lamp-1", "d": "t|22"})
    assert response.status_code == 200, response.text
    assert (await entity(client, LAMP))["temperature"]["value"] == 22
    # a GET that neither measures nor polls, and a poll from a device nobody provisioned
    assert (await client.get("/iot/d", params={"k": "k-lamp", "i": "lamp-1"})).status_code == 400
    stranger = await client.get("/iot/d", params={"k": "k-lamp", "i": "nobody", "getCmd": "1"})
    assert stranger.status_code == 404
    assert stranger.json()["reason"] == "unknown-device"


async def test_json_device_polls_for_its_commands(client: httpx.AsyncClient) -> None:
    await _provision(client)
    await _command(client, VALVE, "open", True)
    await wait_for(lambda: _recorded(client, "valve-1", 1))
    await _command(client, VALVE, "open", False)
    await wait_for(lambda: _recorded(client, "valve-1", 2))
    poll = await client.get("/iot/json", params={"k": "k-lamp", "i": "valve-1", "getCmd": "1"})
    assert poll.status_code == 200, poll.text
    assert poll.json() == {"open": True}  # one command of a name per answer, oldest first
    poll = await client.post(
        "/iot/json", params={"k": "k-lamp", "i": "valve-1", "getCmd": "1"}, json={"t": 12.5}
    )
    assert poll.status_code == 200, poll.text
    assert poll.json() == {"open": False}
    assert (await client.get("/iot/json", params={"k": "k-lamp", "i": "valve-1", "getCmd": "1"})).json() == {}
    response = await client.post(
        "/iot/json/commands", params={"k": "k-lamp", "i": "valve-1"}, json={"open": {"error": "jammed"}}
    )
    assert response.status_code == 200, response.text
    assert await _commands(client, "valve-1") == [("open", True, "DELIVERED"), ("open", False, "ERROR")]
    response = await client.post(
        "/iot/json/commands", params={"k": "k-lamp", "i": "valve-1"}, json={"open": "opened"}
    )
    assert response.status_code == 200, response.text
    assert await _commands(client, "valve-1") == [("open", True, "OK"), ("open", False, "ERROR")]
    bad = await client.post("/iot/json/commands", params={"k": "k-lamp", "i": "valve-1"}, content=b"[1]")
    assert bad.status_code == 400
    assert bad.json()["reason"] == "invalid-payload"


async def test_commands_nobody_collects_expire(settings: Settings) -> None:
    application: FastAPI = create_app(settings.model_copy(update={"ingest_command_ttl": 0.5}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            await _provision(client)
            await _command(client, LAMP, "dim", 5)

            async def expired() -> bool:
                return await _commands(client, "lamp-1") == [("dim", 5, "EXPIRED")]

            await wait_for(expired)
            poll = await client.get("/iot/d", params={"k": "k-lamp", "i": "lamp-1", "getCmd": "1"})
            assert poll.status_code == 200
            assert poll.text == ""
            assert (await entity(client, LAMP))["dim_status"]["value"] == "EXPIRED"
