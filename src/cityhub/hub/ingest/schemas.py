"""Provisioning payloads in the shape of FIWARE's IoT Agents (``/iot/services``, ``/iot/devices``),
so integrators' existing scripts and devices work unchanged. Members FIWARE defines that CityHub
has no use for (``cbroker``, ``trust``, ``lazy``, ``timezone``, ...) are accepted and ignored; the
CityHub additions are ``crs`` (the coordinate system of the device's positions) and
``expected_interval`` (seconds between reports, for the device's health).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_PATTERN = r"^[^<>\"'=;()\s&?/#]+$"


class AttributeSpec(BaseModel):
    """One measure: the short ``object_id`` a device sends and the attribute it becomes."""

    model_config = ConfigDict(extra="ignore")

    object_id: str | None = Field(None, min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=256, pattern=NAME_PATTERN)
    type: str = Field("Property", max_length=64)
    unitCode: str | None = Field(None, max_length=16)
    metadata: dict[str, Any] | None = None

    def unit(self) -> str | None:
        """``unitCode``, or FIWARE's ``metadata.unitCode.value``."""
        if self.unitCode:
            return self.unitCode
        meta = (self.metadata or {}).get("unitCode")
        return str(meta.get("value")) if isinstance(meta, dict) and meta.get("value") else None


class StaticAttribute(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=256, pattern=NAME_PATTERN)
    type: str = Field("Property", max_length=64)
    value: Any


class CommandSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    type: str = Field("command", max_length=64)
    object_id: str | None = Field(None, max_length=256)


Protocol = Literal["UL", "JSON"]
Transport = Literal["MQTT", "HTTP"]
Crs = Literal["WGS84", "GCJ02", "BD09"]


def _protocol(value: Any) -> Any:
    """FIWARE names protocols ``PDI-IoTA-UltraLight``, ``IoTA-UL``, ``IoTA-JSON``, ``JSON``..."""
    if isinstance(value, str):
        lowered = value.lower()
        if "json" in lowered:
            return "JSON"
        if "ultralight" in lowered or lowered.endswith("ul") or lowered == "ul20":
            return "UL"
    return value


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")

    entity_type: str | None = Field(None, min_length=1, max_length=256, pattern=NAME_PATTERN)
    attributes: list[AttributeSpec] = Field(default_factory=list, max_length=500)
    static_attributes: list[StaticAttribute] = Field(default_factory=list, max_length=500)
    commands: list[CommandSpec] = Field(default_factory=list, max_length=100)
    protocol: Protocol | None = None
    transport: Transport | None = None
    crs: Crs | None = None
    expected_interval: int | None = Field(None, ge=1, le=31_536_000)
    explicitAttrs: bool | None = None

    @field_validator("protocol", mode="before")
    @classmethod
    def _known_protocol(cls, value: Any) -> Any:
        return _protocol(value)

    @field_validator("transport", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class ServiceGroupIn(_Common):
    apikey: str = Field(min_length=1, max_length=256, pattern=NAME_PATTERN)
    entity_type: str = Field(min_length=1, max_length=256, pattern=NAME_PATTERN)
    resource: str = Field("/iot/d", max_length=256)  # "" for MQTT-only groups, as FIWARE writes them
    #: FIWARE's flag; CityHub's default is off (see docs/ingest.md, "Autoprovisioning")
    autoprovision: bool | None = None


class ServiceGroupsIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    services: list[ServiceGroupIn] = Field(min_length=1, max_length=100)


class ServiceGroupUpdate(_Common):
    """``PUT /iot/services?apikey=…&resource=…``: the members given replace the group's."""

    resource: str | None = Field(None, max_length=256)
    autoprovision: bool | None = None


class DeviceIn(_Common):
    device_id: str = Field(min_length=1, max_length=256, pattern=NAME_PATTERN)
    entity_name: str | None = Field(None, min_length=1, max_length=1000)
    apikey: str | None = Field(None, min_length=1, max_length=256, pattern=NAME_PATTERN)
    endpoint: str | None = Field(None, pattern=r"^https?://", max_length=1024)


class DevicesIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    devices: list[DeviceIn] = Field(min_length=1, max_length=1000)


class DeviceUpdate(_Common):
    """``PUT /iot/devices/{device_id}``: the members given replace the device's."""

    entity_name: str | None = Field(None, min_length=1, max_length=1000)
    apikey: str | None = Field(None, min_length=1, max_length=256, pattern=NAME_PATTERN)
    endpoint: str | None = Field(None, pattern=r"^https?://", max_length=1024)


class ServiceGroupOut(BaseModel):
    service: str
    subservice: str
    apikey: str
    resource: str
    entity_type: str
    attributes: list[dict[str, Any]]
    static_attributes: list[dict[str, Any]]
    commands: list[dict[str, Any]]
    protocol: str | None
    transport: str | None
    crs: str
    expected_interval: int | None
    explicitAttrs: bool
    autoprovision: bool


class ServiceGroupList(BaseModel):
    count: int
    services: list[ServiceGroupOut]


class DeviceOut(BaseModel):
    device_id: str
    service: str
    service_path: str
    entity_name: str
    entity_type: str
    apikey: str | None
    attributes: list[dict[str, Any]]
    static_attributes: list[dict[str, Any]]
    commands: list[dict[str, Any]]
    protocol: str | None
    transport: str | None
    endpoint: str | None
    crs: str
    expected_interval: int | None
    explicitAttrs: bool
    last_seen_at: datetime | None
    state: str
    battery_level: float | None
    rssi: float | None


class DeviceList(BaseModel):
    count: int
    devices: list[DeviceOut]


class DeadLetterOut(BaseModel):
    id: str
    received_at: datetime
    transport: str
    apikey: str | None
    device_id: str | None
    source: str | None
    reason: str
    detail: str
    payload: str
    size: int


class DeadLetterList(BaseModel):
    count: int
    deadLetters: list[DeadLetterOut]


class DeadLetterCount(BaseModel):
    device_id: str | None
    reason: str
    count: int
    last_received_at: datetime


class DeadLetterCounts(BaseModel):
    total: int
    counts: list[DeadLetterCount]


class CommandOut(BaseModel):
    id: str
    device_id: str
    name: str
    value: Any
    status: str
    info: Any
    created_at: datetime
    updated_at: datetime
    expires_at: datetime


class HealthCount(BaseModel):
    total: int
    online: int
    offline: int
    unknown: int
    onlineRatio: float | None


class HealthByGroup(HealthCount):
    name: str


class HealthByDistrict(HealthByGroup):
    """``name`` is the district's GB/T 2260 code; ``title`` its name where the hub knows it."""

    title: str | None


class NetworkHealth(BaseModel):
    """Devices by state: online (reported within twice the expected interval), offline, unknown;
    by entity type, by geographic district (devices placed nowhere: ``outsideDistricts``) and by
    service path."""

    overall: HealthCount
    byType: list[HealthByGroup]
    byDistrict: list[HealthByDistrict]
    outsideDistricts: HealthCount
    byServicePath: list[HealthByGroup]
    lowBattery: list[str]
