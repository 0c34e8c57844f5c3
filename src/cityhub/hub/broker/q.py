"""The NGSI-LD query languages: ``q`` (ETSI GS CIM 009 v1.8, clause 4.9) and ``scopeQ`` (clause 4.19).

``parse_q`` and ``parse_scope_q`` are hand-written recursive-descent parsers over the URL-decoded
text. Both raise ``QSyntaxError`` (400, with the character position) on bad input and
``TooComplexQuery`` (403) past the size limits below. ``;`` is AND, ``|`` is OR, AND binds tighter,
parentheses nest.

AST of ``q`` (frozen dataclasses; every node is a ``QExpr``)
-----------------------------------------------------------
``And(terms)`` / ``Or(terms)``
    Two or more operands; nested nodes of the same kind are flattened.
``Exists(attr)``
    A bare attribute: it exists (in any instance, with the whole path).
``Compare(attr, op, value)``
    ``op`` one of ``== != > >= < <=``; ``value`` is a ``Scalar``, a ``Range`` or a ``ValueList``
    (the last two, booleans and ``Uri`` only with ``==`` / ``!=``).
``Match(attr, pattern, negate)``
    ``~=`` (``negate=False``) or ``!~=`` (``negate=True``); ``pattern`` is Python ``re`` syntax.

``AttrPath(name, sub_attrs, keys)``: ``name`` the attribute as written (term or IRI, unexpanded);
``sub_attrs`` the dot path of sub-attributes (``speed.accuracy``; the core keys ``observedAt``,
``createdAt``, ``modifiedAt``, ``unitCode``, ``datasetId`` address the instance's own members and
must come last); ``keys`` the bracket path into the JSON value (``address[city]``), never expanded.

``Scalar`` = ``bool | int | float | str | datetime | date | time | Uri``: ``str`` is a quoted string,
``datetime`` is timezone-aware UTC, ``time`` is naive and means UTC. ``Range(low, high)`` is
inclusive, both ends of one kind (numbers, strings, date-times, dates or times). ``ValueList(values)``
means "any of" with ``==`` and "none of" with ``!=``.

AST of ``scopeQ`` (every node is a ``ScopeExpr``)
-------------------------------------------------
``ScopeAnd(terms)`` / ``ScopeOr(terms)``, and ``ScopePattern(levels)``: the levels of one scope
pattern, where ``"+"`` is exactly one level and a final ``"#"`` is zero or more levels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Final, Literal, TypeVar, cast

from cityhub.kit.errors import NGSI_LD_ERRORS, BadRequestData, HubError
from cityhub.kit.time import parse_datetime

MAX_DEPTH: Final = 32
MAX_TERMS: Final = 200
MAX_LENGTH: Final = 8192
MAX_PATTERN: Final = 256

Expand = Callable[[str], str]
Op = Literal["==", "!=", ">", ">=", "<", "<="]


class QSyntaxError(BadRequestData):
    """A ``q`` or ``scopeQ`` that does not follow the grammar; ``position`` is 0-based."""

    def __init__(self, detail: str, position: int) -> None:
        super().__init__(detail)
        self.position = position


class TooComplexQuery(HubError):
    status = 403
    type = NGSI_LD_ERRORS + "TooComplexQuery"
    title = "Too complex query"


# ---------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Uri:
    """An unquoted URI literal (compared with a Relationship's object, or with a string value)."""

    value: str


Scalar = bool | int | float | str | datetime | date | time | Uri


@dataclass(frozen=True, slots=True)
class Range:
    low: Scalar
    high: Scalar


@dataclass(frozen=True, slots=True)
class ValueList:
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class AttrPath:
    name: str
    sub_attrs: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()


class QExpr:
    """A parsed ``q``: evaluate it on an entity in the internal form (see ``cityhub.hub.broker``)."""

    __slots__ = ()

    def evaluate(self, entity: Mapping[str, Any], expand: Expand) -> bool:
        raise NotImplementedError

    def attributes(self) -> set[str]:
        """The top-level attribute names referenced, as written (unexpanded)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class And(QExpr):
    terms: tuple[QExpr, ...]

    def evaluate(self, entity: Mapping[str, Any], expand: Expand) -> bool:
        return all(t.evaluate(entity, expand) for t in self.terms)

    def attributes(self) -> set[str]:
        return set().union(*(t.attributes() for t in self.terms))


@dataclass(frozen=True, slots=True)
class Or(QExpr):
    terms: tuple[QExpr, ...]

    def evaluate(self, entity: Mapping[str, Any], expand: Expand) -> bool:
        return any(t.evaluate(entity, expand) for t in self.terms)

    def attributes(self) -> set[str]:
        return set().union(*(t.attributes() for t in self.terms))


@dataclass(frozen=True, slots=True)
class Exists(QExpr):
    attr: AttrPath

    def evaluate(self, entity: Mapping[str, Any], expand: Expand) -> bool:
        return any(True for _ in _targets(entity, self.attr, expand))

    def attributes(self) -> set[str]:
        return {self.attr.name}


@dataclass(frozen=True, slots=True)
class Compare(QExpr):
    attr: AttrPath
    op: Op
    value: Scalar | Range | ValueList

    def evaluate(self, entity: Mapping[str, Any], expand: Expand) -> bool:
        return any(_compare(t, self.op, self.value) for t in _targets(entity, self.attr, expand))

    def attributes(self) -> set[str]:
        return {self.attr.name}


@dataclass(frozen=True, slots=True)
class Match(QExpr):
    attr: AttrPath
    pattern: str
    negate: bool = False

    def evaluate(self, entity: Mapping[str, Any], expand: Expand) -> bool:
        return any(_match(t, self.pattern, self.negate) for t in _targets(entity, self.attr, expand))

    def attributes(self) -> set[str]:
        return {self.attr.name}


class ScopeExpr:
    """A parsed ``scopeQ``: evaluate it on an entity's ``scope`` list."""

    __slots__ = ()

    def evaluate(self, scopes: list[str]) -> bool:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ScopeAnd(ScopeExpr):
    terms: tuple[ScopeExpr, ...]

    def evaluate(self, scopes: list[str]) -> bool:
        return all(t.evaluate(scopes) for t in self.terms)


@dataclass(frozen=True, slots=True)
class ScopeOr(ScopeExpr):
    terms: tuple[ScopeExpr, ...]

    def evaluate(self, scopes: list[str]) -> bool:
        return any(t.evaluate(scopes) for t in self.terms)


@dataclass(frozen=True, slots=True)
class ScopePattern(ScopeExpr):
    levels: tuple[str, ...]

    def evaluate(self, scopes: list[str]) -> bool:
        return any(_scope_matches(self.levels, s) for s in scopes)


def _scope_matches(pattern: tuple[str, ...], scope: str) -> bool:
    if not scope.startswith("/"):
        return False
    levels = scope[1:].split("/")
    for i, want in enumerate(pattern):
        if want == "#":
            return True
        if i >= len(levels) or want not in ("+", levels[i]):
            return False
    return len(pattern) == len(levels)


# ------------------------------------------------------------------------------------------ parsing

_OPERATORS: Final = ("!~=", "==", "!=", ">=", "<=", "~=", ">", "<")
# Attribute names exclude the characters reserved by clause 4.6.2 and those the grammar itself uses.
_NAME = re.compile(r"[^\s\x00-\x1f\x7f<>\"'=;()\[\].|!~,]+")
_QUOTED_NAME = re.compile(r"[^\s\x00-\x1f\x7f<>\"]+")
_KEY = re.compile(r"[^\s\x00-\x1f\x7f<>\"'=;()\[\]]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'*+=%]*")
_PLAIN = re.compile(r"(?:[^;|),\".]|\.(?!\.))*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_TIME = re.compile(r"\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?")
_SCOPE_LEVEL = re.compile(r"[^\s\x00-\x1f\x7f<>\"'=;()|/+#,]+")

_T = TypeVar("_T")


class _Cursor:
    def __init__(self, text: str, what: str) -> None:
        if len(text) > MAX_LENGTH:
            raise TooComplexQuery(f"{what} is longer than {MAX_LENGTH} characters")
        self.text = text
        self.what = what
        self.pos = 0
        self.depth = 0
        self.terms = 0

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def take(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def error(self, message: str, pos: int) -> QSyntaxError:
        return QSyntaxError(f"{self.what}: {message} at position {pos}", pos)

    def fail(self, expected: str, pos: int | None = None) -> QSyntaxError:
        at = self.pos if pos is None else pos
        found = repr(self.text[at]) if at < len(self.text) else "the end"
        return self.error(f"expected {expected}, found {found}", at)


def _parse_logic(
    cur: _Cursor,
    term: Callable[[_Cursor], _T],
    join_and: Callable[[list[_T]], _T],
    join_or: Callable[[list[_T]], _T],
) -> _T:
    def disjunction() -> _T:
        items = [conjunction()]
        while cur.take("|"):
            items.append(conjunction())
        return items[0] if len(items) == 1 else join_or(items)

    def conjunction() -> _T:
        items = [operand()]
        while cur.take(";"):
            items.append(operand())
        return items[0] if len(items) == 1 else join_and(items)

    def operand() -> _T:
        if cur.take("("):
            cur.depth += 1
            if cur.depth > MAX_DEPTH:
                raise TooComplexQuery(f"{cur.what} nests parentheses deeper than {MAX_DEPTH}")
            inner = disjunction()
            if not cur.take(")"):
                raise cur.fail("';', '|' or ')'")
            cur.depth -= 1
            return inner
        cur.terms += 1
        if cur.terms > MAX_TERMS:
            raise TooComplexQuery(f"{cur.what} has more than {MAX_TERMS} terms")
        return term(cur)

    result = disjunction()
    if cur.pos < len(cur.text):
        raise cur.fail("';', '|' or the end")
    return result


def _flatten(cls: type[Any], items: list[Any]) -> tuple[Any, ...]:
    return tuple(x for item in items for x in (item.terms if isinstance(item, cls) else (item,)))


def parse_q(text: str) -> QExpr:
    """Parse an NGSI-LD ``q`` (already URL-decoded)."""
    return _parse_logic(
        _Cursor(text, "q"),
        _q_term,
        lambda items: And(_flatten(And, items)),
        lambda items: Or(_flatten(Or, items)),
    )


def parse_scope_q(text: str) -> ScopeExpr:
    """Parse an NGSI-LD ``scopeQ`` (already URL-decoded)."""
    return _parse_logic(
        _Cursor(text, "scopeQ"),
        _scope_term,
        lambda items: ScopeAnd(_flatten(ScopeAnd, items)),
        lambda items: ScopeOr(_flatten(ScopeOr, items)),
    )


def parse_attr_path(text: str, what: str) -> AttrPath:
    """One attribute path as q writes it (``name``, ``name.sub``, ``name[key]``), alone."""
    cur = _Cursor(text, what)
    path = _attr_path(cur)
    if cur.pos != len(text):
        raise cur.fail("the end of the attribute path")
    return path


def attr_values(entity: Mapping[str, Any], attr: AttrPath, expand: Expand) -> list[Any]:
    """The values ``attr`` reaches in ``entity``, one per attribute instance that has it."""
    return [target.value for target in _targets(entity, attr, expand)]


def _q_term(cur: _Cursor) -> QExpr:
    attr = _attr_path(cur)
    op = next((o for o in _OPERATORS if cur.take(o)), None)
    if op is None:
        if cur.peek() in ("", ";", "|", ")"):
            return Exists(attr)
        raise cur.fail("an operator (== != > >= < <= ~= !~=), ';', '|' or ')'")
    if op in ("~=", "!~="):
        return Match(attr, _pattern(cur), negate=op == "!~=")
    start = cur.pos
    value = _value(cur)
    if op not in ("==", "!=") and (isinstance(value, Range | ValueList | bool | Uri)):
        raise cur.error(f"'{op}' needs one number, quoted string, date, time or date-time", start)
    return Compare(attr, cast(Op, op), value)


def _name(cur: _Cursor, expected: str) -> str:
    start = cur.pos
    # A quoted name is a full IRI that may contain dots (as ScorpioBroker accepts); unquoted, a dot
    # always starts a sub-attribute.
    if cur.take('"'):
        end = cur.text.find('"', cur.pos)
        if end < 0:
            raise cur.fail("a closing '\"'", len(cur.text))
        name = cur.text[cur.pos : end]
        if not _QUOTED_NAME.fullmatch(name):
            raise cur.fail("an attribute IRI", start + 1)
        cur.pos = end + 1
        return name
    m = _NAME.match(cur.text, cur.pos)
    if not m:
        raise cur.fail(expected)
    cur.pos = m.end()
    return m.group()


def _attr_path(cur: _Cursor) -> AttrPath:
    start = cur.pos
    quoted = cur.peek() == '"'
    name = _name(cur, "an attribute name")
    subs: list[str] = []
    while cur.take("."):
        subs.append(_name(cur, "a sub-attribute name"))
    if not quoted and "://" in name and any("/" in s or "#" in s for s in subs):
        raise cur.error("an attribute IRI containing '.' must be quoted", start)
    keys: list[str] = []
    while cur.take("["):
        m = _KEY.match(cur.text, cur.pos)
        if not m:
            raise cur.fail("a key")
        keys.append(m.group())
        cur.pos = m.end()
        if not cur.take("]"):
            raise cur.fail("']'")
    if subs[:-1] and any(s in _CORE_KEYS for s in subs[:-1]):
        raise cur.error(f"'{next(s for s in subs if s in _CORE_KEYS)}' must end the attribute path", start)
    return AttrPath(name, tuple(subs), tuple(keys))


def _value(cur: _Cursor) -> Scalar | Range | ValueList:
    start = cur.pos
    first = _scalar(cur)
    if cur.take(".."):
        second = _scalar(cur)
        kind = _kind(first)
        if kind not in ("number", "string", "datetime", "date", "time") or _kind(second) != kind:
            raise cur.error("a range needs two numbers, strings, dates, times or date-times", start)
        return Range(first, second)
    if cur.peek() != ",":
        return first
    values = [first]
    while cur.take(","):
        values.append(_scalar(cur))
    return ValueList(tuple(values))


def _scalar(cur: _Cursor) -> Scalar:
    start = cur.pos
    if cur.peek() == '"':
        return _quoted(cur, raw=False)
    if m := _URI.match(cur.text, cur.pos):
        cur.pos = m.end()
        return Uri(m.group())
    m = _PLAIN.match(cur.text, cur.pos)
    token = m.group() if m else ""
    try:
        value = _literal(token)
    except ValueError:
        raise cur.error(f"{token!r} is not a valid number, date, time or date-time", start) from None
    if value is None:
        raise cur.fail("a number, quoted string, date, time, date-time, true, false or URI", start)
    cur.pos += len(token)
    return value


def _literal(token: str) -> Scalar | None:
    """The value of an unquoted literal, None if it is none; ValueError for an impossible date."""
    if token in ("true", "false"):
        return token == "true"
    if m := _NUMBER.fullmatch(token):
        return float(token) if m.group(1) or m.group(2) else int(token)
    if _DATETIME.fullmatch(token):
        return parse_datetime(token)
    if _DATE.fullmatch(token):
        return date.fromisoformat(token)
    if _TIME.fullmatch(token):
        return _utc_time(time.fromisoformat(token))
    return None


def _utc_time(value: time) -> time:
    if value.tzinfo is None:
        return value
    return datetime.combine(date(2000, 1, 1), value).astimezone(UTC).time()


def _quoted(cur: _Cursor, *, raw: bool) -> str:
    """A "..." string. ``\\"`` is a quote; ``\\\\`` a backslash unless raw (regexes keep it doubled)."""
    text, start = cur.text, cur.pos
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            cur.pos = i + 1
            return "".join(out)
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(nxt if nxt == '"' or (nxt == "\\" and not raw) else c + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    raise cur.fail(f"a '\"' closing the string opened at position {start}", len(text))


def _pattern(cur: _Cursor) -> str:
    start = cur.pos
    if cur.peek() == '"':
        source = _quoted(cur, raw=True)
    else:
        # Unquoted, the pattern runs to a ';', '|' or ')' outside its own groups and classes, so a
        # top-level alternation must be parenthesised or quoted.
        text, i, depth, in_class = cur.text, cur.pos, 0, False
        while i < len(text):
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if in_class:
                in_class = c != "]"
            elif c == "[":
                in_class = True
            elif c == "(":
                depth += 1
            elif c == ")" and depth:
                depth -= 1
            elif not depth and c in ";|)":
                break
            i += 1
        i = min(i, len(text))
        source, cur.pos = text[start:i], i
    if not source:
        raise cur.fail("a regular expression", start)
    if len(source) > MAX_PATTERN:
        raise TooComplexQuery(f"q: the regular expression at position {start} is longer than {MAX_PATTERN}")
    try:
        re.compile(source)
    except (re.error, OverflowError, RecursionError) as exc:
        raise cur.error(f"invalid regular expression ({getattr(exc, 'msg', exc)})", start) from None
    return source


def _scope_term(cur: _Cursor) -> ScopeExpr:
    if not cur.take("/"):
        raise cur.fail("'/' starting a scope")
    levels: list[str] = []
    while True:
        if cur.take("#"):
            levels.append("#")
            break
        if cur.take("+"):
            levels.append("+")
        elif m := _SCOPE_LEVEL.match(cur.text, cur.pos):
            levels.append(m.group())
            cur.pos = m.end()
        else:
            raise cur.fail("a scope level, '+' or '#'")
        if not cur.take("/"):
            break
    return ScopePattern(tuple(levels))


# --------------------------------------------------------------------------------------- evaluation

_TIMESTAMP_KEYS: Final = frozenset({"observedAt", "createdAt", "modifiedAt"})
_CORE_KEYS: Final = _TIMESTAMP_KEYS | {"unitCode", "datasetId"}


@dataclass(frozen=True, slots=True)
class _Target:
    """What one attribute instance offers a query term: a value (list = several), an object, or a geo."""

    kind: Literal["value", "object", "geo"]
    value: Any


def _targets(entity: Mapping[str, Any], attr: AttrPath, expand: Expand) -> Iterator[_Target]:
    instances = entity.get("attrs", {}).get(expand(attr.name))
    if isinstance(instances, dict):
        instances = [instances]
    for instance in instances or ():
        if isinstance(instance, dict) and (target := _target(instance, attr, expand)) is not None:
            yield target


def _target(node: dict[str, Any], attr: AttrPath, expand: Expand) -> _Target | None:
    for sub in attr.sub_attrs:
        if sub in _CORE_KEYS:
            if sub not in node:
                return None
            stamp = node[sub]
            if sub in _TIMESTAMP_KEYS:
                stamp = _temporal(stamp, _DATETIME, parse_datetime) or stamp
            return _Target("value", stamp) if not attr.keys else None
        child = node.get(expand(sub))
        if not isinstance(child, dict):
            return None
        node = child
    kind = node.get("type", "Property")
    if kind in ("Relationship", "ListRelationship"):
        if attr.keys:
            return None
        if kind == "Relationship":
            return _Target("object", node.get("object"))
        items = node.get("objectList") or []
        return _Target("object", [i.get("object") if isinstance(i, dict) else i for i in items])
    if kind == "LanguageProperty":
        lang_map = node.get("languageMap") or {}
        if not attr.keys:
            texts = [v for vs in lang_map.values() for v in (vs if isinstance(vs, list) else [vs])]
            return _Target("value", texts)
        value = _walk(lang_map, attr.keys)
    else:
        member = {"JsonProperty": "json", "VocabProperty": "vocab", "ListProperty": "valueList"}
        value = _walk(node.get(member.get(kind, "value")), attr.keys)
    if value is _MISSING:
        return None
    if isinstance(value, dict) and "@value" in value:  # a typed literal, {"@type": "DateTime", ...}
        value = value["@value"]
    return _Target("geo" if kind == "GeoProperty" else "value", value)


_MISSING: Final = object()


def _walk(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):  # before date: datetime is a date
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, time):
        return "time"
    if isinstance(value, Uri):
        return "uri"
    return None


def _pair(target: Any, literal: Scalar) -> tuple[Any, Any] | None:
    """The target value and the literal made comparable, or None when their types differ."""
    if isinstance(literal, Uri):
        return (target, literal.value) if isinstance(target, str) else None
    if isinstance(target, datetime):  # a timestamp (observedAt, ...): quoted ISO text compares as one
        if isinstance(literal, str):
            literal = _temporal(literal, _DATETIME, parse_datetime) or literal
        return (target, literal) if isinstance(literal, datetime) else None
    # Date-time literals compare with string values written in the same ISO 8601 form.
    parsed: date | time | None
    if isinstance(literal, datetime):
        parsed = _temporal(target, _DATETIME, parse_datetime)
    elif isinstance(literal, date):
        parsed = _temporal(target, _DATE, date.fromisoformat)
    elif isinstance(literal, time):
        parsed = _temporal(target, _TIME, lambda t: _utc_time(time.fromisoformat(t)))
    else:
        return (target, literal) if _kind(target) == _kind(literal) else None
    return None if parsed is None else (parsed, literal)


def _temporal(text: Any, form: re.Pattern[str], parse: Callable[[str], _T]) -> _T | None:
    if not isinstance(text, str) or not form.fullmatch(text):
        return None
    try:
        return parse(text)
    except ValueError:
        return None


def _equal(target: Any, value: Scalar | Range | ValueList) -> bool:
    if isinstance(value, ValueList):
        return any(_equal(target, v) for v in value.values)
    if isinstance(value, Range):
        low, high = _pair(target, value.low), _pair(target, value.high)
        return low is not None and high is not None and low[1] <= low[0] <= high[1]
    pair = _pair(target, value)
    return pair is not None and pair[0] == pair[1]


def _order(target: Any, op: str, literal: Scalar | Range | ValueList) -> bool:
    pair = None if isinstance(literal, Range | ValueList) else _pair(target, literal)
    if pair is None:
        return False
    a, b = pair
    return bool(a > b if op == ">" else a >= b if op == ">=" else a < b if op == "<" else a <= b)


def _compare(target: _Target, op: Op, value: Scalar | Range | ValueList) -> bool:
    # A GeoProperty only answers existence. A Relationship only answers == and != (clause 4.9: any
    # other operator on a Relationship does not match).
    if target.kind == "geo" or (target.kind == "object" and op not in ("==", "!=")):
        return False
    # Clause 4.9: with an array target, == holds if the array contains the value (or, for a list,
    # any of its values; for a range, an element in it) and != is its negation, so != means "contains
    # none of" and holds for values of another type ("different data types are unequal").
    # Ordering operators are not specified for arrays; they hold if they hold for any element.
    elements = target.value if isinstance(target.value, list) else [target.value]
    if op == "==":
        return any(_equal(e, value) for e in elements)
    if op == "!=":
        return not any(_equal(e, value) for e in elements)
    return any(_order(e, op, value) for e in elements)


def _match(target: _Target, pattern: str, negate: bool) -> bool:
    # re.search, not fullmatch: the NGSIv2 heritage of ~= (Orion, Orion-LD) is regex *search*, so
    # anchors are the client's business (^...$). Only string values take part; !~= needs at least
    # one string and holds when none matches, so non-string values match neither operator.
    if target.kind != "value":
        return False
    elements = target.value if isinstance(target.value, list) else [target.value]
    texts = [e for e in elements if isinstance(e, str)]
    if not texts:
        return False
    found = any(re.search(pattern, t) for t in texts)
    return found != negate


# -- entity type selection (clause 4.17): ``A,B`` or ``A|B`` is OR, ``A;B`` is AND, with parentheses --


@dataclass(frozen=True)
class TypeSelection:
    """A parsed ``type`` parameter: ``names`` for the index prefilter, ``matches`` for the rest."""

    tree: Any  # a type name (str), or ("and"|"or", [subtrees])

    @property
    def names(self) -> set[str]:
        found: set[str] = set()
        stack = [self.tree]
        while stack:
            node = stack.pop()
            if isinstance(node, str):
                found.add(node)
            else:
                stack.extend(node[1])
        return found

    def matches(self, types: set[str], expand: Callable[[str], str]) -> bool:
        def walk(node: Any) -> bool:
            if isinstance(node, str):
                return expand(node) in types
            kind, items = node
            return all(walk(i) for i in items) if kind == "and" else any(walk(i) for i in items)

        return walk(self.tree)


def parse_type_selection(text: str) -> TypeSelection:
    position = 0

    def error(message: str) -> QSyntaxError:
        return QSyntaxError(f"type: {message} at position {position}", position)

    def parse_or(depth: int) -> Any:
        nonlocal position
        items = [parse_and(depth)]
        while position < len(text) and text[position] in ",|":
            position += 1
            items.append(parse_and(depth))
        return items[0] if len(items) == 1 else ("or", items)

    def parse_and(depth: int) -> Any:
        nonlocal position
        items = [parse_atom(depth)]
        while position < len(text) and text[position] == ";":
            position += 1
            items.append(parse_atom(depth))
        return items[0] if len(items) == 1 else ("and", items)

    def parse_atom(depth: int) -> Any:
        nonlocal position
        if depth > MAX_DEPTH:
            raise TooComplexQuery(f"type: nested deeper than {MAX_DEPTH} levels")
        if position < len(text) and text[position] == "(":
            position += 1
            node = parse_or(depth + 1)
            if position >= len(text) or text[position] != ")":
                raise error("expected ')'")
            position += 1
            return node
        start = position
        while position < len(text) and text[position] not in ",|;()":
            position += 1
        name = text[start:position].strip()
        if not name:
            raise error("expected a type name")
        return name

    tree = parse_or(0)
    if position != len(text):
        raise error(f"unexpected {text[position]!r}")
    return TypeSelection(tree)
