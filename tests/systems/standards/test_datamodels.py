"""Data models: the built-in Smart Data Models types, validation of values, the registry, and
models applications register with their entity types."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from cityhub.plugins.registry import EntityType
from cityhub.systems.standards.datamodels import (
    BUILT_IN,
    DataModels,
    InvalidModel,
    default_models,
    model_from_schema,
)

LISTED = {
    "AirQualityObserved",
    "WaterQualityObserved",
    "NoiseLevelObserved",
    "WeatherObserved",
    "TrafficFlowObserved",
    "ParkingSpot",
    "OffStreetParking",
    "Streetlight",
    "CrowdFlowObserved",
    "Device",
}


def test_the_listed_types_are_built_in() -> None:
    assert {model.name for model in BUILT_IN} == LISTED | {"FiveGSite", "NBIoTCell", "FibreAccessPoint"}


@pytest.mark.parametrize(
    ("entity_type", "values", "expected"),
    [
        ("WeatherObserved", {"temperature": 21.5, "atmosphericPressure": 1012}, []),
        ("WeatherObserved", {"temperature": 120}, ["temperature: 120 is above the maximum 70"]),
        ("WeatherObserved", {"relativeHumidity": -0.1}, ["relativeHumidity: -0.1 is below the minimum 0"]),
        ("TrafficFlowObserved", {"intensity": "many"}, ["intensity: 'many' is not of type number"]),
        ("TrafficFlowObserved", {"congested": 1}, ["congested: 1 is not of type boolean"]),
        ("ParkingSpot", {"status": "free"}, []),
        ("ParkingSpot", {"status": "half"}, ["status: 'half' is not one of free, occupied, closed, unknown"]),
        (
            "OffStreetParking",
            {"availableSpotNumber": 3.5},
            ["availableSpotNumber: 3.5 is not of type integer"],
        ),
        ("NoiseLevelObserved", {"LAeq": True}, ["LAeq: True is not of type number"]),
        ("UnknownThing", {"anything": -1e9}, []),
        ("WeatherObserved", {"somethingElse": "x"}, []),
    ],
)
def test_values_are_checked_against_their_model(entity_type: str, values: dict, expected: list[str]) -> None:
    assert default_models().problems(entity_type, values) == expected


def test_registry_keeps_the_newest_version() -> None:
    models = DataModels()
    models.register(
        model_from_schema("Beehive", {"version": "1.2.0", "properties": {"weight": {"type": "number"}}})
    )
    newer = model_from_schema(
        "Beehive", {"version": "1.10.0", "properties": {"weight": {"type": "number", "minimum": 0}}}
    )
    models.register(newer)
    assert models.get("Beehive") is newer
    with pytest.raises(InvalidModel, match="newer"):
        models.register(model_from_schema("Beehive", {"version": "1.3.0", "properties": {}}))
    assert models.problems("Beehive", {"weight": -2}) == ["weight: -2 is below the minimum 0"]
    schema = newer.schema()
    assert schema["version"] == "1.10.0"
    assert schema["$id"] == "urn:cityhub:datamodel:Beehive:1.10.0"


@pytest.mark.parametrize(
    "schema",
    [
        {},
        {"properties": {"x": {"type": "decimal"}}},
        {"properties": {"x": {"type": "number", "minimum": "low"}}},
        {"properties": {"x": 3}},
    ],
)
def test_unusable_models_are_refused(schema: dict) -> None:
    with pytest.raises(InvalidModel):
        model_from_schema("Broken", schema)


async def test_applications_add_models_and_the_api_lists_them(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    hub = app.state.hub
    schema = {
        "version": "0.1.0",
        "properties": {"waterLevel": {"type": "number", "minimum": 0, "maximum": 30}},
    }
    hub.registry.entity_types["FloodSensor"] = EntityType(
        "emergency", "FloodSensor", "积水监测", "Flood sensor", schema
    )
    hub.registry.entity_types["Broken"] = EntityType("emergency", "Broken", "坏", "Broken", {"properties": 1})
    hub._register_data_models()
    assert hub.ingest.models.problems("FloodSensor", {"waterLevel": 31}) == [
        "waterLevel: 31 is above the maximum 30"
    ]
    assert hub.ingest.models.get("Broken") is None
    listed = (await client.get("/api/v1/ingest/models")).json()
    names = {model["title"] for model in listed}
    assert LISTED | {"FloodSensor"} <= names
