"""Spatial index on entity bounding boxes (PostgreSQL)

A GiST index on the built-in ``box`` of each entity's bounding box, so a geo-query's prefilter is
an index search on both axes at once; it needs no extension (PostGIS is not required). SQLite keeps
the B-tree on (tenant, min_lon, min_lat).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 16:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_broker_entity_box ON broker_entity "
            "USING gist (box(point(min_lon, min_lat), point(max_lon, max_lat)))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_broker_entity_box")
