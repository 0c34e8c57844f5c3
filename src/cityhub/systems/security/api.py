"""Security APIs: tokens (OAuth2), the caller's own account, users, departments, audit, awareness.

Mounted when ``CITYHUB_AUTH_MODE=on``; the guard has checked the route's permission in the request's
tenant before any endpoint here runs.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.ingest import service as ingest_service
from cityhub.kit.errors import BadRequestData, Conflict, Forbidden, HubError, InvalidRequest, NotFound
from cityhub.kit.time import ensure_utc
from cityhub.kit.web import DbSession, RequestTenant, problem
from cityhub.systems.security import audit, awareness, credentials, incidents, service
from cityhub.systems.security.guard import SecurityRuntime, client_address, principal_of
from cityhub.systems.security.models import SecurityEvent, SecurityIncident, User
from cityhub.systems.security.policy import ROLES, Permission
from cityhub.systems.security.schemas import (
    AuditPage,
    AuditRead,
    DepartmentCreate,
    DepartmentRead,
    GrantChange,
    GrantRead,
    IncidentCreate,
    IncidentDetail,
    IncidentNote,
    IncidentPage,
    IncidentRead,
    IncidentStepRead,
    IncidentTransition,
    IncidentUpdate,
    Me,
    PasswordChange,
    ResponseAction,
    SecurityEventRead,
    SecurityOverview,
    TokenResponse,
    TotpCode,
    TotpEnrolment,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)

auth_router = APIRouter(prefix="/api/v1/auth", tags=["security"])
users_router = APIRouter(prefix="/api/v1/users", tags=["security"])
departments_router = APIRouter(prefix="/api/v1/departments", tags=["security"])
audit_router = APIRouter(prefix="/api/v1/audit", tags=["security"])
awareness_router = APIRouter(prefix="/api/v1/security", tags=["security"])
ROUTERS = (auth_router, users_router, departments_router, audit_router, awareness_router)


def _runtime(request: Request) -> SecurityRuntime:
    runtime: SecurityRuntime = request.app.state.security
    return runtime


def _basic_client(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("the Basic authorization header is not base64 of client_id:secret") from None
    return client_id, secret


@auth_router.post(
    "/token",
    response_model=TokenResponse,
    summary="OAuth2 token endpoint: password, client_credentials and refresh_token grants",
    responses={401: {"description": "Invalid credentials or token (problem details)"}},
)
async def token(
    request: Request,
    response: Response,
    session: DbSession,
    grant_type: Annotated[str, Form(description="password, client_credentials or refresh_token")],
    username: Annotated[str | None, Form(max_length=64)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    totp: Annotated[str | None, Form(max_length=16, description="One-time code (second factor)")] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
    refresh_token: Annotated[str | None, Form(max_length=256)] = None,
    scope: Annotated[str | None, Form(max_length=1000)] = None,
) -> TokenResponse | Response:
    runtime = _runtime(request)
    source = client_address(request)
    response.headers["Cache-Control"] = "no-store"
    if grant_type == "password":
        if not username or password is None:
            raise InvalidRequest("the password grant needs username and password", error="invalid_request")
        outcome = await service.login(
            session,
            runtime.token_policy,
            username=username,
            secret=password,
            kind="person",
            totp=totp,
            source=source,
        )
    elif grant_type == "client_credentials":
        basic = _basic_client(request)
        if basic is not None:
            client_id, client_secret = basic
        if not client_id or client_secret is None:
            raise InvalidRequest(
                "the client_credentials grant needs client_id and client_secret", error="invalid_request"
            )
        outcome = await service.login(
            session,
            runtime.token_policy,
            username=client_id,
            secret=client_secret,
            kind="client",
            totp=None,
            source=source,
        )
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise InvalidRequest("the refresh_token grant needs refresh_token", error="invalid_request")
        outcome = await service.refresh(session, runtime.token_policy, token=refresh_token, source=source)
    else:
        raise InvalidRequest(f"grant_type {grant_type!r} is not supported", error="unsupported_grant_type")
    name = outcome.user.username if outcome.user else (username or client_id)
    tenant = outcome.user.tenant_code if outcome.user else None
    for kind in outcome.events:
        await runtime.detector.record_in(session, kind, source=source, username=name, tenant=tenant)
    if outcome.user is not None:
        runtime.forget(outcome.user.id)
    if outcome.error is not None:
        # Answered, not raised: the failure count and any lockout are committed with the request.
        error_response = problem(outcome.error, request)
        error_response.headers["Cache-Control"] = "no-store"
        return error_response
    assert outcome.tokens is not None
    return outcome.tokens


async def _me(request: Request, session: DbSession) -> User:
    principal = principal_of(request)
    user = await session.get(User, principal.user_id)
    if user is None:
        raise NotFound("the account no longer exists")
    return user


@auth_router.get(
    "/me", response_model=Me, summary="The caller: roles, and permissions in the request's tenant"
)
async def me(request: Request, session: DbSession, tenant: RequestTenant) -> Me:
    principal = principal_of(request)
    user = await _me(request, session)
    cascade = _runtime(request).cascade
    return Me(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        kind=user.kind,
        tenant_code=user.tenant_code,
        department_id=user.department_id,
        platform_admin=user.platform_admin,
        mfa=principal.mfa,
        totp_enabled=user.totp_enabled,
        grants=[GrantRead.model_validate(g) for g in await service.grants_of(session, user.id)],
        permissions=sorted(p.value for p in Permission if principal.can(p, tenant, cascade=cascade)),
    )


@auth_router.post("/totp/enroll", response_model=TotpEnrolment, summary="Start TOTP enrolment")
async def totp_enroll(request: Request, session: DbSession) -> TotpEnrolment:
    principal = principal_of(request)
    user = await _me(request, session)
    if user.kind != "person":
        raise BadRequestData("system clients have no second factor")
    if user.totp_enabled and not principal.mfa:
        raise BadRequestData("replacing an enabled second factor needs a token obtained with it")
    secret = await service.start_totp(session, user)
    return TotpEnrolment(secret=secret, uri=credentials.totp_uri(secret, user.username))


@auth_router.post("/totp/confirm", status_code=status.HTTP_204_NO_CONTENT, summary="Confirm TOTP with a code")
async def totp_confirm(request: Request, session: DbSession, body: TotpCode) -> Response:
    user = await _me(request, session)
    await service.confirm_totp(session, user, body.code)
    _runtime(request).forget(user.id)
    return Response(status_code=204)


@auth_router.post("/password", status_code=status.HTTP_204_NO_CONTENT, summary="Change own password")
async def change_password(request: Request, session: DbSession, body: PasswordChange) -> Response:
    user = await _me(request, session)
    runtime = _runtime(request)
    await service.change_password(
        session,
        user,
        body.current_password,
        body.new_password,
        min_length=runtime.settings.password_min_length,
    )
    runtime.forget(user.id)
    return Response(status_code=204)


@auth_router.post(
    "/revoke", status_code=status.HTTP_200_OK, summary="Revoke a refresh token (RFC 7009), e.g. at logout"
)
async def revoke(
    request: Request, session: DbSession, token: Annotated[str, Form(max_length=256)]
) -> dict[str, str]:
    await service.revoke_refresh(session, principal_of(request).user_id, token)
    return {"status": "revoked"}


# --- users and departments ------------------------------------------------------------------


async def _managed_user(request: Request, session: DbSession, user_id: uuid.UUID, tenant: str) -> User:
    """A user of the request's tenant the caller may change: platform administrators are changed
    by platform administrators only, whatever tenant they call home."""
    user = await service.get_user(session, user_id, tenant=tenant)
    if user.platform_admin and not principal_of(request).platform_admin:
        raise Forbidden("platform administrators are managed by platform administrators")
    return user


@users_router.get("", response_model=UserPage, summary="Users whose home is the request's tenant")
async def list_users(
    session: DbSession,
    tenant: RequestTenant,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> UserPage:
    rows, total = await service.list_users(session, tenant=tenant, limit=limit, offset=offset)
    return UserPage(items=[UserRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@users_router.post("", response_model=UserRead, status_code=201, summary="Add a user or system client")
async def create_user(
    request: Request, session: DbSession, tenant: RequestTenant, body: UserCreate
) -> UserRead:
    principal = principal_of(request)
    runtime = _runtime(request)
    if body.kind == "client" and "admin" in body.roles:
        raise BadRequestData("system clients cannot be administrators")
    user = await service.create_user(
        session,
        body,
        tenant=tenant,
        actor=principal.username,
        min_length=runtime.settings.password_min_length,
    )
    return UserRead.model_validate(user)


@users_router.get("/{user_id}", response_model=UserRead, summary="One user of the request's tenant")
async def get_user(session: DbSession, tenant: RequestTenant, user_id: uuid.UUID) -> UserRead:
    return UserRead.model_validate(await service.get_user(session, user_id, tenant=tenant))


@users_router.patch(
    "/{user_id}", response_model=UserRead, summary="Rename, disable (which revokes its tokens) or unlock"
)
async def update_user(
    request: Request, session: DbSession, tenant: RequestTenant, user_id: uuid.UUID, body: UserUpdate
) -> UserRead:
    user = await _managed_user(request, session, user_id, tenant)
    await service.update_user(session, user, body, actor=principal_of(request).username)
    _runtime(request).forget(user.id)
    return UserRead.model_validate(user)


@users_router.get("/{user_id}/grants", response_model=list[GrantRead], summary="A user's roles")
async def list_grants(session: DbSession, tenant: RequestTenant, user_id: uuid.UUID) -> list[GrantRead]:
    user = await service.get_user(session, user_id, tenant=tenant)
    return [GrantRead.model_validate(g) for g in await service.grants_of(session, user.id)]


@users_router.post("/{user_id}/grants", response_model=GrantRead, status_code=201, summary="Grant a role")
async def grant(
    request: Request, session: DbSession, tenant: RequestTenant, user_id: uuid.UUID, body: GrantChange
) -> GrantRead:
    user = await _managed_user(request, session, user_id, tenant)
    runtime = _runtime(request)
    row = await service.grant_role(
        session, principal_of(request), user, body.role, body.tenant_code or tenant, cascade=runtime.cascade
    )
    runtime.forget(user.id)
    return GrantRead.model_validate(row)


@users_router.delete("/{user_id}/grants/{grant_tenant}/{role}", status_code=204, summary="Withdraw a role")
async def ungrant(
    request: Request,
    session: DbSession,
    tenant: RequestTenant,
    user_id: uuid.UUID,
    grant_tenant: str,
    role: str,
) -> Response:
    if role not in ROLES:
        raise BadRequestData(f"unknown role {role!r}")
    user = await _managed_user(request, session, user_id, tenant)
    runtime = _runtime(request)
    await service.revoke_role(
        session, principal_of(request), user, role, grant_tenant, cascade=runtime.cascade
    )
    runtime.forget(user.id)
    return Response(status_code=204)


@users_router.post(
    "/{user_id}/revoke-tokens", status_code=204, summary="Response action: refuse every token of a user"
)
async def revoke_tokens(
    request: Request, session: DbSession, tenant: RequestTenant, user_id: uuid.UUID
) -> Response:
    user = await _managed_user(request, session, user_id, tenant)
    await service.revoke_all_tokens(
        session, user, actor=principal_of(request).username, reason="revoked by operator"
    )
    _runtime(request).forget(user.id)
    return Response(status_code=204)


@departments_router.get(
    "", response_model=list[DepartmentRead], summary="Departments of the request's tenant"
)
async def list_departments(session: DbSession, tenant: RequestTenant) -> list[DepartmentRead]:
    return [DepartmentRead.model_validate(d) for d in await service.list_departments(session, tenant=tenant)]


@departments_router.post("", response_model=DepartmentRead, status_code=201, summary="Add a department")
async def create_department(
    request: Request, session: DbSession, tenant: RequestTenant, body: DepartmentCreate
) -> DepartmentRead:
    # with CITYHUB_AUTH_MODE=off (development, the demo city) the route is open and has no caller
    actor = "anonymous" if request.app.state.security is None else principal_of(request).username
    department = await service.create_department(session, body, tenant=tenant, actor=actor)
    return DepartmentRead.model_validate(department)


# --- audit ------------------------------------------------------------------------------------


def _audit_tenants(request: Request, tenant: str) -> list[str] | None:
    """Platform administrators read every record; others those of the request's tenant."""
    principal = principal_of(request)
    return None if principal.platform_admin else [tenant]


