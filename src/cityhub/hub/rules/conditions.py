"""Rule definitions: checking them, filling templates, and compiling conditions into closures.

A definition is JSON (see docs/rules.md). :func:`check_definition` says what is wrong with one, by
its path (``when.all[1].op``). :func:`compile_condition` turns its ``when`` into one Python closure
over an entity's stored attributes (expanded IRIs: names are expanded once, here), so an
evaluation walks no JSON and looks nothing up by short name. :func:`interpret` evaluates the same
JSON tree directly, expanding names as it goes: the baseline the benchmark compares with, and a
second opinion in the tests.

Evaluation takes ``attrs`` (the entity's attributes now) and ``previous`` (the instances, before
the change, of the attributes the change updated or deleted: what the broker's change event
carries). Rate of change and geo-fence ``enter``/``leave`` read ``previous``: an attribute the
change did not touch has not moved.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import shapely

from cityhub.hub.broker.history import parse_duration
from cityhub.kit.errors import BadRequestData, HubError
from cityhub.kit.geo import Geometry, parse_geometry
from cityhub.kit.time import parse_datetime

Attrs = Mapping[str, Sequence[dict[str, Any]]]
Check = Callable[[Attrs, Attrs], bool]
Expand = Callable[[str], str]

SEVERITIES = ("info", "warning", "minor", "major", "critical")
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
OPS = (*COMPARISONS, "between", "in", "exists")
FENCE_MODES = ("enter", "leave", "inside", "outside")
CHANNEL_KINDS = ("in-app", "webhook", "mqtt", "email")
_MEMBERS = {
    "name",
    "entity_type",
    "entity_ids",
    "when",
    "for",
    "absence",
    "severity",
    "message_zh",
    "message_en",
    "open_case",
    "channels",
    "suppress",
    "auto_resolve",
    "category",
    "params",
}


class InvalidRule(BadRequestData):
    """A rule definition that cannot be used; ``detail`` names the member at fault."""


def _fail(path: str, message: str) -> InvalidRule:
    return InvalidRule(f"{path}: {message}" if path else message)


# -- checking -----------------------------------------------------------------------------------------


def _is_param(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"param"} and isinstance(value["param"], str)


def _duration(value: Any, path: str) -> timedelta:
    if not isinstance(value, str):
        raise _fail(path, "must be an ISO 8601 duration such as PT30M")
    try:
        length = parse_duration(value)
    except HubError as error:
        raise _fail(path, error.detail) from None
    if length <= timedelta(0):
        raise _fail(path, "must be longer than zero")
    return length


def _attr_name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value or any(not part for part in value.split(".")):
        raise _fail(path, "must be an attribute name (dot-separated for a sub-property)")
    return value


def _number(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, "must be a number")


def check_condition(cond: Any, path: str = "when", *, template: bool = False) -> None:
    """Raise :class:`InvalidRule` if ``cond`` is not a condition; ``template`` allows ``{"param"}``."""

    def value_ok(value: Any) -> bool:
        return template and _is_param(value)

    if not isinstance(cond, dict) or not cond:
        raise _fail(path, "a condition is an object: all, any, not, attr/path, rate or geofence")
    if "all" in cond or "any" in cond:
        key = "all" if "all" in cond else "any"
        members = cond[key]
        if set(cond) != {key} or not isinstance(members, list) or not members:
            raise _fail(path, f"{key} takes a non-empty list of conditions and nothing else")
        for index, member in enumerate(members):
            check_condition(member, f"{path}.{key}[{index}]", template=template)
        return
    if "not" in cond:
        if set(cond) != {"not"}:
            raise _fail(path, "not takes one condition and nothing else")
        check_condition(cond["not"], f"{path}.not", template=template)
        return
    if "rate" in cond:
        unknown = set(cond) - {"rate", "per", "op", "value"}
        if unknown:
            raise _fail(path, f"unknown members {', '.join(sorted(unknown))}")
        _attr_name(cond["rate"], f"{path}.rate")
        if not value_ok(cond.get("per")):
            _duration(cond.get("per"), f"{path}.per")
        if cond.get("op") not in (">", ">=", "<", "<="):
            raise _fail(f"{path}.op", "a rate compares with >, >=, < or <=")
        if not value_ok(cond.get("value")):
            _number(cond.get("value"), f"{path}.value")
        return
    if "geofence" in cond:
        unknown = set(cond) - {"geofence", "on", "attr"}
        if unknown:
            raise _fail(path, f"unknown members {', '.join(sorted(unknown))}")
        fence = cond["geofence"]
        if not value_ok(fence):
            if not isinstance(fence, dict) or fence.get("type") not in ("Polygon", "MultiPolygon"):
                raise _fail(f"{path}.geofence", "must be a GeoJSON Polygon or MultiPolygon")
            try:
                parse_geometry(fence)
            except HubError as error:
                raise _fail(f"{path}.geofence", error.detail) from None
        if cond.get("on", "inside") not in FENCE_MODES:
            raise _fail(f"{path}.on", f"one of {', '.join(FENCE_MODES)}")
        _attr_name(cond.get("attr", "location"), f"{path}.attr")
        return
    if "attr" in cond or "path" in cond:
        key = "attr" if "attr" in cond else "path"
        unknown = set(cond) - {key, "op", "value"}
        if unknown:
            raise _fail(path, f"unknown members {', '.join(sorted(unknown))}")
        name = _attr_name(cond[key], f"{path}.{key}")
        if key == "attr" and "." in name:
            raise _fail(f"{path}.attr", "an attribute name has no dot; use path for a sub-property")
        op = cond.get("op")
        if op not in OPS:
            raise _fail(f"{path}.op", f"one of {', '.join(OPS)}")
        if op == "exists":
            if "value" in cond:
                raise _fail(f"{path}.value", "exists takes no value")
            return
        if "value" not in cond:
            raise _fail(f"{path}.value", "missing")
        value = cond["value"]
        if value_ok(value):
            return
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise _fail(f"{path}.value", "between takes [low, high]")
            for index, bound in enumerate(value):
                if not value_ok(bound):
                    _number(bound, f"{path}.value[{index}]")
        elif op == "in":
            if not isinstance(value, list) or not value:
                raise _fail(f"{path}.value", "in takes a non-empty list")
        elif op not in ("==", "!=") and not isinstance(value, str):
            _number(value, f"{path}.value")
        return
    raise _fail(path, "a condition is one of all, any, not, attr, path, rate, geofence")


def _check_channels(channels: Any) -> None:
    if not isinstance(channels, list):
        raise _fail("channels", "must be a list such as ['in-app', 'webhook:https://…']")
    for index, channel in enumerate(channels):
        where = f"channels[{index}]"
        if not isinstance(channel, str) or len(channel) > 2000:
            raise _fail(where, "must be a string of at most 2000 characters")
        kind, _, target = channel.partition(":")
        if kind not in CHANNEL_KINDS:
            raise _fail(where, f"the kind is one of {', '.join(CHANNEL_KINDS)}")
        if kind == "in-app":
            if target:
                raise _fail(where, "in-app takes no target")
        elif not target:
            raise _fail(where, f"{kind} needs a target: {kind}:<…>")
        elif kind == "webhook" and not target.startswith(("http://", "https://")):
            raise _fail(where, "a webhook is an http:// or https:// URL")
        elif kind == "email" and ("@" not in target or any(c.isspace() for c in target)):
            raise _fail(where, "not an e-mail address")
        elif kind == "mqtt" and ("#" in target or "+" in target):
            raise _fail(where, "an MQTT topic to publish to has no wildcards")


def check_definition(definition: Any, *, template: bool = False) -> None:
    """Raise :class:`InvalidRule` naming what is wrong with a rule (or template) definition."""
    if not isinstance(definition, dict):
        raise _fail("", "a rule definition is a JSON object")
    unknown = set(definition) - _MEMBERS
    if unknown:
        raise _fail("", f"unknown members {', '.join(sorted(unknown))}")
    if "params" in definition and not template:
        raise _fail("params", "only a template declares params")
    entity_type = definition.get("entity_type")
    if not isinstance(entity_type, str) or not entity_type or len(entity_type) > 1024:
        raise _fail("entity_type", "required: the type of entity the rule watches (at most 1024 characters)")
    name = definition.get("name", "x")
    if not isinstance(name, str) or not name or len(name) > 200:
        raise _fail("name", "must be a string of 1 to 200 characters")
    ids = definition.get("entity_ids")
    if ids is not None and (
        not isinstance(ids, list) or not all(isinstance(i, str) and 0 < len(i) <= 2048 for i in ids)
    ):
        raise _fail("entity_ids", "must be a list of entity ids")
    if "when" not in definition and "absence" not in definition:
        raise _fail("when", "required unless absence is given")
    if "when" in definition and "absence" in definition:
        raise _fail("absence", "a rule watches a condition (when) or silence (absence), not both")
    if "when" in definition:
        check_condition(definition["when"], template=template)
    for key in ("for", "absence", "suppress"):
        if key in definition and not (template and _is_param(definition[key])):
            _duration(definition[key], key)
    if "for" in definition and "absence" in definition:
        raise _fail("for", "an absence rule has no for")
    if definition.get("severity", "warning") not in SEVERITIES:
        raise _fail("severity", f"one of {', '.join(SEVERITIES)}")
    for key in ("message_zh", "message_en", "category"):
        if key in definition and not isinstance(definition[key], str):
            raise _fail(key, "must be a string")
    if "open_case" in definition and not isinstance(definition["open_case"], dict):
        raise _fail("open_case", 'must be an object such as {"category": "…"}')
    if "auto_resolve" in definition and not isinstance(definition["auto_resolve"], bool):
        raise _fail("auto_resolve", "must be true or false")
    if "channels" in definition:
        _check_channels(definition["channels"])
    if template:
        _check_params(definition)


# -- templates -----------------------------------------------------------------------------------------


def _params_used(value: Any) -> set[str]:
    if _is_param(value):
        return {value["param"]}
    if isinstance(value, dict):
        return set().union(*(_params_used(v) for k, v in value.items() if k != "params"))
    if isinstance(value, list):
        return set().union(*(_params_used(v) for v in value))
    return set()


_PARAM_TYPES: dict[str, Callable[[Any], bool]] = {
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "duration": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "geometry": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}


def _check_params(definition: dict[str, Any]) -> None:
    params = definition.get("params", {})
    if not isinstance(params, dict):
        raise _fail("params", "must be an object: name → {type, default, title_zh, title_en}")
    for name, spec in params.items():
        where = f"params.{name}"
        if not isinstance(spec, dict) or spec.get("type") not in _PARAM_TYPES:
            raise _fail(f"{where}.type", f"one of {', '.join(_PARAM_TYPES)}")
        if "default" in spec and not _PARAM_TYPES[spec["type"]](spec["default"]):
            raise _fail(f"{where}.default", f"must be a {spec['type']}")
    missing = _params_used(definition) - set(params)
    if missing:
        raise _fail("params", f"used but not declared: {', '.join(sorted(missing))}")
    if params:
        # the template with its defaults (or a stand-in) must make a valid rule
        stand_in: dict[str, Any] = {"number": 1, "integer": 1, "string": "x", "duration": "PT1H"}
        stand_in |= {"boolean": True, "list": [1], "geometry": _SQUARE}
        values = {n: s.get("default", stand_in[s["type"]]) for n, s in params.items()}
        check_definition(instantiate(definition, values))


_SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}


def instantiate(template: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The rule a template makes with parameter values ``given`` (defaults fill the rest)."""
    params: dict[str, Any] = template.get("params", {})
    unknown = set(given) - set(params)
    if unknown:
        raise _fail("params", f"the template has no parameter {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, spec in params.items():
        if name in given:
            if not _PARAM_TYPES[spec["type"]](given[name]):
                raise _fail(f"params.{name}", f"must be a {spec['type']}")
            values[name] = given[name]
        elif "default" in spec:
            values[name] = spec["default"]
        else:
            raise _fail(f"params.{name}", "required (the template gives no default)")

    def fill(value: Any) -> Any:
        if _is_param(value):
            return values[value["param"]]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    rule = {key: fill(value) for key, value in template.items() if key != "params"}
    return rule


# -- reading values -------------------------------------------------------------------------------------


def _default(instances: Sequence[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The instance without datasetId (the default one), else the first."""
    if not instances:
        return None
    for instance in instances:
        if "datasetId" not in instance:
            return instance
    return instances[0]


_ABSENT = object()


def _content(instance: dict[str, Any]) -> Any:
    if "value" in instance:
        return instance["value"]
    if "object" in instance:
        return instance["object"]
    if "languageMap" in instance:
        return instance["languageMap"]
    return instance.get("json", _ABSENT)


def _reader(attr: str, subs: Sequence[tuple[str, str]]) -> Callable[[Attrs], Any]:
    """A function reading the value at ``attr`` → sub-attribute ``subs``… (expanded IRIs; a step
    not found as a sub-attribute is looked up as a key of a structured value)."""
    if not subs:

        def read(attrs: Attrs) -> Any:
            instance = _default(attrs.get(attr))
            return _ABSENT if instance is None else _content(instance)

        return read
    steps = tuple(subs)

    def read_sub(attrs: Attrs) -> Any:
        node: Any = _default(attrs.get(attr))
        if node is None:
            return _ABSENT
        for iri, short in steps:
            sub = node.get(iri) if isinstance(node, dict) and "type" in node else None
            if isinstance(sub, dict):
                node = sub
                continue
            value = _content(node) if isinstance(node, dict) and "type" in node else node
            if isinstance(value, dict) and short in value:
                node = {"type": "Property", "value": value[short]}
                continue
            return _ABSENT
        return _content(node) if isinstance(node, dict) else _ABSENT

    return read_sub


def _moment(instance: dict[str, Any]) -> Any:
    text = instance.get("observedAt") or instance.get("modifiedAt")
    return parse_datetime(text) if isinstance(text, str) else None


def _point_in(fence: Geometry) -> Callable[[Any], bool]:
    shape = fence.shape
    shapely.prepare(shape)
    min_lon, min_lat, max_lon, max_lat = fence.bbox

    def inside(geojson: Any) -> bool:
        if not isinstance(geojson, dict):
            return False
        if geojson.get("type") == "Point":
            lon, lat = geojson["coordinates"][:2]
            if lon < min_lon or lon > max_lon or lat < min_lat or lat > max_lat:
                return False
            return bool(shapely.contains_xy(shape, lon, lat))
        return bool(shape.intersects(parse_geometry(geojson).shape))

    return inside


# -- compiling -------------------------------------------------------------------------------------------


@dataclass
class Compiled:
    """A compiled condition: the closure, the attribute IRIs it reads, and whether it is an event
    (geo-fence enter/leave: true at the change that crosses, not a state that later clears)."""

    check: Check
    reads: set[str] = field(default_factory=set)
    edge: bool = False
    first_attr: str | None = None


def compile_condition(cond: dict[str, Any], expand: Expand) -> Compiled:
    """One closure for ``cond`` (checked already), names expanded with ``expand`` once."""
    reads: set[str] = set()
    edge = [False]
    first: list[str] = []

    def build(c: dict[str, Any]) -> Check:
        if "all" in c:
            parts = tuple(build(m) for m in c["all"])
            if len(parts) == 2:
                a, b = parts
                return lambda attrs, prev: a(attrs, prev) and b(attrs, prev)
            return lambda attrs, prev: all(p(attrs, prev) for p in parts)
        if "any" in c:
            parts = tuple(build(m) for m in c["any"])
            if len(parts) == 2:
                a, b = parts
                return lambda attrs, prev: a(attrs, prev) or b(attrs, prev)
            return lambda attrs, prev: any(p(attrs, prev) for p in parts)
        if "not" in c:
            inner = build(c["not"])
            return lambda attrs, prev: not inner(attrs, prev)
        if "rate" in c:
            return _compile_rate(c, expand, reads, first)
        if "geofence" in c:
            mode = c.get("on", "inside")
            edge[0] = edge[0] or mode in ("enter", "leave")
            return _compile_fence(c, expand, reads, first)
        return _compile_comparison(c, expand, reads, first)

    check = build(cond)
    return Compiled(check, reads, edge[0], first[0] if first else None)


def _compile_comparison(c: dict[str, Any], expand: Expand, reads: set[str], first: list[str]) -> Check:
    name = c.get("attr") or c["path"]
    attr, *rest = name.split(".")
    iri = expand(attr)
    reads.add(iri)
    first.append(iri)
    read = _reader(iri, [(expand(s), s) for s in rest])
    op = c["op"]
    if op == "exists":
        return lambda attrs, prev: read(attrs) is not _ABSENT
    value = c["value"]
    if op == "between":
        low, high = value
        return lambda attrs, prev: _between(read(attrs), low, high)
    if op == "in":
        allowed = tuple(value)
        return lambda attrs, prev: read(attrs) in allowed
    compare = COMPARISONS[op]
    if op in ("==", "!="):
        return lambda attrs, prev: (v := read(attrs)) is not _ABSENT and compare(v, value)
    # ordering: a missing value or null is not above or below anything; a value of another type
    # than the rule's (a string against a number) is an error that disables the rule
    return lambda attrs, prev: (v := read(attrs)) is not _ABSENT and v is not None and compare(v, value)


def _between(found: Any, low: Any, high: Any) -> bool:
    if found is _ABSENT or found is None:
        return False
    return bool(low <= found <= high)


def _compile_rate(c: dict[str, Any], expand: Expand, reads: set[str], first: list[str]) -> Check:
    iri = expand(c["rate"])
    reads.add(iri)
    first.append(iri)
    per = parse_duration(c["per"]).total_seconds()
    compare = COMPARISONS[c["op"]]
    limit = c["value"]

    def rate(attrs: Attrs, prev: Attrs) -> bool:
        before = _default(prev.get(iri))
        now = _default(attrs.get(iri))
        if before is None or now is None:
            return False
        old, new = _content(before), _content(now)
        if not _is_number(old) or not _is_number(new):
            return False
        then, at = _moment(before), _moment(now)
        if then is None or at is None or at <= then:
            return False
        return bool(compare((new - old) / (at - then).total_seconds() * per, limit))

    return rate


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compile_fence(c: dict[str, Any], expand: Expand, reads: set[str], first: list[str]) -> Check:
    iri = expand(c.get("attr", "location"))
    reads.add(iri)
    first.append(iri)
    inside = _point_in(parse_geometry(c["geofence"]))
    mode = c.get("on", "inside")

    def where(attrs: Attrs) -> Any:
        instance = _default(attrs.get(iri))
        return None if instance is None else instance.get("value")

    if mode == "inside":
        return lambda attrs, prev: inside(where(attrs))
    if mode == "outside":
        return lambda attrs, prev: (w := where(attrs)) is not None and not inside(w)

    entering = mode == "enter"

    def crossed(attrs: Attrs, prev: Attrs) -> bool:
        if iri not in prev:
            return False  # the change did not move it
        now, before = where(attrs), where(prev)
        if now is None or before is None:
            return False
        return inside(now) is entering and inside(before) is not entering

    return crossed


# -- the baseline: walking the JSON tree at each evaluation ---------------------------------------------


def interpret(cond: dict[str, Any], attrs: Attrs, prev: Attrs, expand: Expand) -> bool:
    """Evaluate ``cond`` by walking it, expanding names and parsing literals every time."""
    if "all" in cond:
        return all(interpret(m, attrs, prev, expand) for m in cond["all"])
    if "any" in cond:
        return any(interpret(m, attrs, prev, expand) for m in cond["any"])
    if "not" in cond:
        return not interpret(cond["not"], attrs, prev, expand)
    if "rate" in cond or "geofence" in cond:
        reads: set[str] = set()
        first: list[str] = []
        builder = _compile_rate if "rate" in cond else _compile_fence
        return builder(cond, expand, reads, first)(attrs, prev)
    name = cond.get("attr") or cond["path"]
    attr, *rest = name.split(".")
    value = _reader(expand(attr), [(expand(s), s) for s in rest])(attrs)
    op = cond["op"]
    if op == "exists":
        return value is not _ABSENT
    if value is _ABSENT:
        return False
    if op == "between":
        return _between(value, *cond["value"])
    if op == "in":
        return value in cond["value"]
    if op not in ("==", "!=") and value is None:
        return False
    return bool(COMPARISONS[op](value, cond["value"]))


def value_of(attrs: Attrs, iri: str | None) -> Any:
    """The value of the default instance of ``iri`` (None when absent), for alert messages."""
    if iri is None:
        return None
    instance = _default(attrs.get(iri))
    if instance is None:
        return None
    found = _content(instance)
    return None if found is _ABSENT else found
