"""Reading attribute history (ETSI GS CIM 009 v1.8, clauses 5.7.3–5.7.4, 6.3.10): time queries,
the server's limit on instances (temporal pagination), aggregation and the temporal representations.

**Time queries.** An entity's temporal representation has, per attribute, its instances in time
order (``observedAt`` by default, or ``createdAt``/``modifiedAt``/``deletedAt`` with
``timeproperty``), narrowed by ``timerel`` (before/after/between) and ``lastN``.

**Temporal pagination.** A read returns at most ``limit`` instances of each attribute (the setting
``CITYHUB_BROKER_TEMPORAL_LIMIT``). The limit is pushed into SQL (a row number per entity and
attribute), one row more than the limit is read to know whether more exist. When an attribute had
more, the answer covers a time range every attribute is complete in: from the start (the oldest
instances, or the newest with ``lastN``) up to the earliest point where some attribute was cut, in
every entity of the answer; instances past that point are left out, so that a client asking again
from the range's end misses nothing. The caller answers 206 Partial Content with
``Content-Range: date-time <start>-<end>/<lastN or *>``. ``lastN`` at or below the limit is the
client's own choice and is no pagination. Aggregations are computed by the database over every
instance of the time range (:mod:`cityhub.hub.broker.aggregation`); no limit applies.

**Representations.** Normalized instances carry their ``instanceId``; ``options=temporalValues``
gives ``[value, time]`` pairs and ``options=aggregatedValues`` the ``aggrMethods`` per
``aggrPeriodDuration`` as ``[value, start, end]``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cityhub.hub.broker import ngsi
from cityhub.hub.broker.context import ActiveContext
from cityhub.hub.broker.models import BrokerAttributeInstance, BrokerEntity, BrokerEntityType
from cityhub.hub.broker.protection import Disclosure
from cityhub.kit.errors import BadRequestData
from cityhub.kit.time import isoformat, parse_datetime

if TYPE_CHECKING:
    from cityhub.hub.broker.aggregation import Aggregated

INSTANCE_PREFIX = "urn:ngsi-ld:Instance:"
AGGREGATES = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
TIMEPROPERTIES = {
    "observedAt": "observed_at",
    "createdAt": "recorded_at",
    "modifiedAt": "recorded_at",
    "deletedAt": "deleted_at",
}
#: The name of each attribute kind's content in temporalValues.
PLURALS = {
    "value": "values",
    "object": "objects",
    "languageMap": "languageMaps",
    "json": "jsons",
    "vocab": "vocabs",
    "valueList": "valueLists",
    "objectList": "objectLists",
}


@dataclass
class TimeQuery:
    timerel: str | None = None
    time_at: datetime | None = None
    end_time_at: datetime | None = None
    timeproperty: str = "observedAt"
    last_n: int | None = None


def _when(value: Any, what: str) -> datetime:
    try:
        return parse_datetime(value)
    except (TypeError, ValueError):
        raise BadRequestData(f"{what} must be a date-time, not {value!r}") from None


def parse_time_query(
    timerel: str | None,
    time_at: str | None,
    end_time_at: str | None,
    timeproperty: str | None,
    last_n: Any,
) -> TimeQuery:
    query = TimeQuery(timeproperty=timeproperty or "observedAt")
    if query.timeproperty not in TIMEPROPERTIES:
        raise BadRequestData("timeproperty must be observedAt, createdAt, modifiedAt or deletedAt")
    if timerel is not None:
        if timerel not in ("before", "after", "between"):
            raise BadRequestData(f"timerel must be before, after or between, not {timerel!r}")
        if time_at is None:
            raise BadRequestData("timerel needs timeAt")
        query.timerel = timerel
        query.time_at = _when(time_at, "timeAt")
        if timerel == "between":
            if end_time_at is None:
                raise BadRequestData("timerel=between needs endTimeAt")
            query.end_time_at = _when(end_time_at, "endTimeAt")
            if query.end_time_at <= query.time_at:
                raise BadRequestData("endTimeAt must be after timeAt")
    elif time_at is not None or end_time_at is not None:
        raise BadRequestData("timeAt and endTimeAt need timerel")
    if last_n is not None:
        try:
            query.last_n = int(last_n)
        except (TypeError, ValueError):
            raise BadRequestData(f"lastN must be a positive integer, not {last_n!r}") from None
        if query.last_n < 1:
            raise BadRequestData("lastN must be a positive integer")
    return query


@dataclass
class Series:
    """One attribute's instances in an answer, in time order; ``kind`` is its type (Property, …),
    kept for an attribute whose instances pagination left out."""

    kind: str
    rows: list[BrokerAttributeInstance]


@dataclass
class History:
    """entity id → attribute → its series; ``content_range`` is set when the server's limit cut
    the answer (the value of the Content-Range header)."""

    entities: dict[str, dict[str, Series]] = field(default_factory=dict)
    content_range: str | None = None


@dataclass
class Selection:
    """Which instances a read is about: attributes (None: all) less ``omit``, and datasetIds
    (None: all; None in the set: the default instances). ``limits``: entity types readable in part
    (``sharing``), with the attributes whose instances an entity of the type may show."""

    attrs: Collection[str] | None = None
    omit: Collection[str] = ()
    dataset_ids: Collection[str | None] | None = None
    limits: Mapping[str, Collection[str]] = field(default_factory=dict)


def conditions(chosen: Selection, query: TimeQuery) -> list[Any]:
    """The conditions on instances that the selection and the time query make."""
    column = getattr(BrokerAttributeInstance, TIMEPROPERTIES[query.timeproperty])
    where: list[Any] = []
    if chosen.attrs is not None:
        where.append(BrokerAttributeInstance.attribute.in_(chosen.attrs))
    if chosen.omit:
        where.append(BrokerAttributeInstance.attribute.not_in(chosen.omit))
    if chosen.dataset_ids is not None:
        named = [d for d in chosen.dataset_ids if d is not None]
        either = [BrokerAttributeInstance.dataset_id.in_(named)] if named else []
        if None in chosen.dataset_ids:
            either.append(BrokerAttributeInstance.dataset_id.is_(None))
        where.append(or_(*either))
    for entity_type, allowed in sorted(chosen.limits.items()):
        # an instance of an entity of a type readable in part: only of the attributes it opens
        of_type = exists().where(
            BrokerEntityType.tenant_code == BrokerAttributeInstance.tenant_code,
            BrokerEntityType.entity_id == BrokerAttributeInstance.entity_id,
            BrokerEntityType.type == entity_type,
        )
        where.append(or_(~of_type, BrokerAttributeInstance.attribute.in_(sorted(allowed))))
    if query.timerel == "before":
        where.append(column < query.time_at)
    elif query.timerel == "after":
        where.append(column >= query.time_at)
    elif query.timerel == "between":
        where.extend((column >= query.time_at, column < query.end_time_at))
    if query.timeproperty in ("observedAt", "deletedAt"):
        where.append(column.is_not(None))
    else:
        where.append(BrokerAttributeInstance.deleted_at.is_(None))
    return where


def has_history(chosen: Selection, query: TimeQuery) -> ColumnElement[bool]:
    """A condition on entity rows: the entity has instances that the selection and the time query
    choose. A temporal query answers for those only (an entity with no history in the time range
    is no result). Correlated, so that the instance index by entity serves it."""
    return exists().where(
        BrokerAttributeInstance.entity_id == BrokerEntity.entity_id, *conditions(chosen, query)
    )


async def read(
    session: AsyncSession,
    entity_ids: Sequence[str],
    chosen: Selection,
    query: TimeQuery,
    *,
    limit: int | None,
) -> History:
    """The instances of ``entity_ids`` that the selection and the time query choose, at most
    ``limit`` per attribute (None: no server limit), cut to a time range complete for every
    attribute (see the module docstring)."""
    if not entity_ids:
        return History()
    column = getattr(BrokerAttributeInstance, TIMEPROPERTIES[query.timeproperty])
    newest_first = query.last_n is not None
    paged = limit is not None and (query.last_n is None or query.last_n > limit)
    take = limit + 1 if paged and limit is not None else query.last_n
    inner = select(BrokerAttributeInstance).where(
        BrokerAttributeInstance.entity_id.in_(entity_ids), *conditions(chosen, query)
    )
    if take is None:
        statement = inner.order_by(column, BrokerAttributeInstance.instance_id)
    else:
        # the first (or, with lastN, last) ``take`` instances of each entity and attribute
        order = (
            (column.desc(), BrokerAttributeInstance.instance_id.desc())
            if newest_first
            else (column, BrokerAttributeInstance.instance_id)
        )
        number = func.row_number().over(
            partition_by=(BrokerAttributeInstance.entity_id, BrokerAttributeInstance.attribute),
            order_by=order,
        )
        numbered = inner.add_columns(number.label("n")).subquery()
        instance = aliased(BrokerAttributeInstance, numbered)
        statement = (
            select(instance)
            .where(numbered.c.n <= take)
            .order_by(getattr(instance, TIMEPROPERTIES[query.timeproperty]), instance.instance_id)
        )
    found = History()
    for row in await session.scalars(statement):
        attributes = found.entities.setdefault(row.entity_id, {})
        series = attributes.get(row.attribute)
        if series is None:
            attributes[row.attribute] = Series(row.data.get("type", "Property"), [row])
        else:
            series.rows.append(row)
    if paged and limit is not None:
        _paginate(found, query, limit)
    return found


def _paginate(found: History, query: TimeQuery, limit: int) -> None:
    """Cut the answer where the first attribute that has more than ``limit`` instances ends."""
    newest_first = query.last_n is not None
    edges: list[datetime] = []  # per attribute cut, the time it was cut at
    for attributes in found.entities.values():
        for series in attributes.values():
            if len(series.rows) > limit:
                series.rows = series.rows[-limit:] if newest_first else series.rows[:limit]
                edges.append(_time_of(series.rows[0 if newest_first else -1], query))
    if not edges:
        return
    cut = max(edges) if newest_first else min(edges)
    times: list[datetime] = []
    for attributes in found.entities.values():
        for series in attributes.values():
            series.rows = [
                row
                for row in series.rows
                if (_time_of(row, query) >= cut if newest_first else _time_of(row, query) <= cut)
            ]
            times.extend(_time_of(row, query) for row in series.rows)
    if newest_first:
        start = (
            query.time_at
            if query.timerel == "before"
            else query.end_time_at
            if query.timerel == "between"
            else max(times)
        )
    else:
        start = query.time_at if query.timerel in ("after", "between") else min(times)
    assert start is not None
    size = str(query.last_n) if query.last_n is not None else "*"
    found.content_range = f"date-time {isoformat(start)}-{isoformat(cut)}/{size}"


_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


#: The longest duration accepted: periods and retention beyond it would leave the calendar.
LONGEST = timedelta(days=1000 * 365)


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration; a month counts 30 days and a year 365 (periods are fixed lengths), at
    most 1,000 years."""
    match = _DURATION.fullmatch(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise BadRequestData(f"{text!r} is not an ISO 8601 duration such as PT1H")
    parts = {key: float(value) for key, value in match.groupdict().items() if value}
    try:
        length = timedelta(
            days=parts.get("years", 0) * 365
            + parts.get("months", 0) * 30
            + parts.get("weeks", 0) * 7
            + parts.get("days", 0),
            hours=parts.get("hours", 0),
            minutes=parts.get("minutes", 0),
            seconds=parts.get("seconds", 0),
        )
    except OverflowError:
        length = timedelta.max
    if length > LONGEST:
        raise BadRequestData(f"the duration {text!r} is longer than 1000 years")
    return length


@dataclass
class Aggregation:
    methods: list[str]
    period: timedelta  # zero: one period over the whole time range


def parse_aggregation(methods: str | None, period: str | None) -> Aggregation:
    if not methods:
        raise BadRequestData("options=aggregatedValues needs aggrMethods")
    names = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in AGGREGATES]
    if unknown or not names:
        raise BadRequestData(f"unknown aggrMethods {', '.join(unknown)}; use {', '.join(AGGREGATES)}")
    if not period:
        return Aggregation(names, timedelta(0))
    try:
        return Aggregation(names, parse_duration(period))
    except BadRequestData as error:
        raise BadRequestData(f"aggrPeriodDuration: {error.detail}") from None


