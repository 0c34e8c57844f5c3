from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class PlatformLine(BaseModel):
    version: str
    instance: str
    database: str
    bus: str
    started_at: datetime
    uptime_seconds: float
    checks: dict[str, str]


class AppLine(BaseModel):
    name: str
    version: str
    title_zh: str
    title_en: str
    state: str


class TenantLine(BaseModel):
    code: str
    name: str
    name_en: str | None
    level: str
    parent_code: str | None
    children: list[str]


class EventLine(BaseModel):
    pending: int
    published_last_24h: int


class TallyLine(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_type: str
    count: int
    last_event_at: datetime


class SystemStatus(BaseModel):
    tenant: TenantLine
    platform: PlatformLine
    events: EventLine
    activity: list[TallyLine]
    apps: list[AppLine]


class FeedLine(BaseModel):
    id: str
    event_type: str
    occurred_at: datetime


class EventFeed(BaseModel):
    instance: str
    tenant: str
    events: list[FeedLine]
