from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cityhub.hub.tenancy.schemas import CODE_PATTERN

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$"
RoleName = Literal["admin", "security_officer", "auditor", "operator", "viewer"]


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str | None = None
    scope: str = ""
    mfa: bool = Field(description="Whether the second factor was given; admin permissions need it.")


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tenant_code: str
    role: str


class Me(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str | None
    kind: str
    tenant_code: str
    department_id: uuid.UUID | None
    platform_admin: bool
    mfa: bool
    totp_enabled: bool
    grants: list[GrantRead]
    permissions: list[str] = Field(description="Permissions in the request's tenant.")


class TotpEnrolment(BaseModel):
    secret: str
    uri: str = Field(description="otpauth:// URI for an authenticator app (as a QR code).")


class TotpCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[0-9]{6}$")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=1, max_length=256, description="Or the client secret.")
    display_name: str | None = Field(None, max_length=100)
    kind: Literal["person", "client"] = "person"
    department_id: uuid.UUID | None = None
    roles: list[RoleName] = Field(default_factory=list, description="Roles in the request's tenant.")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, max_length=100)
    active: bool | None = None
    department_id: uuid.UUID | None = None
    unlock: bool | None = Field(None, description="true clears a lockout and the failure count.")


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    display_name: str | None
    kind: str
    tenant_code: str
    department_id: uuid.UUID | None
    active: bool
    platform_admin: bool
    totp_enabled: bool
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime


class UserPage(BaseModel):
    items: list[UserRead]
    total: int
    limit: int
    offset: int


class GrantChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: RoleName
    tenant_code: str | None = Field(
        None, pattern=CODE_PATTERN, description="Where the role holds; default the request's tenant."
    )


class DepartmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=100)
    name_en: str | None = Field(None, max_length=100)


class DepartmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_code: str
    code: str
    name: str
    name_en: str | None
    created_at: datetime


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    action: str
    actor: str
    tenant_code: str | None
    source: str | None
    method: str | None
    path: str | None
    status: int | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRead]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at the end.")


class SecurityEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    kind: str
    severity: str
    source: str | None
    username: str | None
    tenant_code: str | None
    detail: dict[str, Any]


class SecurityOverview(BaseModel):
    since: datetime
    events: dict[str, int] = Field(description="Security events of the last 24 hours by kind.")
    by_severity: dict[str, int]
    top_sources: list[dict[str, Any]]
    locked_users: int
    blocked_sources: int
    recent: list[SecurityEventRead]
    open_incidents: list[IncidentRead] = Field(description="Incidents open or contained.")


IncidentState = Literal["open", "contained", "closed"]
Severity = Literal["low", "medium", "high"]


class IncidentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    state: str
    severity: str
    rule: str | None = Field(description="The awareness rule that opened it; null if opened by hand.")
    source: str | None
    tenant_code: str | None
    assignee: str | None
    opened_by: str
    events: int = Field(description="Security events grouped in it.")
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class IncidentStepRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    kind: str = Field(description="opened, event, transition, note, action or assigned.")
    action: str | None
    outcome: str | None
    detail: dict[str, Any]


class IncidentDetail(IncidentRead):
    history: list[IncidentStepRead]


class IncidentPage(BaseModel):
    items: list[IncidentRead]
    total: int
    limit: int
    offset: int


class IncidentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    severity: Severity = "medium"
    source: str | None = Field(None, max_length=64)
    assignee: str | None = Field(None, max_length=64)


class IncidentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(None, max_length=64)
    severity: Severity | None = None


class IncidentTransition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: IncidentState
    comment: str | None = Field(None, max_length=2000)


class IncidentNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


class ResponseAction(BaseModel):
    """A response action taken within an incident; which fields it needs depends on ``action``."""

    model_config = ConfigDict(extra="forbid")

    action: Literal[
        "disable_user",
        "revoke_tokens",
        "block_source",
        "unblock_source",
        "disable_device_key",
        "enable_device_key",
    ]
    user_id: uuid.UUID | None = Field(None, description="disable_user, revoke_tokens")
    address: str | None = Field(None, max_length=64, description="block_source, unblock_source")
    hours: int | None = Field(
        None, ge=1, le=24 * 365, description="block_source: expiry; none: until unblocked"
    )
    apikey: str | None = Field(
        None, max_length=256, description="disable_device_key, enable_device_key: a service group's key"
    )
    reason: str | None = Field(None, max_length=500)


SecurityOverview.model_rebuild()
