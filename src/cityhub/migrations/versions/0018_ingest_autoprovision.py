"""Autoprovisioning service groups: ingest_service_group.autoprovision

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-22 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_service_group", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("autoprovision", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("ingest_service_group", schema=None) as batch_op:
        batch_op.drop_column("autoprovision")
