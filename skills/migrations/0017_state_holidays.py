"""Legal holidays as data: the presets of states that ban texts on them (docs/spec.md section 9)
close on their holiday dates, observed-day rules included, filled here for 2026-2030 from the
``holidays`` library; ``manage.py state_holidays`` adds later years.
"""

import django.db.models.deletion
from django.db import migrations, models

CLOSED_ON_HOLIDAYS = ["AL", "LA", "PA", "RI", "UT"]
YEARS = list(range(2026, 2031))


def seed(apps, schema_editor):
    import holidays

    preset = apps.get_model("skills", "SendingWindowPreset")
    holiday = apps.get_model("skills", "PresetHoliday")
    for row in preset.objects.filter(code__in=CLOSED_ON_HOLIDAYS):
        row.no_holidays = True
        row.save(update_fields=["no_holidays"])
        calendar = holidays.US(subdiv=row.code, years=YEARS, observed=True)
        holiday.objects.bulk_create(
            [holiday(preset=row, date=d, name=str(n)[:200]) for d, n in sorted(calendar.items())],
            ignore_conflicts=True,
        )


def unseed(apps, schema_editor):
    apps.get_model("skills", "PresetHoliday").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('skills', '0016_state_rule_days_and_sources'),
    ]

    operations = [
        migrations.AddField(
            model_name='sendingwindowpreset',
            name='no_holidays',
            field=models.BooleanField(default=False, help_text="Not on the state's legal holidays (the preset's holiday dates)."),
        ),
        migrations.CreateModel(
            name='PresetHoliday',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('date', models.DateField()),
                ('name', models.CharField(max_length=200)),
                ('preset', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='holidays', to='skills.sendingwindowpreset')),
            ],
            options={
                'ordering': ['preset', 'date'],
                'constraints': [models.UniqueConstraint(fields=('preset', 'date'), name='presetholiday_one_per_day', violation_error_message='This preset already has a holiday on that day.')],
            },
        ),
        migrations.RunPython(seed, unseed, elidable=False),
]
