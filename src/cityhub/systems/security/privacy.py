"""Personal information: masks, the data key ring, and the classification data models carry.

- **Masks** (pure functions): what a caller without the ``personal:read`` clearance sees of an ID-card
  number, a mobile number, a licence plate, a name, an e-mail address or a street address. A value
  that is not of the expected form is masked fully (``***``), never shown; masking a masked value
  gives it back unchanged.
- **Key ring** (``CITYHUB_DATA_KEYS``): AES-256-GCM keys by id; the first encrypts, every one
  decrypts, so a key is rotated by putting a new one first and re-encrypting
  (``cityhub security rotate-data-key``) before the old one is removed.
- **Classification**: a data model's attribute carries ``"x-personal": "personal" | "sensitive"``
  and ``"x-mask"``; :class:`PersonalData` is what the broker is given to seal and reveal them
  (:mod:`cityhub.hub.broker.protection`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cityhub.config import Settings
from cityhub.hub.broker.protection import ENVELOPE_PREFIX, Rule, local_name
from cityhub.kit.errors import HUB_ERRORS, HubError
from cityhub.systems.standards.datamodels import MASKS, DataModels
from cityhub.systems.standards.datamodels import PERSONAL_LEVELS as LEVELS

FULL = "***"

# -- masks -----------------------------------------------------------------------------------------

_ID18 = re.compile(r"^\d{17}[\dXx]$")
_ID15 = re.compile(r"^\d{15}$")
_ID_MASKED = re.compile(r"^\d{6}\*{5,8}[\dXx]{4}$")


def mask_id_card(value: str) -> str:
    """Resident ID-card number (GB 11643): the region code (first 6) and the last 4 are kept,
    the birth date and sequence hidden: ``410105********1234``; the old 15-digit form alike."""
    text = value.strip()
    if _ID_MASKED.match(text):
        return text
    if _ID18.match(text) or _ID15.match(text):
        return text[:6] + "*" * (len(text) - 10) + text[-4:]
    return FULL


_MOBILE = re.compile(r"^(?P<prefix>(?:\+86|0086|86)[ -]?)?(?P<number>1[3-9]\d[ -]?\d{4}[ -]?\d{4})$")
_MOBILE_MASKED = re.compile(r"^(?P<prefix>(?:\+86|0086|86)[ -]?)?1[3-9]\d\*{4}\d{4}$")


def mask_phone(value: str) -> str:
    """Mainland mobile number: ``138****5678``; a ``+86``/``0086`` prefix is kept as written."""
    text = value.strip()
    if _MOBILE_MASKED.match(text):
        return text
    found = _MOBILE.match(text)
    if found is None:
        return FULL
    digits = re.sub(r"\D", "", found["number"])
    return (found["prefix"] or "") + digits[:3] + "****" + digits[-4:]


PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE = re.compile(
    rf"^(?P<head>[{PROVINCES}][A-HJ-NP-Z])[·.\- ]?(?P<tail>[A-HJ-NP-Z0-9]{{4,5}}[A-HJ-NP-Z0-9挂学警港澳])$"
)
_PLATE_MASKED = re.compile(rf"^[{PROVINCES}][A-HJ-NP-Z]·\*{{3,4}}[A-HJ-NP-Z0-9挂学警港澳]{{2}}$")


def mask_plate(value: str) -> str:
    """Licence plate (GA 36): province and issuing-office letter kept, the middle hidden, the last
    two shown: ``豫A·***23``; new-energy plates (8 characters) ``豫A·****23``."""
    text = value.strip().upper()
    if _PLATE_MASKED.match(text):
        return text
    found = _PLATE.match(text)
    if found is None:
        return FULL
    tail = found["tail"]
    return found["head"] + "·" + "*" * (len(tail) - 2) + tail[-2:]


#: Two-character surnames, kept whole.
COMPOUND_SURNAMES = frozenset(
    (
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "轩辕",
        "令狐",
        "钟离",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "呼延",
        "澹台",
        "公冶",
        "太史",
        "申屠",
        "万俟",
        "闻人",
        "赫连",
        "拓跋",
        "百里",
    )
)
_CJK = re.compile(r"^[\u3400-\u9fff·•*]+$")
_LATIN = re.compile(r"^[A-Za-zÀ-ɏ*][A-Za-zÀ-ɏ'.\-*]*(?: [A-Za-zÀ-ɏ*][A-Za-zÀ-ɏ'.\-*]*)*$")


def mask_name(value: str) -> str:
    """Person's name: the surname kept (``张*``, ``欧阳**``); Latin names keep each word's first
    letter (``J*** S****``)."""
    text = " ".join(value.split())
    if not text:
        return FULL
    if _CJK.match(text):
        keep = 2 if text[:2] in COMPOUND_SURNAMES and len(text) > 2 else 1
        if len(text) == 1:
            return "*"
        return text[:keep] + "".join(c if c in "·•" else "*" for c in text[keep:])
    if _LATIN.match(text):
        return " ".join(word[0] + "*" * (len(word) - 1) for word in text.split(" "))
    return FULL


_EMAIL = re.compile(r"^(?P<local>[^@\s]+)@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)$")


def mask_email(value: str) -> str:
    """E-mail address: first character of the mailbox and the domain kept: ``z***@example.com``."""
    found = _EMAIL.match(value.strip())
    if found is None:
        return FULL
    local = found["local"]
    first = local[0] if len(local) > 1 and local[0] != "*" else ""
    return f"{first}***@{found['domain']}"


_DISTRICT = re.compile(r"^.{1,24}?[区县旗]")
_CITY = re.compile(r"^.{1,12}?市")


def mask_address(value: str) -> str:
    """Street address: the administrative part (province, city, district or county) kept, the
    street and number hidden: ``河南省郑州市金水区****``."""
    text = value.strip()
    found = _DISTRICT.match(text) or _CITY.match(text)
    if found is None or "*" in found[0]:
        return FULL
    return found[0] + "****"


def mask_full(value: Any) -> str:
    return FULL


_MASKERS = {
    "id_card": mask_id_card,
    "phone": mask_phone,
    "plate": mask_plate,
    "name": mask_name,
    "email": mask_email,
    "address": mask_address,
}


def mask(kind: str, value: Any) -> Any:
    """``value`` masked as ``kind``; any value not of its form (not a string, or malformed, or a
    kind not known) gives ``***``. A list is masked item by item."""
    if isinstance(value, list):
        return [mask(kind, item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and kind in ("id_card", "phone"):
        value = str(value)
    masker = _MASKERS.get(kind)
    if masker is None or not isinstance(value, str):
        return FULL
    return masker(value)


# -- keys ------------------------------------------------------------------------------------------


class DataKeyError(HubError):
    """Stored personal data cannot be decrypted with the keys this hub holds."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = HUB_ERRORS + "data-key"
    title: ClassVar[str] = "Stored personal data cannot be decrypted"