def _time_of(row: BrokerAttributeInstance, query: TimeQuery) -> datetime:
    if query.timeproperty == "observedAt" and row.observed_at is not None:
        return row.observed_at
    if query.timeproperty == "deletedAt" and row.deleted_at is not None:
        return row.deleted_at
    return row.recorded_at


def _simple(instance: dict[str, Any], key: str, ctx: ActiveContext) -> Any:
    """An instance's content in temporalValues: values and objects bare; language maps, JSON and
    vocab values wrapped in their member (``{"json": …}``), vocab IRIs compacted."""
    content = instance.get(key)
    if key in ("value", "object", "valueList", "objectList"):
        return content
    if key == "vocab":
        content = (
            [ctx.compact(v) for v in content] if isinstance(content, list) else ctx.compact(str(content))
        )
    return {key: content}


def _by_dataset(
    rows: list[BrokerAttributeInstance],
) -> list[tuple[str | None, list[BrokerAttributeInstance]]]:
    """Instances grouped by datasetId (the default instances first), each group in time order."""
    groups: dict[str | None, list[BrokerAttributeInstance]] = {}
    for row in rows:
        groups.setdefault(row.dataset_id, []).append(row)
    return sorted(groups.items(), key=lambda item: item[0] is not None)


def render(
    entity: dict[str, Any],
    instances: dict[str, Series],
    ctx: ActiveContext,
    *,
    options: set[str],
    query: TimeQuery,
    aggregated: dict[str, Aggregated] | None = None,
    disclosure: Disclosure | None = None,
) -> dict[str, Any]:
    """An entity's temporal representation, compacted with ``ctx``; with ``aggregated`` (see
    :mod:`cityhub.hub.broker.aggregation`), its aggregatedValues. ``disclosure``: how personal
    information is shown."""
    sys_attrs = "sysAttrs" in options
    shell = {"id": entity["id"], "type": entity["type"], "attrs": {}} | (
        {"scope": entity["scope"]} if entity.get("scope") else {}
    )
    out = ngsi.compact_entity(shell, ctx, sys_attrs=False)
    if sys_attrs:
        out["createdAt"], out["modifiedAt"] = entity["createdAt"], entity["modifiedAt"]
    if aggregated is not None:
        for name, values in aggregated.items():
            if disclosure is not None and not disclosure.aggregable(entity, name):
                continue  # aggregates of masked values (min, max, distinct ones) would show them
            out[ctx.compact(name)] = values.groups[0] if len(values.groups) == 1 else values.groups
        return out
    for name, series in instances.items():
        kind, rows = series.kind, series.rows
        term = ctx.compact(name)
        datas = [r.data for r in rows]
        if disclosure is not None:
            datas = disclosure.instances(entity["id"], entity["type"], name, datas)
        if "temporalValues" in options:
            key = ngsi.content_key(kind)
            groups: list[dict[str, Any]] = []
            shown = {id(r): data for r, data in zip(rows, datas, strict=True)}
            # one object per datasetId; an attribute pagination left no instances of shows empty
            for dataset, members in _by_dataset(rows) or [(None, [])]:
                pairs = [[_simple(shown[id(r)], key, ctx), isoformat(_time_of(r, query))] for r in members]
                one = {"type": kind, PLURALS[key]: pairs}
                groups.append(one | ({"datasetId": dataset} if dataset is not None else {}))
            out[term] = groups[0] if len(groups) == 1 else groups
        elif not rows:  # every instance was past the range pagination kept
            out[term] = []
        else:
            rendered = ngsi.compact_entity(
                {
                    "id": "",
                    "type": [],
                    "createdAt": "",
                    "modifiedAt": "",
                    "attrs": {name: datas},
                },
                ctx,
                sys_attrs=sys_attrs,
            )[term]
            listed = rendered if isinstance(rendered, list) else [rendered]
            for shown, row in zip(listed, rows, strict=True):
                shown["instanceId"] = f"{INSTANCE_PREFIX}{row.instance_id}"
                if row.deleted_at is not None:
                    shown["deletedAt"] = isoformat(row.deleted_at)
            out[term] = listed
    return out
