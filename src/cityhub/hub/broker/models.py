"""Broker storage. An entity is one row holding its internal form as JSON; its types are rows of
their own (indexed, so type queries never scan), and the bounding box of its ``location`` is kept
in columns for the geo prefilter. Broker tenants are any NGSILD-Tenant name, created on first write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKeyConstraint, Index, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.kit.db import Base, TenantOwned, UTCDateTime
from cityhub.kit.time import utcnow

TENANT_NAME_LENGTH = 64


class BrokerTenant(Base):
    """A tenant the broker has seen a write for (NGSI-LD creates tenants on first write)."""

    __tablename__ = "broker_tenant"

    name: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class BrokerEntity(TenantOwned, Base):
    __tablename__ = "broker_entity"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_code", "entity_id"),
        Index("ix_broker_entity_bbox", "tenant_code", "min_lon", "min_lat"),
    )

    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    min_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    min_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_lat: Mapped[float | None] = mapped_column(Float, nullable=True)


class BrokerEntityType(TenantOwned, Base):
    __tablename__ = "broker_entity_type"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_code", "entity_id", "type"),
        ForeignKeyConstraint(
            ["tenant_code", "entity_id"],
            ["broker_entity.tenant_code", "broker_entity.entity_id"],
            ondelete="CASCADE",
        ),
        Index("ix_broker_entity_type_type", "tenant_code", "type"),
    )

    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    type: Mapped[str] = mapped_column(String(1024), nullable=False)
