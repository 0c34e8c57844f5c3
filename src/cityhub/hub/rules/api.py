"""``/api/v1/rules`` and ``/api/v1/alerts``: rules of the request's tenant and the alerts they raised.

The tenant is the broker's, as for the entities the rules watch: the ``NGSILD-Tenant`` header, or
the hub's default tenant without it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from cityhub.hub.broker.models import TENANT_NAME_LENGTH
from cityhub.hub.rules import service
from cityhub.hub.rules.conditions import SEVERITIES, InvalidRule, check_definition
from cityhub.hub.rules.dryrun import dry_run, window
from cityhub.hub.rules.engine import RuleEngine
from cityhub.hub.rules.models import NEXT_STATES, OWED, Alert, Rule
from cityhub.hub.rules.schemas import (
    AlertAction,
    AlertComment,
    AlertEventRead,
    AlertHistory,
    AlertPage,
    AlertQuery,
    AlertRead,
    DeliveryRead,
    DryRun,
    DryRunResult,
    FromTemplate,
    OwedRead,
    RuleCreate,
    RulePage,
    RuleRead,
    RuleReplace,
    TemplateRead,
)
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.errors import BadRequestData, NotFound
from cityhub.kit.time import utcnow
from cityhub.kit.web import TENANT_HEADER, DbSession, on_event_loop

rules_router = APIRouter(prefix="/api/v1/rules", tags=["rules"])
alerts_router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
ROUTERS = (rules_router, alerts_router)


class RulesTenant:
    """The request's broker tenant, the session scoped to it, and the engine."""

    def __init__(self, request: Request, session: DbSession) -> None:
        name: str = request.headers.get(TENANT_HEADER) or request.app.state.default_tenant
        if len(name) > TENANT_NAME_LENGTH or not name.isprintable():
            raise BadRequestData(f"tenant {name!r} is not a valid tenant name")
        self.name = name
        self.session = session
        self.engine: RuleEngine = request.app.state.hub.rules
        self.templates: dict[str, Any] = request.app.state.hub.registry.rule_templates
        principal = getattr(request.state, "principal", None)
        self.actor: str | None = getattr(principal, "username", None)
        scope_to_tenant(session, name)


Tenant = Annotated[RulesTenant, Depends(on_event_loop(RulesTenant), scope="function")]


def _rule(rule: Rule, open_alerts: int = 0) -> RuleRead:
    return RuleRead(
        id=str(rule.rule_id),
        tenant=rule.tenant_code,
        name=rule.name,
        entity_type=rule.entity_type,
        definition=rule.definition,
        template_key=rule.template_key,
        params=rule.params,
        enabled=rule.enabled,
        disabled_reason=rule.disabled_reason,
        last_error=rule.last_error,
        last_error_at=rule.last_error_at,
        fire_count=rule.fire_count,
        suppressed_count=rule.suppressed_count,
        open_alerts=open_alerts,
        last_fired_at=rule.last_fired_at,
        created_at=rule.created_at,
        modified_at=rule.modified_at,
    )


async def _read(tenant: RulesTenant, rule: Rule) -> RuleRead:
    await tenant.session.refresh(rule)
    counts = await service.open_counts(tenant.session, [rule.rule_id])
    return _rule(rule, counts.get(rule.rule_id, 0))


def _alert(alert: Alert) -> AlertRead:
    return AlertRead(
        id=str(alert.alert_id),
        tenant=alert.tenant_code,
        rule_id=str(alert.rule_id) if alert.rule_id else None,
        dedup_key=alert.dedup_key,
        entity_id=alert.entity_id,
        entity_type=alert.entity_type,
        alert_entity=service.alert_entity_id(alert),
        state=alert.state,
        next_states=list(NEXT_STATES[alert.state]),
        severity=alert.severity,
        raised_severity=alert.raised_severity,
        message_zh=alert.message_zh,
        message_en=alert.message_en,
        attribute=alert.attribute,
        value=alert.reading.get("value"),
        channels=list(alert.channels),
        count=alert.count,
        raised_at=alert.raised_at,
        last_seen_at=alert.last_seen_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        resolved_at=alert.resolved_at,
        resolved_by=alert.resolved_by,
        escalated_at=alert.escalated_at,
        case_id=alert.case_id,
        open_case=alert.open_case,
    )


# -- rules ----------------------------------------------------------------------------------------------


@rules_router.get("", response_model=RulePage, summary="The tenant's rules, with their status")
async def list_rules(tenant: Tenant) -> RulePage:
    rules = await service.list_rules(tenant.session)
    counts = await service.open_counts(tenant.session, [r.rule_id for r in rules])
    return RulePage(items=[_rule(r, counts.get(r.rule_id, 0)) for r in rules], total=len(rules))


