from __future__ import annotations

from pydantic import Field

from cityhub.plugins import AppSettings


class TrafficSettings(AppSettings):
    """Read from ``CITYHUB_APP_TRAFFIC_*``."""

    publish_interval: float = Field(
        default=60.0, description="Seconds between write-backs of segment states and indices; 0: never"
    )
    observation_ttl: float = Field(
        default=900.0, gt=0, description="Seconds a speed observation counts before the segment is unobserved"
    )
    bounds_refresh_interval: float = Field(
        default=60.0,
        ge=0,
        description="Seconds between refreshes of the router (customisation, landmark bounds); 0: never",
    )
    landmarks: int = Field(default=16, ge=1, le=64, description="Landmarks of the ALT router")
    snap_distance: float = Field(
        default=1000.0, gt=0, description="Metres from a route end to the nearest junction, at most"
    )
    parking_distance: float = Field(default=2000.0, gt=0, description="Metres searched for free parking")
    max_upload_mb: int = Field(default=512, gt=0, description="Largest network file accepted by upload")
