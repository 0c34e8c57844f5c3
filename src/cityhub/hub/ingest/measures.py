"""From what a device sends to NGSI-LD attributes: the device's provisioning maps each short
``object_id`` to an attribute name and type; values are converted to that type, positions to
WGS-84, and the result is checked against the entity type's data model.

Pure functions: no I/O. A message that cannot be converted raises :class:`Rejected`, whose
``reason`` is the dead-letter reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson

from cityhub.hub.broker import ngsi
from cityhub.hub.broker.ngsi import Attributes
from cityhub.kit.errors import HubError
from cityhub.kit.geo import CRS, parse_geometry, to_wgs84
from cityhub.kit.time import isoformat, parse_datetime
from cityhub.systems.standards.datamodels import DataModels

#: Dead-letter reasons.
UNKNOWN_APIKEY = "unknown-apikey"
UNKNOWN_DEVICE = "unknown-device"
INVALID_PAYLOAD = "invalid-payload"
VALIDATION_FAILED = "validation-failed"
RATE_LIMITED = "rate-limited"
TOO_LARGE = "too-large"
UNKNOWN_COMMAND = "unknown-command"
WRITE_FAILED = "write-failed"
APIKEY_DISABLED = "apikey-disabled"
REASONS = (
    UNKNOWN_APIKEY,
    UNKNOWN_DEVICE,
    INVALID_PAYLOAD,
    VALIDATION_FAILED,
    RATE_LIMITED,
    TOO_LARGE,
    UNKNOWN_COMMAND,
    WRITE_FAILED,
    APIKEY_DISABLED,
)
#: Keys of a payload that carry the device's own time of measurement, not a measure.
TIMESTAMP_KEYS = ("TimeInstant", "timestamp")
CRS_NAMES: dict[str, CRS] = {"WGS84": "WGS84", "GCJ02": "GCJ02", "BD09": "BD09"}


class Rejected(Exception):
    """A message the gateway refuses; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str, *, tenant: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.tenant = tenant  # where the letter belongs, when the message tells


@dataclass(frozen=True)
class Mapping_:
    """How one measure becomes an attribute."""

    name: str
    type: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Profile:
    """Everything the gateways need to know of a device: its provisioning merged with its group's."""

    tenant: str
    service_path: str
    apikey: str
    device_id: str
    entity_id: str
    entity_type: str
    protocol: str | None
    transport: str | None
    endpoint: str | None
    crs: str
    explicit_attrs: bool
    by_object_id: Mapping[str, Mapping_] = field(default_factory=dict)
    commands: tuple[str, ...] = ()
    #: not provisioned yet: its group autoprovisions it on this first valid message
    provisional: bool = False
    expected_interval: int | None = None  # seconds between reports, when provisioned

    @property
    def scope(self) -> list[str] | None:
        return None if self.service_path in ("", "/") else [self.service_path]


def _number(raw: Any, what: str) -> float:
    if isinstance(raw, bool):
        raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not a number")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not a number") from None
    else:
        raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not a number")
    if not math.isfinite(value):
        raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not a finite number")
    return value


