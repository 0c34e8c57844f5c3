"""Security incidents and their history of steps and response actions; disabled device API keys

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-21 23:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "security_incident",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("tenant_code", sa.String(length=64), nullable=True),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("opened_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_incident")),
    )
    with op.batch_alter_table("security_incident", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_security_incident_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_security_incident_tenant_code"), ["tenant_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_security_incident_opened_at"), ["opened_at"], unique=False)
        batch_op.create_index("ix_security_incident_rule_source", ["rule", "source", "state"], unique=False)

    op.create_table(
        "security_incident_step",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("detail", cityhub.kit.db.JSONType, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["security_incident.id"],
            name=op.f("fk_security_incident_step_incident_id_security_incident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_incident_step")),
    )
    with op.batch_alter_table("security_incident_step", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_security_incident_step_incident_id"), ["incident_id"], unique=False
        )
    with op.batch_alter_table("ingest_service_group", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("ingest_service_group", schema=None) as batch_op:
        batch_op.drop_column("disabled")
    op.drop_table("security_incident_step")
    op.drop_table("security_incident")
