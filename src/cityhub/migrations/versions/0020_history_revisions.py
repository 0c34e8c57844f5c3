"""History revised after the fact, per entity and UTC day (broker_history_day, kept by triggers
on broker_attribute_instance); the environment application's kept daily AQI inputs
(environment_aqi_day, environment_station_day)

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-22 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityhub.kit.db

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

#: Minutes behind its write an instance's time must be for the write to revise a past day
#: (cityhub.hub.broker.models.LATE_AFTER_MINUTES).
LATE_AFTER_MINUTES = 15

# SQLite: one trigger per event, per row; the UTC day is the date of the stored (naive UTC) time.
_SQLITE_BUMP = """
    INSERT INTO broker_history_day (tenant_code, day, entity_id, revision)
    SELECT {row}.tenant_code, date(COALESCE({row}.observed_at, {row}.recorded_at)), {row}.entity_id, 1
    WHERE COALESCE({row}.observed_at, {row}.recorded_at) < datetime('now', '-{late} minutes')
    ON CONFLICT (tenant_code, day, entity_id) DO UPDATE SET revision = broker_history_day.revision + 1;
"""
_SQLITE_TRIGGERS = {
    "broker_history_revised_insert": ("INSERT", ("NEW",)),
    "broker_history_revised_update": ("UPDATE OF observed_at, recorded_at, deleted_at, data", ("OLD", "NEW")),
    "broker_history_revised_delete": ("DELETE", ("OLD",)),
}

# PostgreSQL: inserts and changes, a trigger per row whose WHEN clause (evaluated without calling
# the function) passes late rows only, so that live writes pay next to nothing; deletions (a purge
# removes many rows at once, all late), one trigger per statement over its transition table that
# bumps each entity's day once, in a fixed order.
_PG_UPSERT = """
        INSERT INTO broker_history_day AS d (tenant_code, day, entity_id, revision)
        VALUES ({row}.tenant_code, (COALESCE({row}.observed_at, {row}.recorded_at) AT TIME ZONE 'UTC')::date,
                {row}.entity_id, 1)
        ON CONFLICT (tenant_code, day, entity_id) DO UPDATE SET revision = d.revision + 1;
"""
_PG_LATE = "COALESCE({row}.observed_at, {row}.recorded_at) < clock_timestamp() - interval '{late} minutes'"
_PG_ROW_FUNCTION = """
CREATE FUNCTION broker_history_revised_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND {old_late} THEN{old}
    END IF;
    IF {new_late} THEN{new}
    END IF;
    RETURN NULL;
END
$$
""".format(
    old_late=_PG_LATE.format(row="OLD", late=LATE_AFTER_MINUTES),
    new_late=_PG_LATE.format(row="NEW", late=LATE_AFTER_MINUTES),
    old=_PG_UPSERT.format(row="OLD"),
    new=_PG_UPSERT.format(row="NEW"),
)
_PG_DELETE_FUNCTION = f"""
CREATE FUNCTION broker_history_revised_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := clock_timestamp() - interval '{LATE_AFTER_MINUTES} minutes';
BEGIN
    INSERT INTO broker_history_day AS d (tenant_code, day, entity_id, revision)
    SELECT tenant_code, (at AT TIME ZONE 'UTC')::date, entity_id, 1
    FROM (SELECT tenant_code, entity_id, COALESCE(observed_at, recorded_at) AS at FROM revised_old) AS touched
    WHERE at < cutoff
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (tenant_code, day, entity_id) DO UPDATE SET revision = d.revision + 1;
    RETURN NULL;
END
$$
"""
_PG_TRIGGERS = {
    "broker_history_revised_insert": (
        "AFTER INSERT ON broker_attribute_instance FOR EACH ROW WHEN ({new_late})"
        " EXECUTE FUNCTION broker_history_revised_row()".format(
            new_late=_PG_LATE.format(row="NEW", late=LATE_AFTER_MINUTES)
        )
    ),
    "broker_history_revised_update": (
        "AFTER UPDATE ON broker_attribute_instance FOR EACH ROW WHEN ({old_late} OR {new_late})"
        " EXECUTE FUNCTION broker_history_revised_row()".format(
            old_late=_PG_LATE.format(row="OLD", late=LATE_AFTER_MINUTES),
            new_late=_PG_LATE.format(row="NEW", late=LATE_AFTER_MINUTES),
        )
    ),
    "broker_history_revised_delete": (
        "AFTER DELETE ON broker_attribute_instance REFERENCING OLD TABLE AS revised_old FOR EACH STATEMENT"
        " EXECUTE FUNCTION broker_history_revised_delete()"
    ),
}


def upgrade() -> None:
    op.create_table(
        "broker_history_day",
        sa.Column("tenant_code", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=2048), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_code", "day", "entity_id", name=op.f("pk_broker_history_day")),
    )
    op.create_table(
        "environment_aqi_day",
        sa.Column("basis", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stations", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.PrimaryKeyConstraint("tenant_code", "basis", "day", name=op.f("pk_environment_aqi_day")),
    )
    with op.batch_alter_table("environment_aqi_day", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_environment_aqi_day_tenant_code"), ["tenant_code"], unique=False)
    op.create_table(
        "environment_station_day",
        sa.Column("basis", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("entity_id", sa.String(length=2048), nullable=False),
        sa.Column("items", cityhub.kit.db.JSONType, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("tenant_code", sa.String(length=6), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_code", "basis", "day", "entity_id", name=op.f("pk_environment_station_day")
        ),
    )
    with op.batch_alter_table("environment_station_day", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_environment_station_day_tenant_code"), ["tenant_code"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_ROW_FUNCTION)
        op.execute(_PG_DELETE_FUNCTION)
        for name, when in _PG_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when}")
        return
    for name, (event, rows) in _SQLITE_TRIGGERS.items():
        body = "".join(_SQLITE_BUMP.format(row=row, late=LATE_AFTER_MINUTES) for row in rows)
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON broker_attribute_instance FOR EACH ROW BEGIN{body}END"
        )


def downgrade() -> None:
    for name in _SQLITE_TRIGGERS:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON broker_attribute_instance")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS broker_history_revised_row()")
        op.execute("DROP FUNCTION IF EXISTS broker_history_revised_delete()")
    with op.batch_alter_table("environment_station_day", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_environment_station_day_tenant_code"))
    op.drop_table("environment_station_day")
    with op.batch_alter_table("environment_aqi_day", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_environment_aqi_day_tenant_code"))
    op.drop_table("environment_aqi_day")
    op.drop_table("broker_history_day")
