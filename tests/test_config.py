"""Configuration as TOML: ``manage.py config export`` and ``config apply`` (skills/config.py)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dnc.models import DncGroup
from messaging.models import MessageTemplate, SmsRegistration, TransportCode
from pcsms.models import BusinessUnit, CustomTimeZone
from skills.config import ConfigError, config_apply, config_export
from skills.models import CadenceStep, CallingList, CpaRule, CustomField, Skill

# What an engineer writes to set up a new contact centre.
CONFIG = """
[[business_units]]
name = "Northwind"
default_time_zone = "America/Chicago"
allowed_time_zones = ["America/Chicago", "America/New_York", "Plant Time"]
business_name = "Northwind Clinic"

[[business_units.custom_time_zones]]
name = "Plant Time"
utc_offset_minutes = -300

[[business_units.dnc_groups]]
name = "Northwind DNC"
is_default = true

[[business_units.transport_codes]]
number = "+13125550000"
kind = "long"
messages_per_second = 4.5
provisioning_status = "provisioned"
provisioned_on = 2026-11-02

[[business_units.registrations]]
name = "Northwind 10DLC"
transport_code = "+13125550000"
stop_dnc_group = "Northwind DNC"

[[business_units.calling_lists]]
name = "Patients"
custom_fields = [{ name = "Visit", field_type = "date" }]

[[business_units.templates]]
name = "Visit reminder"
body = "Hi {FirstName|there}, see you on {Visit}. Reply STOP to opt out."

[[business_units.campaigns]]
name = "Winter"

