"""NGSI-LD payloads ↔ the broker's internal entity form (see ``cityhub.hub.broker``).

``expand_*`` validate what a client sends and turn it into the internal form with the request's
@context; ``compact_entity`` renders the internal form back in normalized, concise or keyValues
representation for the caller's @context. Pure functions: no I/O, no database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

from cityhub.kit.errors import BadRequestData
from cityhub.kit.time import parse_datetime

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
NULL = "urn:ngsi-ld:null"

ATTRIBUTE_TYPES = frozenset(
    {
        "Property",
        "Relationship",
        "GeoProperty",
        "LanguageProperty",
        "JsonProperty",
        "VocabProperty",
        "ListProperty",
        "ListRelationship",
    }
)
#: Keys of an attribute instance that are part of NGSI-LD itself; any other key is a sub-attribute.
CORE_KEYS = frozenset(
    {
        "type",
        "value",
        "object",
        "objectType",
        "languageMap",
        "json",
        "vocab",
        "valueList",
        "objectList",
        "observedAt",
        "unitCode",
        "datasetId",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "instanceId",
        "previousValue",
        "previousObject",
        "previousLanguageMap",
    }
)
SYSTEM_KEYS = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId"})
ENTITY_KEYS = frozenset({"id", "type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt"})
#: Core attributes whose values are geometries whatever the form they arrive in.
GEO_ATTRIBUTES = frozenset({NGSI_LD + "location", NGSI_LD + "observationSpace", NGSI_LD + "operationSpace"})
GEOJSON_TYPES = frozenset(
    {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon", "GeometryCollection"}
)
# Characters NGSI-LD forbids in attribute and type names (clause 4.6.2 and 4.6.3).
_FORBIDDEN_NAME = re.compile(r"[<>\"'=;()\s]")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_SCOPE = re.compile(r"^/[^\s/#+]+(/[^\s/#+]+)*$")

Format = Literal["normalized", "concise", "keyValues"]
Instance = dict[str, Any]
Attributes = dict[str, list[Instance]]


class Context(Protocol):
    def expand(self, term: str) -> str: ...

    def compact(self, iri: str) -> str: ...


def is_uri(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 2048 and _URI.match(value) is not None


def require_uri(value: object, what: str) -> str:
    if not is_uri(value):
        raise BadRequestData(f"{what} must be a URI (e.g. urn:ngsi-ld:Type:id), got {value!r}")
    assert isinstance(value, str)
    return value


#: Names already found valid: a batch repeats the same few attribute names thousands of times.
_VALID_NAMES: set[str] = set()


def check_name(name: object, what: str) -> str:
    if isinstance(name, str) and name in _VALID_NAMES:
        return name
    if not isinstance(name, str) or not name:
        raise BadRequestData(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > 512 or _FORBIDDEN_NAME.search(name) or name.startswith("@"):
        raise BadRequestData(f"{what} {name!r} contains a forbidden character or is too long")
    if len(_VALID_NAMES) >= 10_000:
        _VALID_NAMES.clear()
    _VALID_NAMES.add(name)
    return name


#: Type IRIs already found valid: a batch's entities name the same type or few.
_VALID_TYPES: set[str] = set()


def expand_types(raw: object, ctx: Context) -> list[str]:
    names = raw if isinstance(raw, list) else [raw]
    if not names:
        raise BadRequestData("entity type must not be empty")
    expanded = [ctx.expand(check_name(name, "entity type")) for name in names]
    for name, iri in zip(names, expanded, strict=True):
        if iri in _VALID_TYPES:
            continue
        if iri.startswith("@") or not is_uri(iri):
            raise BadRequestData(f"entity type {name!r} is not a valid type name")
        if len(_VALID_TYPES) >= 10_000:
            _VALID_TYPES.clear()
        _VALID_TYPES.add(iri)
    return expanded if len(expanded) == 1 else list(dict.fromkeys(expanded))


def expand_scopes(raw: object) -> list[str]:
    scopes = raw if isinstance(raw, list) else [raw]
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise BadRequestData(f"scope {scope!r} must be a path like /Zhengzhou/Jinshui")
    return list(dict.fromkeys(scopes))


def expand_entity(body: object, ctx: Context) -> dict[str, Any]:
    """A whole entity as sent to create or replace; timestamps are the caller's to add."""
    if not isinstance(body, dict):
        raise BadRequestData("an entity must be a JSON object")
    if "id" not in body:
        raise BadRequestData("entity id is missing")
    if "type" not in body:
        raise BadRequestData("entity type is missing")
    entity: dict[str, Any] = {
        "id": require_uri(body["id"], "entity id"),
        "type": expand_types(body["type"], ctx),
    }
    if "scope" in body:
        entity["scope"] = expand_scopes(body["scope"])
    entity["attrs"] = expand_attributes(body, ctx)
    return entity


