"""Dispatch tables. Every row belongs to a tenant (``TenantOwned``): a city (410100) and each of
its districts keep their own categories, grid cells, routes, calendar and cases."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.kit.db import Base, JSONType, TenantOwned, UTCDateTime
from cityhub.kit.ids import new_id
from cityhub.kit.time import utcnow


class DispatchSetup(TenantOwned, Base):
    """Per tenant: its working-hours calendar and whether the category table was seeded."""

    __tablename__ = "dispatch_setup"

    tenant_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    calendar: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    categories_seeded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class DispatchCategory(TenantOwned, Base):
    """A managed object class: a component 部件 or an event 事件, with major and minor class codes,
    its time limits per urgency and stage (working minutes) and a default department."""

    __tablename__ = "dispatch_category"
    __table_args__ = (UniqueConstraint("tenant_code", "code"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # component | event
    major_code: Mapped[str] = mapped_column(String(2), nullable=False)
    minor_code: Mapped[str] = mapped_column(String(2), nullable=False)
    name_zh: Mapped[str] = mapped_column(String(100), nullable=False)
    name_en: Mapped[str] = mapped_column(String(100), nullable=False)
    major_name_zh: Mapped[str] = mapped_column(String(100), nullable=False)
    major_name_en: Mapped[str] = mapped_column(String(100), nullable=False)
    #: {"normal": {"filing": 30, "dispatch": 30, "handling": 480, "verification": 120}, "urgent": {…}}
    limits: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    default_department: Mapped[str | None] = mapped_column(String(64), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class DispatchGridCell(TenantOwned, Base):
    """A unit grid cell 单元网格: a polygon with its code and the district it belongs to.

    Point lookups use the bounding box: with ``span`` the largest side of any cell's box (read
    from its own index), a cell holding (lon, lat) has ``min_lon`` in [lon − span, lon] and
    ``min_lat`` in [lat − span, lat], a narrow range of the box index."""

    __tablename__ = "dispatch_grid_cell"
    __table_args__ = (
        UniqueConstraint("tenant_code", "code"),
        Index("ix_dispatch_grid_cell_box", "tenant_code", "min_lon", "min_lat"),
        Index("ix_dispatch_grid_cell_span", "tenant_code", "span"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), nullable=False)
    district_code: Mapped[str] = mapped_column(String(6), nullable=False)
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    min_lon: Mapped[float] = mapped_column(Float, nullable=False)
    min_lat: Mapped[float] = mapped_column(Float, nullable=False)
    max_lon: Mapped[float] = mapped_column(Float, nullable=False)
    max_lat: Mapped[float] = mapped_column(Float, nullable=False)
    #: the larger side of the bounding box, in degrees
    span: Mapped[float] = mapped_column(Float, nullable=False)


class DispatchRoute(TenantOwned, Base):
    """One line of the routing table: cases of ``category_code`` (None: any category) in
    ``district_code`` / ``grid_code`` (None: anywhere) go to the department. A line with neither
    category nor grid names the district's own department, the 属地管理 fallback."""

    __tablename__ = "dispatch_route"
    __table_args__ = (
        UniqueConstraint(
            "tenant_code", "category_code", "district_code", "grid_code", name="uq_dispatch_route_key"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    category_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    district_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    grid_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    department_tenant: Mapped[str] = mapped_column(String(6), nullable=False)
    department_code: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class DispatchCase(TenantOwned, Base):
    __tablename__ = "dispatch_case"
    __table_args__ = (
        Index("ix_dispatch_case_state", "tenant_code", "state"),
        Index("ix_dispatch_case_department", "tenant_code", "department_tenant", "department_code"),
        Index("ix_dispatch_case_due", "tenant_code", "due_at"),
        Index("ix_dispatch_case_nearby", "tenant_code", "category_code", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_type: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    category_code: Mapped[str] = mapped_column(String(16), nullable=False)
    urgency: Mapped[str] = mapped_column(String(8), nullable=False)  # normal | urgent
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    source_ref: Mapped[str | None] = mapped_column(String(256), nullable=True)
    reporter: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    grid_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    district_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    department_tenant: Mapped[str | None] = mapped_column(String(6), nullable=True)
    department_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Waiting for a person to decide: unknown category, outside every grid cell, no department.
    triage: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    triage_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    duplicate_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("dispatch_case.id", ondelete="SET NULL"), nullable=True, index=True
    )
    #: How many reports were linked to this case as duplicates.
    duplicates: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    stage_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Working minutes left on the stage's clock while suspended.
    remaining_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    overdue: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Ever late in the handling stage; handled within every handling due time.
    handling_overdue: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    reworks: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    extensions: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class DispatchCaseEvent(TenantOwned, Base):
    """One line of a case's history: who did what when, from which state to which."""

    __tablename__ = "dispatch_case_event"
    __table_args__ = (Index("ix_dispatch_case_event_case", "tenant_code", "case_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dispatch_case.id", ondelete="CASCADE"), nullable=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    from_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class DispatchComment(TenantOwned, Base):
    __tablename__ = "dispatch_comment"
    __table_args__ = (Index("ix_dispatch_comment_case", "tenant_code", "case_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dispatch_case.id", ondelete="CASCADE"), nullable=False
    )
    author: Mapped[str] = mapped_column(String(100), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class DispatchAttachment(TenantOwned, Base):
    """A photo of a case; the bytes lie on disk under the data directory, named by their sha256."""

    __tablename__ = "dispatch_attachment"
    __table_args__ = (Index("ix_dispatch_attachment_case", "tenant_code", "case_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dispatch_case.id", ondelete="CASCADE"), nullable=False
    )
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    uploader: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
