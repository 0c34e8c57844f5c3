"""The ``environment`` application: air quality (HJ 633-2026 and -2012), surface water (GB 3838),
noise (GB 3096), radiation, soil, site dust, energy users and pollution sources, with rankings,
trends, alert rule templates and a 24-hour AQI forecast per station."""

from __future__ import annotations

from cityhub.apps.environment.app import EnvironmentApp

__all__ = ["EnvironmentApp"]
