"""``cityhub users create-admin``: the first administrator, able to log in with the second factor."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pyotp
from typer.testing import CliRunner

from cityhub.app import create_app
from cityhub.cli import app as cli
from tests.systems.security.conftest import client_for, secure_settings

runner = CliRunner()
PASSWORD = "First-Admin-Pass-1"


def _invoke(database_url: str, *args: str, password: str = PASSWORD):
    return runner.invoke(
        cli, list(args), input=f"{password}\n{password}\n", env={"CITYHUB_DATABASE_URL": database_url}
    )


async def test_create_admin_then_log_in_with_totp(database_url: str) -> None:
    result = await asyncio.to_thread(_invoke, database_url, "users", "create-admin", "--username", "chief")
    assert result.exit_code == 0, result.output
    secret = re.search(r"TOTP secret: ([A-Z2-7]+)", result.stdout)
    assert secret is not None
    assert "otpauth://totp/" in result.stdout
    again = await asyncio.to_thread(_invoke, database_url, "users", "create-admin", "--username", "chief")
    assert again.exit_code == 1
    assert "taken" in again.output
    weak = await asyncio.to_thread(
        _invoke, database_url, "users", "create-admin", "--username", "other", password="weak"
    )
    assert weak.exit_code == 1
    assert "password" in weak.output

    app = create_app(secure_settings(database_url))
    async with app.router.lifespan_context(app), client_for(app) as http:
        form = {"grant_type": "password", "username": "chief", "password": PASSWORD}
        assert (await http.post("/api/v1/auth/token", data=form)).status_code == 401
        tokens = await http.post(
            "/api/v1/auth/token", data=form | {"totp": pyotp.TOTP(secret.group(1)).now()}
        )
        assert tokens.status_code == 200, tokens.text
        headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
        created = await http.post("/api/v1/tenants", json={"code": "410103"}, headers=headers)
        assert created.status_code == 201, created.text
        await _lock(http)
    unlocked = await asyncio.to_thread(_invoke, database_url, "users", "unlock", "chief")
    assert unlocked.exit_code == 0
    app = create_app(secure_settings(database_url))
    async with app.router.lifespan_context(app), client_for(app) as http:
        code = pyotp.TOTP(secret.group(1)).at(time.time() + 30)  # the current one was used
        after = await http.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": "chief", "password": PASSWORD, "totp": code},
        )
        assert after.status_code == 200, after.text
    assert (await asyncio.to_thread(_invoke, database_url, "users", "unlock", "nobody")).exit_code == 1


async def _lock(http: httpx.AsyncClient) -> None:
    for _ in range(5):
        await http.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": "chief", "password": "x"}
        )
