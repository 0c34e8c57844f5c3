"""Changes to an entity in the internal form: append, update, merge, delete attributes.

Every function works on one entity dict in place and returns what it did, so the service can answer
with NGSI-LD's UpdateResult (``updated`` / ``notUpdated``) and tell subscribers what changed.
Instances of one attribute are matched by ``datasetId`` (no datasetId: the default instance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cityhub.hub.broker.ngsi import NULL, SYSTEM_KEYS, Attributes, Instance, is_null
from cityhub.kit.errors import BadRequestData
from cityhub.kit.jsondata import json_copy


@dataclass
class UpdateResult:
    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)  # (attribute IRI, reason)

    @property
    def changed(self) -> bool:
        return bool(self.updated)


def add_types(entity: dict[str, Any], types: list[str]) -> None:
    """An entity's types only grow by appends, updates and merges; order is kept."""
    entity["type"] = list(dict.fromkeys([*entity["type"], *types]))


def stamp(entity: dict[str, Any], now: str, *, created: bool = False) -> None:
    """Set modifiedAt (and createdAt when new) on the entity and on instances that lack them."""
    if created or "createdAt" not in entity:
        entity["createdAt"] = now
    entity["modifiedAt"] = now
    for instances in entity["attrs"].values():
        for instance in instances:
            _stamp_instance(instance, now)


def _stamp_instance(instance: Instance, now: str) -> None:
    instance.setdefault("createdAt", now)
    instance.setdefault("modifiedAt", now)


def _find(instances: list[Instance], dataset_id: str | None) -> int | None:
    for index, instance in enumerate(instances):
        if instance.get("datasetId") == dataset_id:
            return index
    return None


def _replace_instance(old: Instance, new: Instance, now: str) -> Instance:
    replacement = json_copy(new)
    replacement["createdAt"] = old.get("createdAt", now)
    replacement["modifiedAt"] = now
    return replacement


def append(entity: dict[str, Any], attrs: Attributes, now: str, *, overwrite: bool = True) -> UpdateResult:
    """POST /entities/{id}/attrs: add attributes; existing instances are replaced unless
    ``overwrite`` is false (``options=noOverwrite``)."""
    result = UpdateResult()
    for iri, instances in attrs.items():
        current = entity["attrs"].setdefault(iri, [])
        for instance in instances:
            index = _find(current, instance.get("datasetId"))
            if index is None:
                new = json_copy(instance)
                _stamp_instance(new, now)
                current.append(new)
            elif overwrite:
                current[index] = _replace_instance(current[index], instance, now)
            else:
                result.not_updated.append((iri, "attribute exists and noOverwrite was asked"))
                continue
            if iri not in result.updated:
                result.updated.append(iri)
    if result.updated:
        entity["modifiedAt"] = now
    return result


def update(entity: dict[str, Any], attrs: Attributes, now: str, *, add_missing: bool = False) -> UpdateResult:
    """Replace instances that exist. The others are reported as not updated or, with
    ``add_missing`` (PATCH /entities/{id}/attrs, as the ETSI conformance suite reads clause 5.6.2
    since v1.8.1), added; a null for a missing instance has nothing to delete and is reported."""
    result = UpdateResult()
    for iri, instances in attrs.items():
        current = entity["attrs"].get(iri)
        for instance in instances:
            index = None if current is None else _find(current, instance.get("datasetId"))
            if current is None or index is None:
                if not add_missing or _is_null(instance):
                    result.not_updated.append((iri, "attribute (with this datasetId) does not exist"))
                    continue
                new = json_copy(instance)
                _stamp_instance(new, now)
                current = entity["attrs"].setdefault(iri, [])
                current.append(new)
                if iri not in result.updated:
                    result.updated.append(iri)
                continue
            if _is_null(instance):  # NGSI-LD: updating to urn:ngsi-ld:null deletes
                delete_attribute(entity, iri, dataset_id=instance.get("datasetId"))
            else:
                current[index] = _replace_instance(current[index], instance, now)
            if iri not in result.updated:
                result.updated.append(iri)
    if result.updated:
        entity["modifiedAt"] = now
    return result


