"""Rule engine and alerts

Rules (definition as given, enabled, errors, counts), per (rule, entity) state for duration
windows, alerts with their history and the log of deliveries to channels.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-21 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UTC = cityhub.kit.db.UTCDateTime(timezone=True)
JSON = cityhub.kit.db.JSONType


def upgrade() -> None:
    op.create_table(
        "rules_rule",
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("entity_type", sa.String(length=1024), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("template_key", sa.String(length=200), nullable=True),
        sa.Column("params", JSON, nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", UTC, nullable=True),
        sa.Column("fire_count", sa.Integer(), nullable=False),
        sa.Column("suppressed_count", sa.Integer(), nullable=False),
        sa.Column("last_fired_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("modified_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_rules_rule")),
    )
    with op.batch_alter_table("rules_rule", schema=None) as batch_op:
        batch_op.create_index("ix_rules_rule_tenant_enabled", ["tenant_code", "enabled"], unique=False)

    op.create_table(
        "rules_state",
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("entity_id", sa.String(length=2048), nullable=False),
        sa.Column("since", UTC, nullable=True),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "entity_id", name=op.f("pk_rules_state")),
    )
    with op.batch_alter_table("rules_state", schema=None) as batch_op:
        batch_op.create_index("ix_rules_state_entity", ["tenant_code", "entity_id"], unique=False)

    op.create_table(
        "rules_alert",
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=True),
        sa.Column("dedup_key", sa.String(length=2200), nullable=False),
        sa.Column("entity_id", sa.String(length=2048), nullable=False),
        sa.Column("entity_type", sa.String(length=1024), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("raised_severity", sa.String(length=16), nullable=False),
        sa.Column("message_zh", sa.Text(), nullable=False),
        sa.Column("message_en", sa.Text(), nullable=False),
        sa.Column("attribute", sa.String(length=1024), nullable=True),
        sa.Column("reading", JSON, nullable=False),
        sa.Column("channels", JSON, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("raised_at", UTC, nullable=False),
        sa.Column("last_seen_at", UTC, nullable=False),
        sa.Column("acknowledged_at", UTC, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", UTC, nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("escalated_at", UTC, nullable=True),
        sa.Column("case_id", sa.String(length=200), nullable=True),
        sa.Column("open_case", JSON, nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_rules_alert")),
    )
    with op.batch_alter_table("rules_alert", schema=None) as batch_op:
        batch_op.create_index("ix_rules_alert_key", ["tenant_code", "dedup_key", "state"], unique=False)
        batch_op.create_index("ix_rules_alert_raised", ["tenant_code", "raised_at"], unique=False)
        batch_op.create_index("ix_rules_alert_state", ["state", "escalated_at"], unique=False)
        batch_op.create_index(
            "uq_rules_alert_open",
            ["tenant_code", "dedup_key"],
            unique=True,
            sqlite_where=sa.text("state != 'resolved'"),
            postgresql_where=sa.text("state != 'resolved'"),
        )

    op.create_table(
        "rules_alert_event",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", JSON, nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_rules_alert_event")),
    )
    with op.batch_alter_table("rules_alert_event", schema=None) as batch_op:
        batch_op.create_index("ix_rules_alert_event_alert", ["alert_id", "at"], unique=False)

    op.create_table(
        "rules_alert_delivery",
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("channel", sa.String(length=2048), nullable=False),
        sa.Column("notice", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_rules_alert_delivery")),
    )
    with op.batch_alter_table("rules_alert_delivery", schema=None) as batch_op:
        batch_op.create_index("ix_rules_alert_delivery_alert", ["alert_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rules_alert_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_rules_alert_delivery_alert")
    op.drop_table("rules_alert_delivery")
    with op.batch_alter_table("rules_alert_event", schema=None) as batch_op:
        batch_op.drop_index("ix_rules_alert_event_alert")
    op.drop_table("rules_alert_event")
    with op.batch_alter_table("rules_alert", schema=None) as batch_op:
        batch_op.drop_index("uq_rules_alert_open")
        batch_op.drop_index("ix_rules_alert_state")
        batch_op.drop_index("ix_rules_alert_raised")
        batch_op.drop_index("ix_rules_alert_key")
    op.drop_table("rules_alert")
    with op.batch_alter_table("rules_state", schema=None) as batch_op:
        batch_op.drop_index("ix_rules_state_entity")
    op.drop_table("rules_state")
    with op.batch_alter_table("rules_rule", schema=None) as batch_op:
        batch_op.drop_index("ix_rules_rule_tenant_enabled")
    op.drop_table("rules_rule")
