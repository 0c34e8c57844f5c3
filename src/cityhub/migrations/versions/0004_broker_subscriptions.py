"""Broker subscriptions and the notification queue; outbox rows name NGSI-LD tenants (up to 64)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 13:51:50.643144
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_notification",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=2048), nullable=False),
        sa.Column("endpoint", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("headers", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("body", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_notification")),
    )
    with op.batch_alter_table("broker_notification", schema=None) as batch_op:
        batch_op.create_index("ix_broker_notification_due", ["due_at"], unique=False)

    op.create_table(
        "broker_subscription",
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=2048), nullable=False),
        sa.Column("data", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("context", cityhub.kit.db.JSONType, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("expires_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("throttling", sa.Float(), nullable=True),
        sa.Column("time_interval", sa.Float(), nullable=True),
        sa.Column("next_run_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("throttled_until", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("times_sent", sa.Integer(), nullable=False),
        sa.Column("times_failed", sa.Integer(), nullable=False),
        sa.Column("last_notification", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_code", "subscription_id", name=op.f("pk_broker_subscription")),
    )
    with op.batch_alter_table("broker_subscription", schema=None) as batch_op:
        batch_op.create_index("ix_broker_subscription_next_run", ["next_run_at"], unique=False)

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "tenant_code",
            existing_type=sa.VARCHAR(length=6),
            type_=sa.String(length=64),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "tenant_code",
            existing_type=sa.String(length=64),
            type_=sa.VARCHAR(length=6),
            existing_nullable=True,
        )

    with op.batch_alter_table("broker_subscription", schema=None) as batch_op:
        batch_op.drop_index("ix_broker_subscription_next_run")

    op.drop_table("broker_subscription")
    with op.batch_alter_table("broker_notification", schema=None) as batch_op:
        batch_op.drop_index("ix_broker_notification_due")

    op.drop_table("broker_notification")
