"""The ``traffic`` application: road network import (SUMO, OpenStreetMap), live segment states,
travel time and traffic performance indices, route planning on live travel times, parking
guidance and short-term speed forecasts. See docs/traffic.md."""

from __future__ import annotations

from cityhub.apps.traffic.app import TrafficApp

__all__ = ["TrafficApp"]
