"""Record tallies: delta rows kept by triggers on the records table (skills.models.RecordTally).

PostgreSQL runs one statement-level trigger per statement, with the statement's rows as
transition tables: a 1,000,000-row import or a 1,000-row planner update adds a handful of rows
grouped by state, and nothing waits on a shared counter row. SQLite has row triggers only; it is
the embedded single-writer database, where a row per change is cheap enough until the next
compaction. The existing records are counted once here.
"""

import django.db.models.deletion
from django.db import migrations, models

COLUMNS = "calling_list_id, is_final, final_reason, attempts, time_zone"

POSTGRES = [
    f"""
    CREATE FUNCTION skills_record_tally() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        INSERT INTO skills_recordtally ({COLUMNS}, records)
        SELECT {COLUMNS}, count(*) FROM new_rows GROUP BY {COLUMNS};
      ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO skills_recordtally ({COLUMNS}, records)
        SELECT {COLUMNS}, -count(*) FROM old_rows GROUP BY {COLUMNS};
      ELSE
        -- Most updates move no record to another state (a new last_attempt_at, a name): they
        -- add nothing.
        INSERT INTO skills_recordtally ({COLUMNS}, records)
        SELECT {COLUMNS}, sum(n) FROM (
          SELECT {COLUMNS}, 1 AS n FROM new_rows
          UNION ALL
          SELECT {COLUMNS}, -1 AS n FROM old_rows
        ) AS moved
        GROUP BY {COLUMNS} HAVING sum(n) <> 0;
      END IF;
      RETURN NULL;
    END $$
    """,
    """CREATE TRIGGER skills_record_tally_insert AFTER INSERT ON skills_record
       REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION skills_record_tally()""",
    """CREATE TRIGGER skills_record_tally_update AFTER UPDATE ON skills_record
       REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
       FOR EACH STATEMENT EXECUTE FUNCTION skills_record_tally()""",
    """CREATE TRIGGER skills_record_tally_delete AFTER DELETE ON skills_record
       REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION skills_record_tally()""",
]
POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS skills_record_tally_insert ON skills_record",
    "DROP TRIGGER IF EXISTS skills_record_tally_update ON skills_record",
    "DROP TRIGGER IF EXISTS skills_record_tally_delete ON skills_record",
    "DROP FUNCTION IF EXISTS skills_record_tally()",
]


def _values(row: str, n: int) -> str:
    return (
        f"({row}.calling_list_id, {row}.is_final, {row}.final_reason, {row}.attempts,"
        f" {row}.time_zone, {n})"
    )


SQLITE = [
    f"""CREATE TRIGGER skills_record_tally_insert AFTER INSERT ON skills_record BEGIN
        INSERT INTO skills_recordtally ({COLUMNS}, records) VALUES {_values("NEW", 1)}; END""",
    f"""CREATE TRIGGER skills_record_tally_update
        AFTER UPDATE OF {COLUMNS} ON skills_record
        WHEN OLD.calling_list_id IS NOT NEW.calling_list_id OR OLD.is_final IS NOT NEW.is_final
          OR OLD.final_reason IS NOT NEW.final_reason OR OLD.attempts IS NOT NEW.attempts
          OR OLD.time_zone IS NOT NEW.time_zone
        BEGIN
        INSERT INTO skills_recordtally ({COLUMNS}, records)
        VALUES {_values("OLD", -1)}, {_values("NEW", 1)}; END""",
    f"""CREATE TRIGGER skills_record_tally_delete AFTER DELETE ON skills_record BEGIN
        INSERT INTO skills_recordtally ({COLUMNS}, records) VALUES {_values("OLD", -1)}; END""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS skills_record_tally_insert",
    "DROP TRIGGER IF EXISTS skills_record_tally_update",
    "DROP TRIGGER IF EXISTS skills_record_tally_delete",
]

BACKFILL = f"""INSERT INTO skills_recordtally ({COLUMNS}, records)
    SELECT {COLUMNS}, count(*) FROM skills_record GROUP BY {COLUMNS}"""


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        raise RuntimeError(f"pcsms keeps record tallies on PostgreSQL and SQLite, not {vendor}")
    for statement in [BACKFILL, *(POSTGRES if vendor == "postgresql" else SQLITE)]:
        schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in POSTGRES_DROP if vendor == "postgresql" else SQLITE_DROP:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("skills", "0013_task_paths"),
    ]

    operations = [
        migrations.CreateModel(
            name="RecordTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("is_final", models.BooleanField()),
                ("final_reason", models.CharField(blank=True, max_length=12)),
                ("attempts", models.PositiveIntegerField()),
                ("time_zone", models.CharField(blank=True, max_length=64)),
                (
                    "records",
                    models.BigIntegerField(
                        help_text="Records added to (or, negative, taken from) it."
                    ),
                ),
                (
                    "calling_list",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="skills.callinglist",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "record tallies",
                "indexes": [models.Index(fields=["calling_list"], name="record_tally_list_idx")],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers, elidable=False),
    ]
