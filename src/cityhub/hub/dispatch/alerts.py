"""Cases from alerts: an alert of the rule engine opens a case in the one workflow.

Automatically, when the alert's rule asks for it (``open_case`` in its definition), in the
transaction that raises the alert (the rule engine's ``on_alert_raised`` hook); or by hand,
``POST /api/v1/alerts/{id}/case``. The case takes the alert's message as its title, the source
entity's location (copied onto the ``Alert`` entity when it was raised), an urgency from the
alert's severity, ``source="alert"`` and the alert's id as ``source_ref``; routing, triage and
duplicates are the workflow's as for any case. The alert keeps the case's id (``case_id``) and a
``case_opened`` step in its history.

A rule's ``open_case`` that cannot be honoured (an unknown case type) leaves the alert raised
without a case and says why in its history: a misconfigured rule never holds its alerts back.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, Field
from shapely.errors import GEOSException
from shapely.geometry import shape
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.broker import service as broker
from cityhub.hub.broker.local import expand
from cityhub.hub.dispatch import service, workflow
from cityhub.hub.dispatch.models import DispatchCase
from cityhub.hub.dispatch.schemas import CaseRead
from cityhub.hub.dispatch.views import read_case
from cityhub.hub.rules import service as rules
from cityhub.hub.rules.models import Alert, AlertEvent
from cityhub.kit.db import current_tenant
from cityhub.kit.errors import BadRequestData, Conflict, HubError
from cityhub.kit.web import DbSession, RequestTenant

log = logging.getLogger(__name__)

#: A case's urgency from the alert's severity (when the rule's ``open_case`` names none).
URGENCY_OF_SEVERITY = {"critical": "urgent", "major": "urgent"}
DEFAULT_CASE_TYPE = "urban_management"


class CaseFromAlert(BaseModel):
    """What a case opened from an alert by hand needs beyond the alert; each member defaults to the
    rule's ``open_case``."""

    category: str | None = Field(None, min_length=1, max_length=32, description="Case category code")
    case_type: str | None = Field(None, min_length=1, max_length=64)
    urgency: str | None = Field(None, pattern="^(normal|urgent)$")


async def _location(session: AsyncSession, alert: Alert) -> dict[str, Any] | None:
    """The alert's place: the location its ``Alert`` entity took from the source entity."""
    entity_id = rules.alert_entity_id(alert)
    stored = (await broker.stored_entities(session, [entity_id])).get(entity_id)
    instances = (stored or {}).get("attrs", {}).get(expand("location")) or []
    value = instances[0].get("value") if instances else None
    if not isinstance(value, dict):
        return None
    if value.get("type") == "Point":
        return value
    try:  # a road's or an area's alert: a point on its geometry, which grid cells can locate
        point = shape(value).representative_point()
    except (ValueError, TypeError, AttributeError, GEOSException):
        return None
    return {"type": "Point", "coordinates": [point.x, point.y]}


async def open_case_for(session: AsyncSession, alert: Alert, asked: CaseFromAlert) -> DispatchCase:
    """Open the case of ``alert`` (in the session's tenant, the alert's) and link the two. What
    is wrong with the request is found before anything is written."""
    if alert.case_id is not None:
        raise Conflict(f"alert {alert.alert_id} already opened case {alert.case_id}", case=alert.case_id)
    wanted = alert.open_case or {}
    category = asked.category or wanted.get("category")
    if not category:
        raise BadRequestData("name the case category: the alert's rule does not (open_case.category)")
    kind = asked.case_type or wanted.get("case_type") or DEFAULT_CASE_TYPE
    case_type = workflow.case_type(session, str(kind))
    urgency = asked.urgency or wanted.get("urgency") or URGENCY_OF_SEVERITY.get(alert.severity, "normal")
    if urgency not in service.URGENCIES:
        raise BadRequestData(f"open_case.urgency must be one of {', '.join(service.URGENCIES)}")
    case = await service.open_case(
        session,
        tenant=current_tenant(session) or alert.tenant_code,
        case_type=case_type.key,
        category_code=str(category),
        title=alert.message_zh or alert.message_en or f"alert {alert.alert_id}",
        description=alert.message_en if alert.message_zh else "",
        location=await _location(session, alert),
        urgency=str(urgency),
        source="alert",
        source_ref=str(alert.alert_id),
    )
    alert.case_id = str(case.id)
    session.add(AlertEvent(alert_id=alert.alert_id, kind="case_opened", data={"case_id": str(case.id)}))
    await session.flush()
    return case


async def on_alert_raised(session: AsyncSession, alert: Alert) -> None:
    """The rule engine's hook: open the case the rule asks for."""
    if not alert.open_case:
        return
    try:
        await open_case_for(session, alert, CaseFromAlert())
    except HubError as error:  # raised before anything was written
        log.warning("alert %s: no case opened: %s", alert.alert_id, error.detail)
        session.add(AlertEvent(alert_id=alert.alert_id, kind="case_refused", note=error.detail))


def install() -> None:
    """Join the rule engine's hook (once per process)."""
    if on_alert_raised not in rules.on_alert_raised:
        rules.on_alert_raised.append(on_alert_raised)


router = APIRouter(prefix="/api/v1/alerts", tags=["rules"])


@router.post(
    "/{alert_id}/case",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseRead,
    summary="Open a case from an alert",
)
async def open_case_from_alert(
    session: DbSession,
    tenant: RequestTenant,
    alert_id: str,
    response: Response,
    body: Annotated[CaseFromAlert | None, Body()] = None,
) -> CaseRead:
    """409 when the alert has a case already (its id in ``case``); 400 when neither the body nor
    the alert's rule names a category."""
    alert = await rules.get_alert(session, alert_id, for_update=True)
    case = await open_case_for(session, alert, body or CaseFromAlert())
    response.headers["Location"] = f"/api/v1/cases/{case.id}"
    return read_case(session, case)