def partial_update(entity: dict[str, Any], iri: str, fragment: Instance, now: str) -> bool:
    """PATCH /entities/{id}/attrs/{attrId}: merge the given members into one existing instance.
    Returns False when that attribute or instance does not exist."""
    current = entity["attrs"].get(iri)
    index = None if current is None else _find(current, fragment.get("datasetId"))
    if current is None or index is None:
        return False
    if _is_null(fragment):
        delete_attribute(entity, iri, dataset_id=fragment.get("datasetId"))
        entity["modifiedAt"] = now
        return True
    target = current[index]
    if "type" in fragment and fragment["type"] != target["type"]:
        raise BadRequestData(f"the attribute is a {target['type']}, not a {fragment['type']}")
    for key, value in fragment.items():
        if key in SYSTEM_KEYS:
            continue
        target[key] = json_copy(value)
    target["modifiedAt"] = now
    entity["modifiedAt"] = now
    return True


def delete_attribute(
    entity: dict[str, Any], iri: str, *, dataset_id: str | None = None, delete_all: bool = False
) -> bool:
    """DELETE /entities/{id}/attrs/{attrId}; False when nothing matched."""
    current = entity["attrs"].get(iri)
    if current is None:
        return False
    if delete_all:
        del entity["attrs"][iri]
        return True
    index = _find(current, dataset_id)
    if index is None:
        return False
    current.pop(index)
    if not current:
        del entity["attrs"][iri]
    return True


def merge(entity: dict[str, Any], patch: dict[str, Any], now: str) -> UpdateResult:
    """PATCH /entities/{id} (merge-patch): attributes are merged member by member; a value of
    ``urn:ngsi-ld:null`` deletes the attribute (or the sub-attribute) it stands for."""
    result = UpdateResult()
    if "type" in patch:
        add_types(entity, patch["type"])
    if "scope" in patch:
        entity["scope"] = patch["scope"]
    for iri, instances in patch["attrs"].items():
        for instance in instances:
            if _is_null(instance):
                if delete_attribute(entity, iri, dataset_id=instance.get("datasetId")):
                    result.updated.append(iri)
                continue
            current = entity["attrs"].setdefault(iri, [])
            index = _find(current, instance.get("datasetId"))
            if index is None:
                new = _strip_nulls(json_copy(instance))
                _stamp_instance(new, now)
                current.append(new)
            else:
                current[index] = _merge_instance(current[index], instance, now)
            if iri not in result.updated:
                result.updated.append(iri)
    entity["modifiedAt"] = now
    return result


def _is_null(instance: Instance) -> bool:
    return any(is_null(instance.get(key)) for key in ("value", "object", "languageMap", "json", "vocab"))


def _merge_instance(old: Instance, new: Instance, now: str) -> Instance:
    merged = json_copy(old)
    for key, value in new.items():
        if key in SYSTEM_KEYS:
            continue
        if isinstance(value, dict) and _is_null(value):
            merged.pop(key, None)
        elif key == "value" and isinstance(value, dict) and isinstance(merged.get("value"), dict):
            merged["value"] = _merge_json(merged["value"], value)
        else:
            merged[key] = json_copy(value)
    merged["modifiedAt"] = now
    return merged


def _merge_json(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for key, value in new.items():
        if value == NULL:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_json(out[key], value)
        else:
            out[key] = value
    return out


def _strip_nulls(instance: Instance) -> Instance:
    return {k: v for k, v in instance.items() if not (isinstance(v, dict) and _is_null(v))}


def replace(entity: dict[str, Any], new: dict[str, Any], now: str) -> None:
    """PUT /entities/{id}: everything but the id and createdAt is replaced."""
    replacement = replaced(entity, json_copy(new), now)
    entity.clear()
    entity.update(replacement)


def replaced(old: dict[str, Any], new: dict[str, Any], now: str) -> dict[str, Any]:
    """``new`` stamped as the replacement of ``old`` (it keeps ``old``'s createdAt). ``new`` is
    taken over, not copied: the batch path hands over entities it has just expanded."""
    stamp(new, now)
    new["createdAt"] = old["createdAt"]
    return new