@audit_router.get("/records", response_model=AuditPage, summary="Audit records, oldest first")
async def audit_records(
    request: Request,
    session: DbSession,
    tenant: RequestTenant,
    after: Annotated[int, Query(ge=0, le=2**62, description="Sequence number to continue after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    since: datetime | None = None,
    until: datetime | None = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditPage:
    rows = await audit.page(
        session,
        tenants=_audit_tenants(request, tenant),
        after=after,
        limit=limit,
        since=ensure_utc(since) if since else None,  # a time without offset is UTC
        until=ensure_utc(until) if until else None,
        action=action,
        actor=actor,
    )
    return AuditPage(
        items=[AuditRead.model_validate(r) for r in rows],
        next_after=rows[-1].seq if len(rows) == limit else None,
    )


@audit_router.get("/verify", summary="Check the whole audit chain (platform administrators)")
async def audit_verify(session: DbSession) -> dict[str, object]:
    result = await audit.verify(session)
    return {
        "intact": result.intact,
        "records": result.records,
        "head_seq": result.head_seq,
        "head_hash": result.head_hash,
        "broken_seq": result.broken_seq,
        "reason": result.reason,
    }


@audit_router.get(
    "/export",
    summary="Audit records as JSON lines, for auditors",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def audit_export(request: Request, session: DbSession, tenant: RequestTenant) -> StreamingResponse:
    tenants = _audit_tenants(request, tenant)
    rows = await audit.page(session, tenants=tenants, limit=100_000)

    async def lines() -> AsyncIterator[bytes]:
        for row in rows:
            yield audit.export_line(row) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


# --- situational awareness --------------------------------------------------------------------


def _event_tenants(request: Request, tenant: str) -> list[str] | None:
    principal = principal_of(request)
    return None if principal.platform_admin else [tenant]


@awareness_router.get("/overview", response_model=SecurityOverview, summary="Security events of the last day")
async def security_overview(request: Request, session: DbSession, tenant: RequestTenant) -> SecurityOverview:
    data = await awareness.overview(session, tenants=_event_tenants(request, tenant))
    data["recent"] = [SecurityEventRead.model_validate(e) for e in data["recent"]]
    data["open_incidents"] = [IncidentRead.model_validate(i) for i in data["open_incidents"]]
    return SecurityOverview(**data)


@awareness_router.get(
    "/events", response_model=list[SecurityEventRead], summary="Security events, newest first"
)
async def security_events(
    request: Request,
    session: DbSession,
    tenant: RequestTenant,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[SecurityEventRead]:
    query = select(SecurityEvent)
    tenants = _event_tenants(request, tenant)
    if tenants is not None:
        query = query.where(SecurityEvent.tenant_code.in_(tenants))
    if kind is not None:
        query = query.where(SecurityEvent.kind == kind)
    rows = await session.scalars(query.order_by(SecurityEvent.at.desc()).limit(limit))
    return [SecurityEventRead.model_validate(r) for r in rows]


@awareness_router.post(
    "/blocked-sources", status_code=201, summary="Response action: block a source address (platform admins)"
)
async def block_source(
    request: Request,
    session: DbSession,
    address: Annotated[str, Form(min_length=2, max_length=64)],
    reason: Annotated[str, Form(min_length=1, max_length=500)],
    hours: Annotated[int | None, Form(ge=1, le=24 * 365)] = None,
) -> dict[str, object]:
    principal = principal_of(request)
    expires = await awareness.block_source(
        session, address, reason=reason, actor=principal.username, hours=hours
    )
    _runtime(request).forget()
    return {"address": address, "expires_at": expires}


@awareness_router.delete("/blocked-sources/{address}", status_code=204, summary="Unblock a source address")
async def unblock_source(request: Request, session: DbSession, address: str) -> Response:
    await awareness.unblock_source(session, address, actor=principal_of(request).username)
    _runtime(request).forget()
    return Response(status_code=204)


# --- incidents and response actions -------------------------------------------------------------


async def _incident_detail(session: DbSession, incident: SecurityIncident) -> IncidentDetail:
    steps = await incidents.history(session, incident)
    return IncidentDetail(
        **IncidentRead.model_validate(incident).model_dump(),
        history=[IncidentStepRead.model_validate(s) for s in steps],
    )


@awareness_router.get("/incidents", response_model=IncidentPage, summary="Security incidents, newest first")
async def list_incidents(
    request: Request,
    session: DbSession,
    tenant: RequestTenant,
    state: Literal["open", "contained", "closed"] | None = None,
    severity: Literal["low", "medium", "high"] | None = None,
    rule: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> IncidentPage:
    rows, total = await incidents.page(
        session,
        tenants=_event_tenants(request, tenant),
        state=state,
        severity=severity,
        rule=rule,
        limit=limit,
        offset=offset,
    )
    return IncidentPage(
        items=[IncidentRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@awareness_router.post(
    "/incidents", response_model=IncidentDetail, status_code=201, summary="Open an incident"
)
async def create_incident(
    request: Request, session: DbSession, tenant: RequestTenant, body: IncidentCreate
) -> IncidentDetail:
    incident = await incidents.open_incident(
        session,
        title=body.title,
        severity=body.severity,
        actor=principal_of(request).username,
        tenant=tenant,
        source=body.source,
        assignee=body.assignee,
    )
    return await _incident_detail(session, incident)


async def _incident(
    request: Request, session: DbSession, tenant: str, incident_id: uuid.UUID
) -> SecurityIncident:
    return await incidents.get(session, incident_id, tenants=_event_tenants(request, tenant))


@awareness_router.get(
    "/incidents/{incident_id}", response_model=IncidentDetail, summary="An incident and its history"
)
async def get_incident(
    request: Request, session: DbSession, tenant: RequestTenant, incident_id: uuid.UUID
) -> IncidentDetail:
    return await _incident_detail(session, await _incident(request, session, tenant, incident_id))


@awareness_router.patch(
    "/incidents/{incident_id}",
    response_model=IncidentDetail,
    summary="Assign an incident or change its severity",
)
async def update_incident(
    request: Request, session: DbSession, tenant: RequestTenant, incident_id: uuid.UUID, body: IncidentUpdate
) -> IncidentDetail:
    incident = await _incident(request, session, tenant, incident_id)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("severity", "") is None:
        raise BadRequestData("severity cannot be null")
    for key, value in changes.items():
        setattr(incident, key, value)
    await incidents.step(session, incident, "assigned", actor=principal_of(request).username, detail=changes)
    return await _incident_detail(session, incident)


@awareness_router.post(
    "/incidents/{incident_id}/transitions",
    response_model=IncidentDetail,
    summary="Move an incident: open → contained → closed (409 naming the allowed states otherwise)",
)
async def transition_incident(
    request: Request,
    session: DbSession,
    tenant: RequestTenant,
    incident_id: uuid.UUID,
    body: IncidentTransition,
) -> IncidentDetail:
    incident = await _incident(request, session, tenant, incident_id)
    await incidents.transition(
        session, incident, body.to, actor=principal_of(request).username, comment=body.comment
    )
    return await _incident_detail(session, incident)


@awareness_router.post(
    "/incidents/{incident_id}/notes", response_model=IncidentDetail, status_code=201, summary="Add a note"
)
async def note_incident(
    request: Request, session: DbSession, tenant: RequestTenant, incident_id: uuid.UUID, body: IncidentNote
) -> IncidentDetail:
    incident = await _incident(request, session, tenant, incident_id)
    await incidents.step(
        session, incident, "note", actor=principal_of(request).username, detail={"text": body.text}
    )
    return await _incident_detail(session, incident)


async def _respond(
    request: Request, session: AsyncSession, tenant: str, body: ResponseAction, reason: str
) -> dict[str, object]:
    """Take a response action; what it did, for the incident's history."""
    principal = principal_of(request)
    runtime = _runtime(request)
    detail: dict[str, object] = {"reason": reason}
    if body.action in ("disable_user", "revoke_tokens"):
        if body.user_id is None:
            raise BadRequestData(f"{body.action} needs user_id")
        user = await _managed_user(request, session, body.user_id, tenant)
        if body.action == "disable_user":
            await service.update_user(session, user, UserUpdate(active=False), actor=principal.username)
        else:
            await service.revoke_all_tokens(session, user, actor=principal.username, reason=reason)
        runtime.forget(user.id)
        detail["user"] = user.username
    elif body.action in ("disable_device_key", "enable_device_key"):
        if not body.apikey:
            raise BadRequestData(f"{body.action} needs apikey")
        disabled = body.action == "disable_device_key"
        if not await ingest_service.set_apikey_disabled(session, tenant, body.apikey, disabled=disabled):
            raise NotFound(f"tenant {tenant} has no service group with that apikey")
        await audit.append(
            session,
            "security.device_key_disabled" if disabled else "security.device_key_enabled",
            actor=principal.username,
            tenant_code=tenant,
            detail={"apikey": body.apikey[:64], "reason": reason},
        )
        request.app.state.hub.ingest.forget()
        detail["apikey"] = body.apikey[:64]
    else:
        if not body.address:
            raise BadRequestData(f"{body.action} needs address")
        if not principal.platform_admin:
            raise Forbidden("source addresses are blocked hub-wide, by platform administrators")
        if body.action == "block_source":
            expires = await awareness.block_source(
                session, body.address, reason=reason, actor=principal.username, hours=body.hours
            )
            detail["expires_at"] = expires.isoformat() if expires else None
        else:
            await awareness.unblock_source(session, body.address, actor=principal.username)
        runtime.forget()
        detail["address"] = body.address
    return detail


@awareness_router.post(
    "/incidents/{incident_id}/actions",
    response_model=IncidentDetail,
    status_code=201,
    summary="Take a response action within an incident: disable a user, revoke tokens, block an address",
)
async def act_on_incident(
    request: Request, session: DbSession, tenant: RequestTenant, incident_id: uuid.UUID, body: ResponseAction
) -> IncidentDetail:
    """A failed action (unknown user or key, missing field, not allowed) answers its 4xx and is kept in
    the incident's history with outcome ``failed`` and the reason, so the response record is whole."""
    incident = await _incident(request, session, tenant, incident_id)
    if incident.state == "closed":
        raise Conflict("the incident is closed; reopen is not possible, open a new one", allowed=[])
    actor = principal_of(request).username
    reason = body.reason or f"incident {incident.id}"
    try:
        detail = await _respond(request, session, tenant, body, reason)
    except HubError as error:
        await session.rollback()
        incident = await _incident(request, session, tenant, incident_id)
        failure = {"reason": reason, "status": error.status, "error": error.detail}
        await incidents.step(
            session, incident, "action", actor=actor, action=body.action, outcome="failed", detail=failure
        )
        await session.commit()  # the failure is recorded even though the answer is an error
        raise
    await incidents.step(
        session, incident, "action", actor=actor, action=body.action, outcome="done", detail=detail
    )
    return await _incident_detail(session, incident)
