"""State rules of 2025-26 as data (docs/spec.md section 9; the sources are in each row): weekend
hours of their own (Texas, Rhode Island), effective dates (Oregon), caps (Maryland, Oregon) and
the area codes by which Connecticut, Oregon and Virginia presume residence.

Rules whose text could not be read in full say so in their notes: they are the stricter reading,
and a compliance owner edits them in the admin like any other row.
"""

import datetime as dt

from django.db import migrations, models

T = dt.time
# code: (name, start, end, fields)
RULES = {
    "US": ("US federal (TCPA)", T(8), T(21), {"source": "47 CFR 64.1200(c)(1)"}),
    "FL": ("Florida", T(8), T(20), {"source": "Fla. Stat. 501.059 (FTSA, amended 2023)"}),
    "OK": ("Oklahoma", T(8), T(20), {"source": "Okla. Stat. tit. 15, 775C (OTSA, 1 Nov 2022)"}),
    "MD": ("Maryland", T(8), T(20), {
        "max_per_24h": 3,
        "source": "Md. Com. Law 14-4501 (Stop the Spam Calls Act, in force 1 Jan 2024)",
        "notes": "At most 3 calls or texts per person per 24 h on the same subject.",
    }),
    "CT": ("Connecticut", T(9), T(20), {
        "area_codes": ["203", "475", "860", "959"],
        "source": "Conn. Gen. Stat. 42-288a (SB 1058, PA 23-98, in force 1 Oct 2023)",
        "notes": "Area code presumes residence.",
    }),
    "OR": ("Oregon", T(8), T(20), {
        "max_per_24h": 3,
        "area_codes": ["458", "503", "541", "971"],
        "effective_from": dt.date(2026, 1, 1),
        "source": "Oregon HB 3865 (signed 24 Jul 2025, in force 1 Jan 2026)",
        "notes": "At most 3 solicitations per 24 h unless the person bought within 18 months; "
        "area code presumes residence.",
    }),
    "TX": ("Texas", T(9), T(21), {
        "sunday_start": T(12),
        "sunday_end": T(21),
        "source": "Tex. Bus. & Com. Code 301.051, ch. 302 (SB 140, in force 1 Sep 2025)",
        "notes": "Hours from two secondary sources; the statute's text was not read.",
    }),
    "RI": ("Rhode Island", T(9), T(18), {
        "saturday_start": T(10),
        "saturday_end": T(17),
        "no_sundays": True,
        "source": "R.I. Gen. Laws 5-61-2, 5-61-3.6",
        "notes": "Not on Sundays or state or federal holidays. Whether texts are covered is "
        "not confirmed: the stricter reading.",
    }),
    "UT": ("Utah", T(8), T(21), {
        "no_sundays": True,
        "source": "Utah Code 13-25a-103(3)",
        "notes": "Not on Sundays or legal holidays without prior express consent.",
    }),
    "VA": ("Virginia", T(8), T(21), {
        "area_codes": ["276", "434", "540", "571", "703", "757", "804", "826", "948"],
        "source": "Va. Code 59.1-510 ff. (SB 1339, in force 1 Jan 2026)",
        "notes": "A STOP is honoured for at least 10 years; area code presumes residence.",
    }),
    "WA": ("Washington", T(8), T(20), {"source": "RCW 19.158.040(2)"}),
    "PA": ("Pennsylvania", T(8), T(21), {
        "source": "73 P.S. 2245.2 (Act 73 of 2019)",
        "notes": "No texts on legal holidays.",
    }),
}  # fmt: skip
ADDED = ["OR", "TX", "RI", "UT", "VA", "WA", "PA"]


def seed(apps, schema_editor):
    preset = apps.get_model("skills", "SendingWindowPreset")
    for code, (name, start, end, fields) in RULES.items():
        row = preset.objects.filter(code=code).first()
        if row is None:
            preset.objects.create(code=code, name=name, start_time=start, end_time=end, **fields)
        elif code in ADDED:
            continue  # a row of that code made by hand: the operator's
        else:  # a row the seed of 0002 made: sources and 2025-26 changes, the hours as edited
            for field, value in fields.items():
                setattr(row, field, value)
            row.save()


def unseed(apps, schema_editor):
    apps.get_model("skills", "SendingWindowPreset").objects.filter(code__in=ADDED).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("skills", "0015_record_sweep_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="sendingwindowpreset",
            name="effective_from",
            field=models.DateField(
                blank=True,
                help_text="The rule holds for local days from this date on (empty: always).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="sendingwindowpreset",
            name="saturday_end",
            field=models.TimeField(blank=True, help_text="Empty: the hours above.", null=True),
        ),
        migrations.AddField(
            model_name="sendingwindowpreset",
            name="saturday_start",
            field=models.TimeField(blank=True, help_text="Empty: the hours above.", null=True),
        ),
        migrations.AddField(
            model_name="sendingwindowpreset",
            name="source",
            field=models.CharField(
                blank=True,
                help_text="The statute or the source the rule comes from.",
                max_length=300,
            ),
        ),
        migrations.AddField(
            model_name="sendingwindowpreset",
            name="sunday_end",
            field=models.TimeField(blank=True, help_text="Empty: the hours above.", null=True),
        ),
        migrations.AddField(
            model_name="sendingwindowpreset",
            name="sunday_start",
            field=models.TimeField(blank=True, help_text="Empty: the hours above.", null=True),
        ),
        migrations.AddConstraint(
            model_name="sendingwindowpreset",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("saturday_end__isnull", True), ("saturday_start__isnull", True)),
                    models.Q(
                        ("saturday_end__isnull", False),
                        ("saturday_start__isnull", False),
                        ("saturday_start__lt", models.F("saturday_end")),
                    ),
                    _connector="OR",
                ),
                name="windowpreset_saturday_hours",
                violation_error_message="Give both Saturday times, the start before the end.",
            ),
        ),
        migrations.AddConstraint(
            model_name="sendingwindowpreset",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("sunday_end__isnull", True), ("sunday_start__isnull", True)),
                    models.Q(
                        ("sunday_end__isnull", False),
                        ("sunday_start__isnull", False),
                        ("sunday_start__lt", models.F("sunday_end")),
                    ),
                    _connector="OR",
                ),
                name="windowpreset_sunday_hours",
                violation_error_message="Give both Sunday times, the start before the end.",
            ),
        ),
        migrations.RunPython(seed, unseed, elidable=False),
    ]