[[business_units.skills]]
name = "Visits"
campaign = "Winter"
registration = "Northwind 10DLC"
template = "Visit reminder"
priority = 7
max_attempts = 2
calling_lists = ["Patients", "Walk-ins"]
scrubbed_dnc_groups = ["Northwind DNC"]
cadence = [
    { position = 0, phone_field = "SMSPhoneNumber", attempts = 2, rest_minutes = 30 },
    { position = 1, phone_field = "PhoneNumber", attempts = 1, rest_minutes = 0 },
]
schedule = [{ weekday = 0, is_active = true, start_time = 09:00:00, end_time = 17:30:00 }]
"""


def test_a_file_sets_up_a_whole_contact_centre(db):
    result = config_apply(CONFIG)

    bu = BusinessUnit.objects.get(name="Northwind")
    assert bu.default_time_zone == "America/Chicago" and "Plant Time" in bu.allowed_time_zones
    assert CustomTimeZone.objects.get(business_unit=bu).utc_offset_minutes == -300
    assert DncGroup.objects.get(business_unit=bu).is_default
    code = TransportCode.objects.get(number="+13125550000")
    assert (code.messages_per_second, code.provisioned_on) == (
        Decimal("4.50"),
        dt.date(2026, 11, 2),
    )
    registration = SmsRegistration.objects.get(name="Northwind 10DLC")
    assert registration.stop_dnc_group.name == "Northwind DNC"
    assert CustomField.objects.get(calling_list__name="Patients").field_type == "date"
    skill = Skill.objects.get(name="Visits")
    assert (skill.priority, skill.max_attempts, skill.state) == (7, 2, Skill.State.STOPPED)
    assert sorted(skill.calling_lists.values_list("name", flat=True)) == ["Patients", "Walk-ins"]
    steps = CadenceStep.objects.filter(skill=skill).order_by("position")
    assert [(s.phone_field, s.attempts, s.rest_minutes) for s in steps] == [
        ("SMSPhoneNumber", 2, 30),
        ("PhoneNumber", 1, 0),
    ]
    schedule = skill.schedule_days.get()
    assert (schedule.start_time, schedule.end_time) == (dt.time(9), dt.time(17, 30))
    # Pages the file leaves out get the admin's defaults (the carrier outcome rules).
    assert CpaRule.objects.filter(skill=skill, match="21610").exists()
    assert result.created["skills"] == 1 and result.created["calling lists"] == 2


def test_applying_again_changes_nothing_and_export_gives_the_same_back(db):
    config_apply(CONFIG)
    exported = config_export()

    again = config_apply(CONFIG)
    round_trip = config_apply(exported)

    assert not again.created and not again.updated
    assert not round_trip.created and not round_trip.updated
    assert config_export() == exported


def test_a_changed_value_and_changed_rows_are_updated(db):
    config_apply(CONFIG)
    changed = CONFIG.replace("priority = 7", "priority = 3").replace(
        "attempts = 2, rest_minutes = 30", "attempts = 3, rest_minutes = 45"
    )

    result = config_apply(changed)

    skill = Skill.objects.get(name="Visits")
    assert skill.priority == 3
    assert CadenceStep.objects.get(skill=skill, position=0).attempts == 3
    assert result.updated == {"skills": 1}
    assert result.created == {"cadence steps": 2}  # the skill's cadence rows were replaced


def test_applying_never_starts_or_stops_a_skill(db):
    config_apply(CONFIG)
    Skill.objects.filter(name="Visits").update(state=Skill.State.RUNNING)

    config_apply(CONFIG.replace("priority = 7", "priority = 8"))

    assert Skill.objects.get(name="Visits").state == Skill.State.RUNNING
    with pytest.raises(ConfigError, match="unknown key 'state'"):
        config_apply(CONFIG.replace("priority = 7", 'priority = 7\nstate = "running"'))


def test_a_bad_file_changes_nothing_and_says_where(db):
    bad = CONFIG.replace("max_attempts = 2", "max_attempts = 0").replace(
        'template = "Visit reminder"', 'template = "No such template"'
    )

    with pytest.raises(ConfigError) as caught:
        config_apply(bad)

    errors = caught.value.errors
    assert any(
        e.startswith("business_units[0].skills[0]: template: no message template") for e in errors
    )
    assert not BusinessUnit.objects.filter(name="Northwind").exists()
    assert not MessageTemplate.objects.exists()


def test_a_value_the_field_refuses_is_reported_with_its_place(db):
    bad = CONFIG.replace("attempts = 2, rest_minutes = 30", "attempts = 0, rest_minutes = 30")

    with pytest.raises(ConfigError) as caught:
        config_apply(bad)

    assert any(
        e.startswith("business_units[0].skills[0].cadence[0]: ") for e in caught.value.errors
    )
    assert not Skill.objects.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("business_units = 3", "The file has no [[business_units]] tables."),
        ("[[business_units]\nname=", "The file is not valid TOML"),
        ('[[business_units]]\nname = "X"\ncolour = "red"', "unknown key 'colour'"),
        ('[[business_units]]\nname = ""', "a business unit needs a name"),
    ],
)
def test_unreadable_files(db, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        config_apply(text)
    assert not BusinessUnit.objects.exists()


def test_a_dry_run_counts_and_changes_nothing(db):
    result = config_apply(CONFIG, dry_run=True)

    assert result.created["skills"] == 1
    assert not BusinessUnit.objects.exists()
    assert not CallingList.objects.exists()


def test_the_command_exports_one_unit_and_applies_a_file(db, tmp_path):
    config_apply(CONFIG)
    BusinessUnit.objects.create(name="Other")
    out = StringIO()

    call_command("config", "export", "--business-unit", "Northwind", stdout=out)
    assert 'name = "Northwind"' in out.getvalue() and 'name = "Other"' not in out.getvalue()

    path = tmp_path / "config.toml"
    path.write_text(out.getvalue().replace("priority = 7", "priority = 9"), encoding="utf-8")
    printed = StringIO()
    call_command("config", "apply", str(path), "--json", stdout=printed)
    assert json.loads(printed.getvalue())["updated"] == {"skills": 1}
    assert Skill.objects.get(name="Visits").priority == 9


def test_the_command_refuses_a_bad_file_with_the_problems(db, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[business_units]]\nname = "X"\ncolour = 1\n', encoding="utf-8")

    with pytest.raises(CommandError, match=r"(?s)nothing was applied.*unknown key 'colour'"):
        call_command("config", "apply", str(path))
    with pytest.raises(CommandError, match="No business unit named 'Nobody'"):
        call_command("config", "export", "--business-unit", "Nobody")


def test_the_state_rules_are_exported_and_applied_with_their_holidays(db):
    import tomllib

    from skills.models import SendingWindowPreset

    data = tomllib.loads(config_export())
    rules = {r["code"]: r for r in data["state_rules"]}
    texas = rules["TX"]
    assert (texas["sunday_start"], texas["sunday_end"]) == (dt.time(12), dt.time(21))
    assert texas["source"].startswith("Tex. Bus. & Com. Code")
    assert {"date": dt.date(2026, 7, 3), "name": "Independence Day (observed)"} in rules["AL"][
        "holidays"
    ]
    assert rules["OR"]["effective_from"] == dt.date(2026, 1, 1)

    # Another system's compliance owner: Texas Sundays from 13:00, one Alabama date less.
    import tomli_w

    texas["sunday_start"] = dt.time(13)
    rules["AL"]["holidays"] = rules["AL"]["holidays"][1:]
    result = config_apply(tomli_w.dumps({"state_rules": list(rules.values())}))
    assert result.updated["sending window presets"] == 1
    assert SendingWindowPreset.objects.get(code="TX").sunday_start == dt.time(13)
    alabama = SendingWindowPreset.objects.get(code="AL")
    assert alabama.holidays.count() == len(rules["AL"]["holidays"])

    texas["sunday_end"] = dt.time(11)
    with pytest.raises(ConfigError) as error:
        config_apply(tomli_w.dumps({"state_rules": list(rules.values())}))
    assert any(
        e.startswith("state_rules[") and "Give both Sunday times" in e for e in error.value.errors
    )
    assert SendingWindowPreset.objects.get(code="TX").sunday_end == dt.time(21), "unchanged"


def test_a_business_units_own_rules_blackouts_and_cap_go_to_another_system(bu):
    """What a compliance owner set for their BU travels with its configuration: its stricter
    Texas hours, a declared blackout and the BU-wide cap; applying the file elsewhere makes
    the same, and a rule for a state that has none is refused by name."""
    import tomllib

    import tomli_w

    from skills.models import Blackout, SendingWindowPreset, StateRuleOverride

    bu.max_texts_per_24h = 4
    bu.save()
    StateRuleOverride.objects.create(
        business_unit=bu,
        preset=SendingWindowPreset.objects.get(code="TX"),
        start_time=dt.time(10),
        end_time=dt.time(19),
        no_sundays=True,
        source="Counsel, 2026-11",
    )
    Blackout.objects.create(
        business_unit=bu,
        states=["LA"],
        starts_at=dt.datetime(2026, 9, 1, 5, tzinfo=dt.UTC),
        ends_at=dt.datetime(2026, 9, 20, 5, tzinfo=dt.UTC),
        reason="Hurricane state of emergency",
        source="Proclamation 26-101",
    )
    data = tomllib.loads(config_export())
    unit = data["business_units"][0]
    assert unit["max_texts_per_24h"] == 4
    assert unit["state_rule_overrides"] == [
        {
            "preset": "TX",
            "start_time": dt.time(10),
            "end_time": dt.time(19),
            "no_sundays": True,
            "no_holidays": False,
            "source": "Counsel, 2026-11",
            "notes": "",
        }
    ]
    assert unit["blackouts"][0]["reason"] == "Hurricane state of emergency"

    unit["name"] = "Elsewhere"
    unit.pop("registrations", None)
    unit.pop("transport_codes", None)
    result = config_apply(tomli_w.dumps({"business_units": [unit]}))
    elsewhere = BusinessUnit.objects.get(name="Elsewhere")
    assert result.created["business units"] == 1
    override = StateRuleOverride.objects.get(business_unit=elsewhere)
    assert (override.preset.code, override.start_time, override.no_sundays) == (
        "TX",
        dt.time(10),
        True,
    )
    blackout = Blackout.objects.get(business_unit=elsewhere)
    assert blackout.states == ["LA"] and blackout.ends_at == dt.datetime(
        2026, 9, 20, 5, tzinfo=dt.UTC
    )
    again = config_apply(tomli_w.dumps({"business_units": [unit]}))
    assert again.created == {} and again.updated == {}, "applying it twice changes nothing"

    unit["state_rule_overrides"][0]["preset"] = "ZZ"
    with pytest.raises(ConfigError) as error:
        config_apply(tomli_w.dumps({"business_units": [unit]}))
    assert any("state_rule_overrides[0]" in e and "'ZZ'" in e for e in error.value.errors)


EMAIL_CONFIG = """
[[business_units]]
name = "Northwind"
default_time_zone = "America/Chicago"
business_name = "Northwind Clinic"
postal_address = "1 Main Street\\nSpringfield, IL 62701"

