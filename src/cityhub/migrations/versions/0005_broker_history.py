"""Broker attribute history

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 14:33:46.392866
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_attribute_instance",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=2048), nullable=False),
        sa.Column("attribute", sa.String(length=1024), nullable=False),
        sa.Column("dataset_id", sa.String(length=2048), nullable=True),
        sa.Column("observed_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("data", cityhub.kit.db.JSONType, nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_broker_attribute_instance")),
    )
    with op.batch_alter_table("broker_attribute_instance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_broker_instance_observed",
            ["tenant_code", "entity_id", "attribute", "observed_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("broker_attribute_instance", schema=None) as batch_op:
        batch_op.drop_index("ix_broker_instance_observed")

    op.drop_table("broker_attribute_instance")
