from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ImportResult(BaseModel):
    format: str
    segments_imported: int
    nodes_imported: int
    network_segments: int = Field(description="Segments of the tenant's network after the import")
    network_nodes: int
    landmarks: int


class SegmentLine(BaseModel):
    id: str = Field(description="NGSI-LD id of the RoadSegment entity")
    name: str | None
    road_class: str
    length_m: float
    lanes: int
    free_flow_kmh: float
    speed_kmh: float
    observed: bool
    state: str
    state_zh: str
    travel_time_s: float
    travel_time_index: float
    district: str | None
    start_point: list[float] = Field(description="[lon, lat] of the junction the segment leaves")
    end_point: list[float] = Field(description="[lon, lat] of the junction it arrives at")


class SegmentPage(BaseModel):
    total: int
    segments: list[SegmentLine]


class AreaLine(BaseModel):
    area: str = Field(description="District code, or 'network' for all segments")
    travel_time_index: float
    traffic_performance_index: float = Field(ge=0, le=10)
    level: str
    level_zh: str
    level_en: str
    congested_share: float
    segments: int
    observed_segments: int


class LiveState(BaseModel):
    at: datetime
    segments: int
    observed_segments: int
    by_state: dict[str, int]
    network: AreaLine
    districts: list[AreaLine]


class HistoryPoint(BaseModel):
    at: datetime
    value: Any


class IndexHistory(BaseModel):
    area: str
    travel_time_index: list[HistoryPoint]
    traffic_performance_index: list[HistoryPoint]
    congestion_level: list[HistoryPoint]


class SnappedPoint(BaseModel):
    junction: str
    lon: float
    lat: float
    distance_m: float


class RouteSegment(BaseModel):
    id: str
    name: str | None
    state: str
    speed_kmh: float
    travel_time_s: float
    length_m: float


class Route(BaseModel):
    travel_time_s: float
    free_flow_time_s: float
    length_m: float
    geometry: dict[str, Any] = Field(description="GeoJSON LineString")
    segments: list[RouteSegment]


class RouteAnswer(BaseModel):
    origin: SnappedPoint
    destination: SnappedPoint
    routes: list[Route] = Field(description="The fastest first, then the alternatives")


class ParkingLine(BaseModel):
    id: str
    type: str = Field(description="OffStreetParking or ParkingSpot")
    name: str | None
    free: int
    total: int | None
    distance_m: float
    location: dict[str, Any]


class ParkingAnswer(BaseModel):
    parking: list[ParkingLine]


class ForecastLine(BaseModel):
    horizon_minutes: int
    at: datetime
    speed_kmh: float
    baseline_kmh: float = Field(description="The historical average for that time slot")
    state: str


class ForecastAnswer(BaseModel):
    segment: str
    method: str = Field(description="'profile+regression', or 'persistence' with too little history")
    observations: int
    current_speed_kmh: float
    forecasts: list[ForecastLine]
