"""Personal data in entities: sealed where stored, revealed where shown.

The broker knows its entity form; what is personal, how it is masked and how it is encrypted is
the security system's to say, through a :class:`Protector` installed at start-up (the hub does it;
without one, nothing is classified and entities pass unchanged). Two points use it:

- the write path (``service.create_entity``, ``write_many``, ``save_entity`` and the temporal
  store) calls :func:`seal`: the content of each attribute classified ``sensitive`` is replaced
  by an envelope ``{"encrypted": "v1:<key id>:<nonce+ciphertext, base64>"}`` before the entity
  is stored, announced or kept in the history;
- the render path (``views.View.render``, ``history.render``) asks the request's
  :class:`Disclosure` for the entity as the caller may see it: envelopes opened, and every
  classified attribute masked unless the caller holds the clearance. What a cleared caller was
  shown unmasked is noted for the audit chain.

Sub-attributes of a classified attribute (at any depth) are treated as the attribute: sealed with
it when it is sensitive (each bound to its own path), masked with its mask. ``q`` and ``orderBy``
see entities through :meth:`Disclosure.comparable` / :meth:`Disclosure.orderable`, so a caller
without clearance can neither filter nor sort by a classified attribute.

Attributes are matched by their local name (the last segment of the IRI: ``reporterPhone`` of
``https://uri.etsi.org/ngsi-ld/default-context/reporterPhone``), types likewise, as data models
name them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from cityhub.hub.broker.ngsi import CORE_KEYS, content_key

ENVELOPE = "encrypted"
Matcher = Callable[[dict[str, Any]], bool]
ENVELOPE_PREFIX = "v1:"
_LOCAL = re.compile(r"[/#:]")


@dataclass(frozen=True)
class Rule:
    """How one attribute is classified: ``personal`` (masked) or ``sensitive`` (masked and
    encrypted at rest), and the mask that hides it (``id_card``, ``phone``, ``plate``, ...)."""

    level: str
    mask: str

    @property
    def sealed(self) -> bool:
        return self.level == "sensitive"


class Protector(Protocol):
    def rules(self, types: tuple[str, ...]) -> Mapping[str, Rule]:
        """Classified attributes of an entity of these types (IRIs), by attribute local name."""
        ...

    def encrypt(self, plaintext: bytes, context: bytes) -> str:
        """``v1:<key id>:<base64>`` under the current key, bound to ``context``."""
        ...

    def decrypt(self, token: str, context: bytes) -> bytes:
        """The plaintext of :meth:`encrypt`'s token; raises a HubError naming the problem."""
        ...

    def mask(self, kind: str, value: Any) -> Any: ...


_installed: list[Protector] = []


def install(protector: Protector | None) -> None:
    """Use ``protector`` from now on in this process (None: none)."""
    _installed.clear()
    if protector is not None:
        _installed.append(protector)


def installed() -> Protector | None:
    return _installed[0] if _installed else None


def local_name(iri: str) -> str:
    return _LOCAL.split(iri)[-1]


def is_sealed(content: Any) -> bool:
    return (
        isinstance(content, dict)
        and len(content) == 1
        and isinstance(content.get(ENVELOPE), str)
        and content[ENVELOPE].startswith(ENVELOPE_PREFIX)
    )


def binding(entity_id: str, attribute: str, *path: str) -> bytes:
    """What a ciphertext is bound to: it opens only as the value of this entity's attribute
    (``path``: the sub-attributes down to the one it is the value of)."""
    return "\n".join((entity_id, attribute, *path)).encode()


def sub_attributes(instance: Mapping[str, Any]) -> list[str]:
    """The sub-attributes (IRIs) of an attribute instance in the internal form."""
    return [key for key, value in instance.items() if key not in CORE_KEYS and isinstance(value, dict)]


def classified(types: Sequence[str], names: Iterable[str]) -> dict[str, Rule]:
    """The rules of the classified attributes among ``names`` (IRIs) of an entity of ``types``."""
    protector = installed()
    if protector is None:
        return {}
    rules = protector.rules(tuple(types))
    if not rules:
        return {}
    found = {}
    for name in names:
        rule = rules.get(local_name(name))
        if rule is not None:
            found[name] = rule
    return found


