"""Context broker: tenants, entities, entity types

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 12:29:12.494619
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_entity",
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=2048), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("data", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=True),
        sa.Column("min_lat", sa.Float(), nullable=True),
        sa.Column("max_lon", sa.Float(), nullable=True),
        sa.Column("max_lat", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_code", "entity_id", name=op.f("pk_broker_entity")),
    )
    with op.batch_alter_table("broker_entity", schema=None) as batch_op:
        batch_op.create_index("ix_broker_entity_bbox", ["tenant_code", "min_lon", "min_lat"], unique=False)

    op.create_table(
        "broker_tenant",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_broker_tenant")),
    )
    op.create_table(
        "broker_entity_type",
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=2048), nullable=False),
        sa.Column("type", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_code", "entity_id"],
            ["broker_entity.tenant_code", "broker_entity.entity_id"],
            name=op.f("fk_broker_entity_type_tenant_code_broker_entity"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_code", "entity_id", "type", name=op.f("pk_broker_entity_type")),
    )
    with op.batch_alter_table("broker_entity_type", schema=None) as batch_op:
        batch_op.create_index("ix_broker_entity_type_type", ["tenant_code", "type"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("broker_entity_type", schema=None) as batch_op:
        batch_op.drop_index("ix_broker_entity_type_type")

    op.drop_table("broker_entity_type")
    op.drop_table("broker_tenant")
    with op.batch_alter_table("broker_entity", schema=None) as batch_op:
        batch_op.drop_index("ix_broker_entity_bbox")

    op.drop_table("broker_entity")