@rules_router.post("", response_model=RuleRead, status_code=status.HTTP_201_CREATED, summary="Add a rule")
async def create_rule(tenant: Tenant, body: RuleCreate, response: Response) -> RuleRead:
    rule = await service.create_rule(tenant.session, body.definition, enabled=body.enabled)
    tenant.engine.compile(rule.rule_id, body.definition)
    response.headers["Location"] = f"{rules_router.prefix}/{rule.rule_id}"
    return await _read(tenant, rule)


@rules_router.get(
    "/templates", response_model=list[TemplateRead], summary="Rule templates of the applications"
)
async def list_templates(tenant: Tenant) -> list[TemplateRead]:
    return [
        TemplateRead(key=t.key, app=t.app, title_zh=t.title_zh, title_en=t.title_en, definition=t.definition)
        for t in sorted(tenant.templates.values(), key=lambda t: t.key)
    ]


@rules_router.post(
    "/templates/{key}/instantiate",
    response_model=RuleRead,
    status_code=status.HTTP_201_CREATED,
    summary="Add a rule made from a template",
)
async def instantiate_template(tenant: Tenant, key: str, body: FromTemplate, response: Response) -> RuleRead:
    template = tenant.templates.get(key)
    if template is None:
        raise NotFound(f"no rule template {key}")
    definition = service.from_template(template.definition, body.params, body.overrides)
    rule = await service.create_rule(
        tenant.session, definition, enabled=body.enabled, template_key=key, params=body.params
    )
    tenant.engine.compile(rule.rule_id, definition)
    response.headers["Location"] = f"{rules_router.prefix}/{rule.rule_id}"
    return await _read(tenant, rule)


@rules_router.post("/dry-run", response_model=DryRunResult, summary="When a rule would have fired")
async def dry_run_definition(tenant: Tenant, body: DryRun) -> DryRunResult:
    if body.definition is None:
        raise BadRequestData("definition: the rule to try is required")
    check_definition(body.definition)
    return await _dry_run(tenant, body.definition, body)


@rules_router.get("/{rule_id}", response_model=RuleRead, summary="One rule with its status")
async def get_rule(tenant: Tenant, rule_id: str) -> RuleRead:
    return await _read(tenant, await service.get_rule(tenant.session, rule_id))


@rules_router.put("/{rule_id}", response_model=RuleRead, summary="Replace a rule's definition")
async def replace_rule(tenant: Tenant, rule_id: str, body: RuleReplace) -> RuleRead:
    rule = await service.replace_rule(tenant.session, rule_id, body.definition)
    tenant.engine.compile(rule.rule_id, body.definition)
    return await _read(tenant, rule)


