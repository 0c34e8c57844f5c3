"""Logins, tokens, lockout, the password policy and the second factor, through the real API."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import pyotp
from fastapi import FastAPI
from sqlalchemy import select

from cityhub.systems.security import credentials
from cityhub.systems.security.models import SecurityEvent
from tests.systems.security.conftest import PASSWORD, SECRET_KEY, add_user, bearer, token_for


async def _events(app: FastAPI, kind: str) -> list[SecurityEvent]:
    async with app.state.hub.sessions() as session:
        return list((await session.scalars(select(SecurityEvent).where(SecurityEvent.kind == kind))).all())


async def test_password_grant_gives_a_token_that_opens_the_api(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    account = await add_user(secure_app, "410102", [("410102", "viewer")])
    tokens = await token_for(sclient, account)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"]
    assert tokens["mfa"] is False
    me = await sclient.get(
        "/api/v1/auth/me",
        headers={"Authorization": f"Bearer {tokens['access_token']}", "NGSILD-Tenant": "410102"},
    )
    assert me.status_code == 200, me.text
    assert me.json()["username"] == account.username
    assert me.json()["permissions"] == ["catalog:read", "data:read"]


async def test_wrong_password_and_unknown_user_get_the_same_401(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    account = await add_user(secure_app, "410102", [("410102", "viewer")])
    wrong = await sclient.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": account.username, "password": "Wrong-Pass-123"},
    )
    unknown = await sclient.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": "nobody-here", "password": "Wrong-Pass-123"},
    )
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["error"] == "invalid_grant"
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert len(await _events(secure_app, "login_failed")) == 2


async def test_unsupported_grant_and_missing_fields_are_400(sclient: httpx.AsyncClient) -> None:
    response = await sclient.post("/api/v1/auth/token", data={"grant_type": "implicit"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    response = await sclient.post("/api/v1/auth/token", data={"grant_type": "password", "username": "x"})
    assert response.status_code == 400
    assert (await sclient.post("/api/v1/auth/token", data={})).status_code == 400


async def test_lockout_after_repeated_failures(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    account = await add_user(secure_app, "410102", [("410102", "viewer")])
    wrong = {"grant_type": "password", "username": account.username, "password": "Not-The-One-99"}
    for _ in range(5):
        assert (await sclient.post("/api/v1/auth/token", data=wrong)).status_code == 401
    right = {"grant_type": "password", "username": account.username, "password": PASSWORD}
    locked = await sclient.post("/api/v1/auth/token", data=right)
    assert locked.status_code == 401, "the right password must not open a locked account"
    assert len(await _events(secure_app, "account_locked")) == 1
    # an administrator of the tenant unlocks it
    admin = await add_user(secure_app, "410102", [("410102", "admin")], totp=True)
    headers = await bearer(sclient, admin) | {"NGSILD-Tenant": "410102"}
    unlocked = await sclient.patch(f"/api/v1/users/{account.user.id}", json={"unlock": True}, headers=headers)
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["locked_until"] is None
    assert (await sclient.post("/api/v1/auth/token", data=right)).status_code == 200


async def test_refresh_rotates_and_reuse_revokes_the_family(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    account = await add_user(secure_app, "410102", [("410102", "viewer")])
    first = await token_for(sclient, account)
    second = await sclient.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200, second.text
    assert second.json()["refresh_token"] != first["refresh_token"]
    # the first refresh token, used again, is taken as stolen: refused, and its family revoked
    reused = await sclient.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401
    after = await sclient.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": second.json()["refresh_token"]},
    )
    assert after.status_code == 401
    # both presentations were of revoked tokens
    assert len(await _events(secure_app, "refresh_token_reuse")) == 2
    bogus = await sclient.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": "made-up"}
    )
    assert bogus.status_code == 401


async def test_logout_revokes_the_refresh_token(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    account = await add_user(secure_app, "410102", [("410102", "viewer")])
    tokens = await token_for(sclient, account)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    revoked = await sclient.post(
        "/api/v1/auth/revoke", data={"token": tokens["refresh_token"]}, headers=headers
    )
    assert revoked.status_code == 200
    refused = await sclient.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refused.status_code == 401


async def test_client_credentials_in_the_form_and_in_basic_auth(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    client = await add_user(secure_app, "410100", [("410100", "operator")], kind="client")
    form = await sclient.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": client.username, "client_secret": PASSWORD},
    )
    assert form.status_code == 200, form.text
    assert form.json()["refresh_token"] is None
    basic = base64.b64encode(f"{client.username}:{PASSWORD}".encode()).decode()
    header = await sclient.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert header.status_code == 200
    # a client is no person: the password grant does not know it
    person = await sclient.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": client.username, "password": PASSWORD},
    )
    assert person.status_code == 401


async def test_tampered_expired_and_malformed_tokens_are_401(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    account = await add_user(secure_app, "410100", [("410100", "viewer")])
    good = (await token_for(sclient, account))["access_token"]
    head, body, signature = good.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    expired, _ = credentials.issue_access_token(
        SECRET_KEY, user_id=account.user.id, username=account.username, ttl=-60, family_id=None, mfa=False
    )
    other_key, _ = credentials.issue_access_token(
        "another-key-" + "z" * 40,
        user_id=account.user.id,
        username=account.username,
        ttl=60,
        family_id=None,
        mfa=False,
    )
    for token in (f"{head}.{body}.{flipped}", expired, other_key, "not-a-jwt", f"{head}.{body}."):
        response = await sclient.get("/ngsi-ld/v1/types", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.json()["status"] == 401
    ok = await sclient.get("/ngsi-ld/v1/types", headers={"Authorization": f"Bearer {good}"})
    assert ok.status_code == 200
    assert len(await _events(secure_app, "token_invalid")) == 5


async def test_revoked_and_disabled_accounts_lose_their_access_tokens(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    admin = await add_user(secure_app, "410100", [("410100", "admin")], totp=True)
    admin_headers = await bearer(sclient, admin)
    account = await add_user(secure_app, "410100", [("410100", "viewer")])
    headers = await bearer(sclient, account)
    assert (await sclient.get("/ngsi-ld/v1/types", headers=headers)).status_code == 200
    revoked = await sclient.post(f"/api/v1/users/{account.user.id}/revoke-tokens", headers=admin_headers)
    assert revoked.status_code == 204, revoked.text
    assert (await sclient.get("/ngsi-ld/v1/types", headers=headers)).status_code == 401
    assert len(await _events(secure_app, "token_revoked_used")) == 1
    fresh = await bearer(sclient, account)
    assert (await sclient.get("/ngsi-ld/v1/types", headers=fresh)).status_code == 200
    disabled = await sclient.patch(
        f"/api/v1/users/{account.user.id}", json={"active": False}, headers=admin_headers
    )
    assert disabled.status_code == 200
    assert (await sclient.get("/ngsi-ld/v1/types", headers=fresh)).status_code == 401
    login = await sclient.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": account.username, "password": PASSWORD},
    )
    assert login.status_code == 401


async def test_password_policy(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    admin = await add_user(secure_app, "410100", [("410100", "admin")], totp=True)
    headers = await bearer(sclient, admin)
    for weak in ("short1A!", "alllowercaseletters", "Abcdefghijkl", "Mayor-Zhang-2026x"):
        response = await sclient.post(
            "/api/v1/users",
            json={"username": "zhang", "password": weak.replace("Zhang", "zhang")},
            headers=headers,
        )
        assert response.status_code == 400, weak
        assert "password" in response.json()["detail"]
    ok = await sclient.post(
        "/api/v1/users",
        json={"username": "zhang", "password": "Xk9#mountain-river", "roles": ["viewer"]},
        headers=headers,
    )
    assert ok.status_code == 201, ok.text
    taken = await sclient.post(
        "/api/v1/users", json={"username": "zhang", "password": "Xk9#mountain-river"}, headers=headers
    )
    assert taken.status_code == 409


async def test_administrators_need_the_second_factor(secure_app: FastAPI, sclient: httpx.AsyncClient) -> None:
    admin = await add_user(secure_app, "410100", [("410100", "admin")])
    tokens = await token_for(sclient, admin)
    assert tokens["mfa"] is False
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    # without the second factor: data yes, administration no
    assert (await sclient.get("/ngsi-ld/v1/types", headers=headers)).status_code == 200
    assert (await sclient.get("/api/v1/users", headers=headers)).status_code == 403
    enrol = await sclient.post("/api/v1/auth/totp/enroll", headers=headers)
    assert enrol.status_code == 200, enrol.text
    secret = enrol.json()["secret"]
    assert enrol.json()["uri"].startswith("otpauth://totp/")
    wrong = await sclient.post("/api/v1/auth/totp/confirm", json={"code": "000000"}, headers=headers)
    assert wrong.status_code == 400
    code = pyotp.TOTP(secret).now()
    assert (
        await sclient.post("/api/v1/auth/totp/confirm", json={"code": code}, headers=headers)
    ).status_code == 204
    form = {"grant_type": "password", "username": admin.username, "password": PASSWORD}
    without = await sclient.post("/api/v1/auth/token", data=form)
    assert without.status_code == 401
    assert without.json()["mfa_required"] is True
    # the code that confirmed enrolment cannot be replayed; the next one works
    replay = await sclient.post("/api/v1/auth/token", data=form | {"totp": code})
    assert replay.status_code == 401
    next_code = pyotp.TOTP(secret).at(time.time() + 30)
    with_code = await sclient.post("/api/v1/auth/token", data=form | {"totp": next_code})
    assert with_code.status_code == 200, with_code.text
    assert with_code.json()["mfa"] is True
    mfa_headers = {"Authorization": f"Bearer {with_code.json()['access_token']}"}
    assert (await sclient.get("/api/v1/users", headers=mfa_headers)).status_code == 200


async def test_own_password_change_revokes_old_tokens(
    secure_app: FastAPI, sclient: httpx.AsyncClient
) -> None:
    account = await add_user(secure_app, "410100", [("410100", "viewer")])
    headers = await bearer(sclient, account)
    changed = await sclient.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "Another-Strong-77"},
        headers=headers,
    )
    assert changed.status_code == 204, changed.text
    assert (await sclient.get("/ngsi-ld/v1/types", headers=headers)).status_code == 401
    login = {"grant_type": "password", "username": account.username}
    assert (await sclient.post("/api/v1/auth/token", data=login | {"password": PASSWORD})).status_code == 401
    assert (
        await sclient.post("/api/v1/auth/token", data=login | {"password": "Another-Strong-77"})
    ).status_code == 200


async def test_anonymous_gets_401_with_problem_details(sclient: httpx.AsyncClient) -> None:
    response = await sclient.get(f"/api/v1/users/{uuid.uuid4()}")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:cityhub:problem:unauthorized"
    assert (await sclient.get("/healthz")).status_code == 200
    assert (await sclient.get("/openapi.json")).status_code == 200