def _integer(raw: Any, what: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    number = _number(raw, what)
    if not number.is_integer():
        raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not an integer")
    return int(number)


def _boolean(raw: Any, what: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0"):
        return raw.lower() in ("true", "1")
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not a boolean")


def _guess(raw: Any) -> Any:
    """An UltraLight value of no declared type: a number when it reads as one, else text."""
    if not isinstance(raw, str):
        return raw
    try:
        number = float(raw)
    except ValueError:
        return raw
    if not math.isfinite(number):
        return raw
    return int(number) if number.is_integer() and "." not in raw and "e" not in raw.lower() else number


def _convert_positions(coordinates: Any, crs: CRS) -> Any:
    if isinstance(coordinates, list) and coordinates and isinstance(coordinates[0], int | float):
        lon, lat = to_wgs84(float(coordinates[0]), float(coordinates[1]), crs)
        return [round(lon, 7), round(lat, 7), *coordinates[2:]]
    if isinstance(coordinates, list):
        return [_convert_positions(item, crs) for item in coordinates]
    return coordinates


def to_wgs84_geojson(geometry: Any, crs: str, what: str) -> dict[str, Any]:
    """A GeoJSON geometry in ``crs`` as WGS-84 (checked as NGSI-LD checks a GeoProperty)."""
    if not isinstance(geometry, dict):
        raise Rejected(VALIDATION_FAILED, f"{what}: a geometry must be a GeoJSON object")
    converted = dict(geometry)
    if crs != "WGS84":
        if converted.get("type") == "GeometryCollection":
            converted["geometries"] = [
                to_wgs84_geojson(g, crs, what) for g in converted.get("geometries") or []
            ]
        else:
            converted["coordinates"] = _convert_positions(converted.get("coordinates"), CRS_NAMES[crs])
    try:
        parse_geometry(converted)
    except HubError as error:
        raise Rejected(VALIDATION_FAILED, f"{what}: {error.detail}") from None
    return converted


def _point(raw: Any, crs: str, what: str) -> dict[str, Any]:
    """FIWARE's ``geo:point``: the text ``"lat, lon"`` (or [lon, lat] from JSON devices)."""
    if isinstance(raw, str):
        parts = raw.split(",")
        if len(parts) != 2:
            raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not 'latitude, longitude'")
        lat, lon = _number(parts[0].strip(), what), _number(parts[1].strip(), what)
    elif isinstance(raw, list) and len(raw) in (2, 3):
        lon, lat = _number(raw[0], what), _number(raw[1], what)
    elif isinstance(raw, dict):
        return to_wgs84_geojson(raw, crs, what)
    else:
        raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not a position")
    return to_wgs84_geojson({"type": "Point", "coordinates": [lon, lat]}, crs, what)


def convert(raw: Any, kind: str | None, crs: str, what: str) -> tuple[str, Any]:
    """(NGSI-LD attribute type, value) of a measure of the declared ``kind``."""
    lowered = (kind or "").lower()
    if lowered in ("number", "float", "double"):
        return "Property", _number(raw, what)
    if lowered in ("integer", "int"):
        return "Property", _integer(raw, what)
    if lowered == "boolean":
        return "Property", _boolean(raw, what)
    if lowered in ("text", "string"):
        return "Property", raw if isinstance(raw, str) else orjson.dumps(raw).decode()
    if lowered in ("datetime", "date-time"):
        if not isinstance(raw, str):
            raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not a date-time")
        try:
            return "Property", {"@type": "DateTime", "@value": isoformat(parse_datetime(raw))}
        except ValueError:
            raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not a date-time") from None
    if lowered in ("geo:point", "geo:json", "geoproperty", "point"):
        if lowered == "geo:json" and isinstance(raw, str):
            try:
                raw = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise Rejected(VALIDATION_FAILED, f"{what}: not GeoJSON") from None
        return "GeoProperty", _point(raw, crs, what)
    if lowered == "relationship":
        if not ngsi.is_uri(raw):
            raise Rejected(VALIDATION_FAILED, f"{what}: {raw!r} is not an entity id (a URI)")
        return "Relationship", raw
    return "Property", _guess(raw)


def device_time(values: dict[str, Any]) -> datetime | None:
    """The device's own timestamp of a JSON measure (``TimeInstant``), removed from ``values``."""
    for key in TIMESTAMP_KEYS:
        if key in values:
            raw = values.pop(key)
            if not isinstance(raw, str):
                raise Rejected(INVALID_PAYLOAD, f"{key}: {raw!r} is not an ISO 8601 date-time")
            try:
                return parse_datetime(raw)
            except ValueError:
                raise Rejected(INVALID_PAYLOAD, f"{key}: {raw!r} is not an ISO 8601 date-time") from None
    return None


@dataclass
class Converted:
    attrs: Attributes
    battery: float | None = None
    rssi: float | None = None


def instance(kind: str, value: Any, observed: str | None, unit: str | None) -> dict[str, Any]:
    key = "object" if kind == "Relationship" else "value"
    found: dict[str, Any] = {"type": kind, key: value}
    if observed is not None:
        found["observedAt"] = observed
    if unit:
        found["unitCode"] = unit
    return found


def to_attributes(
    profile: Profile,
    values: Mapping[str, Any],
    observed: datetime,
    models: DataModels,
    expand: Any,
) -> Converted:
    """The attributes one measure group writes (names expanded with ``expand``), checked against
    the data model of the device's entity type."""
    if not values:
        raise Rejected(INVALID_PAYLOAD, "the message holds no measure")
    at = isoformat(observed)
    compact: dict[str, tuple[str, Any, str | None]] = {}
    for key, raw in values.items():
        mapping = profile.by_object_id.get(key)
        if mapping is None:
            if profile.explicit_attrs:
                raise Rejected(VALIDATION_FAILED, f"{key}: the device has no such attribute (explicitAttrs)")
            mapping = Mapping_(name=key)
        try:
            ngsi.check_name(mapping.name, "attribute name")
        except HubError as error:
            raise Rejected(VALIDATION_FAILED, error.detail) from None
        if mapping.name in ("id", "type", "scope") or mapping.name in profile.commands:
            raise Rejected(VALIDATION_FAILED, f"{key}: {mapping.name!r} cannot be written by a measure")
        if "\x00" in (raw if isinstance(raw, str) else orjson.dumps(raw).decode()):
            raise Rejected(VALIDATION_FAILED, f"{key}: NUL characters cannot be stored")
        kind, value = convert(raw, mapping.type, profile.crs, mapping.name)
        compact[mapping.name] = (kind, value, mapping.unit)
    problems = models.problems(
        profile.entity_type, {name: value for name, (kind, value, _) in compact.items() if kind == "Property"}
    )
    if problems:
        raise Rejected(VALIDATION_FAILED, "; ".join(problems))
    converted = Converted(attrs={})
    for name, (kind, value, unit) in compact.items():
        converted.attrs[cast(str, expand(name))] = [instance(kind, value, at, unit)]
        if name == "batteryLevel" and isinstance(value, int | float):
            converted.battery = float(value)
        elif name == "rssi" and isinstance(value, int | float):
            converted.rssi = float(value)
    return converted
