"""Case workflow (dispatch): setup, categories, grid cells, routes, cases, history, comments, attachments

Revision ID: 0014
Revises: 0012
Create Date: 2026-11-21 21:09:57.189036
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dispatch_case",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_type", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=False),
        sa.Column("urgency", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_ref", sa.String(length=256), nullable=True),
        sa.Column("reporter", sa.String(length=100), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("grid_code", sa.String(length=32), nullable=True),
        sa.Column("district_code", sa.String(length=6), nullable=True),
        sa.Column("department_tenant", sa.String(length=6), nullable=True),
        sa.Column("department_code", sa.String(length=64), nullable=True),
        sa.Column("triage", sa.Boolean(), nullable=False),
        sa.Column("triage_reason", sa.String(length=200), nullable=True),
        sa.Column("duplicate_of", sa.Uuid(), nullable=True),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=True),
        sa.Column("stage_started_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("due_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("remaining_minutes", sa.Integer(), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("escalated_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("handled_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("handling_overdue", sa.Boolean(), nullable=False),
        sa.Column("reworks", sa.Integer(), nullable=False),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["duplicate_of"],
            ["dispatch_case.id"],
            name=op.f("fk_dispatch_case_duplicate_of_dispatch_case"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_case")),
    )
    with op.batch_alter_table("dispatch_case", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dispatch_case_department",
            ["tenant_code", "department_tenant", "department_code"],
            unique=False,
        )
        batch_op.create_index("ix_dispatch_case_due", ["tenant_code", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispatch_case_duplicate_of"), ["duplicate_of"], unique=False)
        batch_op.create_index(
            "ix_dispatch_case_nearby", ["tenant_code", "category_code", "created_at"], unique=False
        )
        batch_op.create_index("ix_dispatch_case_state", ["tenant_code", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispatch_case_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "dispatch_category",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("major_code", sa.String(length=2), nullable=False),
        sa.Column("minor_code", sa.String(length=2), nullable=False),
        sa.Column("name_zh", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("major_name_zh", sa.String(length=100), nullable=False),
        sa.Column("major_name_en", sa.String(length=100), nullable=False),
        sa.Column("limits", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("default_department", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_category")),
        sa.UniqueConstraint("tenant_code", "code", name=op.f("uq_dispatch_category_tenant_code")),
    )
    with op.batch_alter_table("dispatch_category", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispatch_category_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "dispatch_grid_cell",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("geometry", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("span", sa.Float(), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_grid_cell")),
        sa.UniqueConstraint("tenant_code", "code", name=op.f("uq_dispatch_grid_cell_tenant_code")),
    )
    with op.batch_alter_table("dispatch_grid_cell", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dispatch_grid_cell_box", ["tenant_code", "min_lon", "min_lat"], unique=False
        )
        batch_op.create_index("ix_dispatch_grid_cell_span", ["tenant_code", "span"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispatch_grid_cell_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "dispatch_route",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=True),
        sa.Column("district_code", sa.String(length=6), nullable=True),
        sa.Column("grid_code", sa.String(length=32), nullable=True),
        sa.Column("department_tenant", sa.String(length=6), nullable=False),
        sa.Column("department_code", sa.String(length=64), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_route")),
        sa.UniqueConstraint(
            "tenant_code", "category_code", "district_code", "grid_code", name="uq_dispatch_route_key"
        ),
    )
    with op.batch_alter_table("dispatch_route", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispatch_route_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "dispatch_setup",
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.Column("calendar", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("categories_seeded", sa.Boolean(), nullable=False),
        sa.Column("updated_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_code", name=op.f("pk_dispatch_setup")),
    )
    op.create_table(
        "dispatch_attachment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("taken_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("uploader", sa.String(length=100), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["dispatch_case.id"],
            name=op.f("fk_dispatch_attachment_case_id_dispatch_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_attachment")),
    )
    with op.batch_alter_table("dispatch_attachment", schema=None) as batch_op:
        batch_op.create_index("ix_dispatch_attachment_case", ["tenant_code", "case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispatch_attachment_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "dispatch_case_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", cityhub.kit.db.JSONType, nullable=True),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["dispatch_case.id"],
            name=op.f("fk_dispatch_case_event_case_id_dispatch_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_case_event")),
    )
    with op.batch_alter_table("dispatch_case_event", schema=None) as batch_op:
        batch_op.create_index("ix_dispatch_case_event_case", ["tenant_code", "case_id", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispatch_case_event_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "dispatch_comment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["dispatch_case.id"],
            name=op.f("fk_dispatch_comment_case_id_dispatch_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_comment")),
    )
    with op.batch_alter_table("dispatch_comment", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dispatch_comment_case", ["tenant_code", "case_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_dispatch_comment_tenant_code"), ["tenant_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dispatch_comment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_comment_tenant_code"))
        batch_op.drop_index("ix_dispatch_comment_case")

    op.drop_table("dispatch_comment")
    with op.batch_alter_table("dispatch_case_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_case_event_tenant_code"))
        batch_op.drop_index("ix_dispatch_case_event_case")

    op.drop_table("dispatch_case_event")
    with op.batch_alter_table("dispatch_attachment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_attachment_tenant_code"))
        batch_op.drop_index("ix_dispatch_attachment_case")

    op.drop_table("dispatch_attachment")
    op.drop_table("dispatch_setup")
    with op.batch_alter_table("dispatch_route", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_route_tenant_code"))

    op.drop_table("dispatch_route")
    with op.batch_alter_table("dispatch_grid_cell", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_grid_cell_tenant_code"))
        batch_op.drop_index("ix_dispatch_grid_cell_span")
        batch_op.drop_index("ix_dispatch_grid_cell_box")

    op.drop_table("dispatch_grid_cell")
    with op.batch_alter_table("dispatch_category", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_category_tenant_code"))

    op.drop_table("dispatch_category")
    with op.batch_alter_table("dispatch_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_case_tenant_code"))
        batch_op.drop_index("ix_dispatch_case_state")
        batch_op.drop_index("ix_dispatch_case_nearby")
        batch_op.drop_index(batch_op.f("ix_dispatch_case_duplicate_of"))
        batch_op.drop_index("ix_dispatch_case_due")
        batch_op.drop_index("ix_dispatch_case_department")

    op.drop_table("dispatch_case")
