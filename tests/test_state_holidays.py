"""``manage.py state_holidays``: the no-holiday presets' dates for coming years, kept as data."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import time_machine
from django.core.management import call_command

from skills.models import ObservedRule, PresetHoliday, SendingWindowPreset


def test_the_command_adds_later_years_and_keeps_what_is_there(db):
    alabama = SendingWindowPreset.objects.get(code="AL")
    assert alabama.no_holidays
    assert alabama.holidays.filter(date=dt.date(2026, 7, 3)).exists(), "observed Independence Day"
    assert not alabama.holidays.filter(date__year=2032).exists()
    # A compliance owner removed one date and added a day of their own.
    alabama.holidays.filter(date=dt.date(2031, 12, 25)).delete()
    PresetHoliday.objects.create(preset=alabama, date=dt.date(2031, 3, 3), name="Storm closure")

    out = StringIO()
    with time_machine.travel(dt.datetime(2031, 6, 1, 12, tzinfo=dt.UTC), tick=False):
        call_command("state_holidays", "--years", "2", "--state", "al", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["years"] == [2031, 2032]
    assert result["added"]["AL"] > 10  # 2032's dates (and the removed one, back again)
    assert alabama.holidays.filter(date=dt.date(2032, 7, 5)).exists(), "4 Jul 2032 is a Sunday"
    assert alabama.holidays.filter(name="Storm closure").exists()
    assert not SendingWindowPreset.objects.get(code="FL").holidays.exists()


def test_a_compliance_owner_sees_and_finds_the_holiday_dates_in_the_admin(client, superuser):
    from django.urls import reverse

    client.force_login(superuser)
    alabama = SendingWindowPreset.objects.get(code="AL")
    page = client.get(reverse("admin:skills_sendingwindowpreset_change", args=[alabama.pk]))
    assert page.status_code == 200
    assert "2026-07-03" in page.content.decode()  # the observed Independence Day, on its page
    found = client.get(reverse("admin:skills_presetholiday_changelist") + "?q=Pioneer")
    assert found.status_code == 200 and "Pioneer Day" in found.content.decode()


def test_mississippi_observes_a_sunday_holiday_on_monday_and_a_saturday_one_on_the_day(db):
    """Miss. Code 3-3-7: a holiday on a Sunday is kept on the Monday; unlike Alabama's rule, a
    Saturday one does not move to the Friday (4 Jul 2026 is a Saturday, 4 Jul 2027 a Sunday)."""
    mississippi = SendingWindowPreset.objects.get(code="MS")
    assert mississippi.observed_rule == ObservedRule.SUN_MON
    dates = dict(mississippi.holidays.values_list("date", "name"))
    assert dt.date(2026, 7, 4) in dates and dt.date(2026, 7, 3) not in dates
    assert dates[dt.date(2027, 7, 5)] == "Independence Day (observed)"
    alabama = set(
        SendingWindowPreset.objects.get(code="AL").holidays.values_list("date", flat=True)
    )
    assert {dt.date(2026, 7, 3), dt.date(2027, 7, 5)} <= alabama
    # Mississippi bans Sundays, not holidays: its calendar is kept, and closes nothing.
    assert not mississippi.no_holidays


def test_the_command_fills_a_named_state_with_its_own_observed_rule(db):
    mississippi = SendingWindowPreset.objects.get(code="MS")
    out = StringIO()
    with time_machine.travel(dt.datetime(2032, 6, 1, 12, tzinfo=dt.UTC), tick=False):
        call_command("state_holidays", "--years", "1", "--state", "MS", "--json", stdout=out)
    assert json.loads(out.getvalue())["added"]["MS"] > 10
    # 25 Dec 2032 is a Saturday: kept on the day, not on Friday the 24th.
    assert mississippi.holidays.filter(date=dt.date(2032, 12, 25)).exists()
    assert not mississippi.holidays.filter(date=dt.date(2032, 12, 24)).exists()
