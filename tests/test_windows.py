"""Allowed windows in the recipient's local time (skills.windows)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from skills.models import SendingWindowPreset
from skills.services import skill_apply_defaults
from skills.windows import Blocked, WindowPolicy, schedule_window
from tests.factories import (
    CadenceStepFactory,
    CustomTimeZoneFactory,
    SkillFactory,
    TimeZoneBoundFactory,
)

UTC = dt.UTC
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def local(zone, *args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)


@pytest.fixture
def skill(bu):
    return SkillFactory(business_unit=bu)


def policy(skill) -> WindowPolicy:
    return WindowPolicy.for_skill(skill)


def test_tcpa_default_is_8_to_21_local(skill):
    noon = local(CHICAGO, 2026, 6, 15, 12, 0)
    verdict = policy(skill).check(zone_name="America/Chicago", now=noon)
    assert verdict.is_open(noon)
    assert verdict.opens_at == local(CHICAGO, 2026, 6, 15, 8, 0)
    assert verdict.closes_at == local(CHICAGO, 2026, 6, 15, 21, 0)
    late = local(CHICAGO, 2026, 6, 15, 21, 0)
    verdict = policy(skill).check(zone_name="America/Chicago", now=late)
    assert not verdict.is_open(late)
    assert verdict.opens_at == local(CHICAGO, 2026, 6, 16, 8, 0), "the next morning"


def test_the_same_moment_is_open_in_one_zone_and_closed_in_another(skill):
    now = local(NEW_YORK, 2026, 6, 15, 8, 30)  # 05:30 in Los Angeles
    rules = policy(skill)
    assert rules.check(zone_name="America/New_York", now=now).is_open(now)
    assert not rules.check(zone_name="America/Los_Angeles", now=now).is_open(now)


def test_time_zone_bounding_override_and_inactive_zone(skill):
    TimeZoneBoundFactory(
        skill=skill, time_zone="America/Chicago", start_time=dt.time(10), end_time=dt.time(18)
    )
    TimeZoneBoundFactory(skill=skill, time_zone="America/Denver", is_active=False)
    now = local(CHICAGO, 2026, 6, 15, 9, 30)
    rules = policy(skill)
    verdict = rules.check(zone_name="America/Chicago", now=now)
    assert not verdict.is_open(now)
    assert (verdict.opens_at, verdict.closes_at) == (
        local(CHICAGO, 2026, 6, 15, 10),
        local(CHICAGO, 2026, 6, 15, 18),
    )
    assert verdict.opens_within(now, 31 * 60) and not verdict.opens_within(now, 29 * 60)
    denver = rules.check(zone_name="America/Denver", now=now)
    assert (denver.allowed, denver.reason) == (False, Blocked.ZONE_INACTIVE)


def test_bound_preset_gives_the_range_when_no_override(skill):
    TimeZoneBoundFactory(
        skill=skill, time_zone="America/Chicago", preset=SendingWindowPreset.objects.get(code="KY")
    )
    verdict = policy(skill).check(zone_name="America/Chicago", now=local(CHICAGO, 2026, 6, 15, 12))
    assert verdict.opens_at == local(CHICAGO, 2026, 6, 15, 10), "KY: 10:00-21:00"


def test_a_bound_preset_brings_its_other_rules_even_with_an_override(skill):
    TimeZoneBoundFactory(
        skill=skill,
        time_zone="America/Chicago",
        preset=SendingWindowPreset.objects.get(code="AL"),
        start_time=dt.time(7),
        end_time=dt.time(21),
    )
    sunday = local(CHICAGO, 2026, 6, 21, 12)
    verdict = policy(skill).check(zone_name="America/Chicago", now=sunday)
    assert verdict.opens_at == local(CHICAGO, 2026, 6, 22, 7), "no Sundays; the override's 07:00"
    assert verdict.closes_at == local(CHICAGO, 2026, 6, 22, 21)


@pytest.mark.parametrize("state", ["MA", "ma", "Massachusetts"])
def test_state_preset_by_the_records_state(skill, state):
    now = local(NEW_YORK, 2026, 6, 15, 20, 30)
    rules = policy(skill)
    assert rules.check(zone_name="America/New_York", now=now, state="NY").is_open(now)
    verdict = rules.check(zone_name="America/New_York", now=now, state=state)
    assert not verdict.is_open(now), "Massachusetts: 08:00-20:00"
    assert verdict.opens_at == local(NEW_YORK, 2026, 6, 16, 8)
    assert verdict.presets == ("MA",)


def test_florida_preset_by_area_code_whatever_the_address(skill):
    now = local(NEW_YORK, 2026, 6, 15, 20, 30)
    rules = policy(skill)
    miami = rules.check(
        zone_name="America/New_York", now=now, state="NY", phone_number="+13055550100"
    )
    assert not miami.is_open(now)
    assert miami.max_per_24h == 3
    assert miami.presets == ("FL",)
    bronx = rules.check(
        zone_name="America/New_York", now=now, state="NY", phone_number="+17185550100"
    )
    assert bronx.is_open(now) and bronx.max_per_24h is None


def test_the_stricter_window_wins(skill):
    TimeZoneBoundFactory(
        skill=skill, time_zone="America/New_York", start_time=dt.time(7), end_time=dt.time(22)
    )
    verdict = policy(skill).check(
        zone_name="America/New_York", now=local(NEW_YORK, 2026, 6, 15, 12), state="CT"
    )
    assert (verdict.opens_at, verdict.closes_at) == (
        local(NEW_YORK, 2026, 6, 15, 9),
        local(NEW_YORK, 2026, 6, 15, 20),
    ), "CT 09:00-20:00 inside the bound's 07:00-22:00"


def test_no_sundays(skill):
    sunday = local(CHICAGO, 2026, 6, 21, 12)
    rules = policy(skill)
    assert rules.check(zone_name="America/Chicago", now=sunday, state="IL").is_open(sunday)
    verdict = rules.check(zone_name="America/Chicago", now=sunday, state="AL")
    assert not verdict.is_open(sunday)
    assert verdict.opens_at == local(CHICAGO, 2026, 6, 22, 8), "Monday morning"


def test_cadence_rows_weekday_and_weekend_ranges(skill):
    step = CadenceStepFactory(
        skill=skill,
        phone_field="SMSPhoneNumber",
        weekday_start=dt.time(9),
        weekday_end=dt.time(12),
        weekend_start=dt.time(10),
        weekend_end=dt.time(11),
    )
    rules = policy(skill)
    monday = local(CHICAGO, 2026, 6, 15, 12, 30)
    verdict = rules.check(zone_name="America/Chicago", now=monday, step=step)
    assert not verdict.is_open(monday)
    assert verdict.opens_at == local(CHICAGO, 2026, 6, 16, 9)
    saturday = local(CHICAGO, 2026, 6, 20, 10, 30)
    verdict = rules.check(zone_name="America/Chicago", now=saturday, step=step)
    assert verdict.is_open(saturday)
    assert verdict.closes_at == local(CHICAGO, 2026, 6, 20, 11)
    plain = rules.check(zone_name="America/Chicago", now=monday)
    assert plain.is_open(monday), "a row without ranges keeps the full window"


def test_custom_zone_follows_its_dst_rule(bu):
    plant = CustomTimeZoneFactory(
        business_unit=bu, name="Plant time", utc_offset_minutes=-300, dst_like="America/New_York"
    )
    fixed = CustomTimeZoneFactory(
        business_unit=bu, name="Fixed -5", utc_offset_minutes=-300, dst_like=""
    )
    bu.allowed_time_zones = [plant.name, fixed.name]
    bu.save()
    skill = SkillFactory(business_unit=bu)
    rules = policy(skill)
    summer = dt.datetime(2026, 6, 15, 16, 0, tzinfo=UTC)
    winter = dt.datetime(2026, 1, 12, 16, 0, tzinfo=UTC)
    assert rules.check(zone_name="Plant time", now=summer).opens_at == summer.replace(hour=12)
    assert rules.check(zone_name="Plant time", now=winter).opens_at == winter.replace(hour=13)
    assert rules.check(zone_name="Fixed -5", now=summer).opens_at == summer.replace(hour=13)


def test_unknown_zone_is_never_texted(skill):
    now = local(CHICAGO, 2026, 6, 15, 12)
    rules = policy(skill)
    for name in ("", "  ", "Mars/Olympus"):
        verdict = rules.check(zone_name=name, now=now)
        assert (verdict.allowed, verdict.reason) == (False, Blocked.UNKNOWN_ZONE)
        assert not verdict.opens_within(now, 10**9)


def test_zone_the_business_unit_does_not_allow_is_never_texted(skill):
    verdict = policy(skill).check(zone_name="Europe/Paris", now=local(CHICAGO, 2026, 6, 15, 12))
    assert (verdict.allowed, verdict.reason) == (False, Blocked.ZONE_NOT_ALLOWED)


def test_the_schedule_narrows_the_window_when_switched_on(skill):
    skill_apply_defaults(skill=skill)  # Monday-Saturday 08:00-21:00
    skill.schedule_days.filter(weekday=0).update(start_time=dt.time(10), end_time=dt.time(15))
    skill.schedule_enabled = True
    skill.save()
    now = local(NEW_YORK, 2026, 6, 15, 12)  # 11:00 in Chicago
    verdict = policy(skill).check(zone_name="America/Chicago", now=now)
    assert verdict.closes_at == local(NEW_YORK, 2026, 6, 15, 15), "the schedule ends first"
    assert schedule_window(skill, now) == (
        local(NEW_YORK, 2026, 6, 15, 10),
        local(NEW_YORK, 2026, 6, 15, 15),
    )
    skill.schedule_days.filter(weekday=0).update(is_active=False)
    assert schedule_window(skill, now) is None


CHICAGO_TX = CHICAGO  # Texas is mostly on Central time
LOS_ANGELES = zoneinfo.ZoneInfo("America/Los_Angeles")


def test_texas_sundays_start_at_noon_across_the_dst_change(skill):
    """Texas (SB 140): Monday to Saturday 09:00-21:00, Sunday 12:00-21:00. 1 Nov 2026 is the
    Sunday the clocks go back: noon local is 18:00 UTC that day, 17:00 UTC the Sunday before."""
    rules = policy(skill)
    for sunday, utc_noon in ((dt.date(2026, 10, 25), 17), (dt.date(2026, 11, 1), 18)):
        morning = local(CHICAGO_TX, sunday.year, sunday.month, sunday.day, 10)
        verdict = rules.check(zone_name="America/Chicago", now=morning, state="TX")
        assert not verdict.is_open(morning)
        assert verdict.opens_at == dt.datetime.combine(sunday, dt.time(utc_noon), tzinfo=UTC)
        assert verdict.presets == ("TX",)
        assert verdict.held.rule == "TX: Sunday hours 12:00-21:00"
    saturday = local(CHICAGO_TX, 2026, 10, 31, 9, 30)
    assert rules.check(zone_name="America/Chicago", now=saturday, state="TX").is_open(saturday)


def test_rhode_island_saturdays_are_shorter_and_sundays_closed(skill):
    rules = policy(skill)
    friday = local(NEW_YORK, 2026, 6, 12, 17, 30)
    assert rules.check(zone_name="America/New_York", now=friday, state="RI").is_open(friday)
    saturday = local(NEW_YORK, 2026, 6, 13, 17, 30)
    verdict = rules.check(zone_name="America/New_York", now=saturday, state="RI")
    assert not verdict.is_open(saturday), "Saturday 10:00-17:00"
    assert verdict.held.rule == "RI: Saturday hours 10:00-17:00"
    assert verdict.opens_at == local(NEW_YORK, 2026, 6, 15, 9), "no Sunday: Monday 09:00"
    early = local(NEW_YORK, 2026, 6, 13, 9, 30)
    verdict = rules.check(zone_name="America/New_York", now=early, state="RI")
    assert verdict.opens_at == local(NEW_YORK, 2026, 6, 13, 10)
    juneteenth = local(NEW_YORK, 2026, 6, 19, 12)
    verdict = rules.check(zone_name="America/New_York", now=juneteenth, state="RI")
    assert not verdict.is_open(juneteenth), "a federal holiday: closed in Rhode Island"
    assert verdict.held.rule.startswith("RI: no texts on legal holidays (Juneteenth")
    sunday = local(NEW_YORK, 2026, 6, 14, 12)
    verdict = rules.check(zone_name="America/New_York", now=sunday, state="Rhode Island")
    assert verdict.held.rule == "RI: no texts on Sundays"


def test_a_rule_holds_from_its_effective_date(skill):
    """Oregon HB 3865 (08:00-20:00, 3 a day, by area code) is in force from 1 Jan 2026."""
    rules = policy(skill)
    portland = "+15035550100"
    before = local(LOS_ANGELES, 2025, 12, 31, 20, 30)
    verdict = rules.check(zone_name="America/Los_Angeles", now=before, phone_number=portland)
    assert verdict.is_open(before) and verdict.max_per_24h is None
    after = local(LOS_ANGELES, 2026, 1, 2, 20, 30)
    verdict = rules.check(zone_name="America/Los_Angeles", now=after, phone_number=portland)
    assert not verdict.is_open(after) and verdict.max_per_24h == 3
    assert verdict.presets == ("OR",)


def test_a_preset_rejects_half_a_weekend_range(db):
    from django.core.exceptions import ValidationError

    preset = SendingWindowPreset(code="ZZ", name="Test", sunday_start=dt.time(12))
    with pytest.raises(ValidationError, match="Give both Sunday times"):
        preset.full_clean()


def test_utah_is_closed_on_a_state_holiday(skill):
    """Pioneer Day, Friday 24 Jul 2026, a Utah legal holiday: the next window is Saturday."""
    rules = policy(skill)
    denver = zoneinfo.ZoneInfo("America/Denver")
    noon = local(denver, 2026, 7, 24, 12)
    assert rules.check(zone_name="America/Denver", now=noon, state="CO").is_open(noon)
    verdict = rules.check(zone_name="America/Denver", now=noon, state="UT")
    assert not verdict.is_open(noon)
    assert verdict.opens_at == local(denver, 2026, 7, 25, 8)
    assert verdict.held.rule == "UT: no texts on legal holidays (Pioneer Day)"
    assert verdict.held.kind == "closed_day" and "13-25a-103" in verdict.held.source


def test_alabama_keeps_the_observed_day_of_a_weekend_holiday(skill):
    """4 Jul 2026 is a Saturday: Alabama observes Independence Day on Friday 3 Jul."""
    rules = policy(skill)
    friday = local(CHICAGO, 2026, 7, 3, 12)
    verdict = rules.check(zone_name="America/Chicago", now=friday, state="AL")
    assert not verdict.is_open(friday)
    assert verdict.held.rule == "AL: no texts on legal holidays (Independence Day (observed))"
    # The Saturday is the holiday itself, a Sunday is closed for Alabama anyway: Monday.
    assert verdict.opens_at == local(CHICAGO, 2026, 7, 6, 8)
    georgia = rules.check(zone_name="America/Chicago", now=friday, state="GA")
    assert georgia.is_open(friday)