@rules_router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a rule")
async def delete_rule(tenant: Tenant, rule_id: str) -> Response:
    await service.delete_rule(tenant.session, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@rules_router.post("/{rule_id}/enable", response_model=RuleRead, summary="Switch a rule on")
async def enable_rule(tenant: Tenant, rule_id: str) -> RuleRead:
    rule = await service.get_rule(tenant.session, rule_id)
    tenant.engine.compile(rule.rule_id, rule.definition)
    return await _read(tenant, await service.set_enabled(tenant.session, rule_id, True))


@rules_router.post("/{rule_id}/disable", response_model=RuleRead, summary="Switch a rule off")
async def disable_rule(tenant: Tenant, rule_id: str) -> RuleRead:
    return await _read(tenant, await service.set_enabled(tenant.session, rule_id, False))


@rules_router.post(
    "/{rule_id}/dry-run", response_model=DryRunResult, summary="When this rule would have fired"
)
async def dry_run_rule(tenant: Tenant, rule_id: str, body: DryRun | None = None) -> DryRunResult:
    body = body or DryRun()
    if body.definition is not None:
        raise BadRequestData("definition: this endpoint tries the stored rule; use /api/v1/rules/dry-run")
    rule = await service.get_rule(tenant.session, rule_id)
    return await _dry_run(tenant, rule.definition, body, rule.rule_id)


async def _dry_run(
    tenant: RulesTenant, definition: dict[str, Any], body: DryRun, rule_id: Any = None
) -> DryRunResult:
    for moment, name in ((body.start, "start"), (body.end, "end")):
        if moment is not None and moment.tzinfo is None:
            raise BadRequestData(f"{name} needs a time zone (…Z or an offset)")
    compiled = tenant.engine.compile(rule_id or uuid.uuid4(), definition)
    start, end = window(body.start, body.end, utcnow())
    return await dry_run(tenant.session, compiled, start, end)


# -- alerts -------------------------------------------------------------------------------------------------


@alerts_router.get("", response_model=AlertPage, summary="Alerts, newest first")
async def list_alerts(
    tenant: Tenant,
    state: Annotated[
        list[str] | None, Query(description="raised, acknowledged, resolved; repeatable")
    ] = None,
    severity: Annotated[list[str] | None, Query(description=f"{', '.join(SEVERITIES)}; repeatable")] = None,
    entity: Annotated[str | None, Query(description="Source entity id")] = None,
    rule: Annotated[str | None, Query(description="Rule id")] = None,
    since: Annotated[datetime | None, Query(description="Raised at or after")] = None,
    until: Annotated[datetime | None, Query(description="Raised before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> AlertPage:
    for value in state or ():
        if value not in NEXT_STATES:
            raise BadRequestData(f"state {value!r}: one of {', '.join(NEXT_STATES)}")
    for value in severity or ():
        if value not in SEVERITIES:
            raise BadRequestData(f"severity {value!r}: one of {', '.join(SEVERITIES)}")
    for moment, name in ((since, "since"), (until, "until")):
        if moment is not None and moment.tzinfo is None:
            raise BadRequestData(f"{name} needs a time zone (…Z or an offset)")
    query = AlertQuery(
        state=state,
        severity=severity,
        entity_id=entity,
        rule_id=rule,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    try:
        alerts, total = await service.list_alerts(tenant.session, query)
    except NotFound:
        alerts, total = [], 0  # an unknown rule id has no alerts
    return AlertPage(items=[_alert(a) for a in alerts], total=total, limit=limit, offset=offset)


@alerts_router.get("/stream", summary="Alert notices as server-sent events")
async def stream_alerts(request: Request, tenant: Tenant) -> StreamingResponse:
    channels = request.app.state.hub.channels
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
    name = tenant.name

    def listen(notice: dict[str, Any]) -> None:
        if notice["tenant"] == name and not queue.full():
            queue.put_nowait(notice)

    async def events() -> AsyncIterator[bytes]:
        channels.listeners.append(listen)
        try:
            yield b": connected\n\n"
            while not await request.is_disconnected():
                try:
                    notice = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield b"event: " + notice["notice"].encode() + b"\ndata: " + orjson.dumps(notice) + b"\n\n"
        finally:
            channels.listeners.remove(listen)

    return StreamingResponse(events(), media_type="text/event-stream")


@alerts_router.get("/{alert_id}", response_model=AlertRead, summary="One alert")
async def get_alert(tenant: Tenant, alert_id: str) -> AlertRead:
    return _alert(await service.get_alert(tenant.session, alert_id))


@alerts_router.post("/{alert_id}/acknowledge", response_model=AlertRead, summary="Acknowledge an alert")
async def acknowledge(tenant: Tenant, alert_id: str, body: AlertAction | None = None) -> AlertRead:
    alert = await service.get_alert(tenant.session, alert_id, for_update=True)
    note = body.note if body else None
    return _alert(await service.acknowledge(tenant.session, alert, tenant.actor, note, tenant.engine.expand))


@alerts_router.post("/{alert_id}/resolve", response_model=AlertRead, summary="Resolve an alert")
async def resolve(tenant: Tenant, alert_id: str, body: AlertAction | None = None) -> AlertRead:
    alert = await service.get_alert(tenant.session, alert_id, for_update=True)
    note = body.note if body else None
    return _alert(await service.resolve(tenant.session, alert, tenant.actor, note, tenant.engine.expand))


@alerts_router.post(
    "/{alert_id}/comments",
    response_model=AlertEventRead,
    status_code=status.HTTP_201_CREATED,
    summary="Comment on an alert",
)
async def comment(tenant: Tenant, alert_id: str, body: AlertComment) -> AlertEventRead:
    alert = await service.get_alert(tenant.session, alert_id)
    event = await service.comment(tenant.session, alert, tenant.actor, body.note)
    return AlertEventRead(at=event.at, kind=event.kind, actor=event.actor, note=event.note, data=event.data)


@alerts_router.get("/{alert_id}/history", response_model=AlertHistory, summary="What happened to an alert")
async def history(tenant: Tenant, alert_id: str) -> AlertHistory:
    alert = await service.get_alert(tenant.session, alert_id)
    events = await service.alert_history(tenant.session, alert)
    sent = await service.deliveries(tenant.session, alert)
    return AlertHistory(
        events=[
            AlertEventRead(at=e.at, kind=e.kind, actor=e.actor, note=e.note, data=e.data) for e in events
        ],
        deliveries=[
            DeliveryRead(
                at=d.at, channel=d.channel, notice=d.notice, attempt=d.attempt, ok=d.ok, error=d.error
            )
            for d in sent
            if d.attempt != OWED
        ],
        owed=[OwedRead(since=d.at, channel=d.channel, notice=d.notice) for d in sent if d.attempt == OWED],
    )


__all__ = ["ROUTERS", "InvalidRule"]
