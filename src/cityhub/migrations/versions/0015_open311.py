"""Open311: citizens' reports (the reporter's data, kept apart from the case) and service settings

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-21 21:35:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open311_report",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("service_code", sa.String(length=16), nullable=False),
        sa.Column("address_string", sa.String(length=300), nullable=True),
        sa.Column("media_url", sa.String(length=1000), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("device_id", sa.String(length=200), nullable=True),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("attributes", cityhub.kit.db.JSONType, nullable=True),
        sa.Column("source_address", sa.String(length=64), nullable=True),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["dispatch_case.id"],
            name=op.f("fk_open311_report_case_id_dispatch_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open311_report")),
        sa.UniqueConstraint("tenant_code", "case_id", name=op.f("uq_open311_report_tenant_code")),
    )
    with op.batch_alter_table("open311_report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_open311_report_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "open311_service",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("keywords", sa.String(length=300), nullable=True),
        sa.Column("attributes", cityhub.kit.db.JSONType, nullable=True),
        sa.Column("updated_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open311_service")),
        sa.UniqueConstraint("tenant_code", "category_code", name=op.f("uq_open311_service_tenant_code")),
    )
    with op.batch_alter_table("open311_service", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_open311_service_tenant_code"), ["tenant_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("open311_service", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_open311_service_tenant_code"))

    op.drop_table("open311_service")
    with op.batch_alter_table("open311_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_open311_report_tenant_code"))

    op.drop_table("open311_report")
