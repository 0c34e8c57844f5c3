"""Retention policies. A policy belongs to a broker tenant (any ``NGSILD-Tenant`` name) and names
one entity type, or none for every type; durations are kept as the ISO 8601 text given."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.hub.broker.models import TENANT_NAME_LENGTH
from cityhub.kit.db import Base, JSONType, TenantOwned, UTCDateTime
from cityhub.kit.ids import new_id
from cityhub.kit.time import utcnow


class RetentionPolicy(TenantOwned, Base):
    __tablename__ = "broker_retention_policy"
    __table_args__ = (Index("ix_broker_retention_policy_type", "tenant_code", "entity_type"),)

    policy_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    #: an expanded type IRI; None: every type
    entity_type: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    keep_raw: Mapped[str] = mapped_column(String(64), nullable=False)
    period: Mapped[str] = mapped_column(String(64), nullable=False)
    methods: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    drop_after: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    last_applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: what the last application did: {"entities", "read", "kept", "dropped"}
    last_outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
