"""Conditions: checking definitions, templates, and the compiled closures against the interpreter."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityhub.hub.rules.conditions import (
    InvalidRule,
    check_definition,
    compile_condition,
    instantiate,
    interpret,
)
from cityhub.plugins.registry import Registry

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"


def expand(name: str) -> str:
    return LOCATION if name == "location" else VOCAB + name


def prop(value: Any, at: str = "2026-11-21T08:00:00Z", **subs: Any) -> list[dict[str, Any]]:
    instance: dict[str, Any] = {"type": "Property", "value": value, "observedAt": at}
    for name, sub in subs.items():
        instance[VOCAB + name] = {"type": "Property", "value": sub}
    return [instance]


def point(lon: float, lat: float) -> list[dict[str, Any]]:
    return [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}]


def both(cond: dict[str, Any], attrs: dict[str, Any], prev: dict[str, Any] | None = None) -> bool:
    """The compiled closure's answer, checked against the interpreter's."""
    prev = prev or {}
    compiled = compile_condition(cond, expand).check(attrs, prev)
    assert compiled == interpret(cond, attrs, prev, expand)
    return compiled


SQUARE = {
    "type": "Polygon",
    "coordinates": [[[113.0, 34.0], [114.0, 34.0], [114.0, 35.0], [113.0, 35.0], [113.0, 34.0]]],
}


def test_comparisons_ranges_sets_and_logic() -> None:
    attrs = {VOCAB + "pm25": prop(80), VOCAB + "status": prop("ok")}
    assert both({"attr": "pm25", "op": ">", "value": 75}, attrs)
    assert not both({"attr": "pm25", "op": "<=", "value": 75}, attrs)
    assert both({"attr": "pm25", "op": "between", "value": [75, 80]}, attrs)
    assert not both({"attr": "pm25", "op": "between", "value": [81, 90]}, attrs)
    assert both({"attr": "status", "op": "in", "value": ["ok", "warn"]}, attrs)
    assert both({"attr": "status", "op": "exists"}, attrs)
    assert not both({"attr": "noise", "op": "exists"}, attrs)
    assert not both({"attr": "noise", "op": ">", "value": 1}, attrs)  # missing: not above anything
    assert both({"attr": "status", "op": "!=", "value": "bad"}, attrs)
    cond = {
        "all": [
            {"attr": "pm25", "op": ">", "value": 75},
            {"not": {"attr": "status", "op": "==", "value": "bad"}},
        ]
    }
    assert both(cond, attrs)
    assert both(
        {"any": [{"attr": "pm25", "op": "<", "value": 0}, {"attr": "status", "op": "==", "value": "ok"}]},
        attrs,
    )
    three = {"all": [{"attr": "pm25", "op": ">", "value": 1}] * 3}
    assert both(three, attrs)
    assert compile_condition(cond, expand).reads == {VOCAB + "pm25", VOCAB + "status"}


def test_sub_properties_by_path() -> None:
    attrs = {VOCAB + "pm25": prop(80, accuracy=0.9), VOCAB + "address": prop({"district": "金水区"})}
    assert both({"path": "pm25.accuracy", "op": ">=", "value": 0.8}, attrs)
    assert not both({"path": "pm25.accuracy", "op": ">=", "value": 0.95}, attrs)
    assert not both({"path": "pm25.unit", "op": "exists"}, attrs)
    assert both({"path": "address.district", "op": "==", "value": "金水区"}, attrs)


def test_a_value_of_another_type_raises() -> None:
    attrs = {VOCAB + "pm25": prop("high")}
    with pytest.raises(TypeError):
        compile_condition({"attr": "pm25", "op": ">", "value": 75}, expand).check(attrs, {})


def test_rate_of_change_from_the_previous_value() -> None:
    cond = {"rate": "waterLevel", "per": "PT1H", "op": ">", "value": 0.5}
    now = {VOCAB + "waterLevel": prop(2.0, "2026-11-21T09:00:00Z")}
    rose_fast = {VOCAB + "waterLevel": prop(1.0, "2026-11-21T08:00:00Z")}
    rose_slowly = {VOCAB + "waterLevel": prop(1.8, "2026-11-21T08:00:00Z")}
    assert both(cond, now, rose_fast)  # 1.0 per hour
    assert not both(cond, now, rose_slowly)  # 0.2 per hour
    assert not both(cond, now, {})  # not changed by this change
    half_hour = {VOCAB + "waterLevel": prop(1.7, "2026-11-21T08:30:00Z")}
    assert both(cond, now, half_hour)  # 0.3 in 30 minutes: 0.6 per hour


def test_geofences() -> None:
    inside, outside = {LOCATION: point(113.5, 34.5)}, {LOCATION: point(112.0, 34.5)}
    assert both({"geofence": SQUARE, "on": "inside"}, inside)
    assert not both({"geofence": SQUARE}, outside)
    assert both({"geofence": SQUARE, "on": "outside"}, outside)
    enter = {"geofence": SQUARE, "on": "enter"}
    leave = {"geofence": SQUARE, "on": "leave"}
    assert both(enter, inside, outside)
    assert not both(enter, inside, inside)
    assert not both(enter, inside, {})  # did not move
    assert both(leave, outside, inside)
    assert not both(leave, inside, outside)
    assert compile_condition(enter, expand).edge
    assert not compile_condition({"geofence": SQUARE}, expand).edge
    multi = {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]}
    assert both({"geofence": multi, "attr": "location"}, inside)


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)),
    low=st.integers(-500, 500),
    width=st.integers(0, 500),
    op=st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
)
def test_compiled_agrees_with_the_interpreter(value: float, low: int, width: int, op: str) -> None:
    attrs = {VOCAB + "x": prop(value)}
    cond = {
        "any": [
            {"all": [{"attr": "x", "op": op, "value": low}, {"not": {"attr": "x", "op": "==", "value": 7}}]},
            {"attr": "x", "op": "between", "value": [low, low + width]},
        ]
    }
    both(cond, attrs)


def test_definitions_are_checked_with_the_member_named() -> None:
    good = {
        "entity_type": "T",
        "when": {"attr": "a", "op": ">", "value": 1},
        "for": "PT5M",
        "suppress": "PT1H",
    }
    check_definition(good)
    check_definition({"entity_type": "T", "absence": "PT30M", "channels": ["in-app", "email:ops@city.cn"]})
    for bad, named in [
        (good | {"for": "PT0S"}, "for"),
        ({"entity_type": "T", "when": {"rate": "a", "per": "PT1H", "op": "==", "value": 1}}, "when.op"),
        ({"entity_type": "T", "when": {"attr": "a.b", "op": "exists"}}, "when.attr"),
        ({"entity_type": "T", "when": {"attr": "a", "op": "exists", "value": 1}}, "when.value"),
        ({"entity_type": "T", "when": {"attr": "a", "op": ">", "value": {"param": "x"}}}, "when.value"),
        ({"entity_type": "T", "when": {"geofence": SQUARE, "on": "near"}}, "when.on"),
        ({"entity_type": "T", "absence": "PT1H", "for": "PT1H"}, "for"),
        (good | {"open_case": "yes"}, "open_case"),
        (good | {"params": {}}, "params"),
    ]:
        with pytest.raises(InvalidRule, match=named.replace(".", r"\.")):
            check_definition(bad)


TEMPLATE = {
    "entity_type": "AirQualityObserved",
    "when": {"attr": "aqi", "op": ">", "value": {"param": "threshold"}},
    "for": {"param": "hold"},
    "severity": "major",
    "params": {
        "threshold": {"type": "number", "default": 200, "title_zh": "阈值", "title_en": "Threshold"},
        "hold": {"type": "duration", "default": "PT1H", "title_zh": "持续", "title_en": "Hold"},
    },
}


def test_templates_are_checked_at_registration_and_instantiated() -> None:
    registry = Registry().for_app("environment")
    registry.add_rule_template("aqi_high", title_zh="AQI 超标", title_en="AQI high", definition=TEMPLATE)
    undeclared = TEMPLATE | {"params": {"threshold": TEMPLATE["params"]["threshold"]}}
    with pytest.raises(ValueError, match="used but not declared: hold"):
        registry.add_rule_template("aqi_2", title_zh="x", title_en="x", definition=undeclared)
    wrong_default = TEMPLATE | {
        "params": TEMPLATE["params"] | {"hold": {"type": "duration", "default": "soon"}}
    }
    with pytest.raises(ValueError, match="for"):
        registry.add_rule_template("aqi_3", title_zh="x", title_en="x", definition=wrong_default)

    rule = instantiate(TEMPLATE, {"threshold": 150})
    assert rule["when"]["value"] == 150
    assert rule["for"] == "PT1H"
    assert "params" not in rule
    check_definition(rule)
    with pytest.raises(InvalidRule, match=r"params\.threshold"):
        instantiate(TEMPLATE, {"threshold": "high"})
    with pytest.raises(InvalidRule, match="no parameter colour"):
        instantiate(TEMPLATE, {"colour": 1})
