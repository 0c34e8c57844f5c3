"""A case as an NGSI-LD entity: ``urn:ngsi-ld:CityCase:{id}`` of type ``CityCase``, written
through the broker's write path (history, subscriptions and change events see it) in the
transaction that changes the case."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.broker import changes
from cityhub.hub.broker import service as broker
from cityhub.hub.broker.context import CORE_CONTEXT_URL, ActiveContext, _core_terms
from cityhub.hub.dispatch.models import DispatchCase
from cityhub.kit.db import current_tenant
from cityhub.kit.time import isoformat, utcnow

ENTITY_TYPE = "CityCase"


def entity_id(case: DispatchCase) -> str:
    return f"urn:ngsi-ld:{ENTITY_TYPE}:{case.id}"


_CORE = ActiveContext(
    _core_terms(), "https://uri.etsi.org/ngsi-ld/default-context/", value=None, urls=[CORE_CONTEXT_URL]
)


def _property(value: Any) -> list[dict[str, Any]]:
    return [{"type": "Property", "value": value}]


def entity_of(case: DispatchCase, now: str, created_at: str | None) -> dict[str, Any]:
    """The case as a normalized, expanded NGSI-LD entity, as the broker stores it."""
    attrs: dict[str, Any] = {
        "name": _property(case.title),
        "category": _property(case.category_code),
        "state": _property(case.state),
        "urgency": _property(case.urgency),
        "source": _property(case.source),
        "caseType": _property(case.case_type),
        "triage": _property(case.triage),
        "overdue": _property(case.overdue),
    }
    if case.description:
        attrs["description"] = _property(case.description)
    for name, value in (
        ("department", case.department_code),
        ("departmentTenant", case.department_tenant),
        ("gridCell", case.grid_code),
        ("district", case.district_code),
        ("sourceRef", case.source_ref),
    ):
        if value is not None:
            attrs[name] = _property(value)
    if case.due_at is not None:
        attrs["dueAt"] = [
            {"type": "Property", "value": {"@type": "DateTime", "@value": isoformat(case.due_at)}}
        ]
    if case.lon is not None and case.lat is not None:
        attrs["location"] = [
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [case.lon, case.lat]}}
        ]
    if case.duplicate_of is not None:
        attrs["duplicateOf"] = [
            {"type": "Relationship", "object": f"urn:ngsi-ld:{ENTITY_TYPE}:{case.duplicate_of}"}
        ]
    entity: dict[str, Any] = {
        "id": entity_id(case),
        "type": [_CORE.expand(ENTITY_TYPE)],
        "attrs": {_CORE.expand(name): instances for name, instances in attrs.items()},
    }
    changes.stamp(entity, now, created=True)
    if created_at is not None:
        entity["createdAt"] = created_at
    return entity


async def write_entities(session: AsyncSession, cases: Sequence[DispatchCase]) -> None:
    """Write the cases' entities through the broker (history, subscriptions, change events)."""
    if not cases:
        return
    await broker.ensure_tenant(session, _tenant(session))
    before = await broker.stored_entities(session, [entity_id(case) for case in cases], for_update=True)
    now = isoformat(utcnow())
    written = []
    for case in cases:
        previous = before.get(entity_id(case))
        written.append(entity_of(case, now, previous.get("createdAt") if previous else None))
    await broker.write_many(session, written, before=before)


def _tenant(session: AsyncSession) -> str:
    tenant = current_tenant(session)
    assert tenant is not None, "dispatch sessions are scoped to a tenant"
    return tenant
