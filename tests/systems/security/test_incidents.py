"""Incidents: opened by the awareness rules or by hand, moved through their states, and the
response actions taken within them, each observed through the real API."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from tests.hub.ingest.support import provision
from tests.systems.security.conftest import PASSWORD, add_user, bearer, client_for, event_count
from tests.systems.security.test_devices import _settled

BASE = "/api/v1/security/incidents"


def _source() -> str:
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2] or 1}"


async def _officer(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    return await bearer(client, await add_user(app, "410100", platform_admin=True, totp=True))


async def _audit_actions(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get("/api/v1/audit/records", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200, response.text
    return [record["action"] for record in response.json()["items"]]


async def test_brute_force_opens_one_incident_and_blocking_its_source_refuses_it(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    victim = await add_user(secure_app, "410100", [("410100", "viewer")])
    address = _source()
    async with client_for(secure_app, address) as attacker:
        for _ in range(12):
            response = await attacker.post(
                "/api/v1/auth/token",
                data={"grant_type": "password", "username": victim.username, "password": "Bad-Guess-000"},
            )
            assert response.status_code == 401
        officer = await _officer(secure_app, sclient)
        listed = await sclient.get(BASE, params={"rule": "brute_force"}, headers=officer)
        assert listed.status_code == 200, listed.text
        found = [i for i in listed.json()["items"] if i["source"] == address]
        assert len(found) == 1, "one open incident per rule and source"
        incident = found[0]
        assert incident["state"] == "open"
        assert incident["severity"] == "high"
        assert incident["opened_by"] == "system"
        assert incident["events"] == 1

        overview = await sclient.get("/api/v1/security/overview", headers=officer)
        assert incident["id"] in [i["id"] for i in overview.json()["open_incidents"]]

        acted = await sclient.post(
            f"{BASE}/{incident['id']}/actions",
            json={"action": "block_source", "address": address, "hours": 2},
            headers=officer,
        )
        assert acted.status_code == 201, acted.text
        step = acted.json()["history"][-1]
        assert step["kind"] == "action"
        assert step["action"] == "block_source"
        assert step["outcome"] == "done"
        assert step["detail"]["expires_at"] is not None
        refused = await attacker.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": victim.username, "password": PASSWORD},
        )
        assert refused.status_code == 403, refused.text
    actions = await _audit_actions(sclient, officer)
    assert "security.incident_opened" in actions
    assert "security.incident_block_source" in actions
    assert "security.source_blocked" in actions


async def test_user_actions_states_and_history(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    officer = await _officer(secure_app, sclient)
    suspect = await add_user(secure_app, "410100", [("410100", "viewer")])
    suspect_auth = await bearer(sclient, suspect)
    assert (await sclient.get("/api/v1/auth/me", headers=suspect_auth)).status_code == 200

    created = await sclient.post(
        BASE, json={"title": "可疑账号 suspicious account", "severity": "high"}, headers=officer
    )
    assert created.status_code == 201, created.text
    incident_id = created.json()["id"]
    assert created.json()["state"] == "open"

    revoked = await sclient.post(
        f"{BASE}/{incident_id}/actions",
        json={"action": "revoke_tokens", "user_id": str(suspect.user.id)},
        headers=officer,
    )
    assert revoked.status_code == 201, revoked.text
    assert (await sclient.get("/api/v1/auth/me", headers=suspect_auth)).status_code == 401

    disabled = await sclient.post(
        f"{BASE}/{incident_id}/actions",
        json={"action": "disable_user", "user_id": str(suspect.user.id)},
        headers=officer,
    )
    assert disabled.status_code == 201, disabled.text
    login = await sclient.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": suspect.username, "password": PASSWORD},
    )
    assert login.status_code == 401, login.text

    missing = await sclient.post(
        f"{BASE}/{incident_id}/actions", json={"action": "disable_user"}, headers=officer
    )
    assert missing.status_code == 400, missing.text
    unknown_key = await sclient.post(
        f"{BASE}/{incident_id}/actions",
        json={"action": "disable_device_key", "apikey": "no-such-key", "reason": "泄露 leaked"},
        headers=officer,
    )
    assert unknown_key.status_code == 404, unknown_key.text

    noted = await sclient.post(f"{BASE}/{incident_id}/notes", json={"text": "账号已停用"}, headers=officer)
    assert noted.status_code == 201, noted.text
    assigned = await sclient.patch(
        f"{BASE}/{incident_id}", json={"assignee": "duty-officer"}, headers=officer
    )
    assert assigned.json()["assignee"] == "duty-officer"
    contained = await sclient.post(
        f"{BASE}/{incident_id}/transitions", json={"to": "contained"}, headers=officer
    )
    assert contained.status_code == 200, contained.text
    closed = await sclient.post(
        f"{BASE}/{incident_id}/transitions", json={"to": "closed", "comment": "done"}, headers=officer
    )
    assert closed.json()["state"] == "closed"
    assert closed.json()["closed_at"] is not None
    again = await sclient.post(f"{BASE}/{incident_id}/transitions", json={"to": "open"}, headers=officer)
    assert again.status_code == 409, again.text
    assert "closed" in again.json()["detail"]
    assert again.json()["allowed"] == []

    history = (await sclient.get(f"{BASE}/{incident_id}", headers=officer)).json()["history"]
    assert [(s["kind"], s["action"]) for s in history] == [
        ("opened", None),
        ("action", "revoke_tokens"),
        ("action", "disable_user"),
        ("action", "disable_user"),
        ("action", "disable_device_key"),
        ("note", None),
        ("assigned", None),
        ("transition", None),
        ("transition", None),
    ]
    assert {s["actor"] for s in history} == {history[0]["actor"]}
    # the refused actions are in the history with their reason, the others done
    assert [s["outcome"] for s in history[1:5]] == ["done", "done", "failed", "failed"]
    assert history[3]["detail"]["status"] == 400
    assert "needs user_id" in history[3]["detail"]["error"]
    assert history[4]["detail"] == {
        "reason": "泄露 leaked",
        "status": 404,
        "error": "tenant 410100 has no service group with that apikey",
    }
    assert (await sclient.get(BASE, params={"state": "closed"}, headers=officer)).json()["total"] >= 1
    actions = await _audit_actions(sclient, officer)
    for name in ("security.incident_disable_user", "security.incident_note", "security.incident_transition"):
        assert name in actions
    assert "security.tokens_revoked" in actions
    assert "security.user_updated" in actions


async def test_incidents_need_security_permissions(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    viewer = await bearer(sclient, await add_user(secure_app, "410100", [("410100", "viewer")]))
    assert (await sclient.get(BASE, headers=viewer)).status_code == 403
    auditor = await bearer(sclient, await add_user(secure_app, "410100", [("410100", "auditor")]))
    assert (await sclient.get(BASE, headers=auditor)).status_code == 200
    refused = await sclient.post(BASE, json={"title": "x"}, headers=auditor)
    assert refused.status_code == 403, refused.text
    officer = await _officer(secure_app, sclient)
    bad = await sclient.post(BASE, json={"title": ""}, headers=officer)
    assert bad.status_code in (400, 422), bad.text
    unknown = await sclient.get(f"{BASE}/{uuid.uuid4()}", headers=officer)
    assert unknown.status_code == 404, unknown.text


async def test_a_disabled_device_key_is_refused_as_dead_letters_until_enabled(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    county = "410105"
    service = {"fiware-service": county, "fiware-servicepath": "/jinshui"}
    operator = await bearer(sclient, await add_user(secure_app, county, [(county, "operator")]))
    await provision(sclient, headers={**service, **operator})
    officer = await bearer(sclient, await add_user(secure_app, "410100", platform_admin=True, totp=True))
    officer = {**officer, "NGSILD-Tenant": county}
    created = await sclient.post(BASE, json={"title": "泄露的设备密钥 leaked key"}, headers=officer)
    assert created.status_code == 201, created.text
    incident_id = created.json()["id"]

    unknown = await sclient.post(
        f"{BASE}/{incident_id}/actions",
        json={"action": "disable_device_key", "apikey": "nope"},
        headers=officer,
    )
    assert unknown.status_code == 404, unknown.text
    disabled = await sclient.post(
        f"{BASE}/{incident_id}/actions",
        json={"action": "disable_device_key", "apikey": "k-air"},
        headers=officer,
    )
    assert disabled.status_code == 201, disabled.text

    refused = await sclient.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content="t|22.5")
    assert refused.status_code == 403, refused.text
    assert refused.json()["reason"] == "apikey-disabled"
    assert "disabled" in refused.json()["detail"]
    await _settled(secure_app)
    assert await event_count(secure_app, "disabled_device_key") == 1
    letters = await sclient.get("/api/v1/ingest/dead-letters", headers={**service, **operator})
    assert letters.status_code == 200, letters.text
    assert [letter["reason"] for letter in letters.json()["deadLetters"]] == ["apikey-disabled"]

    enabled = await sclient.post(
        f"{BASE}/{incident_id}/actions",
        json={"action": "enable_device_key", "apikey": "k-air"},
        headers=officer,
    )
    assert enabled.status_code == 201, enabled.text
    sent = await sclient.post("/iot/d", params={"k": "k-air", "i": "air-001"}, content="t|22.5")
    assert sent.status_code == 200, sent.text
    actions = await _audit_actions(sclient, officer)
    assert "security.device_key_disabled" in actions
    assert "security.device_key_enabled" in actions
    assert "security.incident_disable_device_key" in actions
