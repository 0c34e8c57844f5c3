"""Catalog storage. A dataset belongs to a tenant and to the department that owns it; its entity
types are rows of their own, one dataset per type in a tenant, so the broker's access decision
finds a type's dataset by key. Sharing requests live in the dataset's tenant, whatever the
applicant department's tenant (a city department may apply for a county's dataset)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.hub.broker.models import TENANT_NAME_LENGTH
from cityhub.kit.db import Base, JSONType, TenantOwned, UTCDateTime
from cityhub.kit.ids import new_id
from cityhub.kit.time import utcnow

#: Sharing classes (State Council interim measures on government information resource sharing, 2016).
UNCONDITIONAL = "unconditional"  # 无条件共享: every department
CONDITIONAL = "conditional"  # 有条件共享: departments whose request the owner approved
NOT_SHARED = "not_shared"  # 不予共享: the owner alone (a legal basis is cited)
SHARING_CLASSES = (UNCONDITIONAL, CONDITIONAL, NOT_SHARED)

#: Sharing request states.
PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
REVOKED = "revoked"  # the owner department ended an approval before its time
WITHDRAWN = "withdrawn"


class Dataset(TenantOwned, Base):
    __tablename__ = "catalog_dataset"
    __table_args__ = (Index("ix_catalog_dataset_code", "tenant_code", "code", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False, index=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    title_en: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    department_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("security_department.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    sharing: Mapped[str] = mapped_column(String(16), nullable=False)
    #: conditional: what an applicant must meet; not shared: the legal basis
    conditions: Mapped[str | None] = mapped_column(Text, nullable=True)
    update_frequency: Mapped[str] = mapped_column(String(16), nullable=False)
    #: [{"name": attribute IRI, "title", "title_en", "data_type"}]
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False, default=list)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class DatasetType(TenantOwned, Base):
    """An entity type (expanded IRI) of a dataset; a type is in at most one dataset of a tenant."""

    __tablename__ = "catalog_dataset_type"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_code", "entity_type"),
        ForeignKeyConstraint(["dataset_id"], ["catalog_dataset.id"], ondelete="CASCADE"),
    )

    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    entity_type: Mapped[str] = mapped_column(String(1024), nullable=False)
    dataset_id: Mapped[uuid.UUID] = mapped_column(nullable=False, index=True)


class SharingRequest(TenantOwned, Base):
    """A department's request to use a conditional dataset of another department, for a purpose
    and a period; the owner department approves or rejects it, and an approval ends at
    ``expires_at``."""

    __tablename__ = "catalog_sharing_request"
    __table_args__ = (
        Index("ix_catalog_sharing_applicant", "tenant_code", "applicant_department_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False, index=True)
    dataset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("catalog_dataset.id", ondelete="CASCADE"), nullable=False, index=True
    )
    applicant_department_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("security_department.id", ondelete="CASCADE"), nullable=False
    )
    applicant: Mapped[str] = mapped_column(String(64), nullable=False)
    purpose: Mapped[str] = mapped_column(Text, nullable=False)
    #: attribute IRIs asked for (empty: the whole dataset)
    fields: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
