"""Masks of personal information, the data key ring and the classification of data models."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityhub.hub.broker.protection import Rule, binding
from cityhub.systems.security.privacy import (
    FULL,
    PROVINCES,
    DataKeyError,
    InvalidDataKeys,
    KeyRing,
    PersonalData,
    mask,
    mask_address,
    mask_email,
    mask_id_card,
    mask_name,
    mask_phone,
    mask_plate,
)
from cityhub.systems.standards.datamodels import InvalidModel, default_models, model_from_schema

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@st.composite
def id_cards(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet="0123456789", min_size=17, max_size=17))
    return body + draw(st.sampled_from("0123456789X"))


@st.composite
def mobiles(draw: st.DrawFn) -> str:
    return (
        "1" + draw(st.sampled_from("3456789")) + draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    )


@st.composite
def plates(draw: st.DrawFn) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    tail = draw(st.text(alphabet=letters + "0123456789", min_size=5, max_size=6))
    return draw(st.sampled_from(PROVINCES)) + draw(st.sampled_from(letters)) + tail


def test_examples() -> None:
    assert mask_id_card("410105199001011234") == "410105********1234"
    assert mask_id_card("41010519900101123X") == "410105********123X"
    assert mask_id_card("410105900101123") == "410105*****1123"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138-1234-5678") == "+86 138****5678"
    assert mask_phone("008613812345678") == "0086138****5678"
    assert mask_plate("豫A12323") == "豫A·***23"
    assert mask_plate("豫A·D12345") == "豫A·****45"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧阳**"
    assert mask_name("买买提·艾力") == "买**·**"
    assert mask_name("John Smith") == "J*** S****"
    assert mask_email("zhang.san@example.com") == "z***@example.com"
    assert mask_address("河南省郑州市金水区花园路100号") == "河南省郑州市金水区****"
    assert mask("full", "anything") == FULL


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("id_card", "41010519900101123"),
        ("id_card", "4101051990010112345"),
        ("id_card", "abcdefghijklmnopqr"),
        ("phone", "12812345678"),
        ("phone", "1381234567"),
        ("phone", "0371-12345678"),
        ("plate", "XX12345"),
        ("plate", "豫I12345"),
        ("name", "张三123"),
        ("name", ""),
        ("email", "not-an-email"),
        ("address", "somewhere"),
        ("id_card", 3.5),
        ("name", {"first": "三"}),
        ("unknown", "x"),
    ],
)
def test_malformed_values_are_masked_fully(kind: str, value: object) -> None:
    assert mask(kind, value) == FULL


@given(id_cards())
def test_id_card_shows_only_region_and_last_four(value: str) -> None:
    masked = mask_id_card(value)
    assert re.sub(r"[^\dX]", "", masked) == value[:6] + value[-4:]
    assert value[6:14] not in masked.replace("*", "")[6:]
    assert mask_id_card(masked) == masked


@given(mobiles(), st.sampled_from(["", "+86", "+86 ", "0086", "86-"]))
def test_phone_shows_only_prefix_and_last_four(number: str, prefix: str) -> None:
    masked = mask_phone(prefix + number)
    assert masked.endswith(number[:3] + "****" + number[-4:])
    assert re.sub(r"\D", "", masked.removeprefix(prefix)) == number[:3] + number[-4:]
    assert mask_phone(masked) == masked


@given(plates())
def test_plate_hides_the_middle(value: str) -> None:
    masked = mask_plate(value)
    assert masked == value[:2] + "·" + "*" * (len(value) - 4) + value[-2:]
    assert mask_plate(masked) == masked


@given(st.text(alphabet="张王李赵欧阳司马明华丽", min_size=2, max_size=4))
def test_chinese_names_keep_the_surname_only(value: str) -> None:
    masked = mask_name(value)
    assert len(masked) == len(value)
    kept = masked.rstrip("*")
    assert value.startswith(kept)
    assert len(kept) <= 2
    assert mask_name(masked) == masked


@given(
    st.text(min_size=0, max_size=40),
    st.sampled_from(["id_card", "phone", "plate", "name", "email", "address"]),
)
def test_every_mask_is_idempotent_and_never_longer_than_needed(value: str, kind: str) -> None:
    once = mask(kind, value)
    assert mask(kind, once) == once


def _key(fill: int) -> str:
    return base64.b64encode(bytes([fill]) * 32).decode()


def test_key_ring_encrypts_with_the_first_and_opens_with_any() -> None:
    old = KeyRing.parse(f"k1:{_key(1)}")
    token = old.encrypt(b'"13812345678"', binding("urn:a", "phone"))
    assert token.startswith("v1:k1:")
    assert "13812345678" not in token
    rotated = KeyRing.parse(f"k2:{_key(2)},k1:{_key(1)}")
    assert rotated.decrypt(token, binding("urn:a", "phone")) == b'"13812345678"'
    assert rotated.encrypt(b"x", b"c").startswith("v1:k2:")


def test_key_errors_are_clear() -> None:
    ring = KeyRing.parse(f"k1:{_key(1)}")
    token = ring.encrypt(b"secret", binding("urn:a", "phone"))
    with pytest.raises(DataKeyError, match="does not hold"):
        KeyRing.parse(f"k9:{_key(9)}").decrypt(token, binding("urn:a", "phone"))
    with pytest.raises(DataKeyError, match="not the one it was written with"):
        KeyRing.parse(f"k1:{_key(7)}").decrypt(token, binding("urn:a", "phone"))
    with pytest.raises(DataKeyError, match="not the one it was written with"):
        ring.decrypt(token, binding("urn:b", "phone"))  # moved to another entity
    for text in (
        "k1",
        f"k1:{base64.b64encode(b'short').decode()}",
        f"k1:{_key(1)},k1:{_key(2)}",
        "bad id!:xx",
    ):
        with pytest.raises(InvalidDataKeys):
            KeyRing.parse(text)


def test_built_in_models_list_their_classification() -> None:
    schema = default_models().get("CitizenReport")
    assert schema is not None
    listed = schema.schema()
    assert listed["x-personal"]["reporterPhone"] == {"level": "sensitive", "mask": "phone"}
    assert listed["properties"]["reporterName"]["x-personal"] == "personal"


def test_classification_is_checked() -> None:
    with pytest.raises(InvalidModel, match="x-personal"):
        model_from_schema("X", {"properties": {"a": {"type": "string", "x-personal": "secret"}}})
    with pytest.raises(InvalidModel, match="x-mask"):
        model_from_schema(
            "X", {"properties": {"a": {"type": "string", "x-personal": "personal", "x-mask": "x"}}}
        )
    model = model_from_schema("X", {"properties": {"a": {"type": "string", "x-personal": "sensitive"}}})
    assert model.personal() == {"a": {"level": "sensitive", "mask": "full"}}


def test_applications_classify_their_models() -> None:
    models = default_models()
    personal = PersonalData(models, None)
    assert personal.rules(("https://example.org/ns/Visitor",)) == {}
    spec = {"type": "string", "x-personal": "sensitive", "x-mask": "plate"}
    models.register(
        model_from_schema("Visitor", {"properties": {"carPlate": spec, "count": {"type": "integer"}}})
    )
    personal.refresh()
    rules = personal.rules(("https://example.org/ns/Visitor",))
    assert rules == {"carPlate": Rule(level="sensitive", mask="plate")}
    assert personal.has_sensitive
    with pytest.raises(DataKeyError, match="no data key"):
        personal.encrypt(b"x", b"c")
