from __future__ import annotations

import pytest

from cityhub.config import DEV_SECRET_KEY, Settings, SettingsError, load_settings


def test_defaults_are_the_embedded_hub() -> None:
    settings = load_settings()
    assert settings.is_sqlite
    assert settings.database_url.endswith("./var/cityhub.db")
    assert settings.bus_backend == "memory"
    assert settings.env == "development"


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_MAX_BODY_BYTES", "lots")
    with pytest.raises(SettingsError, match="CITYHUB_MAX_BODY_BYTES"):
        load_settings()


def test_unknown_database_driver_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_DATABASE_URL", "mysql://root@localhost/hub")
    with pytest.raises(SettingsError, match=r"CITYHUB_DATABASE_URL.*asyncpg"):
        load_settings()


def test_typo_in_a_variable_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_DATABSE_URL", "sqlite+aiosqlite:///x.db")
    with pytest.raises(SettingsError, match="CITYHUB_DATABSE_URL"):
        load_settings()


def test_app_settings_prefix_is_left_to_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_APP_TRAFFIC_SPEED_TABLE", "2024")
    assert load_settings().env == "development"


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_ENV", "production")
    with pytest.raises(SettingsError, match="CITYHUB_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("CITYHUB_SECRET_KEY", "short")
    with pytest.raises(SettingsError, match="32 characters"):
        load_settings()
    monkeypatch.setenv("CITYHUB_SECRET_KEY", "x" * 40)
    assert load_settings().secret_key.get_secret_value() == "x" * 40


def test_development_accepts_its_default_secret() -> None:
    assert Settings().secret_key.get_secret_value() == DEV_SECRET_KEY


def test_default_tenant_must_be_a_division_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_DEFAULT_TENANT", "zhengzhou")
    with pytest.raises(SettingsError, match=r"CITYHUB_DEFAULT_TENANT.*six-digit"):
        load_settings()


def test_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_APPS_DISABLED", "traffic, environment")
    assert load_settings().apps_disabled == ["traffic", "environment"]


def test_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_APPS_DISABLED", '["traffic"]')
    assert load_settings().apps_disabled == ["traffic"]


def test_listen_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHUB_HOST", "0.0.0.0")
    monkeypatch.setenv("CITYHUB_PORT", "8080")
    assert (load_settings().host, load_settings().port) == ("0.0.0.0", 8080)
    monkeypatch.setenv("CITYHUB_PORT", "80000")
    with pytest.raises(SettingsError, match="CITYHUB_PORT"):
        load_settings()


@pytest.fixture
def env_file(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Settings, "model_config", {**Settings.model_config, "env_file": ".env"})
    return tmp_path / ".env"


def test_env_file_is_read_and_other_programs_lines_left_alone(env_file) -> None:
    env_file.write_text("CITYHUB_LOG_FORMAT=json\nPGPASSWORD=secret\nCITYHUB_APP_TRAFFIC_X=1\n")
    assert load_settings().log_format == "json"


def test_typo_in_env_file_is_refused(env_file) -> None:
    env_file.write_text("CITYHUB_LOG_FORMT=json\n")
    with pytest.raises(SettingsError, match="CITYHUB_LOG_FORMT"):
        load_settings()
