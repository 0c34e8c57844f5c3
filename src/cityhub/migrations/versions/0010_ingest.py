"""Device ingestion: service groups, devices, commands, dead letters

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-21 18:35:32.195770
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_command",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=256), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("info_json", sa.Text(), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_command")),
    )
    with op.batch_alter_table("ingest_command", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ingest_command_device", ["tenant_code", "device_id", "name", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ingest_command_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "ingest_dead_letter",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("received_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("apikey", sa.String(length=256), nullable=True),
        sa.Column("device_id", sa.String(length=256), nullable=True),
        sa.Column("source", sa.String(length=512), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_dead_letter")),
    )
    with op.batch_alter_table("ingest_dead_letter", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ingest_dead_letter_device", ["tenant_code", "device_id", "reason"], unique=False
        )
        batch_op.create_index("ix_ingest_dead_letter_received", ["tenant_code", "received_at"], unique=False)

    op.create_table(
        "ingest_device",
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=256), nullable=False),
        sa.Column("service_path", sa.String(length=256), nullable=False),
        sa.Column("apikey", sa.String(length=256), nullable=True),
        sa.Column("entity_name", sa.String(length=1024), nullable=False),
        sa.Column("entity_type", sa.String(length=256), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=True),
        sa.Column("transport", sa.String(length=8), nullable=True),
        sa.Column("endpoint", sa.String(length=1024), nullable=True),
        sa.Column("attributes", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("static_attributes", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("commands", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("crs", sa.String(length=8), nullable=False),
        sa.Column("expected_interval", sa.Integer(), nullable=True),
        sa.Column("explicit_attrs", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("battery_level", sa.Float(), nullable=True),
        sa.Column("rssi", sa.Float(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_code", "device_id", name=op.f("pk_ingest_device")),
    )
    with op.batch_alter_table("ingest_device", schema=None) as batch_op:
        batch_op.create_index("ix_ingest_device_apikey", ["apikey", "device_id"], unique=False)
        batch_op.create_index("ix_ingest_device_entity", ["tenant_code", "entity_name"], unique=False)

    op.create_table(
        "ingest_service_group",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("service_path", sa.String(length=256), nullable=False),
        sa.Column("apikey", sa.String(length=256), nullable=False),
        sa.Column("resource", sa.String(length=256), nullable=False),
        sa.Column("entity_type", sa.String(length=256), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=True),
        sa.Column("transport", sa.String(length=8), nullable=True),
        sa.Column("attributes", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("static_attributes", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("commands", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("crs", sa.String(length=8), nullable=False),
        sa.Column("expected_interval", sa.Integer(), nullable=True),
        sa.Column("explicit_attrs", sa.Boolean(), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_service_group")),
        sa.UniqueConstraint("apikey", name="uq_ingest_service_group_apikey"),
    )
    with op.batch_alter_table("ingest_service_group", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ingest_service_group_tenant_code"), ["tenant_code"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ingest_service_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_service_group_tenant_code"))

    op.drop_table("ingest_service_group")
    with op.batch_alter_table("ingest_device", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_device_entity")
        batch_op.drop_index("ix_ingest_device_apikey")

    op.drop_table("ingest_device")
    with op.batch_alter_table("ingest_dead_letter", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_dead_letter_received")
        batch_op.drop_index("ix_ingest_dead_letter_device")

    op.drop_table("ingest_dead_letter")
    with op.batch_alter_table("ingest_command", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_command_tenant_code"))
        batch_op.drop_index("ix_ingest_command_device")

    op.drop_table("ingest_command")
