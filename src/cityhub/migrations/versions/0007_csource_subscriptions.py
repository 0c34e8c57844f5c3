"""Context source registration subscriptions: broker_subscription.kind

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 09:12:40.118204
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broker_subscription", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="entities", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("broker_subscription", schema=None) as batch_op:
        batch_op.drop_column("kind")
