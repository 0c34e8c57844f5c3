"""Ingest storage: service groups and devices (provisioning, in the shape of FIWARE's IoT Agents),
commands sent to devices, and dead letters (every message the gateways refused, with its reason).

Tenants are broker tenants (the ``fiware-service`` header, as ``NGSILD-Tenant`` for the broker),
so ``tenant_code`` is as long as a broker tenant name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityhub.hub.broker.models import TENANT_NAME_LENGTH
from cityhub.kit.db import Base, JSONType, TenantOwned, Timestamped, UTCDateTime
from cityhub.kit.ids import new_id
from cityhub.kit.time import utcnow


def _new_id() -> str:
    return str(new_id())


class IngestServiceGroup(TenantOwned, Timestamped, Base):
    """What devices sharing an API key have in common. The API key is unique in the hub: it names
    the tenant and service path of every message sent with it."""

    __tablename__ = "ingest_service_group"
    __table_args__ = (UniqueConstraint("apikey", name="uq_ingest_service_group_apikey"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), index=True, nullable=False)
    service_path: Mapped[str] = mapped_column(String(256), nullable=False, default="/")
    apikey: Mapped[str] = mapped_column(String(256), nullable=False)
    resource: Mapped[str] = mapped_column(String(256), nullable=False, default="/iot/d")
    entity_type: Mapped[str] = mapped_column(String(256), nullable=False)
    protocol: Mapped[str | None] = mapped_column(String(16), nullable=True)
    transport: Mapped[str | None] = mapped_column(String(8), nullable=True)
    attributes: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    static_attributes: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    commands: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    crs: Mapped[str] = mapped_column(String(8), nullable=False, default="WGS84")
    expected_interval: Mapped[int | None] = mapped_column(Integer, nullable=True)
    explicit_attrs: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: A response action of the security system: messages sent with the key are refused (dead
    #: letters ``apikey-disabled``) until it is enabled again.
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    #: The IoT Agent's ``autoprovision``: the first valid message from a device id the group does
    #: not know provisions that device from the group (off unless the group asks for it).
    autoprovision: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )


class IngestDevice(TenantOwned, Timestamped, Base):
    """One provisioned device: how its measures map onto its entity's attributes."""

    __tablename__ = "ingest_device"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_code", "device_id"),
        Index("ix_ingest_device_apikey", "apikey", "device_id"),
        Index("ix_ingest_device_entity", "tenant_code", "entity_name"),
    )

    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    device_id: Mapped[str] = mapped_column(String(256), nullable=False)
    service_path: Mapped[str] = mapped_column(String(256), nullable=False, default="/")
    apikey: Mapped[str | None] = mapped_column(String(256), nullable=True)
    entity_name: Mapped[str] = mapped_column(String(1024), nullable=False)
    entity_type: Mapped[str] = mapped_column(String(256), nullable=False)
    protocol: Mapped[str | None] = mapped_column(String(16), nullable=True)
    transport: Mapped[str | None] = mapped_column(String(8), nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    attributes: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    static_attributes: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    commands: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    crs: Mapped[str] = mapped_column(String(8), nullable=False, default="WGS84")
    expected_interval: Mapped[int | None] = mapped_column(Integer, nullable=True)
    explicit_attrs: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    battery_level: Mapped[float | None] = mapped_column(Float, nullable=True)
    rssi: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the state the health monitor last recorded (None: never judged)
    online: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class IngestCommand(TenantOwned, Base):
    """A command sent to a device and how far it got: PENDING (accepted, not yet with the device's
    transport; for a device that polls, waiting for its next poll), DELIVERED (the MQTT broker or
    the device's endpoint took it, or the polling device collected it), OK or ERROR (the device
    answered), EXPIRED (no answer in time)."""

    __tablename__ = "ingest_command"
    __table_args__ = (Index("ix_ingest_command_device", "tenant_code", "device_id", "name", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), index=True, nullable=False)
    device_id: Mapped[str] = mapped_column(String(256), nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    # JSON as text: SQLite's JSON column would turn a bare number back into a number, not JSON text
    value_json: Mapped[str] = mapped_column(Text, nullable=False, default="null")
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    info_json: Mapped[str] = mapped_column(Text, nullable=False, default='""')
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    @property
    def value(self) -> Any:
        return orjson.loads(self.value_json)

    @value.setter
    def value(self, value: Any) -> None:
        self.value_json = orjson.dumps(value).decode()

    @property
    def info(self) -> Any:
        return orjson.loads(self.info_json)

    @info.setter
    def info(self, info: Any) -> None:
        self.info_json = orjson.dumps(info).decode()


class IngestDeadLetter(TenantOwned, Base):
    """A message a gateway refused. ``payload`` is the message as text (cut at 4 KiB; ``size`` is
    its full length in bytes). Letters whose tenant is unknown (an unknown API key on MQTT) belong
    to the hub's default tenant."""

    __tablename__ = "ingest_dead_letter"
    __table_args__ = (
        Index("ix_ingest_dead_letter_received", "tenant_code", "received_at"),
        Index("ix_ingest_dead_letter_device", "tenant_code", "device_id", "reason"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    tenant_code: Mapped[str] = mapped_column(String(TENANT_NAME_LENGTH), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    transport: Mapped[str] = mapped_column(String(8), nullable=False)
    apikey: Mapped[str | None] = mapped_column(String(256), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    source: Mapped[str | None] = mapped_column(String(512), nullable=True)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