[[business_units.transport_codes]]
number = "Reminders@Mail.Northwind.example"
kind = "email"
messages_per_second = 20
messages_per_day = 50000
provisioning_status = "provisioned"
provisioned_on = 2026-11-02

[[business_units.registrations]]
name = "Northwind mail"
transport_code = "reminders@mail.northwind.example"
backend = "anymail.backends.mailgun.EmailBackend"

[[business_units.templates]]
name = "Visit email"
channel = "email"
subject = "Your visit, {FirstName|friend}"
body = "Hi {FirstName|there}, see you soon."
html_body = "<p>Hi {FirstName|there}</p>"
is_active = true

[[business_units.skills]]
name = "Visit mail"
channel = "email"
registration = "Northwind mail"
template = "Visit email"
calling_lists = ["Patients"]
"""


def test_an_email_skill_goes_to_another_system_with_its_sender(db):
    config_apply(EMAIL_CONFIG)

    code = TransportCode.objects.get(kind=TransportCode.Kind.EMAIL)
    assert (code.number, code.messages_per_day) == ("reminders@mail.northwind.example", 50000)
    skill = Skill.objects.get(name="Visit mail")
    assert skill.channel == "email" and skill.template.subject.startswith("Your visit")
    # An email skill's default cadence is its Email column; its CPA rules know a bounce.
    assert list(skill.cadence_steps.values_list("phone_field", flat=True)) == ["Email"]
    assert CpaRule.objects.get(skill=skill, match="bounced").outcome == "bad_number"
    exported = config_export()
    assert 'postal_address = "1 Main Street\\nSpringfield, IL 62701"' in exported
    assert not config_apply(exported).updated


def test_an_email_skill_on_an_sms_sender_is_refused_with_its_place(db):
    bad = (
        EMAIL_CONFIG.replace('kind = "email"', 'kind = "long"', 1)
        .replace('number = "Reminders@Mail.Northwind.example"', 'number = "+13125550000"')
        .replace(
            'transport_code = "reminders@mail.northwind.example"', 'transport_code = "+13125550000"'
        )
        .replace('backend = "anymail.backends.mailgun.EmailBackend"\n', "")
    )
    with pytest.raises(ConfigError) as refused:
        config_apply(bad)
    assert "business_units[0].skills[0]: registration:" in str(refused.value)
    assert "does not send email" in str(refused.value)
    assert not Skill.objects.exists()
