"""Open311 tables: what a citizen sent with a report (kept, never shown by the GET answers) and
each tenant's service list adjustments (a category closed to citizens, or its questions)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.kit.db import Base, JSONType, TenantOwned, UTCDateTime
from cityhub.kit.ids import new_id
from cityhub.kit.time import utcnow


class Open311Report(TenantOwned, Base):
    """One service request posted through Open311: the case it opened and the reporter's data."""

    __tablename__ = "open311_report"
    __table_args__ = (UniqueConstraint("tenant_code", "case_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dispatch_case.id", ondelete="CASCADE"), nullable=False
    )
    service_code: Mapped[str] = mapped_column(String(16), nullable=False)
    address_string: Mapped[str | None] = mapped_column(String(300), nullable=True)
    media_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    #: Personal data: stored for the city's staff, never part of an Open311 GET answer.
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(50), nullable=True)
    first_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    source_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class Open311Service(TenantOwned, Base):
    """How a category appears as an Open311 service in a tenant. A category with no row is offered
    when active; a row can close it to citizens (``public`` false) or add questions (attributes in
    the GeoReport v2 service definition format)."""

    __tablename__ = "open311_service"
    __table_args__ = (UniqueConstraint("tenant_code", "category_code"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    category_code: Mapped[str] = mapped_column(String(16), nullable=False)
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    keywords: Mapped[str | None] = mapped_column(String(300), nullable=True)
    attributes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
