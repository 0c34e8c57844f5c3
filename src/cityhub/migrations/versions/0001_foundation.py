"""Foundation: tenants, the event outbox, PostGIS where available.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger("cityhub.migrate")


def _try_postgis() -> None:
    """PostGIS is used where the extension can be created; the hub works without it."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")).scalar()
    if not available:
        log.warning("PostGIS is not installed on this PostgreSQL server; geo queries use the fallback")
        return
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
        savepoint.commit()
    except sa.exc.DBAPIError as error:
        savepoint.rollback()
        log.warning("PostGIS could not be created (%s); geo queries use the fallback", error.orig)


def upgrade() -> None:
    _try_postgis()
    op.create_table(
        "tenant",
        sa.Column("code", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("parent_code", sa.String(length=6), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", cityhub.kit.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_code"], ["tenant.code"], name=op.f("fk_tenant_parent_code_tenant"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tenant")),
    )
    op.create_index(op.f("ix_tenant_parent_code"), "tenant", ["parent_code"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=120), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=True),
        sa.Column("payload", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(), nullable=False),
        sa.Column("published_at", cityhub.kit.db.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["created_at", "seq"],
        unique=False,
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"], unique=False)
    op.create_index("ix_outbox_tenant_code", "outbox", ["tenant_code", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_tenant_code", table_name="outbox")
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    # SQLite empties a table row by row on DROP: unlink the tree first or the parent key trips.
    op.execute(sa.text("UPDATE tenant SET parent_code = NULL"))
    op.drop_index(op.f("ix_tenant_parent_code"), table_name="tenant")
    op.drop_table("tenant")
