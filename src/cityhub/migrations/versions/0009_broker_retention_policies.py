"""Standing retention policies for attribute history

One row per tenant and entity type (or every type): how long raw history is kept, the period and
aggregation methods it is downsampled with, and when the aggregates are dropped. No index on the
history table: EXPLAIN of the temporal aggregation over a month of 1-minute data shows a sequential
scan of the instances asked for (every row of the range is read), which an index would not shorten.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_retention_policy",
        sa.Column("policy_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=1024), nullable=True),
        sa.Column("keep_raw", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=64), nullable=False),
        sa.Column("methods", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("drop_after", sa.String(length=64), nullable=True),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_applied_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", cityhub.kit.db.JSONType, nullable=True),
        sa.PrimaryKeyConstraint("policy_id", name=op.f("pk_broker_retention_policy")),
    )
    with op.batch_alter_table("broker_retention_policy", schema=None) as batch_op:
        batch_op.create_index("ix_broker_retention_policy_type", ["tenant_code", "entity_type"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("broker_retention_policy", schema=None) as batch_op:
        batch_op.drop_index("ix_broker_retention_policy_type")
    op.drop_table("broker_retention_policy")
