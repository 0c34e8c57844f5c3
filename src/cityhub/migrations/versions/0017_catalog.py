"""The data catalog: datasets of departments, their entity types, sharing requests

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-22 00:13:30.164356
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_dataset",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("title_en", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("department_id", sa.Uuid(), nullable=False),
        sa.Column("sharing", sa.String(length=16), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=True),
        sa.Column("update_frequency", sa.String(length=16), nullable=False),
        sa.Column("fields", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["security_department.id"],
            name=op.f("fk_catalog_dataset_department_id_security_department"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_dataset")),
    )
    with op.batch_alter_table("catalog_dataset", schema=None) as batch_op:
        batch_op.create_index("ix_catalog_dataset_code", ["tenant_code", "code"], unique=True)
        batch_op.create_index(batch_op.f("ix_catalog_dataset_department_id"), ["department_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_dataset_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "catalog_dataset_type",
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=1024), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["catalog_dataset.id"],
            name=op.f("fk_catalog_dataset_type_dataset_id_catalog_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_code", "entity_type", name=op.f("pk_catalog_dataset_type")),
    )
    with op.batch_alter_table("catalog_dataset_type", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_dataset_type_dataset_id"), ["dataset_id"], unique=False)

    op.create_table(
        "catalog_sharing_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("applicant_department_id", sa.Uuid(), nullable=False),
        sa.Column("applicant", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("fields", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("starts_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("expires_at", cityhub.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["applicant_department_id"],
            ["security_department.id"],
            name=op.f("fk_catalog_sharing_request_applicant_department_id_security_department"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["catalog_dataset.id"],
            name=op.f("fk_catalog_sharing_request_dataset_id_catalog_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_sharing_request")),
    )
    with op.batch_alter_table("catalog_sharing_request", schema=None) as batch_op:
        batch_op.create_index(
            "ix_catalog_sharing_applicant", ["tenant_code", "applicant_department_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_catalog_sharing_request_dataset_id"), ["dataset_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_catalog_sharing_request_tenant_code"), ["tenant_code"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("catalog_sharing_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_sharing_request_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_catalog_sharing_request_dataset_id"))
        batch_op.drop_index("ix_catalog_sharing_applicant")

    op.drop_table("catalog_sharing_request")
    with op.batch_alter_table("catalog_dataset_type", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_dataset_type_dataset_id"))

    op.drop_table("catalog_dataset_type")
    with op.batch_alter_table("catalog_dataset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_dataset_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_catalog_dataset_department_id"))
        batch_op.drop_index("ix_catalog_dataset_code")

    op.drop_table("catalog_dataset")
