"""The ``cityhub`` command: in-process for the quick commands, as a real process for ``serve``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cityhub import __version__
from cityhub.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env or {})


def test_version() -> None:
    result = invoke("version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_db_upgrade_and_current(empty_database_url: str) -> None:
    env = {"CITYHUB_DATABASE_URL": empty_database_url}
    before = invoke("db", "current", env=env)
    assert before.exit_code == 1
    assert "empty" in before.stdout
    assert "behind" in before.stdout
    upgraded = invoke("db", "upgrade", env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert "applied 1 migration(s)" in upgraded.stdout
    after = invoke("db", "current", env=env)
    assert after.exit_code == 0
    assert "up to date" in after.stdout
    assert "database is up to date" in invoke("db", "upgrade", env=env).stdout


def test_apps_list_shows_the_builtin_app() -> None:
    result = invoke("apps", "list")
    assert result.exit_code == 0
    assert "system" in result.stdout
    assert "city_hub_platform" in result.stdout


def test_tenants_add_and_list(database_url: str) -> None:
    env = {"CITYHUB_DATABASE_URL": database_url}
    for code in ("410000", "410100", "410102"):
        assert invoke("tenants", "add", code, env=env).exit_code == 0
    listing = invoke("tenants", "list", env=env)
    assert "中原区" in listing.stdout
    again = invoke("tenants", "add", "410102", env=env)
    assert again.exit_code == 1
    assert "already exists" in again.output
    bad = invoke("tenants", "add", "4101", env=env)
    assert bad.exit_code == 1
    assert "invalid input" in bad.output


def test_configuration_error_names_the_variable() -> None:
    result = invoke("db", "current", env={"CITYHUB_LOG_FORMAT": "xml"})
    assert result.exit_code == 2
    assert "CITYHUB_LOG_FORMAT" in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHUB_")}
    return env | extra


@pytest.mark.slow
def test_serve_migrates_serves_and_stops_gracefully(empty_database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cityhub", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_clean_env(CITYHUB_DATABASE_URL=empty_database_url, CITYHUB_LOG_FORMAT="json"),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            status = None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status = httpx.get(f"http://127.0.0.1:{port}/api/v1/system/status", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert status is not None, log.read_text()
            assert status.status_code == 200
            assert status.json()["tenant"]["code"] == "410100"
            process.send_signal(signal.SIGTERM)
            # uvicorn shuts down cleanly, then re-raises the signal for the supervisor to see
            assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        finally:
            if process.poll() is None:
                process.kill()
    text = log.read_text()
    assert "applied migrations: 0001" in text
    assert '"message":"CityHub stopped"' in text


@pytest.mark.slow
def test_serve_retries_an_unreachable_database_then_gives_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cityhub", "serve", "--port", str(_free_port())],
        cwd=tmp_path,
        env=_clean_env(
            CITYHUB_DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{_free_port()}/nowhere",
            CITYHUB_DB_CONNECT_ATTEMPTS="3",
            CITYHUB_DB_RETRY_MAX_DELAY="0.2",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert result.stderr.count("database not reachable") == 2
    assert "database unreachable after 3 tries" in result.stderr
