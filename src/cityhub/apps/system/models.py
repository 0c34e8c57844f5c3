from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.plugins import Base, TenantOwned


class EventTally(TenantOwned, Base):
    """How many platform events of each type a tenant has produced, and when the last one was."""

    __tablename__ = "system_event_tally"
    __table_args__ = (PrimaryKeyConstraint("tenant_code", "event_type"),)

    event_type: Mapped[str] = mapped_column(String(120), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    last_event_at: Mapped[datetime] = mapped_column(nullable=False)
