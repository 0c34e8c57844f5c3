"""Data models: the province's one data standard for what devices report.

A data model is a versioned, JSON-Schema-like description of an entity type, with field names as in
the Smart Data Models (https://smartdatamodels.org) the FIWARE world uses: for each attribute its
JSON type (``number``, ``integer``, ``string``, ``boolean``, ``array``, ``object``), the physical
range it can take (``minimum``/``maximum``, or ``enum``) and its UN/CEFACT unit code. The hub
validates measures from devices against the model of their entity's type; a value of the wrong type
or outside its range is refused with a reason that names the attribute.

Built-in models are below; applications add their own through ``AppRegistry.add_entity_type(...,
schema=...)`` in the same form (the hub registers them at start-up), and :meth:`DataModels.register`
accepts more. A model lists the attributes it constrains; other attributes pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: JSON types and the Python values that are of them (bool is not a number here).
_CHECKS: dict[str, Any] = {
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


#: Personal information (PIPL 个人信息) and sensitive personal information (敏感个人信息): an
#: attribute's ``x-personal``; ``x-mask`` says how it is masked for callers without clearance.
PERSONAL_LEVELS = ("personal", "sensitive")
MASKS = ("id_card", "phone", "plate", "name", "email", "address", "full")


class InvalidModel(ValueError):
    """A data model definition that cannot be used."""


@dataclass(frozen=True)
class DataModel:
    name: str
    version: str
    title_zh: str
    title_en: str
    properties: Mapping[str, Mapping[str, Any]]

    def personal(self) -> dict[str, dict[str, str]]:
        """The classified attributes: name → ``{"level": …, "mask": …}``."""
        return {
            name: {"level": str(spec["x-personal"]), "mask": str(spec.get("x-mask", "full"))}
            for name, spec in self.properties.items()
            if "x-personal" in spec
        }

    def schema(self) -> dict[str, Any]:
        """The model as a JSON-Schema-like document (what the API lists)."""
        return {
            "$id": f"urn:cityhub:datamodel:{self.name}:{self.version}",
            "title": self.name,
            "version": self.version,
            "description": {"zh": self.title_zh, "en": self.title_en},
            "type": "object",
            "properties": {name: dict(spec) for name, spec in self.properties.items()},
        } | ({"x-personal": self.personal()} if self.personal() else {})

    def problems(self, values: Mapping[str, Any]) -> list[str]:
        """What is wrong with ``values`` (attribute name → value); empty when they conform."""
        found = []
        for name, value in values.items():
            spec = self.properties.get(name)
            if spec is None or value is None:
                continue
            kind = spec.get("type")
            if kind is not None and not _CHECKS[kind](value):
                found.append(f"{name}: {value!r} is not of type {kind}")
                continue
            if "enum" in spec and value not in spec["enum"]:
                found.append(f"{name}: {value!r} is not one of {', '.join(map(str, spec['enum']))}")
            if "minimum" in spec and value < spec["minimum"]:
                found.append(f"{name}: {value!r} is below the minimum {spec['minimum']}")
            if "maximum" in spec and value > spec["maximum"]:
                found.append(f"{name}: {value!r} is above the maximum {spec['maximum']}")
        return found


def model_from_schema(name: str, schema: Mapping[str, Any]) -> DataModel:
    """A :class:`DataModel` from its JSON-Schema-like form; raises :class:`InvalidModel`."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        raise InvalidModel(f"data model {name}: 'properties' must be an object")
    for attribute, spec in properties.items():
        if not isinstance(spec, Mapping):
            raise InvalidModel(f"data model {name}: {attribute} must be an object")
        kind = spec.get("type")
        if kind is not None and kind not in _CHECKS:
            raise InvalidModel(f"data model {name}: {attribute} has unknown type {kind!r}")
        for bound in ("minimum", "maximum"):
            if bound in spec and not _CHECKS["number"](spec[bound]):
                raise InvalidModel(f"data model {name}: {attribute}.{bound} must be a number")
        level, mask = spec.get("x-personal"), spec.get("x-mask")
        if level is not None and level not in PERSONAL_LEVELS:
            raise InvalidModel(f"data model {name}: {attribute}.x-personal must be personal or sensitive")
        if mask is not None and (level is None or mask not in MASKS):
            raise InvalidModel(
                f"data model {name}: {attribute}.x-mask must be one of {', '.join(MASKS)}, with x-personal"
            )
    description = schema.get("description")
    titles = description if isinstance(description, Mapping) else {}
    return DataModel(
        name=name,
        version=str(schema.get("version", "1.0.0")),
        title_zh=str(titles.get("zh", name)),
        title_en=str(titles.get("en", schema.get("title", name))),
        properties={str(k): dict(v) for k, v in properties.items()},
    )


