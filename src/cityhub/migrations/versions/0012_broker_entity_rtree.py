"""Spatial index on entity bounding boxes (SQLite): an R*Tree kept by triggers

SQLite's R*Tree module indexes boxes on both axes at once, as 0008's GiST index does on
PostgreSQL; the B-tree on (tenant, min_lon, min_lat) narrows by longitude only. An R*Tree row is
keyed by an integer, and ``broker_entity`` has none that lasts (its rowid may change on VACUUM),
so ``broker_entity_box`` gives each located entity a stable one. Triggers on ``broker_entity``
keep both tables in step with every write path, ORM or Core, and an entity's box is written
again only when it changed. The R*Tree stores 32-bit floats rounded outwards: a prefilter that
may let a near miss through, never drop a match; the exact geometry test follows.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-21 19:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# No OR IGNORE / OR REPLACE in these triggers: an outer statement's conflict clause (the broker's
# INSERT … ON CONFLICT DO UPDATE) overrides theirs, so each statement avoids the conflict instead.
_ID_OF = (
    "(SELECT box_id FROM broker_entity_box WHERE tenant_code = {0}.tenant_code AND entity_id = {0}.entity_id)"
)
_ADD_BOX_ID = """INSERT INTO broker_entity_box (tenant_code, entity_id)
            SELECT NEW.tenant_code, NEW.entity_id WHERE NEW.min_lon IS NOT NULL AND NOT EXISTS
                (SELECT 1 FROM broker_entity_box WHERE tenant_code = NEW.tenant_code AND entity_id = NEW.entity_id)"""
_PUT_BOX = f"""DELETE FROM broker_entity_rtree WHERE box_id = {_ID_OF.format("NEW")};
        INSERT INTO broker_entity_rtree
            SELECT box_id, NEW.min_lon, NEW.max_lon, NEW.min_lat, NEW.max_lat FROM broker_entity_box
            WHERE NEW.min_lon IS NOT NULL AND tenant_code = NEW.tenant_code AND entity_id = NEW.entity_id"""

UPGRADE = [
    """CREATE TABLE broker_entity_box (
        box_id INTEGER PRIMARY KEY,
        tenant_code VARCHAR(64) NOT NULL,
        entity_id VARCHAR(2048) NOT NULL,
        UNIQUE (tenant_code, entity_id)
    )""",
    "CREATE VIRTUAL TABLE broker_entity_rtree USING rtree(box_id, min_lon, max_lon, min_lat, max_lat)",
    f"""CREATE TRIGGER broker_entity_box_insert AFTER INSERT ON broker_entity
    WHEN NEW.min_lon IS NOT NULL
    BEGIN
        {_ADD_BOX_ID};
        {_PUT_BOX};
    END""",
    f"""CREATE TRIGGER broker_entity_box_update
    AFTER UPDATE OF min_lon, min_lat, max_lon, max_lat ON broker_entity
    WHEN NEW.min_lon IS NOT OLD.min_lon OR NEW.min_lat IS NOT OLD.min_lat
        OR NEW.max_lon IS NOT OLD.max_lon OR NEW.max_lat IS NOT OLD.max_lat
    BEGIN
        {_ADD_BOX_ID};
        {_PUT_BOX};
    END""",
    f"""CREATE TRIGGER broker_entity_box_delete AFTER DELETE ON broker_entity
    BEGIN
        DELETE FROM broker_entity_rtree WHERE box_id = {_ID_OF.format("OLD")};
        DELETE FROM broker_entity_box WHERE tenant_code = OLD.tenant_code AND entity_id = OLD.entity_id;
    END""",
    """INSERT INTO broker_entity_box (tenant_code, entity_id)
        SELECT tenant_code, entity_id FROM broker_entity WHERE min_lon IS NOT NULL""",
    """INSERT INTO broker_entity_rtree
        SELECT b.box_id, e.min_lon, e.max_lon, e.min_lat, e.max_lat
        FROM broker_entity_box AS b JOIN broker_entity AS e
            ON e.tenant_code = b.tenant_code AND e.entity_id = b.entity_id""",
]

DOWNGRADE = [
    "DROP TRIGGER broker_entity_box_delete",
    "DROP TRIGGER broker_entity_box_update",
    "DROP TRIGGER broker_entity_box_insert",
    "DROP TABLE broker_entity_rtree",
    "DROP TABLE broker_entity_box",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in DOWNGRADE:
            op.execute(statement)
