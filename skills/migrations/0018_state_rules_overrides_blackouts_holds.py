"""Business units' own state rules, blackouts, and the ledger of texts a rule held back
(docs/spec.md section 9). Oregon's cap lapses for a customer who bought within 18 months;
Mississippi observes a Sunday holiday on the Monday and a Saturday one on the day itself
(Miss. Code 3-3-7), its calendar filled for 2026-2030.
"""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


YEARS = list(range(2026, 2031))
# SQLite adds a column with a database default by copying the table, which drops its triggers:
# the record tallies' are made again (PostgreSQL keeps them).
TALLIES = importlib.import_module("skills.migrations.0014_record_tally")


def tally_triggers_again(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in [*TALLIES.SQLITE_DROP, *TALLIES.SQLITE]:
            schema_editor.execute(statement)


def seed(apps, schema_editor):
    from skills.calendars import holiday_calendar

    preset = apps.get_model("skills", "SendingWindowPreset")
    holiday = apps.get_model("skills", "PresetHoliday")
    preset.objects.filter(code="OR").update(cap_purchase_exempt_months=18)
    for row in preset.objects.filter(code="MS"):
        row.observed_rule = "sun_mon"
        row.save(update_fields=["observed_rule"])
        holiday.objects.bulk_create(
            [
                holiday(preset=row, date=d, name=n)
                for d, n in holiday_calendar(row.code, YEARS, row.observed_rule).items()
            ],
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0006_receipt_check_schedule'),
        ('pcsms', '0002_business_unit_frequency_cap'),
        ('skills', '0017_state_holidays'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='record',
            name='held_by',
            field=models.CharField(blank=True, db_default='', max_length=200),
        ),
        migrations.AddField(
            model_name='record',
            name='held_until',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='sendingwindowpreset',
            name='cap_purchase_exempt_months',
            field=models.PositiveSmallIntegerField(blank=True, help_text='The cap does not apply to a record whose last purchase is this recent.', null=True),
        ),
        migrations.AddField(
            model_name='sendingwindowpreset',
            name='observed_rule',
            field=models.CharField(choices=[('sat_fri_sun_mon', "Saturday's on the Friday before, Sunday's on the Monday"), ('sun_mon', "Sunday's on the Monday after (Saturday's stays)"), ('none', 'On the day itself')], default='sat_fri_sun_mon', help_text='Where a weekend holiday is observed, when its dates are filled in.', max_length=16),
        ),
        migrations.AlterField(
            model_name='sendingwindowpreset',
            name='max_per_24h',
            field=models.PositiveSmallIntegerField(blank=True, help_text='At most this many texts to one number per 24 hours, across all skills.', null=True),
        ),
        migrations.CreateModel(
            name='Blackout',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('states', models.JSONField(blank=True, default=list, help_text='State codes, e.g. ["LA"]; empty: every recipient of the business unit.')),
                ('starts_at', models.DateTimeField()),
                ('ends_at', models.DateTimeField(blank=True, help_text='Empty: until lifted.', null=True)),
                ('reason', models.CharField(help_text='e.g. Hurricane Ida state of emergency', max_length=200)),
                ('source', models.CharField(blank=True, help_text='The order or proclamation.', max_length=300)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('business_unit', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='blackouts', to='pcsms.businessunit')),
                ('declared_by', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-starts_at'],
                'constraints': [models.CheckConstraint(condition=models.Q(('ends_at__isnull', True), ('starts_at__lt', models.F('ends_at')), _connector='OR'), name='blackout_starts_before_end', violation_error_message='The end must be after the start.'), models.UniqueConstraint(fields=('business_unit', 'reason'), name='blackout_one_per_reason', violation_error_message='This business unit already has a blackout so named.')],
            },
        ),
        migrations.CreateModel(
            name='RuleHold',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('phone_number', models.CharField(max_length=16)),
                ('kind', models.CharField(choices=[('hours', 'Outside the allowed hours'), ('closed_day', 'A day without texts (Sunday, holiday)'), ('blackout', 'Blackout'), ('cap', 'Frequency cap')], max_length=12)),
                ('rule', models.CharField(help_text='e.g. "TX: Sunday hours 12:00-21:00"', max_length=200)),
                ('source', models.CharField(blank=True, max_length=300)),
                ('held_at', models.DateTimeField()),
                ('held_until', models.DateTimeField(blank=True, help_text='When the rule lets it go; empty: not in the coming week.', null=True)),
                ('business_unit', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='rule_holds', to='pcsms.businessunit')),
                ('message', models.ForeignKey(blank=True, help_text='The queued text the send-time guard withdrew, if it was one.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='rule_holds', to='messaging.outboundmessage')),
                ('record', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='rule_holds', to='skills.record')),
                ('skill', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='rule_holds', to='skills.skill')),
            ],
            options={
                'ordering': ['-held_at', '-id'],
                'indexes': [models.Index(fields=['business_unit', 'phone_number'], name='rulehold_number_idx'), models.Index(fields=['record'], name='rulehold_record_idx')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('held_until__isnull', False), ('message__isnull', True)), fields=('skill', 'phone_number', 'rule', 'held_until'), name='rulehold_once_per_hold'), models.UniqueConstraint(condition=models.Q(('held_until__isnull', True), ('message__isnull', True)), fields=('skill', 'phone_number', 'rule'), name='rulehold_once_per_open_hold')],
            },
        ),
        migrations.CreateModel(
            name='StateRuleOverride',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('no_sundays', models.BooleanField(default=False)),
                ('no_holidays', models.BooleanField(default=False, help_text="Not on the state's legal holidays (the preset's holiday dates).")),
                ('max_per_24h', models.PositiveSmallIntegerField(blank=True, help_text='At most this many texts to one number per 24 hours, across all skills.', null=True)),
                ('saturday_start', models.TimeField(blank=True, help_text='Empty: the hours above.', null=True)),
                ('saturday_end', models.TimeField(blank=True, help_text='Empty: the hours above.', null=True)),
                ('sunday_start', models.TimeField(blank=True, help_text='Empty: the hours above.', null=True)),
                ('sunday_end', models.TimeField(blank=True, help_text='Empty: the hours above.', null=True)),
                ('source', models.CharField(blank=True, help_text='The statute or the source the rule comes from.', max_length=300)),
                ('notes', models.TextField(blank=True)),
                ('start_time', models.TimeField(blank=True, help_text="Empty: the state's hours.", null=True)),
                ('end_time', models.TimeField(blank=True, help_text="Empty: the state's hours.", null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('business_unit', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='state_rule_overrides', to='pcsms.businessunit')),
                ('preset', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='overrides', to='skills.sendingwindowpreset')),
            ],
            options={
                'verbose_name': 'state rule of a business unit',
                'ordering': ['business_unit', 'preset'],
                'constraints': [models.UniqueConstraint(fields=('business_unit', 'preset'), name='staterule_override_one_per_state', violation_error_message='This business unit already has a rule for that state.'), models.CheckConstraint(condition=models.Q(models.Q(('end_time__isnull', True), ('start_time__isnull', True)), models.Q(('end_time__isnull', False), ('start_time__isnull', False), ('start_time__lt', models.F('end_time'))), _connector='OR'), name='staterule_override_hours', violation_error_message='Give both times, the start before the end.'), models.CheckConstraint(condition=models.Q(models.Q(('saturday_end__isnull', True), ('saturday_start__isnull', True)), models.Q(('saturday_end__isnull', False), ('saturday_start__isnull', False), ('saturday_start__lt', models.F('saturday_end'))), _connector='OR'), name='staterule_override_saturday_hours', violation_error_message='Give both Saturday times, the start before the end.'), models.CheckConstraint(condition=models.Q(models.Q(('sunday_end__isnull', True), ('sunday_start__isnull', True)), models.Q(('sunday_end__isnull', False), ('sunday_start__isnull', False), ('sunday_start__lt', models.F('sunday_end'))), _connector='OR'), name='staterule_override_sunday_hours', violation_error_message='Give both Sunday times, the start before the end.')],
            },
        ),
        migrations.RunPython(tally_triggers_again, migrations.RunPython.noop, elidable=False),
    migrations.RunPython(seed, migrations.RunPython.noop, elidable=False),
]