class DataModels:
    """The registry of data models, by entity type name (the short name, e.g. ``WeatherObserved``)."""

    def __init__(self, models: Iterable[DataModel] = ()) -> None:
        self._models: dict[str, DataModel] = {}
        for model in models:
            self.register(model)

    def register(self, model: DataModel) -> None:
        """Add a model, or a newer version of one (an older version than the one held is refused)."""
        held = self._models.get(model.name)
        if held is not None and _version(model.version) < _version(held.version):
            raise InvalidModel(f"data model {model.name} {held.version} is newer than {model.version}")
        self._models[model.name] = model

    def get(self, name: str) -> DataModel | None:
        return self._models.get(name)

    def __iter__(self) -> Any:
        return iter(sorted(self._models.values(), key=lambda m: m.name))

    def problems(self, entity_type: str, values: Mapping[str, Any]) -> list[str]:
        model = self._models.get(entity_type)
        return model.problems(values) if model is not None else []


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


def _num(
    minimum: float | None = None, maximum: float | None = None, unit: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "number"}
    if minimum is not None:
        spec["minimum"] = minimum
    if maximum is not None:
        spec["maximum"] = maximum
    if unit is not None:
        spec["unitCode"] = unit
    return spec


def _text(*choices: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(choices)} if choices else {"type": "string"}


#: Concentrations in µg/m³ (GQ) except CO in mg/m³ (GP); the ranges are what a sensor can report
#: on Earth, not limits of good air.
_AIR = {
    "temperature": _num(-90, 70, "CEL"),
    "relativeHumidity": _num(0, 1),
    "pm10": _num(0, 10_000, "GQ"),
    "pm25": _num(0, 10_000, "GQ"),
    "pm1": _num(0, 10_000, "GQ"),
    "no2": _num(0, 10_000, "GQ"),
    "so2": _num(0, 10_000, "GQ"),
    "o3": _num(0, 10_000, "GQ"),
    "co": _num(0, 1_000, "GP"),
    "airQualityIndex": _num(0, 1_000),
    "windSpeed": _num(0, 120, "MTS"),
    "windDirection": _num(-180, 360, "DD"),
    "precipitation": _num(0, 2_000, "MMT"),
}

BUILT_IN: tuple[DataModel, ...] = (
    DataModel("AirQualityObserved", "0.3.0", "空气质量观测", "Air quality observed", _AIR),
    DataModel(
        "WaterQualityObserved",
        "0.2.0",
        "水质观测",
        "Water quality observed",
        {
            "temperature": _num(-5, 100, "CEL"),
            "pH": _num(0, 14),
            "conductivity": _num(0, 200_000),
            "conductance": _num(0, 200_000),
            "tss": _num(0, 100_000),
            "tds": _num(0, 100_000),
            "turbidity": _num(0, 10_000),
            "salinity": _num(0, 300),
            "O2": _num(0, 100),
            "NH4": _num(0, 10_000),
            "NO3": _num(0, 10_000),
            "Chla": _num(0, 10_000),
        },
    ),
    DataModel(
        "NoiseLevelObserved",
        "0.2.0",
        "噪声观测",
        "Noise level observed",
        {
            "LAeq": _num(0, 200, "2N"),
            "LAmax": _num(0, 200, "2N"),
            "LAS": _num(0, 200, "2N"),
            "LAeq_d": _num(0, 200, "2N"),
            "LAeq_n": _num(0, 200, "2N"),
            "sonometerClass": _text("0", "1", "2"),
        },
    ),
    DataModel(
        "WeatherObserved",
        "0.4.0",
        "气象观测",
        "Weather observed",
        {
            "temperature": _num(-90, 70, "CEL"),
            "feelsLikeTemperature": _num(-100, 80, "CEL"),
            "relativeHumidity": _num(0, 1),
            "atmosphericPressure": _num(300, 1_100, "A97"),
            "precipitation": _num(0, 2_000, "MMT"),
            "windSpeed": _num(0, 120, "MTS"),
            "windDirection": _num(-180, 360, "DD"),
            "solarRadiation": _num(0, 2_000, "D54"),
            "illuminance": _num(0, 200_000, "LUX"),
            "visibility": _num(0, 500_000, "MTR"),
            "snowHeight": _num(0, 3_000, "CMT"),
            "uVIndexMax": _num(0, 20),
            "dewPoint": _num(-90, 70, "CEL"),
        },
    ),
    DataModel(
        "TrafficFlowObserved",
        "0.3.0",
        "交通流量观测",
        "Traffic flow observed",
        {
            "intensity": _num(0, 100_000),
            "occupancy": _num(0, 1),
            "averageVehicleSpeed": _num(0, 400, "KMH"),
            "averageVehicleLength": _num(0, 50, "MTR"),
            "averageGapDistance": _num(0, 100_000, "MTR"),
            "averageHeadwayTime": _num(0, 100_000, "SEC"),
            "congested": {"type": "boolean"},
            "laneId": {"type": "integer", "minimum": 0, "maximum": 64},
            "laneDirection": _text("forward", "backward"),
            "vehicleType": {"type": "string"},
        },
    ),
    DataModel(
        "ParkingSpot",
        "0.2.0",
        "停车位",
        "Parking spot",
        {
            "status": _text("free", "occupied", "closed", "unknown"),
            "width": _num(0, 20, "MTR"),
            "length": _num(0, 50, "MTR"),
            "category": {"type": "array"},
        },
    ),
    DataModel(
        "OffStreetParking",
        "0.3.0",
        "路外停车场",
        "Off-street parking",
        {
            "availableSpotNumber": {"type": "integer", "minimum": 0, "maximum": 100_000},
            "totalSpotNumber": {"type": "integer", "minimum": 0, "maximum": 100_000},
            "occupancy": _num(0, 1),
            "status": {"type": "array"},
            "maximumAllowedHeight": _num(0, 20, "MTR"),
        },
    ),
    DataModel(
        "Streetlight",
        "0.2.0",
        "路灯",
        "Streetlight",
        {
            "status": _text("ok", "defectiveLamp", "columnIssue", "brokenLantern"),
            "powerState": _text("on", "off", "low", "bootingUp"),
            "illuminanceLevel": _num(0, 1),
            "powerConsumption": _num(0, 10_000, "KWT"),
            "activePower": _num(0, 10_000, "KWT"),
            "lanternHeight": _num(0, 60, "MTR"),
        },
    ),
    DataModel(
        "CrowdFlowObserved",
        "0.2.0",
        "人流观测",
        "Crowd flow observed",
        {
            "peopleCount": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
            "occupancy": _num(0, 1),
            "averageCrowdSpeed": _num(0, 40, "KMH"),
            "averageHeadwayTime": _num(0, 100_000, "SEC"),
            "congested": {"type": "boolean"},
            "direction": _text("inbound", "outbound"),
        },
    ),
    *(
        DataModel(
            name,
            "0.1.0",
            title_zh,
            title_en,
            {
                "coverageRadius": _num(0, 100_000, "MTR"),
                "status": _text("working", "maintenance", "outOfService"),
                "operator": {"type": "string"},
            },
        )
        for name, title_zh, title_en in (
            ("FiveGSite", "5G 基站", "5G site"),
            ("NBIoTCell", "NB-IoT 小区", "NB-IoT cell"),
            ("FibreAccessPoint", "光纤接入点", "Fibre access point"),
        )
    ),
    DataModel(
        "Device",
        "0.3.0",
        "设备",
        "Device",
        {
            "batteryLevel": _num(0, 1),
            "rssi": _num(-200, 0, "DBM"),
            "deviceState": _text("ok", "online", "offline", "low battery", "defective"),
            "controlledProperty": {"type": "array"},
            "dateLastValueReported": {"type": "string"},
        },
    ),
)


