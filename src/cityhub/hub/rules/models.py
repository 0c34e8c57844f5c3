"""Rules, their per-entity state, alerts, alert history and deliveries. Every row carries the
broker tenant (the ``NGSILD-Tenant`` name) the rule watches entities of."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, PrimaryKeyConstraint, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.hub.broker.models import TENANT_NAME_LENGTH
from cityhub.kit.db import Base, JSONType, TenantOwned, UTCDateTime
from cityhub.kit.ids import new_id
from cityhub.kit.time import utcnow

#: Alert states and the moves between them.
RAISED = "raised"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
NEXT_STATES: dict[str, tuple[str, ...]] = {
    RAISED: (ACKNOWLEDGED, RESOLVED),
    ACKNOWLEDGED: (RESOLVED,),
    RESOLVED: (),
}


class Rule(TenantOwned, Base):
    """A rule: its definition as given (short names), whether it runs, and what it has done."""

    __tablename__ = "rules_rule"
    __table_args__ = (Index("ix_rules_rule_tenant_enabled", "tenant_code", "enabled"),)

    rule_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    entity_type: Mapped[str] = mapped_column(String(1024), nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    template_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    fire_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    suppressed_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class RuleState(TenantOwned, Base):
    """What a rule remembers of one entity between changes: since when its condition has held
    (a ``for`` window under way) and whether it is firing. Written only when it changes."""

    __tablename__ = "rules_state"
    __table_args__ = (
        PrimaryKeyConstraint("rule_id", "entity_id"),
        # a change's states are looked up by its entities: a few rows, whatever the number of rules
        Index("ix_rules_state_entity", "tenant_code", "entity_id"),
    )

    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    rule_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    entity_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    firing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class Alert(TenantOwned, Base):
    """An alert: one per dedup key while open; repeated firings bump ``count`` and ``last_seen_at``."""

    __tablename__ = "rules_alert"
    __table_args__ = (
        Index("ix_rules_alert_key", "tenant_code", "dedup_key", "state"),
        # one open alert per key, even when two hub processes fire it at once (the loser's
        # transaction fails, its event is delivered again and then bumps the winner's alert)
        Index(
            "uq_rules_alert_open",
            "tenant_code",
            "dedup_key",
            unique=True,
            sqlite_where=text("state != 'resolved'"),
            postgresql_where=text("state != 'resolved'"),
        ),
        Index("ix_rules_alert_raised", "tenant_code", "raised_at"),
        Index("ix_rules_alert_state", "state", "escalated_at"),
    )

    alert_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    rule_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    dedup_key: Mapped[str] = mapped_column(String(2200), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    entity_type: Mapped[str] = mapped_column(String(1024), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=RAISED)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    raised_severity: Mapped[str] = mapped_column(String(16), nullable=False)
    message_zh: Mapped[str] = mapped_column(Text, nullable=False, default="")
    message_en: Mapped[str] = mapped_column(Text, nullable=False, default="")
    attribute: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    #: {"value": the value that fired} (a JSON object: SQLite's JSON affinity turns bare numbers)
    reading: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    channels: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the case an alert opened (the case workflow sets it); open_case as the rule asked
    case_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    open_case: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class AlertEvent(TenantOwned, Base):
    """One step in an alert's history: raised, acknowledged, resolved, escalated, comment."""

    __tablename__ = "rules_alert_event"
    __table_args__ = (Index("ix_rules_alert_event_alert", "alert_id", "at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    alert_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


#: ``AlertDelivery.attempt`` of a notice owed to a channel and not yet tried to the end.
OWED = 0


class AlertDelivery(TenantOwned, Base):
    """One try to tell a channel about an alert; or, with ``attempt`` :data:`OWED`, a notice still
    owed to the channel (see :mod:`cityhub.hub.rules.channels`)."""

    __tablename__ = "rules_alert_delivery"
    __table_args__ = (Index("ix_rules_alert_delivery_alert", "alert_id", "at"),)

    delivery_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    alert_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    channel: Mapped[str] = mapped_column(String(2048), nullable=False)
    notice: Mapped[str] = mapped_column(String(32), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
