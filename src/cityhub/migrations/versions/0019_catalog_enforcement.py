"""The data catalog's rules at each notification: whose access a subscription keeps to
(broker_subscription.restricted, broker_subscription.department_id)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-22 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broker_subscription", schema=None) as batch_op:
        batch_op.add_column(sa.Column("restricted", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("department_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("broker_subscription", schema=None) as batch_op:
        batch_op.drop_column("department_id")
        batch_op.drop_column("restricted")