class InvalidDataKeys(ValueError):
    """``CITYHUB_DATA_KEYS`` cannot be read."""


_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
NONCE = 12


class KeyRing:
    """AES-256-GCM keys by id, the first the current one."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise InvalidDataKeys("at least one data key is needed")
        self._keys: dict[str, AESGCM] = {}
        for key_id, material in keys:
            if not _KEY_ID.match(key_id):
                raise InvalidDataKeys(f"data key id {key_id!r}: letters, digits, - and _, at most 32")
            if len(material) != 32:
                raise InvalidDataKeys(
                    f"data key {key_id}: 32 bytes (256 bits) are needed, got {len(material)}"
                )
            if key_id in self._keys:
                raise InvalidDataKeys(f"data key id {key_id} is given twice")
            self._keys[key_id] = AESGCM(material)
        self.current = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """``id:base64key,id:base64key``: the first is current."""
        keys = []
        for item in text.split(","):
            key_id, sep, encoded = item.strip().partition(":")
            if not sep:
                raise InvalidDataKeys(f"data key {key_id[:8]!r}…: write it as id:base64key")
            try:
                material = base64.b64decode(
                    encoded.strip() + "=" * (-len(encoded.strip()) % 4), altchars=b"-_"
                )
            except (binascii.Error, ValueError):
                raise InvalidDataKeys(f"data key {key_id}: not base64") from None
            keys.append((key_id.strip(), material))
        return cls(keys)

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: bytes, context: bytes) -> str:
        nonce = os.urandom(NONCE)
        sealed = self._keys[self.current].encrypt(nonce, plaintext, context)
        return f"{ENVELOPE_PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    @staticmethod
    def key_id(token: str) -> str | None:
        parts = token.split(":", 2)
        return parts[1] if len(parts) == 3 and token.startswith(ENVELOPE_PREFIX) else None

    def decrypt(self, token: str, context: bytes) -> bytes:
        key_id = self.key_id(token)
        if key_id is None:
            raise DataKeyError("a stored encrypted value is not of the form v1:<key id>:<base64>")
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise DataKeyError(
                f"a stored value is encrypted under data key {key_id!r}, which CITYHUB_DATA_KEYS does "
                "not hold; put that key back (after the current one) and rotate"
            )
        try:
            raw = base64.b64decode(token.split(":", 2)[2], validate=True)
            return cipher.decrypt(raw[:NONCE], raw[NONCE:], context)
        except (InvalidTag, binascii.Error, ValueError):
            raise DataKeyError(
                f"data key {key_id!r} does not open a stored value: the key given under that id is not "
                "the one it was written with, or the value was altered"
            ) from None


# -- classification --------------------------------------------------------------------------------


class InvalidClassification(ValueError):
    pass


def classification(schema_properties: Mapping[str, Mapping[str, Any]]) -> dict[str, Rule]:
    """The classified attributes of a data model's properties; raises on unknown levels or masks."""
    found = {}
    for name, spec in schema_properties.items():
        level = spec.get("x-personal")
        if level is None:
            if "x-mask" in spec:
                raise InvalidClassification(f"{name}: x-mask without x-personal")
            continue
        if level not in LEVELS:
            raise InvalidClassification(f"{name}: x-personal must be one of {', '.join(LEVELS)}")
        kind = spec.get("x-mask", "full")
        if kind not in MASKS:
            raise InvalidClassification(f"{name}: x-mask must be one of {', '.join(MASKS)}")
        found[name] = Rule(level=level, mask=kind)
    return found


