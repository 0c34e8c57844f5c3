"""Broker storage. An entity is one row holding its internal form as JSON; its types are rows of
their own (indexed, so type queries never scan), and the bounding box of its ``location`` is kept
in columns for the geo prefilter. Broker tenants are any NGSILD-Tenant name, created on first write.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.kit.db import Base, JSONType, TenantOwned, UTCDateTime
from cityhub.kit.ids import new_id
from cityhub.kit.time import utcnow

TENANT_NAME_LENGTH = 64
#: The kinds of subscription (``BrokerSubscription.kind``).
ENTITIES = "entities"
REGISTRATIONS = "registrations"


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


class BrokerSubscription(TenantOwned, Base):
    """An NGSI-LD subscription. ``data`` is the subscription as given (compacted, without its
    @context, which is ``context``), with entity types and attribute names expanded; the columns
    are what delivery reads and counts without parsing ``data``. ``kind`` tells subscriptions to
    entities (``/subscriptions``) from those to context source registrations
    (``/csourceSubscriptions``); each API sees only its own kind."""

    __tablename__ = "broker_subscription"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_code", "subscription_id"),
        Index("ix_broker_subscription_next_run", "next_run_at"),
    )

    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    subscription_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default=ENTITIES, server_default=ENTITIES)
    data: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    context: Mapped[Any] = mapped_column(JSONType, nullable=True)
    active: Mapped[bool] = mapped_column(nullable=False, default=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    throttling: Mapped[float | None] = mapped_column(Float, nullable=True)
    time_interval: Mapped[float | None] = mapped_column(Float, nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    throttled_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    times_sent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    times_failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_notification: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_failure: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Whose access to the data its notifications keep to, judged again at each notification
    #: (``sharing``): made or last changed by a caller the data catalog restricts
    #: (``restricted``), of department ``department_id`` (None: of none). Not restricted: made
    #: by an administrator, by the hub's own code, or with access control off.
    restricted: Mapped[bool] = mapped_column(nullable=False, default=False, server_default=false())
    department_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)


class BrokerNotification(Base):
    """A notification owed to a subscriber: rendered when the change was matched, kept until the
    endpoint took it or the attempts ran out. Workers of any hub process claim due rows with a
    lease, so each is sent by one process at a time, and one left by a dead process is sent after
    its lease ends."""

    __tablename__ = "broker_notification"
    __table_args__ = (Index("ix_broker_notification_due", "due_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    subscription_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    endpoint: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    headers: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    body: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class BrokerAttributeInstance(TenantOwned, Base):
    """One instance in an attribute's history (the temporal API). Every change of an entity adds
    the instances it wrote; ``data`` is the instance as stored in the entity. ``observed_at`` is the
    instance's observedAt, ``recorded_at`` when the broker stored it (its modifiedAt). Deleting an
    attribute adds an instance with ``deleted_at`` set, which ``timeproperty=deletedAt`` reads."""

    __tablename__ = "broker_attribute_instance"
    __table_args__ = (
        # createdAt/modifiedAt queries use the same prefix; one index keeps history writes cheap
        Index("ix_broker_instance_observed", "tenant_code", "entity_id", "attribute", "observed_at"),
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    attribute: Mapped[str] = mapped_column(String(1024), nullable=False)
    dataset_id: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(nullable=False)


class BrokerRegistration(TenantOwned, Base):
    """A context source registration: kept as the client wrote it (without its @context, which is
    ``context``), so it is shown back as given; queries read names with ``context``."""

    __tablename__ = "broker_registration"
    __table_args__ = (PrimaryKeyConstraint("tenant_code", "registration_id"),)

    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    registration_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    context: Mapped[Any] = mapped_column(JSONType, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class BrokerHistoryDay(Base):
    """How often an entity's history of a UTC day was changed after the fact: a revision bumped,
    in the same transaction, by every insert, change or deletion of an instance whose time
    (observedAt, else when it was recorded) is more than :data:`LATE_AFTER_MINUTES` before the moment of
    the write. Live readings leave it alone; a reading that arrives late, an instance added,
    changed or deleted through the temporal API, a retention purge bump the days they touch.

    Triggers on ``broker_attribute_instance`` keep it (migration 0020), so that every path that
    writes history does, in any hub process. Figures derived from a past day's history (an
    application's daily means) can be kept with the revisions they were computed at and trusted
    while those stay the same (``plugins.entities.history_revisions``), provided they are kept
    only for days that ended well over :data:`LATE_AFTER_MINUTES` ago."""

    __tablename__ = "broker_history_day"
    __table_args__ = (PrimaryKeyConstraint("tenant_code", "day", "entity_id"),)

    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(2048), nullable=False)
    day: Mapped[date] = mapped_column(Date(), nullable=False)
    revision: Mapped[int] = mapped_column(BigInteger(), nullable=False)


#: How far behind the moment of its write an instance's time must be for the write to count as a
#: change of a past day (``BrokerHistoryDay``); the triggers of migration 0020 hold the same figure.
LATE_AFTER_MINUTES = 15
