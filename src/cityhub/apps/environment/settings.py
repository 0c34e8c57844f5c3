from __future__ import annotations

from datetime import time

from pydantic import Field

from cityhub.apps.environment.aqi import DEFAULT_STANDARD, Standard
from cityhub.plugins import AppSettings


class EnvironmentSettings(AppSettings):
    """``CITYHUB_APP_ENVIRONMENT_*``."""

    aqi_standard: Standard = Field(DEFAULT_STANDARD, description="HJ633-2026 or HJ633-2012")
    timezone: str = Field("Asia/Shanghai", description="Local time for days and noise periods")
    noise_day_start: time = time(6)
    noise_night_start: time = time(22)
    dust_pm10_limit: float = Field(150.0, gt=0, description="Site PM10 hourly limit, µg/m³")
    forecast_history_days: int = Field(60, ge=14, le=366)  # the model needs 14 days