def _personal(level: str, mask: str, **spec: Any) -> dict[str, Any]:
    return {"type": "string", "x-personal": level, "x-mask": mask} | spec


#: Models whose attributes carry personal information, classified (see docs/security.md).
PERSONAL_MODELS: tuple[DataModel, ...] = (
    DataModel(
        "CitizenReport",
        "0.1.0",
        "市民上报",
        "Citizen report",
        {
            "category": {"type": "string"},
            "description": {"type": "string"},
            "status": _text("received", "assigned", "inProgress", "resolved", "closed"),
            "reporterName": _personal("personal", "name"),
            "reporterPhone": _personal("sensitive", "phone"),
            "reporterEmail": _personal("personal", "email"),
            "reporterIdCard": _personal("sensitive", "id_card"),
            "address": _personal("personal", "address"),
        },
    ),
    DataModel(
        "Resident",
        "0.1.0",
        "居民",
        "Resident",
        {
            "name": _personal("personal", "name"),
            "idCardNumber": _personal("sensitive", "id_card"),
            "phone": _personal("sensitive", "phone"),
            "email": _personal("personal", "email"),
            "address": _personal("personal", "address"),
        },
    ),
    DataModel(
        "TrafficViolation",
        "0.1.0",
        "交通违法记录",
        "Traffic violation",
        {
            "violationType": {"type": "string"},
            "fine": _num(0, 100_000, "CNY"),
            "penaltyPoints": {"type": "integer", "minimum": 0, "maximum": 12},
            # a plate with where and when it was seen is a trace of a person's whereabouts
            "vehiclePlate": _personal("sensitive", "plate"),
            "driverName": _personal("personal", "name"),
            "driverIdCard": _personal("sensitive", "id_card"),
        },
    ),
    DataModel(
        "ParkingRecord",
        "0.1.0",
        "停车记录",
        "Parking record",
        {
            "vehiclePlate": _personal("sensitive", "plate"),
            "fee": _num(0, 100_000, "CNY"),
            "status": _text("parked", "left", "paid"),
        },
    ),
)


def default_models() -> DataModels:
    """A registry holding the built-in models."""
    return DataModels((*BUILT_IN, *PERSONAL_MODELS))
