"""Context source registrations

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 15:16:09.632960
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_registration",
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("registration_id", sa.String(length=2048), nullable=False),
        sa.Column("data", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("context", cityhub.kit.db.JSONType, nullable=True),
        sa.Column("expires_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_code", "registration_id", name=op.f("pk_broker_registration")),
    )


def downgrade() -> None:
    op.drop_table("broker_registration")
