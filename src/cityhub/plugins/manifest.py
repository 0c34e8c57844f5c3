"""What an application declares about itself before any of its code runs."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cityhub.plugins.indicators import Indicator

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class AppSettings(BaseSettings):
    """Base for an application's own settings; read from ``CITYHUB_APP_<NAME>_*`` variables in the
    environment or in ``.env``."""

    model_config = SettingsConfigDict(extra="ignore", env_file=".env", env_file_encoding="utf-8")


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(description="Unique short name: lower-case letters, digits, underscores.")
    version: str
    title_zh: str
    title_en: str
    indicators: tuple[Indicator, ...] = Field(
        default=(), description="Second-level indicators of the evaluation system this app serves."
    )
    requires: tuple[str, ...] = Field(default=(), description="Names of apps that must load first.")
    settings_model: type[AppSettings] | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("name must be 2-40 lower-case letters, digits or underscores")
        return value

    @field_validator("version")
    @classmethod
    def _valid_version(cls, value: str) -> str:
        if not re.match(r"^\d+\.\d+(\.\d+)?([.-]?[A-Za-z0-9.]+)?$", value):
            raise ValueError("version must look like 1.2.3")
        return value

    def settings_prefix(self) -> str:
        return f"CITYHUB_APP_{self.name.upper()}_"