def _seal_one(
    protector: Protector, entity_id: str, name: str, instance: dict[str, Any], path: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The instance with its content and its sub-attributes' contents (at any depth) encrypted;
    each bound to its own place, so no sealed member opens as another."""
    key = content_key(instance.get("type", "Property"))
    content = instance.get(key)
    sealed = dict(instance)
    if content is not None and not is_sealed(content) and content != "urn:ngsi-ld:null":
        sealed[key] = {ENVELOPE: protector.encrypt(orjson.dumps(content), binding(entity_id, name, *path))}
    for sub in sub_attributes(instance):
        sealed[sub] = _seal_one(protector, entity_id, name, instance[sub], (*path, sub))
    return sealed


def seal_instances(
    entity_id: str, types: Sequence[str], name: str, instances: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Instances of one attribute as stored: encrypted when the attribute is sensitive."""
    rule = classified(types, (name,)).get(name)
    protector = installed()
    if rule is None or not rule.sealed or protector is None:
        return instances
    return [_seal_one(protector, entity_id, name, instance) for instance in instances]


def seal(entity: dict[str, Any]) -> dict[str, Any]:
    """The entity as stored: itself when it holds nothing sensitive, else a copy whose sensitive
    attributes' contents are encrypted (the instances are replaced, never changed in place)."""
    rules = classified(entity["type"], entity["attrs"])
    sealed = [name for name, rule in rules.items() if rule.sealed]
    if not sealed:
        return entity
    attrs = dict(entity["attrs"])
    for name in sealed:
        attrs[name] = seal_instances(entity["id"], entity["type"], name, attrs[name])
    return entity | {"attrs": attrs}


def open_content(entity_id: str, name: str, content: Any, path: tuple[str, ...] = ()) -> Any:
    """An attribute's (``path``: sub-attribute's) content as written: envelopes opened (content
    that is none is as it is)."""
    if not is_sealed(content):
        return content
    protector = installed()
    if protector is None:
        return content
    return orjson.loads(protector.decrypt(content[ENVELOPE], binding(entity_id, name, *path)))


@dataclass
class Disclosure:
    """How one answer shows personal data. ``clear``: classified attributes are shown as written
    (the caller holds the clearance, or access control is off); otherwise masked. ``audited``:
    what is shown unmasked is noted (``entities``, ``attributes``) for the audit chain."""

    clear: bool
    audited: bool = False
    entities: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)

    def _shown(
        self, entity_id: str, name: str, rule: Rule, instance: dict[str, Any], path: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """One instance as shown: its content and its sub-attributes' contents (at any depth: a
        sub-attribute of a classified attribute is as personal as the attribute, and masked
        with the attribute's mask) opened, then masked unless the caller is cleared."""
        protector = installed()
        assert protector is not None
        key = content_key(instance.get("type", "Property"))
        shown = dict(instance)
        for member in (key, "previous" + key[0].upper() + key[1:]):
            if member not in shown or shown[member] == "urn:ngsi-ld:null":
                continue
            content = open_content(entity_id, name, shown[member], path)
            shown[member] = content if self.clear else protector.mask(rule.mask, content)
        for sub in sub_attributes(instance):
            shown[sub] = self._shown(entity_id, name, rule, instance[sub], (*path, sub))
        return shown

    def instances(
        self, entity_id: str, types: Sequence[str], name: str, instances: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Instances of one attribute as this answer shows them."""
        rule = classified(types, (name,)).get(name)
        if rule is None or not instances:
            return instances
        if self.clear and self.audited:
            self.entities.add(entity_id)
            self.attributes.add(local_name(name))
        return [self._shown(entity_id, name, rule, instance) for instance in instances]

    def entity(self, entity: dict[str, Any], names: Iterable[str] | None = None) -> dict[str, Any]:
        """The entity as this answer shows it; ``names`` (IRIs; None: all) are the attributes shown."""
        attrs = entity["attrs"]
        shown = attrs if names is None else [name for name in names if name in attrs]
        rules = classified(entity["type"], shown)
        if not rules:
            return entity
        revealed = dict(attrs)
        for name in rules:
            revealed[name] = self.instances(entity["id"], entity["type"], name, attrs[name])
        return entity | {"attrs": revealed}

    def aggregable(self, entity: dict[str, Any], name: str) -> bool:
        """Whether aggregates of an attribute may be shown: always with clearance (noted), never
        of a classified attribute without it."""
        if not classified(entity["type"], (name,)):
            return True
        if self.clear and self.audited:
            self.entities.add(entity["id"])
            self.attributes.add(local_name(name))
        return self.clear

    def comparable(self, entity: dict[str, Any]) -> dict[str, Any]:
        """The entity as q compares it for this caller: without clearance, classified attributes
        are absent (a comparison would let the caller recover a masked value guess by guess)."""
        if self.clear:
            return entity
        rules = classified(entity["type"], entity["attrs"])
        if not rules:
            return entity
        return entity | {"attrs": {n: i for n, i in entity["attrs"].items() if n not in rules}}

    def orderable(self, entity: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
        """The entity as ``orderBy`` sorts it for this caller, ``names`` (IRIs) being the
        attributes the keys name. Without clearance, as :meth:`comparable`: classified attributes
        are absent, so such entities come last, in the broker's own order (sorting by a masked
        value would tell its rank among the others). With clearance, sensitive attributes are
        opened, so they sort by their values rather than by ciphertext; nothing is noted for the
        audit chain, as ordering shows no value (the answer's own rendering notes what it shows)."""
        if not self.clear:
            return self.comparable(entity)
        rules = classified(entity["type"], [name for name in names if name in entity["attrs"]])
        sealed = [name for name, rule in rules.items() if rule.sealed]
        if not sealed:
            return entity
        opened = Disclosure(clear=True)
        attrs = dict(entity["attrs"])
        for name in sealed:
            attrs[name] = [opened._shown(entity["id"], name, rules[name], i) for i in attrs[name]]
        return entity | {"attrs": attrs}

    def guard_query(
        self, matches: Callable[[dict[str, Any]], bool] | None
    ) -> Callable[[dict[str, Any]], bool] | None:
        """``matches`` (a compiled q, scopeQ, type expression) over :meth:`comparable` entities."""
        if matches is None or self.clear:
            return matches
        return lambda entity: matches(self.comparable(entity))

    def noted(self) -> dict[str, Any] | None:
        """What was shown unmasked, for the audit record (names, never values); None: nothing."""
        if not self.entities:
            return None
        ids = sorted(self.entities)
        return {"entities": ids[:100], "entity_count": len(ids), "attributes": sorted(self.attributes)}


#: Subscribers are systems without clearance: notifications are masked.
def for_subscribers() -> Disclosure:
    return Disclosure(clear=False)
