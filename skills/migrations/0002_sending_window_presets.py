"""Seed the sending-window presets of docs/spec.md section 9 (editable data, not code)."""

import datetime as dt

from django.db import migrations

FL_AREA_CODES = [
    "239", "305", "321", "324", "352", "386", "407", "448", "561", "645", "656", "689",
    "727", "728", "754", "772", "786", "813", "850", "863", "904", "941", "954",
]  # fmt: skip
OK_AREA_CODES = ["405", "539", "572", "580", "918"]

PRESETS = [
    ("US", "US federal (TCPA)", (8, 0), (21, 0), False, None, [], "47 CFR 64.1200(c)(1)."),
    ("FL", "Florida", (8, 0), (20, 0), False, 3, FL_AREA_CODES,
     "At most 3 messages per person per 24 h on the same subject; area code presumes residence."),
    ("OK", "Oklahoma", (8, 0), (20, 0), False, 3, OK_AREA_CODES,
     "At most 3 messages per person per 24 h on the same subject; area code presumes residence."),
    ("MD", "Maryland", (8, 0), (20, 0), False, None, [], ""),
    ("MA", "Massachusetts", (8, 0), (20, 0), False, None, [], ""),
    ("AL", "Alabama", (8, 0), (20, 0), True, None, [], "Not on Sundays or state holidays."),
    ("LA", "Louisiana", (8, 0), (20, 0), True, None, [], "Not on Sundays or state holidays."),
    ("MS", "Mississippi", (8, 0), (20, 0), True, None, [], "Not on Sundays."),
    ("CT", "Connecticut", (9, 0), (20, 0), False, None, [],
     "One vendor table says 09:00-21:00; the stricter one is used."),
    ("KY", "Kentucky", (10, 0), (21, 0), False, None, [], ""),
    ("MI", "Michigan", (9, 0), (21, 0), False, None, [], ""),
    ("MN", "Minnesota", (9, 0), (21, 0), False, None, [], ""),
    ("NM", "New Mexico", (9, 0), (21, 0), False, None, [], ""),
    ("NV", "Nevada", (9, 0), (20, 0), False, None, [], ""),
]  # fmt: skip


def seed(apps, schema_editor):
    preset = apps.get_model("skills", "SendingWindowPreset")
    for code, name, start, end, no_sundays, cap, area_codes, notes in PRESETS:
        preset.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "start_time": dt.time(*start),
                "end_time": dt.time(*end),
                "no_sundays": no_sundays,
                "max_per_24h": cap,
                "area_codes": area_codes,
                "notes": notes,
            },
        )


def unseed(apps, schema_editor):
    codes = [p[0] for p in PRESETS]
    apps.get_model("skills", "SendingWindowPreset").objects.filter(code__in=codes).delete()


class Migration(migrations.Migration):
    dependencies = [("skills", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
