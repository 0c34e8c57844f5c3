"""The ``cityhub`` command: in-process for the quick commands, as a real process for ``serve``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cityhub import __version__
from cityhub.cli import app
from tests.processes import free_port, hub_env, running_hub

runner = CliRunner()
#: The migrations shipped, oldest first (their files are named after their revision).
REVISIONS = sorted(
    path.name.split("_")[0]
    for path in (Path(__file__).parents[1] / "src/cityhub/migrations/versions").glob(
        "[0-9][0-9][0-9][0-9]_*.py"
    )
)


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
    assert f"applied {len(REVISIONS)} migration(s)" in upgraded.stdout
    after = invoke("db", "current", env=env)
    assert after.exit_code == 0
    assert "up to date" in after.stdout
    assert "database is up to date" in invoke("db", "upgrade", env=env).stdout


def test_apps_list_shows_the_builtin_app() -> None:
    result = invoke("apps", "list", env={"COLUMNS": "200"})  # wide enough for every app's indicators
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


def test_tenant_commands_need_a_migrated_database(empty_database_url: str) -> None:
    result = invoke("tenants", "list", env={"CITYHUB_DATABASE_URL": empty_database_url})
    assert result.exit_code == 1
    assert "run `cityhub db upgrade` first" in result.output


def test_instance_name_with_several_workers_is_refused() -> None:
    result = invoke("serve", "--workers", "2", env={"CITYHUB_INSTANCE_NAME": "hub-a"})
    assert result.exit_code == 2
    assert "CITYHUB_INSTANCE_NAME" in result.output


def test_configuration_error_names_the_variable() -> None:
    result = invoke("db", "current", env={"CITYHUB_LOG_FORMAT": "xml"})
    assert result.exit_code == 2
    assert "CITYHUB_LOG_FORMAT" in result.output


@pytest.mark.slow
def test_serve_migrates_serves_and_stops_gracefully(empty_database_url: str, tmp_path: Path) -> None:
    settings = {"CITYHUB_DATABASE_URL": empty_database_url, "CITYHUB_LOG_FORMAT": "json"}
    with running_hub(tmp_path, "hub", **settings) as hub:
        status = httpx.get(f"{hub.url}/api/v1/system/status", timeout=5)
        assert status.status_code == 200
        assert status.json()["tenant"]["code"] == "410100"
    text = hub.output()
    assert f"applied migrations: {', '.join(REVISIONS)}" in text
    assert '"message":"CityHub stopped"' in text


@pytest.mark.slow
def test_serve_retries_an_unreachable_database_then_gives_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cityhub", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=hub_env(
            CITYHUB_DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere",
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
