"""How a retrieved entity is shown: pick/omit projections, attrs and datasetId filters, language
selection, linked-entity joins and GeoJSON (ETSI GS CIM 009 v1.8, clauses 4.5, 4.21, 4.23)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cityhub.hub.broker.ngsi import NGSI_LD, Context, Format, check_name, compact_entity, require_uri
from cityhub.hub.broker.protection import Disclosure
from cityhub.kit.errors import BadRequestData

NONE_DATASET = "@none"
MAX_JOIN_LEVEL = 5

#: A projection: member or attribute name → the projection of the entity it links to (or None).
Projection = dict[str, "Projection | None"]


def parse_dataset_ids(text: str | None) -> set[str | None] | None:
    """The ``datasetId`` parameter: URIs, ``@none`` (None) for the default instances."""
    if text is None:
        return None
    return {None if item == NONE_DATASET else require_uri(item, "datasetId") for item in text.split(",")}


def parse_projection(text: str, what: str) -> Projection:
    """``name,locatedAt{name,locatedAt{name}}`` → nested dict; a 400 for anything malformed."""
    projection, position = _parse_list(text, 0, what, depth=0)
    if position != len(text):
        raise BadRequestData(f"{what}: unexpected {text[position]!r} at position {position}")
    return projection


def _parse_list(text: str, position: int, what: str, depth: int) -> tuple[Projection, int]:
    if depth > MAX_JOIN_LEVEL:
        raise BadRequestData(f"{what}: nested more than {MAX_JOIN_LEVEL} levels")
    items: Projection = {}
    while True:
        start = position
        while position < len(text) and text[position] not in ",{}":
            position += 1
        name = text[start:position]
        if not name:
            found = repr(text[position]) if position < len(text) else "the end"
            raise BadRequestData(f"{what}: expected a name at position {position}, found {found}")
        check_name(name, what)
        nested: Projection | None = None
        if position < len(text) and text[position] == "{":
            nested, position = _parse_list(text, position + 1, what, depth + 1)
            if position >= len(text) or text[position] != "}":
                raise BadRequestData(f"{what}: '{{' opened for {name!r} is not closed")
            position += 1
        items[name] = nested
        if position < len(text) and text[position] == ",":
            position += 1
            continue
        return items, position


def parse_languages(text: str | None) -> list[str] | None:
    """``fr-CH,fr;q=0.9,en;q=0.8,*;q=0.5`` → tags by preference."""
    if text is None:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(text.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                raise BadRequestData(f"lang: bad quality value in {part!r}") from None
        if not tag:
            raise BadRequestData(f"lang: empty language tag in {text!r}")
        ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


@dataclass
class View:
    ctx: Context
    fmt: Format = "normalized"
    sys_attrs: bool = False
    languages: list[str] | None = None
    pick: Projection | None = None
    omit: Projection | None = None
    attrs: set[str] | None = None  # expanded names, from ``attrs``
    dataset_ids: set[str | None] | None = None
    join: str | None = None  # inline | flat
    join_level: int = 1
    geometry_property: str = NGSI_LD + "location"
    #: How personal information is shown (None: as stored, for internal renderings).
    disclosure: Disclosure | None = None

    def __post_init__(self) -> None:
        if self.pick is not None and self.omit is not None:
            both = set(self.pick) & set(self.omit)
            if both:
                raise BadRequestData(f"{', '.join(sorted(both))} is both picked and omitted")
        if self.attrs is not None and (self.pick is not None or self.omit is not None):
            raise BadRequestData("attrs cannot be combined with pick or omit; use pick")
        if self.join not in (None, "inline", "flat", "@none"):
            raise BadRequestData("join must be inline, flat or @none")
        if self.join == "@none":
            self.join = None
        if not 1 <= self.join_level <= MAX_JOIN_LEVEL:
            raise BadRequestData(f"joinLevel must be between 1 and {MAX_JOIN_LEVEL}")

    def nested(self, pick: Projection | None, omit: Projection | None) -> View:
        """The view of a linked entity: the same rendering, its own projection, no filters."""
        return replace(self, pick=pick, omit=omit, attrs=None, dataset_ids=None)

    def wanted(self, entity: dict[str, Any]) -> tuple[set[str] | None, bool, bool]:
        """Attributes to show (expanded; None: all) and whether to show id and type."""
        if self.pick is not None:
            names = {self.ctx.expand(n) for n in self.pick if n not in ("id", "type")}
            return names, "id" in self.pick, "type" in self.pick
        if self.omit is not None:
            # ``locatedAt{name}`` omits name from the linked entity, not locatedAt itself
            dropped = {
                self.ctx.expand(n) for n, sub in self.omit.items() if sub is None and n not in ("id", "type")
            }
            return set(entity["attrs"]) - dropped, "id" not in self.omit, "type" not in self.omit
        return self.attrs, True, True

    def matches_attrs(self, entity: dict[str, Any]) -> bool:
        """With ``attrs`` (or a pick of attributes) an entity must have at least one of them."""
        if self.attrs is not None:
            names = self.attrs
        elif self.pick is not None:
            if "id" in self.pick or "type" in self.pick:
                return True  # something of every entity is picked
            names = {self.ctx.expand(n) for n in self.pick}
        else:
            return True
        return any(name in entity["attrs"] for name in names)

    def _instances(self, entity: dict[str, Any], name: str) -> list[dict[str, Any]]:
        instances: list[dict[str, Any]] = entity["attrs"].get(name, [])
        if self.dataset_ids is None:
            return instances
        return [i for i in instances if i.get("datasetId") in self.dataset_ids]

    def render(self, entity: dict[str, Any]) -> dict[str, Any]:
        names, show_id, show_type = self.wanted(entity)
        if self.disclosure is not None:
            entity = self.disclosure.entity(entity, names)
        if self.dataset_ids is not None:
            filtered = {n: self._instances(entity, n) for n in entity["attrs"]}
            entity = entity | {"attrs": {n: i for n, i in filtered.items() if i}}
        out = compact_entity(
            entity, self.ctx, fmt=self.fmt, attrs=names, sys_attrs=self.sys_attrs, languages=self.languages
        )
        if not show_id:
            out.pop("id", None)
        if not show_type:
            out.pop("type", None)
        return out


Fetch = Callable[[Sequence[str]], Awaitable[dict[str, dict[str, Any]]]]


async def render_all(entities: Sequence[dict[str, Any]], view: View, fetch: Fetch) -> list[Any]:
    """Entities as shown to the caller; with ``join`` linked entities are fetched and shown inline
    (inside their relationship) or flat (after the entities that link to them)."""
    rendered = [view.render(entity) for entity in entities]
    if view.join is None:
        return rendered
    flat: dict[str, Any] = {}
    await _join(entities, rendered, view, fetch, view.join_level, flat)
    if view.join == "flat":
        ids = {r.get("id") for r in rendered}
        rendered.extend(item for key, item in flat.items() if key not in ids)
    return rendered


async def _join(
    entities: Sequence[dict[str, Any]],
    rendered: list[dict[str, Any]],
    view: View,
    fetch: Fetch,
    level: int,
    flat: dict[str, Any],
) -> None:
    links: list[tuple[dict[str, Any], str, str, Projection | None, Projection | None]] = []
    for entity, out in zip(entities, rendered, strict=True):
        for iri, instances in entity["attrs"].items():
            term = view.ctx.compact(iri)
            if term not in out:
                continue
            for instance in instances:
                if instance.get("type") == "Relationship" and isinstance(instance.get("object"), str):
                    pick = (view.pick or {}).get(term)
                    omit = (view.omit or {}).get(term)
                    links.append((out, term, instance["object"], pick, omit))
    if not links:
        return
    targets = await fetch(list(dict.fromkeys(link[2] for link in links)))
    for out, term, target_id, pick, omit in links:
        target = targets.get(target_id)
        if target is None:
            continue
        child_view = view.nested(pick, omit)
        shown = child_view.render(target)
        if level > 1:
            await _join([target], [shown], child_view, fetch, level - 1, flat)
        if view.join == "flat":
            flat.setdefault(target_id, shown)
            continue
        if view.fmt == "keyValues":
            out[term] = shown
        elif isinstance(out[term], dict):
            out[term]["entity"] = shown


def feature(rendered: dict[str, Any], entity: dict[str, Any], geometry_property: str) -> dict[str, Any]:
    """An entity as a GeoJSON Feature (clause 4.5.16): its geometry property is the geometry."""
    geometry = next(
        (
            i.get("value")
            for i in entity["attrs"].get(geometry_property, ())
            if i.get("type") == "GeoProperty"
        ),
        None,
    )
    return {
        "id": rendered.get("id", entity["id"]),
        "type": "Feature",
        "geometry": geometry,
        "properties": {k: v for k, v in rendered.items() if k != "id"},
    }
