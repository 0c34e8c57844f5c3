"""The NGSI-LD query language (q) and scope query language (scopeQ): parsing and evaluation."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityhub.hub.broker.q import (
    MAX_DEPTH,
    MAX_PATTERN,
    MAX_TERMS,
    And,
    AttrPath,
    Compare,
    Exists,
    Match,
    Or,
    QSyntaxError,
    Range,
    ScopeAnd,
    ScopeOr,
    ScopePattern,
    TooComplexQuery,
    Uri,
    ValueList,
    parse_q,
    parse_scope_q,
)

EX = "https://example.org/"


def expand(term: str) -> str:
    return term if ":" in term else EX + term


PARKING: dict[str, Any] = {
    "id": "urn:ngsi-ld:OffStreetParking:zz-001",
    "type": [EX + "OffStreetParking"],
    "createdAt": "2026-11-21T08:00:00Z",
    "attrs": {
        EX + "availableSpots": [
            {
                "type": "Property",
                "value": 12,
                "observedAt": "2018-12-04T12:00:00Z",
                EX + "accuracy": {"type": "Property", "value": 0.5},
                EX + "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Camera:c1"},
            }
        ],
        EX + "name": [{"type": "Property", "value": "Downtown One"}],
        EX + "open": [{"type": "Property", "value": True}],
        EX + "opened": [
            {"type": "Property", "value": {"@type": "DateTime", "@value": "2017-06-01T08:00:00Z"}}
        ],
        EX + "inspected": [{"type": "Property", "value": "2023-05-04"}],
        EX + "opensAt": [{"type": "Property", "value": "08:00:00Z"}],
        EX + "address": [
            {
                "type": "Property",
                "value": {"city": "Zhengzhou", "street": {"name": "Jinshui Rd", "number": 12}},
            }
        ],
        EX + "tags": [{"type": "Property", "value": ["covered", "ev", "24h"]}],
        EX + "ratings": [{"type": "Property", "value": [3, 4, 5]}],
        EX + "owner": [{"type": "Relationship", "object": "urn:ngsi-ld:Company:zz-transit"}],
        EX + "neighbours": [
            {
                "type": "ListRelationship",
                "objectList": [
                    {"object": "urn:ngsi-ld:OffStreetParking:zz-002"},
                    {"object": "urn:ngsi-ld:OffStreetParking:zz-003"},
                ],
            }
        ],
        EX + "label": [{"type": "LanguageProperty", "languageMap": {"en": "Downtown", "zh": "市中心"}}],
        EX + "location": [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [113.6, 34.7]}}],
        EX + "temperature": [
            {"type": "Property", "value": 21.5, "datasetId": "urn:ngsi-ld:Dataset:indoor"},
            {"type": "Property", "value": -3, "datasetId": "urn:ngsi-ld:Dataset:outdoor"},
        ],
        EX + "config": [{"type": "JsonProperty", "json": {"mode": "auto", "levels": [1, 2]}}],
        EX + "spotsHistory": [{"type": "ListProperty", "valueList": [40, 12, 7]}],
    },
}


def a(name: str, *sub: str, keys: tuple[str, ...] = ()) -> AttrPath:
    return AttrPath(name, sub, keys)


# ----------------------------------------------------------------------------------------- parser

PARSED = [
    ("speed", Exists(a("speed"))),
    ("speed==50", Compare(a("speed"), "==", 50)),
    ("speed!=-1.5", Compare(a("speed"), "!=", -1.5)),
    ("speed>1e3", Compare(a("speed"), ">", 1000.0)),
    ("speed>=0;speed<=120", And((Compare(a("speed"), ">=", 0), Compare(a("speed"), "<=", 120)))),
    ("speed<0|speed>120", Or((Compare(a("speed"), "<", 0), Compare(a("speed"), ">", 120)))),
    ('brand=="Mercedes"', Compare(a("brand"), "==", "Mercedes")),
    (r'brand=="say \"hi\" \\o/"', Compare(a("brand"), "==", 'say "hi" \\o/')),
    ('brand==""', Compare(a("brand"), "==", "")),
    ('note=="a;b|c)"', Compare(a("note"), "==", "a;b|c)")),
    ("isParked==true", Compare(a("isParked"), "==", True)),
    ("isParked!=false", Compare(a("isParked"), "!=", False)),
    (
        "seen>2018-12-04T12:00:00Z",
        Compare(a("seen"), ">", datetime(2018, 12, 4, 12, tzinfo=UTC)),
    ),
    (
        "seen<2018-12-04T14:00:00.5+02:00",
        Compare(a("seen"), "<", datetime(2018, 12, 4, 12, 0, 0, 500000, tzinfo=UTC)),
    ),
    ("seen>2018-12-04T12:00", Compare(a("seen"), ">", datetime(2018, 12, 4, 12, tzinfo=UTC))),
    ("day==2018-12-04", Compare(a("day"), "==", date(2018, 12, 4))),
    ("at<12:30:00Z", Compare(a("at"), "<", time(12, 30))),
    ("at<12:30:00+01:00", Compare(a("at"), "<", time(11, 30))),
    ("speed==1..5", Compare(a("speed"), "==", Range(1, 5))),
    ("speed!=1.5..-2", Compare(a("speed"), "!=", Range(1.5, -2))),
    ('name=="a".."m"', Compare(a("name"), "==", Range("a", "m"))),
    (
        "day==2018-01-01..2018-12-31",
        Compare(a("day"), "==", Range(date(2018, 1, 1), date(2018, 12, 31))),
    ),
    ("color==1,2,3", Compare(a("color"), "==", ValueList((1, 2, 3)))),
    ('color=="red",true,4.5', Compare(a("color"), "==", ValueList(("red", True, 4.5)))),
    (
        "owner==urn:ngsi-ld:Person:Bob",
        Compare(a("owner"), "==", Uri("urn:ngsi-ld:Person:Bob")),
    ),
    (
        "link==https://example.org/a.b?x=1#f",
        Compare(a("link"), "==", Uri("https://example.org/a.b?x=1#f")),
    ),
    (
        "owner==urn:a:b,urn:a:c",
        Compare(a("owner"), "==", ValueList((Uri("urn:a:b"), Uri("urn:a:c")))),
    ),
    ("address[city]", Exists(a("address", keys=("city",)))),
    ('address[street][name]=="Main"', Compare(a("address", keys=("street", "name")), "==", "Main")),
    ("address[post.code]==1", Compare(a("address", keys=("post.code",)), "==", 1)),
    ("speed.accuracy<0.5", Compare(a("speed", "accuracy"), "<", 0.5)),
    ("speed.observedAt", Exists(a("speed", "observedAt"))),
    ("a.b.c[d]", Exists(AttrPath("a", ("b", "c"), ("d",)))),
    ("ngsi-ld:speed", Exists(a("ngsi-ld:speed"))),
    ("urn:example:speed>3", Compare(a("urn:example:speed"), ">", 3)),
    (
        '"https://example.org/v1.0/speed".observedAt',
        Exists(a("https://example.org/v1.0/speed", "observedAt")),
    ),
    ("name~=^Down", Match(a("name"), "^Down")),
    ("name!~=(?i)town$", Match(a("name"), "(?i)town$", negate=True)),
    ("name~=(a|b)x", Match(a("name"), "(a|b)x")),
    ("name~=[;|)]", Match(a("name"), "[;|)]")),
    (r"name~=\)x", Match(a("name"), r"\)x")),
    (r'name~="a|b\"\d"', Match(a("name"), r'a|b"\d')),
    ("(name~=a|b)", Or((Match(a("name"), "a"), Exists(a("b"))))),
    ("a;b|c", Or((And((Exists(a("a")), Exists(a("b")))), Exists(a("c"))))),
    ("a|b;c", Or((Exists(a("a")), And((Exists(a("b")), Exists(a("c"))))))),
    ("a;(b|c)", And((Exists(a("a")), Or((Exists(a("b")), Exists(a("c"))))))),
    ("a;b;(c;d)", And(tuple(Exists(a(n)) for n in "abcd"))),
    ("((a))", Exists(a("a"))),
    ("(a|(b|(c)))|d", Or(tuple(Exists(a(n)) for n in "abcd"))),
]


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[t for t, _ in PARSED])
def test_parses(text: str, expected: object) -> None:
    assert parse_q(text) == expected


INVALID = [
    ("", 0),
    ("a==", 3),
    ("a=1", 1),
    ("a===1", 3),
    ("a==b", 3),  # unquoted strings are not literals
    ("a==1b", 3),
    ("a== 1", 3),
    ("a ==1", 1),
    ("a==1;", 5),
    (";a", 0),
    ("a;;b", 2),
    ("a||b", 2),
    ("(a", 2),
    ("a)", 1),
    ("()", 1),
    ("(a;b))", 5),
    ("a(b)", 1),
    ('a=="x', 5),
    ('a=="x"y', 6),
    ("a==2018-13-01", 3),
    ("a==2018-12-04T25:00:00Z", 3),
    ("a>true", 2),
    ("a<urn:x:y", 2),
    ("a>1..2", 2),
    ("a<=1,2", 3),
    ('a==1.."x"', 3),
    ("a==true..false", 3),
    ("a==1,", 5),
    ("a==1...3", 6),
    ("a[]", 2),
    ("a[b", 3),
    ("a[b]c", 4),
    ("a.", 2),
    ("a..b", 2),
    (".a", 0),
    ("a.observedAt.x", 0),
    ("a'b", 1),
    ('"a', 2),
    ('""==1', 1),
    ("https://example.org/a.b==1", 0),
    ("a~=", 3),
    ("a~=(", 3),
    ("a!~=*", 4),
    ("a~=x)", 4),
    ("a!b", 1),
]


@pytest.mark.parametrize(("text", "position"), INVALID, ids=[t for t, _ in INVALID])
def test_rejects_with_position(text: str, position: int) -> None:
    with pytest.raises(QSyntaxError) as caught:
        parse_q(text)
    assert caught.value.position == position
    assert f"position {position}" in caught.value.detail
    assert caught.value.status == 400
    assert caught.value.to_problem()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


def test_syntax_error_says_what_was_expected() -> None:
    with pytest.raises(QSyntaxError, match=r"expected an operator .*found '=' at position 1"):
        parse_q("a=1")
    with pytest.raises(QSyntaxError, match=r"expected ';', '\|' or '\)', found the end at position 2"):
        parse_q("(a")


@pytest.mark.parametrize(
    "text",
    [
        "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1),
        ";".join(["a"] * (MAX_TERMS + 1)),
        "a~=" + "x" * (MAX_PATTERN + 1),
        'a=="' + "x" * 10_000 + '"',
    ],
    ids=["depth", "terms", "pattern", "length"],
)
def test_too_complex(text: str) -> None:
    with pytest.raises(TooComplexQuery) as caught:
        parse_q(text)
    problem = caught.value.to_problem()
    assert problem["status"] == 403
    assert problem["type"] == "https://uri.etsi.org/ngsi-ld/errors/TooComplexQuery"


def test_limits_are_inclusive() -> None:
    parse_q("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    parse_q("|".join(["a"] * MAX_TERMS))
    parse_q("a~=" + "x" * MAX_PATTERN)


def test_attributes_are_the_top_level_names_unexpanded() -> None:
    q = parse_q('a==1;(b.c>2|d[e]|"http://x.org/f.g"~=h);a')
    assert q.attributes() == {"a", "b", "d", "http://x.org/f.g"}


# ------------------------------------------------------------------------------------- evaluation

EVALUATED = [
    # existence
    ("name", True),
    ("nothing", False),
    ("location", True),
    ("availableSpots.accuracy", True),
    ("availableSpots.observedAt", True),
    ("availableSpots.unitCode", False),
    ("availableSpots.missing", False),
    ("address[city]", True),
    ("address[zip]", False),
    ("address[city][x]", False),
    # numbers
    ("availableSpots==12", True),
    ("availableSpots==12.0", True),
    ("availableSpots!=12", False),
    ("availableSpots>11;availableSpots<13", True),
    ("availableSpots>=12;availableSpots<=12", True),
    ("availableSpots>12", False),
    ("availableSpots==1,12,15", True),
    ("availableSpots!=1,12", False),
    ("availableSpots!=1,2", True),
    ("availableSpots==10..12", True),
    ("availableSpots==13..20", False),
    ("availableSpots!=13..20", True),
    # incompatible types: false for ==, ordering and patterns; != holds (different types are unequal)
    ('availableSpots=="12"', False),
    ('availableSpots>"1"', False),
    ("availableSpots~=1", False),
    ("availableSpots!~=1", False),
    ("name>5", False),
    ("name!=5", True),
    ("open==1", False),
    ("availableSpots==true", False),
    # strings
    ('name=="Downtown One"', True),
    ('name=="downtown one"', False),
    ('name>"Downtown"', True),
    ('name<"A"', False),
    ('name=="A".."E"', True),
    ('name=="x","Downtown One"', True),
    ("name==urn:x:y", False),
    # booleans
    ("open==true", True),
    ("open!=true", False),
    ("open==false", False),
    # date-times, dates and times
    ("opened>2017-01-01T00:00:00Z", True),
    ("opened<=2017-06-01T10:00:00+02:00", True),
    ("opened<2017-06-01T10:00:00+02:00", False),
    ("opened==2017-06-01T08:00:00Z", True),
    ("opened==2017-01-01T00:00:00Z..2017-12-31T00:00:00Z", True),
    ('opened=="2017-06-01T08:00:00Z"', True),
    ("inspected==2023-05-04", True),
    ("inspected>2023-01-01", True),
    ("inspected==2023-01-01..2023-03-01", False),
    ("inspected>2023-05-04T00:00:00Z", False),
    ("opensAt<09:00:00Z", True),
    ("opensAt<09:00:00+02:00", False),
    ("opensAt==08:00:00", True),
    # timestamps of an instance
    ("availableSpots.observedAt>=2018-12-04T12:00:00Z", True),
    ("availableSpots.observedAt==2018-12-04T13:00:00+01:00", True),
    ('availableSpots.observedAt>"2018-12-04T11:00:00Z"', True),
    ("availableSpots.observedAt>2018-12-05T00:00:00Z", False),
    ("availableSpots.observedAt==2018-12-04", False),
    ("name.observedAt<2030-01-01T00:00:00Z", False),
    # sub-attributes
    ("availableSpots.accuracy<1", True),
    ("availableSpots.accuracy>1", False),
    ("availableSpots.providedBy==urn:ngsi-ld:Camera:c1", True),
    # compound values
    ('address[city]=="Zhengzhou"', True),
    ("address[street][number]>10", True),
    ("address[street][name]~=^Jinshui", True),
    ('address[street]=="Jinshui Rd"', False),
    ('address=="Zhengzhou"', False),
    ('config[mode]=="auto"', True),
    ("config[levels]==2", True),
    # arrays: == is "contains", != "contains none of", ordering and patterns any element
    ('tags=="ev"', True),
    ('tags!="ev"', False),
    ('tags!="none"', True),
    ('tags=="none","24h"', True),
    ("tags~=^c", True),
    ("tags!~=^c", False),
    ("tags!~=^x", True),
    ("ratings>4", True),
    ("ratings>5", False),
    ("ratings==4..4", True),
    ("ratings==6..9", False),
    ("spotsHistory==7", True),
    ("spotsHistory<8", True),
    # relationships: == and != on the object; other operators never match
    ("owner==urn:ngsi-ld:Company:zz-transit", True),
    ('owner=="urn:ngsi-ld:Company:zz-transit"', True),
    ("owner!=urn:ngsi-ld:Company:other", True),
    ("owner==urn:ngsi-ld:Company:other,urn:ngsi-ld:Company:zz-transit", True),
    ("owner~=zz", False),
    ('owner>"a"', False),
    ("owner[x]", False),
    ("neighbours==urn:ngsi-ld:OffStreetParking:zz-003", True),
    ("neighbours!=urn:ngsi-ld:OffStreetParking:zz-003", False),
    # language maps
    ('label=="市中心"', True),
    ('label[en]=="Downtown"', True),
    ('label[zh]=="Downtown"', False),
    ("label[fr]", False),
    ("label~=^Down", True),
    # geo: existence only
    ('location=="Point"', False),
    ('location!="Point"', False),
    ("location[type]", True),
    # several instances (datasetIds): any instance may match, each term on its own
    ("temperature>20", True),
    ("temperature<0", True),
    ("temperature>20;temperature<0", True),
    ("temperature>30", False),
    ("temperature==-3", True),
    ("temperature!=-3", True),
    ("temperature.datasetId==urn:ngsi-ld:Dataset:outdoor", True),
    ('temperature.datasetId=="urn:ngsi-ld:Dataset:none"', False),
    # missing attributes never match, not even !=
    ("nothing!=1", False),
    ("nothing!~=x", False),
    ("nothing==1|name", True),
    # patterns: re.search
    ("name~=town", True),
    ("name~=^town", False),
    ("name~=(?i)^downtown", True),
    ("name!~=Uptown", True),
    ("name!~=One$", False),
    # precedence and parentheses
    ("nothing;name|open", True),
    ("nothing;(name|open)", False),
    ("name|open;nothing", True),
    ("(name|open);nothing", False),
    ("(name|nothing);(open|nothing)", True),
    ("((((name))))", True),
    ("(nothing|(open;(ratings>4|nothing)))", True),
    ("(nothing|(open;(ratings>5|nothing)))", False),
    # full IRIs
    ('"https://example.org/name"=="Downtown One"', True),
    ('"https://example.org/availableSpots".accuracy<1', True),
]


@pytest.mark.parametrize(("text", "expected"), EVALUATED, ids=[t for t, _ in EVALUATED])
def test_evaluates(text: str, expected: bool) -> None:
    assert parse_q(text).evaluate(PARKING, expand) is expected


def test_id_and_type_are_not_attributes() -> None:
    assert parse_q("id").evaluate(PARKING, expand) is False
    assert parse_q("type").evaluate(PARKING, expand) is False
    assert parse_q("name").evaluate({"id": "urn:x:1", "type": [EX + "T"]}, expand) is False


def test_sub_attribute_names_are_expanded_with_the_request_context() -> None:
    other = {"accuracy": "urn:other:accuracy"}
    entity = {
        "id": "urn:x:1",
        "attrs": {"urn:other:speed": [{"type": "Property", "value": 3, "urn:other:accuracy": {"value": 1}}]},
    }
    q = parse_q("speed.accuracy==1")
    assert q.evaluate(entity, lambda t: other.get(t, "urn:other:" + t)) is True
    assert q.evaluate(entity, expand) is False


# ---------------------------------------------------------------------------------------- scopeQ

SCOPES = ["/Madrid/Gardens/ParqueNorte", "/CompanyA/OrganizationB/UnitC"]

SCOPE_EVALUATED = [
    ("/Madrid/Gardens/ParqueNorte", True),
    ("/Madrid/Gardens", False),
    ("/Madrid/Gardens/ParqueNorte/Pond", False),
    ("/Madrid/#", True),
    ("/Madrid/Gardens/ParqueNorte/#", True),
    ("/Madrid/Gardens/Retiro/#", False),
    ("/Madrid/+/ParqueNorte", True),
    ("/Madrid/+", False),
    ("/+/+/+", True),
    ("/+/#", True),
    ("/#", True),
    ("/Madrid/Gardens/ParqueNorte;/CompanyA/#", True),
    ("/Barcelona|/CompanyA/+/UnitC", True),
    ("/Barcelona;/CompanyA/#", False),
    ("/Barcelona|/Madrid;/Sevilla|/CompanyA/#", True),
    ("(/Barcelona|/Madrid/#);/CompanyA/#", True),
    ("(/Barcelona|/Sevilla/#);/CompanyA/#", False),
]


@pytest.mark.parametrize(("text", "expected"), SCOPE_EVALUATED, ids=[t for t, _ in SCOPE_EVALUATED])
def test_scope_q_evaluates(text: str, expected: bool) -> None:
    assert parse_scope_q(text).evaluate(SCOPES) is expected


def test_scope_q_on_an_entity_without_scopes() -> None:
    assert parse_scope_q("/#").evaluate([]) is False


def test_scope_q_ast() -> None:
    assert parse_scope_q("/a/+/c|(/d/#;/e)") == ScopeOr(
        (
            ScopePattern(("a", "+", "c")),
            ScopeAnd((ScopePattern(("d", "#")), ScopePattern(("e",)))),
        )
    )


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("", 0),
        ("Madrid", 0),
        ("/", 1),
        ("/Madrid/", 8),
        ("/a/#/b", 4),
        ("/a+", 2),
        ("/a b", 2),
        ("/a//b", 3),
        ("(/a", 3),
        ("/a|", 3),
        ("/a;(/b|/c", 9),
    ],
)
def test_scope_q_rejects_with_position(text: str, position: int) -> None:
    with pytest.raises(QSyntaxError) as caught:
        parse_scope_q(text)
    assert caught.value.position == position


# ------------------------------------------------------------------------------------ robustness

_QUERY_CHARS = 'ab1-9.:/[]()";|=!<>~,#+TZ \\'


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(alphabet=_QUERY_CHARS, max_size=40)))
def test_parsers_fail_only_with_query_errors(text: str) -> None:
    try:
        q = parse_q(text)
    except (QSyntaxError, TooComplexQuery):
        pass
    else:
        q.evaluate(PARKING, expand)  # whatever parses evaluates without error
    with contextlib.suppress(QSyntaxError, TooComplexQuery):
        parse_scope_q(text).evaluate(SCOPES)
