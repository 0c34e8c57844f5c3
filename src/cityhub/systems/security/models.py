"""Identity, roles, tokens, the audit chain and security events.

These are platform tables, like ``tenant``: a user has a home tenant and holds roles in tenants, but
logging in must find a user without knowing the tenant first, so they are not ``TenantOwned``.
Which tenants a request may touch is decided by :mod:`cityhub.systems.security.guard`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.kit.db import Base, Timestamped, UTCDateTime
from cityhub.kit.ids import new_id
from cityhub.kit.time import utcnow


class Department(Timestamped, Base):
    """A department (organisation) of a tenant: 交通局, 生态环境局, … Departments own their data."""

    __tablename__ = "security_department"
    __table_args__ = (UniqueConstraint("tenant_code", "code"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(
        String(6), ForeignKey("tenant.code", ondelete="RESTRICT"), nullable=False, index=True
    )
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    name_en: Mapped[str | None] = mapped_column(String(100), nullable=True)


class User(Timestamped, Base):
    """A person (password grant) or a system client (client-credentials grant)."""

    __tablename__ = "security_user"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="person")
    tenant_code: Mapped[str] = mapped_column(
        String(6), ForeignKey("tenant.code", ondelete="RESTRICT"), nullable=False, index=True
    )
    department_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("security_department.id", ondelete="SET NULL"), nullable=True, index=True
    )
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    platform_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: Access tokens issued before this instant are refused (a "revoke all tokens" response).
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RoleGrant(Base):
    """A role held by a user in a tenant (and, by policy, in the tenants below it)."""

    __tablename__ = "security_role_grant"
    __table_args__ = (UniqueConstraint("user_id", "tenant_code", "role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("security_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tenant_code: Mapped[str] = mapped_column(
        String(6), ForeignKey("tenant.code", ondelete="RESTRICT"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    granted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class RefreshToken(Base):
    """A refresh token, stored as its SHA-256. Using one rotates it: the old one is revoked and
    replaced within the same family, so presenting a revoked one again reveals a stolen token and
    revokes the whole family."""

    __tablename__ = "security_refresh_token"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("security_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(nullable=False, index=True)
    mfa: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditRecord(Base):
    """One line of the append-only audit log. ``hash`` is SHA-256 over the previous record's hash
    and this record's fields, so changing, removing or inserting a record breaks the chain from
    there on. The database refuses UPDATE and DELETE on this table (triggers made by migration
    0011); pruning past the retention period goes through :func:`audit.prune`, which moves the
    chain's anchor."""

    __tablename__ = "audit_record"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    tenant_code: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    method: Mapped[str | None] = mapped_column(String(10), nullable=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditHead(Base):
    """The chain's single head row: the last sequence number and hash. Writers lock it (an UPDATE
    first thing in their transaction) so records are chained one after another across processes.
    ``anchor_seq``/``anchor_hash`` say where the kept chain starts after pruning."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    anchor_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    anchor_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class SecurityEvent(Base):
    """Something the detection rules noticed: a failed login, brute force, token reuse, …"""

    __tablename__ = "security_event"
    __table_args__ = (Index("ix_security_event_kind_at", "kind", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tenant_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict)


class BlockedSource(Base):
    """A source address refused at the door, by an incident response or an operator."""

    __tablename__ = "security_blocked_source"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    blocked_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SecurityIncident(Base):
    """Security events grouped for a response: opened by hand, or by the awareness rules for a
    high-severity finding (one open incident per rule and source). State: open → contained → closed."""

    __tablename__ = "security_incident"
    __table_args__ = (Index("ix_security_incident_rule_source", "rule", "source", "state"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="open", index=True)
    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    rule: Mapped[str | None] = mapped_column(String(40), nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tenant_code: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True)
    opened_by: Mapped[str] = mapped_column(String(64), nullable=False)
    events: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SecurityIncidentStep(Base):
    """One line of an incident's history: an event grouped in, a transition, a note, a response
    action and its outcome."""

    __tablename__ = "security_incident_step"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    incident_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("security_incident.id", ondelete="CASCADE"), nullable=False, index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str | None] = mapped_column(String(40), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict)
