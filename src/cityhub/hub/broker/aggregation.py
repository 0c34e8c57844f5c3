"""Temporal aggregation in SQL (``options=aggregatedValues``, ETSI GS CIM 009 clause 5.7.4.2).

The database computes every ``aggrMethods`` value per entity, attribute, datasetId and period with
one ``GROUP BY``; only the buckets come back. The same statement runs on PostgreSQL and SQLite,
with the few expressions that differ chosen per dialect:

- **Periods.** Periods start at ``timeAt`` for ``timerel=after|between``, otherwise at the first
  instance of each entity, attribute and datasetId, and each lasts ``aggrPeriodDuration`` (a month
  counts 30 days, a year 365). An instance at time ``t`` falls in period
  ``floor((t - start) / duration)``: PostgreSQL's ``date_bin``, integer microseconds on SQLite.
  Without ``aggrPeriodDuration`` there is one period, from the start to ``endTimeAt`` (or to just
  after the last instance). Periods without instances are left out.
- **Values.** An instance's content is its member for its kind (``value``, ``object``,
  ``languageMap``, …). ``totalCount`` counts instances, ``distinctCount`` distinct contents (as JSON
  text; an instance without content counts as one more value). The other methods read numbers only
  (JSON numbers; booleans, strings, objects are not numbers) and are ``null`` for a period without
  any: ``sum``, ``avg``, ``min``, ``max``, ``sumsq`` (sum of squares) and ``stddev`` (population
  standard deviation; PostgreSQL's ``stddev_pop``, on SQLite from count, sum and sum of squares).
- **lastN** aggregates the last N instances of each attribute.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import INTERVAL
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from cityhub.hub.broker import history, ngsi
from cityhub.hub.broker.models import BrokerAttributeInstance
from cityhub.kit.db import UTCDateTime
from cityhub.kit.time import isoformat

_MICROSECOND = timedelta(microseconds=1)

#: Bucket bounds repeat across entities (periods from timeAt): format each once.
_iso = functools.lru_cache(maxsize=65536)(isoformat)


@dataclass
class Aggregated:
    """One attribute's aggregatedValues: its kind and one object per datasetId (the default
    instances first), each ``{"type": kind, method: [[value, start, end], …], "datasetId"?}``."""

    kind: str
    groups: list[dict[str, Any]] = field(default_factory=list)


#: The members that hold an instance's content, ``value`` (the commonest) first.
_CONTENT_MEMBERS = tuple(dict.fromkeys(("value", *ngsi.CONTENT_KEYS.values())))
#: The members whose content may be a JSON number (Property, JsonProperty).
_NUMBER_MEMBERS = ("value", "json")


@dataclass
class _Expressions:
    """What the aggregates read of a row, per dialect."""

    kind: ColumnElement[Any]
    content: ColumnElement[Any]  # the content as JSON text (NULL when missing)
    number: ColumnElement[Any]  # the content as a float when it is a JSON number, else NULL


def _expressions(dialect: str, data: Any) -> _Expressions:
    """An instance holds its content in the one member its kind names (``value``, ``object``, …):
    the first of them present is it, found without reading the kind. Only ``value`` and ``json``
    can hold a number; the number is read from them directly, which is cheaper than from the
    content."""
    kind = data.op("->>", return_type=String)(literal("type", String))
    members = [data.op("->")(literal(key, String)) for key in _CONTENT_MEMBERS]
    if dialect == "postgresql":
        number = case(
            *(
                (
                    func.jsonb_typeof(data.op("->")(literal(key, String))) == "number",
                    cast(data.op("->>", return_type=String)(literal(key, String)), Float),
                )
                for key in _NUMBER_MEMBERS
            ),
            else_=None,
        )
        return _Expressions(kind, cast(func.coalesce(*members), String), number)
    number = case(
        *(
            (
                func.json_type(data, literal(f"$.{key}", String)).in_(("integer", "real")),
                cast(func.json_extract(data, literal(f"$.{key}", String)), Float),
            )
            for key in _NUMBER_MEMBERS
        ),
        else_=None,
    )
    return _Expressions(kind, func.coalesce(*members), number)


def _microseconds(moment: Any) -> ColumnElement[Any]:
    """A stored SQLite timestamp (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) as integer microseconds since
    1970; exact, unlike ``julianday`` (and ``strftime`` alone, which rounds to milliseconds)."""
    seconds = cast(func.strftime("%s", func.substr(moment, 1, 19)), Integer)
    fraction = cast(func.substr(moment, 21, 6), Integer)
    return seconds * 1_000_000 + fraction


async def read(
    session: AsyncSession,
    entity_ids: Sequence[str],
    chosen: history.Selection,
    query: history.TimeQuery,
    aggregation: history.Aggregation,
) -> dict[str, dict[str, Aggregated]]:
    """entity id → attribute → its aggregatedValues, computed by the database."""
    if not entity_ids:
        return {}
    dialect = session.get_bind().dialect.name
    instance = BrokerAttributeInstance
    moment = getattr(instance, history.TIMEPROPERTIES[query.timeproperty])
    columns = (
        instance.entity_id,
        instance.attribute,
        instance.dataset_id,
        moment.label("t"),
        instance.data.label("data"),
    )
    chosen_rows = select(*columns).where(
        instance.entity_id.in_(entity_ids), *history.conditions(chosen, query)
    )
    if query.last_n is not None:  # the last N instances of each attribute
        number = func.row_number().over(
            partition_by=(instance.entity_id, instance.attribute),
            order_by=(moment.desc(), instance.instance_id.desc()),
        )
        numbered = chosen_rows.add_columns(number.label("n")).subquery("numbered")
        chosen_rows = select(*(numbered.c[c.name] for c in columns)).where(numbered.c.n <= query.last_n)
    base = chosen_rows.subquery("base")
    period = aggregation.period
    fixed_start = query.time_at if query.timerel in ("after", "between") else None
    keys: list[Any] = [base.c.entity_id, base.c.attribute, base.c.dataset_id]
    source: Any = base
    start: Any = None
    if period > timedelta(0) and fixed_start is None:  # periods from each group's first instance
        firsts = select(*keys, func.min(base.c.t).label("s")).group_by(*keys).subquery("firsts")
        source = base.join(
            firsts,
            and_(
                base.c.entity_id == firsts.c.entity_id,
                base.c.attribute == firsts.c.attribute,
                base.c.dataset_id.is_not_distinct_from(firsts.c.dataset_id),
            ),
        )
        start = firsts.c.s
        keys.append(start)
    bucket: Any = None
    if period > timedelta(0):
        if dialect == "postgresql":
            origin = start if start is not None else literal(fixed_start, UTCDateTime())
            bucket = type_coerce(func.date_bin(literal(period, INTERVAL()), base.c.t, origin), UTCDateTime())
        else:
            origin_us = (
                _microseconds(start)
                if start is not None
                else literal(_epoch_microseconds(fixed_start), Integer)
            )
            bucket = (_microseconds(base.c.t) - origin_us) // literal(period // _MICROSECOND, Integer)
    values = _expressions(dialect, base.c.data)
    selected: list[Any] = [*keys]
    group_by: list[Any] = [*keys]
    if bucket is not None:
        # by name: PostgreSQL would not see two copies of an expression with parameters as one
        selected.append(bucket.label("bucket"))
        group_by.append(literal_column("bucket"))
    selected.append(func.min(values.kind).label("kind"))
    if period <= timedelta(0):
        selected += [func.min(base.c.t).label("first"), func.max(base.c.t).label("last")]
    methods = list(dict.fromkeys(aggregation.methods))  # a method asked for twice shows once
    for method in methods:
        selected.extend(_aggregates(dialect, method, values))
    statement = select(*selected).select_from(source).group_by(*group_by).order_by(*group_by)
    found: dict[str, dict[str, dict[str | None, dict[str, Any]]]] = {}
    kinds: dict[tuple[str, str], str] = {}
    result = await session.execute(statement)
    at = {name: index for index, name in enumerate(result.keys())}  # rows read by position: faster
    readers = [(method, _reader(method, at)) for method in methods]
    k_kind, k_bucket, k_start = at["kind"], at.get("bucket"), at.get("s")
    k_first, k_last = at.get("first"), at.get("last")
    postgres = dialect == "postgresql"
    for row in result:
        entity_id, attribute, dataset = row[0], row[1], row[2]
        kind = kinds.setdefault((entity_id, attribute), row[k_kind] or "Property")
        if k_bucket is not None:
            origin_at = row[k_start] if k_start is not None else fixed_start
            assert origin_at is not None
            bucket_at = row[k_bucket]
            index = (bucket_at - origin_at) // period if postgres else int(bucket_at)
            lower = origin_at + period * index
            upper = lower + period
        else:
            assert k_first is not None
            assert k_last is not None
            lower = fixed_start if fixed_start is not None else row[k_first]
            upper = query.end_time_at if query.end_time_at is not None else row[k_last] + _MICROSECOND
        groups = found.setdefault(entity_id, {}).setdefault(attribute, {})
        shown = groups.get(dataset)
        if shown is None:
            shown = groups[dataset] = {"type": kind} | {method: [] for method in methods}
        start_text, end_text = _iso(lower), _iso(upper)
        for method, value_of in readers:
            shown[method].append([value_of(row), start_text, end_text])
    return {
        entity_id: {
            attribute: Aggregated(
                kinds[(entity_id, attribute)],
                [
                    shown | ({"datasetId": dataset} if dataset is not None else {})
                    for dataset, shown in sorted(groups.items(), key=lambda item: item[0] is not None)
                ],
            )
            for attribute, groups in attributes.items()
        }
        for entity_id, attributes in found.items()
    }


def _epoch_microseconds(moment: datetime | None) -> int:
    assert moment is not None
    return (moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)) // _MICROSECOND


def _aggregates(dialect: str, method: str, values: _Expressions) -> list[Any]:
    """The SQL aggregates one method needs, labelled by method."""
    number = values.number
    if method == "totalCount":
        return [func.count().label(method)]
    if method == "distinctCount":
        missing = func.max(case((values.content.is_(None), 1), else_=0))
        return [(func.count(values.content.distinct()) + missing).label(method)]
    if method == "sum":
        return [func.sum(number).label(method)]
    if method == "avg":
        return [func.avg(number).label(method)]
    if method == "min":
        return [func.min(number).label(method)]
    if method == "max":
        return [func.max(number).label(method)]
    if method == "sumsq":
        return [func.sum(number * number).label(method)]
    assert method == "stddev"
    if dialect == "postgresql":
        return [func.stddev_pop(number).label(method)]
    return [
        func.count(number).label("stddev_n"),
        func.sum(number).label("stddev_sum"),
        func.sum(number * number).label("stddev_sumsq"),
    ]


def _reader(method: str, at: dict[str, int]) -> Callable[[Any], Any]:
    """How to read one method's value from a result row (columns by position ``at``)."""
    if method in ("totalCount", "distinctCount"):
        position = at[method]
        return lambda row: int(row[position])
    if method == "stddev" and "stddev_n" in at:
        n, total, squares = at["stddev_n"], at["stddev_sum"], at["stddev_sumsq"]

        def stddev(row: Any) -> float | None:
            count = row[n]
            if not count:
                return None
            mean = row[total] / count
            return math.sqrt(max(row[squares] / count - mean * mean, 0.0))

        return stddev
    position = at[method]
    return lambda row: None if row[position] is None else float(row[position])
