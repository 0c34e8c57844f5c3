"""Settings: the only place CityHub reads its environment.

Every setting is a ``CITYHUB_*`` environment variable (or a line in ``.env``). A value that does not
parse, and a ``CITYHUB_*`` variable that names no setting (a typo), stop the hub at start-up with a
message naming the variable: a misconfigured hub must not come up half-right.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "CITYHUB_"
#: Applications read their own settings from CITYHUB_APP_<NAME>_*; those are checked by each app.
APP_ENV_PREFIX = "CITYHUB_APP_"
DEV_SECRET_KEY = "cityhub-development-secret-do-not-use-in-production"
#: Published, hence for development only: never used unless CITYHUB_ENV=development.
DEV_DATA_KEYS = "dev:Y2l0eWh1Yi1kZXZlbG9wbWVudC1kYXRhLWtleS0zMiE="
DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./var/cityhub.db"


class SettingsError(Exception):
    """Configuration that cannot work; the message names the offending variable(s)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",  # other programs' lines in .env are theirs; CITYHUB_* ones are checked below
        validate_default=True,
    )

    host: str = Field("127.0.0.1", description="Address `cityhub serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `cityhub serve` listens on.")
    env: Literal["development", "test", "production"] = Field(
        "development", description="Deployment mode; production refuses development secrets."
    )
    database_url: str = Field(
        DEFAULT_SQLITE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db.",
    )
    bus_url: str = Field(
        "memory://",
        description="Event bus: memory:// (in-process, default) or nats://host:port (NATS JetStream).",
    )
    bus_stream: str = Field("CITYHUB", description="JetStream stream name shared by all hub processes.")
    instance_name: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="Name of this hub process; per-process (broadcast) consumers are named after it.",
    )
    secret_key: SecretStr = Field(
        SecretStr(DEV_SECRET_KEY), description="Signing key for tokens; must be set in production."
    )
    data_keys: SecretStr | None = Field(
        None,
        description="Keys of personal data at rest: id:base64key,... (AES-256, the first current).",
    )
    default_tenant: str = Field(
        "410100", description="GB/T 2260 code of the tenant used when a request names none."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json gives one JSON object a line.")
    max_body_bytes: int = Field(
        1_048_576, gt=0, description="Largest request body accepted; larger bodies get 413."
    )
    db_connect_attempts: int = Field(
        10, ge=1, description="How many times serve tries the database before giving up."
    )
    db_retry_max_delay: float = Field(30.0, gt=0, description="Cap on the back-off between tries (s).")
    outbox_poll_interval: float = Field(
        1.0, gt=0, description="Seconds between outbox sweeps (events are also sent right after commit)."
    )
    outbox_retention_hours: int = Field(
        168, ge=1, description="How long published outbox rows are kept for inspection."
    )
    broker_contexts: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object mapping @context URLs to local files, served without fetching them.",
    )
    broker_context_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for a remote @context before answering 503."
    )
    broker_notification_timeout: float = Field(
        5.0, gt=0, description="Seconds a subscriber's endpoint gets to take one notification."
    )
    broker_notification_attempts: int = Field(
        5, ge=1, description="Tries per notification (doubling delay from 1 s) before it is dropped."
    )
    broker_temporal_limit: int = Field(
        1000,
        ge=1,
        description="Most instances of one attribute a temporal read returns; more answer 206.",
    )
    mqtt_url: str | None = Field(
        None,
        description="MQTT broker the device gateway subscribes to (mqtt://host:port, mqtts://…); "
        "unset: no MQTT gateway.",
    )
    mqtt_client_id: str | None = Field(
        None,
        description="MQTT client id of the gateway (default cityhub-<instance name>); keep it stable "
        "so the broker holds messages for the hub while it is down.",
    )
    mqtt_session_expiry: int = Field(
        604_800,
        ge=0,
        description="Seconds the MQTT broker keeps the gateway's session (and messages for it) while "
        "the hub is away.",
    )
    mqtt_receive_maximum: int = Field(
        1000, ge=1, le=65535, description="Unacknowledged QoS 1 messages the broker may send at once."
    )
    ingest_batch_size: int = Field(
        1000, ge=1, description="Most device messages written to the broker in one transaction."
    )
    ingest_max_payload_bytes: int = Field(
        65_536, ge=16, description="Largest device message accepted; larger ones are dead letters."
    )
    ingest_device_rate: float = Field(
        20.0, gt=0, description="Messages per second one device may send on average."
    )
    ingest_device_burst: int = Field(
        100, ge=1, description="Messages one device may send in a burst above its rate."
    )
    ingest_command_ttl: float = Field(
        300.0, gt=0, description="Seconds a command waits for the device's answer before EXPIRED."
    )
    ingest_profile_ttl: float = Field(
        30.0,
        gt=0,
        description="Seconds a gateway process keeps a key's provisioning; changes made anywhere "
        "reach every process at once through the bus, this bounds how long a lost one lasts.",
    )
    ingest_health_interval: float = Field(
        30.0, gt=0, description="Seconds between checks of which devices went silent."
    )
    ingest_command_timeout: float = Field(
        5.0, gt=0, description="Seconds a device's HTTP endpoint gets to answer a command."
    )
    auth_mode: Literal["off", "on"] = Field(
        "off",
        description="on: every API needs a token and a permission; off: open (development only). "
        "Production is always on.",
    )
    access_token_ttl: int = Field(
        900, ge=30, le=86_400, description="Lifetime of an access token in seconds."
    )
    refresh_token_ttl: int = Field(604_800, ge=300, description="Lifetime of a refresh token in seconds.")
    password_min_length: int = Field(12, ge=8, le=128, description="Shortest password accepted.")
    lockout_threshold: int = Field(5, ge=1, description="Failed logins in a row that lock an account.")
    lockout_minutes: int = Field(15, ge=1, description="How long a locked account stays locked.")
    auth_city_sees_counties: bool = Field(
        True, description="A role held in a city (or province) also applies in the divisions below it."
    )
    auth_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long a process keeps a user's roles and state before reading them again.",
    )
    audit_retention_days: int = Field(
        180, ge=180, description="Audit records younger than this are never pruned (MLPS: 180 days)."
    )
    redis_url: str | None = Field(
        None, description="redis://host:port/db for rate limits shared by every hub process."
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Requests per minute one client or source address may make (0: no limit)."
    )
    backup_dir: Path | None = Field(
        None, description="Folder for scheduled backups; unset: the hub makes none (cityhub backup does)."
    )
    backup_interval_hours: float = Field(24.0, gt=0, description="Hours between scheduled backups.")
    backup_keep: int = Field(7, ge=1, description="Scheduled backups kept in CITYHUB_BACKUP_DIR.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser."
    )
    history_retention_interval: float = Field(
        3600.0,
        ge=0,
        description="Seconds between applications of the history retention policies; 0 turns it off.",
    )
    rules_check_interval: float = Field(
        30.0,
        ge=0,
        description="Seconds between the rule engine's checks: completed for-windows, silent entities "
        "(absence rules), escalation; 0 turns them off.",
    )
    rules_escalation_minutes: dict[str, float] = Field(
        default_factory=lambda: {
            "critical": 15.0,
            "major": 30.0,
            "minor": 60.0,
            "warning": 120.0,
            "info": 0.0,
        },
        description="Minutes an alert of each severity may stay unacknowledged before it is escalated "
        "once (JSON object; 0: never).",
    )
    rules_mqtt_url: str | None = Field(
        None, description="MQTT broker alert channels publish to; unset: CITYHUB_MQTT_URL."
    )
    rules_delivery_attempts: int = Field(
        3, ge=1, le=20, description="Tries per alert channel before a delivery counts as failed."
    )
    rules_delivery_timeout: float = Field(
        10.0, gt=0, description="Seconds a webhook, MQTT broker or SMTP server gets per try."
    )
    smtp_host: str | None = Field(
        None, description="SMTP server for e-mail alert channels; unset: no e-mail."
    )
    smtp_port: int = Field(25, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_username: str | None = Field(None, description="SMTP login, if the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_sender: str = Field("cityhub@localhost", description="From address of alert e-mails.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    data_dir: Path = Field(
        Path("var"), description="Folder for files the hub keeps (case attachments under dispatch/)."
    )
    dispatch_attachment_max_bytes: int = Field(
        1_000_000,
        gt=0,
        description="Largest case photo accepted (413 beyond); CITYHUB_MAX_BODY_BYTES applies too.",
    )
    dispatch_duplicate_radius_m: float = Field(
        50.0,
        ge=0,
        description="Metres within which a report joins an open case of its category (last 24 h).",
    )
    dispatch_overdue_interval: float = Field(
        60.0, ge=0, description="Seconds between checks for overdue cases; 0 turns the check off."
    )
    open311_api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Open311 client keys; when set, a POST needs one as api_key.",
    )
    open311_posts_per_minute: int = Field(
        10, ge=0, description="Open311 requests a source address may POST per minute; 0: no limit."
    )
    open311_case_type: str = Field(
        "urban_management", description="Case type of the cases citizens' Open311 requests open."
    )
    apps_disabled: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated names of installed apps not to load."
    )
    console_dir: Path | None = Field(
        None,
        description="Folder of the built web console served at /; default: the package's console_dist.",
    )

    @field_validator("apps_disabled", "cors_origins", "open311_api_keys", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be redis://host:port/db or rediss://host:port/db")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                raise ValueError(f"{origin!r} is not an exact origin such as https://console.example.gov.cn")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (async drivers only)"
            )
        return value

    @field_validator("bus_url")
    @classmethod
    def _known_bus(cls, value: str) -> str:
        if not value.startswith(("memory://", "nats://", "tls://")):
            raise ValueError("must be memory:// or nats://host:port")
        return value

    @field_validator("mqtt_url", "rules_mqtt_url")
    @classmethod
    def _known_mqtt(cls, value: str | None) -> str | None:
        if value and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must be mqtt://host:port or mqtts://host:port")
        return value or None

    @field_validator("default_tenant")
    @classmethod
    def _division_code(cls, value: str) -> str:
        if not (len(value) == 6 and value.isdigit()):
            raise ValueError("must be a six-digit GB/T 2260 division code such as 410100")
        return value

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        if self.env == "production" and self.secret_key.get_secret_value() == DEV_SECRET_KEY:
            raise ValueError(
                f"{ENV_PREFIX}SECRET_KEY must be set in production; the development default is refused"
            )
        if self.env == "production" and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError(f"{ENV_PREFIX}SECRET_KEY must be at least 32 characters in production")
        if (
            self.env == "production"
            and self.data_keys is not None
            and DEV_DATA_KEYS.split(":")[1] in self.data_keys.get_secret_value()
        ):
            raise ValueError(f"{ENV_PREFIX}DATA_KEYS must not hold the development key in production")
        if self.env == "production":
            if self.auth_mode != "on" and "auth_mode" in self.model_fields_set:
                raise ValueError(f"{ENV_PREFIX}AUTH_MODE must be on in production")
            self.auth_mode = "on"  # production is secured even when the setting is left out
        return self

    @field_validator("data_keys")
    @classmethod
    def _readable_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        for item in value.get_secret_value().split(","):
            key_id, sep, encoded = item.strip().partition(":")
            if not sep or not key_id.strip():
                raise ValueError("write each key as id:base64key, the keys separated by commas")
            try:
                material = base64.b64decode(
                    encoded.strip() + "=" * (-len(encoded.strip()) % 4), altchars=b"-_"
                )
            except ValueError:
                raise ValueError(f"data key {key_id.strip()}: not base64") from None
            if len(material) != 32:
                raise ValueError(f"data key {key_id.strip()}: 32 bytes (256 bits) are needed")
        return value

    @property
    def data_key_ring(self) -> str | None:
        """``CITYHUB_DATA_KEYS``, or in development (only) the published development key."""
        if self.data_keys is not None:
            return self.data_keys.get_secret_value()
        return DEV_DATA_KEYS if self.env == "development" else None

    @property
    def uses_dev_secret(self) -> bool:
        return self.secret_key.get_secret_value() == DEV_SECRET_KEY

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def bus_backend(self) -> Literal["memory", "nats"]:
        return "memory" if self.bus_url.startswith("memory://") else "nats"

    def sqlite_path(self) -> Path | None:
        """File of an embedded database (None for PostgreSQL or an in-memory SQLite)."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        if not path or path.startswith(":memory:"):
            return None
        return Path(path.split("?", 1)[0])


def _env_file_variables() -> dict[str, str]:
    env_file = Settings.model_config.get("env_file")
    if not env_file or not Path(str(env_file)).is_file():
        return {}
    return {key: value or "" for key, value in dotenv_values(str(env_file)).items()}


def _unknown_variables(environ: dict[str, str]) -> list[str]:
    known = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}
    return sorted(
        key
        for key in environ
        if key.upper().startswith(ENV_PREFIX)
        and not key.upper().startswith(APP_ENV_PREFIX)
        and key.upper() not in known
    )


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) if item["loc"] else ""
        variable = name.upper() if name else "settings"
        if name and not variable.startswith(ENV_PREFIX):
            variable = f"{ENV_PREFIX}{variable}"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{variable}: {message}")
    return "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read and check the settings, raising :class:`SettingsError` with the variables at fault."""
    unknown = _unknown_variables(dict(os.environ) | _env_file_variables())
    if unknown:
        raise SettingsError(
            "unknown setting(s): " + ", ".join(unknown) + " (see docs/configuration.md for the list)"
        )
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
