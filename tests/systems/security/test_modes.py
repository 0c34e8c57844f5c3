"""Security modes and settings, security headers and CORS."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from cityhub.app import create_app
from cityhub.config import SettingsError, load_settings
from tests.systems.security.conftest import add_user, client_for, secure_settings, token_for

STRONG_KEY = "p" * 40


def test_production_is_always_secured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_ENV", "production")
    monkeypatch.setenv("CITYHUB_SECRET_KEY", STRONG_KEY)
    assert load_settings().auth_mode == "on"
    monkeypatch.setenv("CITYHUB_AUTH_MODE", "off")
    with pytest.raises(SettingsError, match="CITYHUB_AUTH_MODE must be on in production"):
        load_settings()
    monkeypatch.setenv("CITYHUB_ENV", "development")
    assert load_settings().auth_mode == "off"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CITYHUB_CORS_ORIGINS", "*", "exact origin"),
        ("CITYHUB_CORS_ORIGINS", "https://console.example.gov.cn/", "exact origin"),
        ("CITYHUB_REDIS_URL", "http://127.0.0.1:6379", "redis://"),
        ("CITYHUB_AUDIT_RETENTION_DAYS", "30", "CITYHUB_AUDIT_RETENTION_DAYS"),
        ("CITYHUB_AUTH_MODE", "maybe", "CITYHUB_AUTH_MODE"),
    ],
)
def test_bad_security_settings_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


async def test_without_a_key_each_process_signs_with_its_own(database_url: str) -> None:
    """The published development key never signs: a token of one hub is refused by another."""
    settings = secure_settings(database_url)
    settings = settings.model_copy(update={"secret_key": load_settings().secret_key})
    assert settings.uses_dev_secret
    first, second = create_app(settings), create_app(settings)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        account = await add_user(first, "410100", [("410100", "viewer")])
        async with client_for(first) as one, client_for(second) as two:
            token = (await token_for(one, account))["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            assert (await one.get("/ngsi-ld/v1/types", headers=headers)).status_code == 200
            assert (await two.get("/ngsi-ld/v1/types", headers=headers)).status_code == 401


async def _answers(
    database_url: str, **overrides: Any
) -> tuple[httpx.Response, httpx.Response, httpx.Response]:
    app = create_app(secure_settings(database_url, **overrides))
    async with app.router.lifespan_context(app), client_for(app) as http:
        health = await http.get("/healthz")
        allowed = await http.options(
            "/ngsi-ld/v1/types",
            headers={"Origin": "https://console.example.gov.cn", "Access-Control-Request-Method": "GET"},
        )
        other = await http.get("/healthz", headers={"Origin": "https://evil.example.com"})
    return health, allowed, other


async def test_security_headers_and_strict_cors(database_url: str) -> None:
    health, allowed, other = await _answers(database_url, cors_origins=["https://console.example.gov.cn"])
    assert health.headers["x-content-type-options"] == "nosniff"
    assert health.headers["x-frame-options"] == "DENY"
    assert health.headers["referrer-policy"] == "no-referrer"
    assert health.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "strict-transport-security" not in health.headers  # only in production, behind TLS
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://console.example.gov.cn"
    assert "access-control-allow-origin" not in other.headers
    _, preflight, _ = await _answers(database_url)
    assert "access-control-allow-origin" not in preflight.headers, "no origins listed: no CORS at all"


async def test_hsts_in_production(database_url: str) -> None:
    data_keys = "k1:" + base64.b64encode(b"k" * 32).decode()  # production needs them (built-in models)
    app = create_app(
        secure_settings(database_url, env="production", secret_key=STRONG_KEY, data_keys=data_keys)
    )
    async with app.router.lifespan_context(app), client_for(app) as http:
        response = await http.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