def expand_attributes(body: Mapping[str, Any], ctx: Context, *, allow_null: bool = False) -> Attributes:
    """The attributes of a payload (entity keys are skipped), each a list of instances."""
    attrs: Attributes = {}
    for name, raw in body.items():
        if name in ENTITY_KEYS:
            continue
        iri = ctx.expand(check_name(name, "attribute name"))
        instances = raw if isinstance(raw, list) and _is_instance_list(raw) else [raw]
        expanded = [expand_instance(iri, item, ctx, allow_null=allow_null) for item in instances]
        if len(expanded) > 1:
            seen: set[str | None] = set()
            for instance in expanded:
                dataset = instance.get("datasetId")
                if dataset in seen:
                    raise BadRequestData(f"attribute {name!r} has two instances with datasetId {dataset!r}")
                seen.add(dataset)
        attrs[iri] = expanded
    return attrs


def expand_merge_patch(body: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """A merge-patch body: attributes (nulls allowed, they delete), and type and scope if given."""
    patch: dict[str, Any] = {"attrs": expand_attributes(body, ctx, allow_null=True)}
    if "type" in body:
        patch["type"] = expand_types(body["type"], ctx)
    if "scope" in body:
        patch["scope"] = expand_scopes(body["scope"])
    return patch


def _is_instance_list(raw: list[Any]) -> bool:
    """A list of attribute objects (multi-instance), as opposed to a concise array value."""
    return bool(raw) and all(
        isinstance(item, dict) and ("type" in item or "datasetId" in item) for item in raw
    )


def expand_instance(iri: str, raw: object, ctx: Context, *, allow_null: bool = False) -> Instance:
    """One attribute instance in normalized or concise form."""
    if raw is None or raw == NULL:
        if allow_null:
            return {"type": "Property", "value": NULL}
        raise BadRequestData(f"attribute {ctx.compact(iri)!r} has no value")
    if not isinstance(raw, dict) or not _looks_like_attribute(raw):
        # concise: a bare value (or a bare GeoJSON geometry)
        if isinstance(raw, dict) and raw.get("type") in GEOJSON_TYPES:
            return {"type": "GeoProperty", "value": raw}
        return {"type": "Property", "value": raw}
    kind = raw.get("type") or _implied_type(iri, raw)
    if kind not in ATTRIBUTE_TYPES:
        raise BadRequestData(f"attribute {ctx.compact(iri)!r} has unknown type {kind!r}")
    if raw.keys() <= _PLAIN_KEYS and next(iter(raw)) == "type" and raw["type"] == kind:
        # the common shape (its type first, then members taken as they are): copied whole, as the
        # loop below would copy it, with observedAt checked once per distinct value
        instance = dict(raw)
        if "observedAt" in instance:
            observed = instance["observedAt"]
            if not isinstance(observed, str) or observed not in _VALID_TIMES:
                _core_value("observedAt", observed, iri, ctx)  # raises unless valid (or null)
                if isinstance(observed, str):
                    if len(_VALID_TIMES) >= 10_000:
                        _VALID_TIMES.clear()
                    _VALID_TIMES.add(observed)
        _check_shape(kind, instance, iri, ctx, allow_null)
        return instance
    instance = {"type": kind}
    for key, value in raw.items():
        if key == "type" or key in SYSTEM_KEYS:
            continue
        if key in CORE_KEYS:
            instance[key] = _core_value(key, value, iri, ctx) if key in _CHECKED_CORE_KEYS else value
        else:
            sub = ctx.expand(check_name(key, "sub-attribute name"))
            instance[sub] = expand_instance(sub, value, ctx, allow_null=allow_null)
            instance[sub].pop("datasetId", None)
    _check_shape(kind, instance, iri, ctx, allow_null)
    return instance


def _looks_like_attribute(raw: dict[str, Any]) -> bool:
    if raw.get("type") in ATTRIBUTE_TYPES:
        return True
    if raw.get("type") in GEOJSON_TYPES and "coordinates" in raw:
        return False
    return any(
        key in raw for key in ("value", "object", "languageMap", "json", "vocab", "valueList", "objectList")
    )


def _implied_type(iri: str, raw: dict[str, Any]) -> str:
    if "object" in raw:
        return "Relationship"
    if "languageMap" in raw:
        return "LanguageProperty"
    if "json" in raw:
        return "JsonProperty"
    if "vocab" in raw:
        return "VocabProperty"
    if "valueList" in raw:
        return "ListProperty"
    if "objectList" in raw:
        return "ListRelationship"
    value = raw.get("value")
    if iri in GEO_ATTRIBUTES or (isinstance(value, dict) and value.get("type") in GEOJSON_TYPES):
        return "GeoProperty"
    return "Property"


def is_null(value: Any) -> bool:
    """NGSI-LD's null: ``urn:ngsi-ld:null``, or a languageMap of ``{"@none": "urn:ngsi-ld:null"}``."""
    if isinstance(value, str):
        return value == NULL
    return isinstance(value, dict) and len(value) == 1 and value.get("@none") == NULL


#: Core members whose values are checked or expanded; the others are taken as they are.
_CHECKED_CORE_KEYS = frozenset({"observedAt", "datasetId", "unitCode", "languageMap", "objectType", "vocab"})
#: The members of an instance that :func:`expand_instance` may copy without a look at each: those
#: taken as they are, and observedAt (checked on its own). No sub-attribute, no system member.
_PLAIN_KEYS = (CORE_KEYS - SYSTEM_KEYS - _CHECKED_CORE_KEYS) | {"observedAt"}
#: observedAt values already found valid: a batch's instances often share a few.
_VALID_TIMES: set[str] = set()


def _core_value(key: str, value: Any, iri: str, ctx: Context) -> Any:
    if is_null(value):
        return value
    if key == "observedAt":
        if not isinstance(value, str):
            raise BadRequestData(f"{ctx.compact(iri)}.observedAt must be an ISO 8601 date-time string")
        try:
            parse_datetime(value)
        except ValueError:
            raise BadRequestData(
                f"{ctx.compact(iri)}.observedAt {value!r} is not an ISO 8601 date-time"
            ) from None
    elif key == "datasetId" and not is_uri(value):
        require_uri(value, f"{ctx.compact(iri)}.datasetId")
    elif key == "unitCode" and not isinstance(value, str):
        raise BadRequestData(f"{ctx.compact(iri)}.unitCode must be a string")
    elif key == "languageMap":
        if not isinstance(value, dict) or not all(isinstance(v, str | list) for v in value.values()):
            raise BadRequestData(f"{ctx.compact(iri)}.languageMap must map language tags to strings")
    elif key == "objectType":
        return [ctx.expand(t) for t in value] if isinstance(value, list) else ctx.expand(str(value))
    elif key == "vocab":
        return [ctx.expand(v) for v in value] if isinstance(value, list) else ctx.expand(str(value))
    return value


#: The member that holds an instance's content, by attribute kind.
CONTENT_KEYS = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}


