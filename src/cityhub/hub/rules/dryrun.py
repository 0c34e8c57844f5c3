"""Dry run: when a rule would have fired and cleared, replaying the broker's attribute history.

The history of the rule's entities (the attributes it reads; every attribute for an absence rule)
within the window is replayed in time order (observedAt, else when the broker recorded it). At
each moment the rule is evaluated as the engine evaluates a change: on the entity as of that
moment, with the instances the moment replaced as ``previous``. A ``for`` window fires when it
completes (as the engine's periodic check would), an absence rule when an entity's silence passes
its limit. Values written before the window are not known to the replay.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.broker.models import BrokerAttributeInstance, BrokerEntityType
from cityhub.hub.rules.conditions import value_of
from cityhub.hub.rules.engine import CompiledRule
from cityhub.hub.rules.schemas import DryRunResult, EntityRun, Episode
from cityhub.kit.errors import BadRequestData

#: The most history instances one dry run reads.
MAX_INSTANCES = 500_000
MAX_ENTITIES = 5_000


async def dry_run(session: AsyncSession, rule: CompiledRule, start: datetime, end: datetime) -> DryRunResult:
    if end <= start:
        raise BadRequestData("end must be after start")
    typed = select(BrokerEntityType.entity_id).where(BrokerEntityType.type == rule.entity_type)
    if rule.ids is not None:
        typed = typed.where(BrokerEntityType.entity_id.in_(rule.ids))
    entity_ids = list(await session.scalars(typed.order_by(BrokerEntityType.entity_id).limit(MAX_ENTITIES)))
    instance = BrokerAttributeInstance
    moment = func.coalesce(instance.observed_at, instance.recorded_at)
    statement = select(
        instance.entity_id,
        instance.attribute,
        instance.dataset_id,
        moment,
        instance.deleted_at,
        instance.data,
    ).where(instance.entity_id.in_(entity_ids), moment >= start, moment <= end)
    if rule.check is not None:
        statement = statement.where(instance.attribute.in_(rule.reads))
    rows = (
        await session.execute(
            statement.order_by(instance.entity_id, moment, instance.recorded_at).limit(MAX_INSTANCES + 1)
        )
    ).all()
    if len(rows) > MAX_INSTANCES:
        raise BadRequestData(f"the window holds more than {MAX_INSTANCES} history instances; shorten it")
    runs = []
    fired = 0
    by_entity = {entity_id: list(items) for entity_id, items in groupby(rows, key=lambda row: row[0])}
    for entity_id in entity_ids:
        run = _replay(rule, entity_id, by_entity.get(entity_id, []), start, end)
        fired += len(run.episodes)
        runs.append(run)
    return DryRunResult(start=start, end=end, entities=runs, fired=fired)


def _replay(rule: CompiledRule, entity_id: str, rows: list[Any], start: datetime, end: datetime) -> EntityRun:
    episodes: list[Episode] = []
    attrs: dict[str, list[dict[str, Any]]] = {}
    evaluations = 0
    since: datetime | None = None
    firing = False
    last_heard: datetime | None = None  # nothing is known of the time before the window

    def fire(at: datetime) -> None:
        episodes.append(Episode(fired_at=at, cleared_at=None, value=value_of(attrs, rule.attribute_iri)))

    def clear(at: datetime) -> None:
        if episodes and episodes[-1].cleared_at is None:
            episodes[-1].cleared_at = at

    for at, group in groupby(rows, key=lambda row: row[3]):
        previous: dict[str, list[dict[str, Any]]] = {}
        for _, attribute, dataset_id, _, deleted_at, data in group:
            current = attrs.get(attribute, [])
            previous.setdefault(attribute, current)
            kept = [i for i in current if i.get("datasetId") != dataset_id]
            attrs[attribute] = kept if deleted_at is not None else [*kept, data]
        if rule.absence is not None:
            if last_heard is not None and at - last_heard >= rule.absence:
                fire(last_heard + rule.absence)
                clear(at)
            last_heard = at
            continue
        assert rule.check is not None
        if rule.hold is not None and since is not None and not firing and at >= since + rule.hold:
            fire(since + rule.hold)
            firing = True
        try:
            truth = rule.check(attrs, previous)
        except Exception as error:
            raise BadRequestData(
                f"the rule fails on {entity_id} at {at.isoformat()}: {type(error).__name__}: {error}"
            ) from None
        evaluations += 1
        if rule.edge:
            if truth:
                fire(at)
                clear(at)
            continue
        if truth:
            since = since or at
            if not firing and (rule.hold is None or at - since >= rule.hold):
                fire(at)
                firing = True
        else:
            if firing:
                clear(at)
            since, firing = None, False
    if rule.absence is not None and last_heard is not None and end - last_heard >= rule.absence:
        fire(last_heard + rule.absence)
    elif rule.hold is not None and since is not None and not firing and end >= since + rule.hold:
        fire(since + rule.hold)
    return EntityRun(entity_id=entity_id, evaluations=evaluations, episodes=episodes)


def window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    end = end or now
    return start or end - timedelta(hours=24), end
