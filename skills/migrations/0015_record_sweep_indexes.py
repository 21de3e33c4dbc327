"""Partial indexes for the tick's record sweep, and statistics for the planner's number pick."""

from django.db import migrations, models

# The planner picks a list's numbers by column, case-insensitively (skills/queries.py:
# UPPER(source_field) = ...). PostgreSQL keeps no statistics of that expression unless asked,
# guessed that 0.5% of the numbers matched when all did, and planned a pass over a 1,000,000-
# record list as a sort of every open number (1.2 s instead of 0.14 s; bench/planner.py).
STATISTICS = "destination_source_field_upper"


def create_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} "
            "ON (upper(source_field::text)) FROM skills_destination"
        )
        schema_editor.execute("ANALYZE skills_destination")


def drop_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")


class Migration(migrations.Migration):
    dependencies = [
        ("skills", "0014_record_tally"),
    ]

    operations = [
        migrations.RunPython(create_statistics, drop_statistics, elidable=False),
        migrations.AddIndex(
            model_name="record",
            index=models.Index(
                condition=models.Q(("expires_on__isnull", False), ("is_final", False)),
                fields=["calling_list", "expires_on"],
                name="record_open_expires_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="record",
            index=models.Index(
                condition=models.Q(("expires_on__isnull", True), ("is_final", False)),
                fields=["calling_list", "created_at"],
                name="record_open_created_idx",
            ),
        ),
    ]