def content_key(kind: str) -> str:
    return CONTENT_KEYS.get(kind, "value")


def _check_shape(kind: str, instance: Instance, iri: str, ctx: Context, allow_null: bool) -> None:
    required = CONTENT_KEYS[kind]
    if required not in instance:
        raise BadRequestData(f"{kind} {ctx.compact(iri)!r} needs a {required!r} member")
    value = instance[required]
    if value is None or is_null(value):
        if value is None or not allow_null:
            raise BadRequestData(f"{kind} {ctx.compact(iri)!r} has a null {required}")
        return
    if kind == "Relationship":
        objects = value if isinstance(value, list) else [value]
        for target in objects:
            if not is_uri(target):
                require_uri(target, f"relationship {ctx.compact(iri)!r} object")
    elif kind == "GeoProperty":
        if not isinstance(value, dict) or value.get("type") not in GEOJSON_TYPES:
            raise BadRequestData(f"GeoProperty {ctx.compact(iri)!r} must hold a GeoJSON geometry")
    elif iri in GEO_ATTRIBUTES:
        raise BadRequestData(f"{ctx.compact(iri)!r} is a GeoProperty in NGSI-LD, not a {kind}")


# -- rendering --------------------------------------------------------------------------------------


def compact_entity(
    entity: Mapping[str, Any],
    ctx: Context,
    *,
    fmt: Format = "normalized",
    attrs: Iterable[str] | None = None,
    sys_attrs: bool = False,
    languages: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The entity as a client sees it; ``attrs`` are expanded names to keep (None: all)."""
    types = [ctx.compact(t) for t in entity["type"]]
    out: dict[str, Any] = {"id": entity["id"], "type": types[0] if len(types) == 1 else types}
    if entity.get("scope"):
        scopes = entity["scope"]
        out["scope"] = scopes[0] if len(scopes) == 1 else scopes
    if sys_attrs and fmt != "keyValues":
        out["createdAt"] = entity["createdAt"]
        out["modifiedAt"] = entity["modifiedAt"]
    wanted = None if attrs is None else set(attrs)
    for iri, instances in entity["attrs"].items():
        if wanted is not None and iri not in wanted:
            continue
        rendered = [_render(instance, ctx, fmt, sys_attrs, languages) for instance in instances]
        out[ctx.compact(iri)] = rendered[0] if len(rendered) == 1 else rendered
    return out


def _render(
    instance: Instance, ctx: Context, fmt: Format, sys_attrs: bool, languages: Sequence[str] | None
) -> Any:
    kind = instance["type"]
    if fmt == "keyValues":
        return _key_value(instance, kind, languages)
    out: dict[str, Any] = {}
    for key, value in instance.items():
        if key in CORE_KEYS:
            if key in SYSTEM_KEYS and not sys_attrs:
                continue
            if key == "objectType" or key == "vocab":
                value = [ctx.compact(v) for v in value] if isinstance(value, list) else ctx.compact(value)
            out[key] = value
        else:
            out[ctx.compact(key)] = _render(value, ctx, fmt, sys_attrs, languages)
    if languages is not None and kind == "LanguageProperty":
        tag, text = pick_language(instance["languageMap"], languages)
        rest = {k: v for k, v in out.items() if k not in {"type", "languageMap"}}
        out = {"type": "Property", "value": text, "lang": tag} | rest
    if fmt == "concise":
        out.pop("type", None)
        if set(out) == {"value"} and not isinstance(out["value"], dict):
            return out["value"]
        if kind == "GeoProperty" and set(out) == {"value"}:
            return out["value"]
    return out


def _key_value(instance: Instance, kind: str, languages: Sequence[str] | None) -> Any:
    if kind == "Relationship":
        return instance["object"]
    if kind == "LanguageProperty":
        if languages is None:
            return {"languageMap": instance["languageMap"]}
        return pick_language(instance["languageMap"], languages)[1]
    key = {
        "JsonProperty": "json",
        "VocabProperty": "vocab",
        "ListProperty": "valueList",
        "ListRelationship": "objectList",
    }
    return instance.get(key.get(kind, "value"))


def pick_language(language_map: Mapping[str, Any], languages: Sequence[str]) -> tuple[str, Any]:
    """The best entry for the caller's ranked tags: exact tag, then same primary language; ``*``
    (or no match at all) takes the first entry, as NGSI-LD allows."""
    for wanted in languages:
        if wanted == "*":
            break
        if wanted in language_map:
            return wanted, language_map[wanted]
        primary = wanted.split("-")[0]
        for tag, value in language_map.items():
            if tag.split("-")[0] == primary:
                return tag, value
    tag = next(iter(language_map), "")
    return tag, language_map.get(tag)