@dataclass
class PersonalData:
    """What the broker is given (:class:`cityhub.hub.broker.protection.Protector`): the rules of
    the data models, the key ring and the masks."""

    models: DataModels
    keys: KeyRing | None

    def __post_init__(self) -> None:
        self._rules: dict[tuple[str, ...], Mapping[str, Rule]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the classification again (after data models were registered)."""
        self._by_model = {model.name: classification(model.properties) for model in self.models}
        self._by_model = {name: rules for name, rules in self._by_model.items() if rules}
        self._rules.clear()

    @property
    def has_sensitive(self) -> bool:
        return any(rule.sealed for rules in self._by_model.values() for rule in rules.values())

    def rules(self, types: tuple[str, ...]) -> Mapping[str, Rule]:
        cached = self._rules.get(types)
        if cached is None:
            merged: dict[str, Rule] = {}
            for entity_type in types:
                merged.update(self._by_model.get(local_name(entity_type), {}))
            if len(self._rules) > 10_000:
                self._rules.clear()
            self._rules[types] = cached = merged
        return cached

    def classified_models(self) -> dict[str, dict[str, Rule]]:
        return dict(self._by_model)

    def encrypt(self, plaintext: bytes, context: bytes) -> str:
        if self.keys is None:
            raise DataKeyError("sensitive data is written but no data key is configured (CITYHUB_DATA_KEYS)")
        return self.keys.encrypt(plaintext, context)

    def decrypt(self, token: str, context: bytes) -> bytes:
        if self.keys is None:
            raise DataKeyError("encrypted data is stored but no data key is configured (CITYHUB_DATA_KEYS)")
        return self.keys.decrypt(token, context)

    def mask(self, kind: str, value: Any) -> Any:
        return mask(kind, value)


def data_key_ring(settings: Settings) -> KeyRing | None:
    """The key ring of the settings (``CITYHUB_DATA_KEYS``; the development key in development)."""
    text = settings.data_key_ring
    return KeyRing.parse(text) if text is not None else None
