"""The forecast before a skill starts: when it finishes, day by day and hour by hour, by the
code's pace, the priority shares, the windows, the state rules, holidays and caps; and the
dashboard's comparison of the forecast with what happened (docs/spec.md section 16)."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse

from messaging.models import MessageStatus
from skills.forecast import MIN_HISTORY, expected_outcomes, skill_forecast
from skills.models import OutcomeClass, Skill, SkillForecast
from skills.selectors import skill_dashboard
from skills.services import skill_forecast_keep, skill_start
from skills.tasks import forecast_skill_task
from tests.factories import (
    AttemptFactory,
    MembershipFactory,
    MessageTemplateFactory,
    SmsRegistrationFactory,
    UserFactory,
)
from tests.test_planner import add_record, make_skill

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
DENVER = zoneinfo.ZoneInfo("America/Denver")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
# Wednesday 17 June 2026, 10:00 in Chicago: every US mainland zone is inside 08:00-21:00.
WEDNESDAY = dt.datetime(2026, 6, 17, 10, 0, tzinfo=CHICAGO)
_area = iter(range(2_000_000, 9_000_000))


def _registration(bu, pace):
    return SmsRegistrationFactory(
        business_unit=bu,
        transport_code__business_unit=bu,
        transport_code__messages_per_second=pace,
    )


def _skill(bu, registration, n, *, zone="America/Chicago", home="", area="312", tries=1, **fields):
    """A skill of ``n`` records in ``zone``, of state ``home``, numbers of area code ``area``,
    each number texted up to ``tries`` times by the cadence."""
    fields.setdefault("state", Skill.State.STOPPED)
    skill = make_skill(bu, registration=registration, **fields)
    skill.cadence_steps.update(attempts=tries)
    for _ in range(n):
        add_record(
            skill,
            zone=zone,
            state=home,
            phones=[("SMSPhoneNumber", f"+1{area}{next(_area)}")],
        )
    return skill


def _history(bu, outcome, n=MIN_HISTORY):
    """``n`` texts of the BU's last days, each ending ``outcome``."""
    other = make_skill(bu, name=f"Earlier {outcome}")
    for _ in range(n):
        AttemptFactory(skill=other, outcome=outcome)


def _day_texts(forecast):
    return {d.day: d.texts for d in forecast.days}


def test_a_skill_alone_on_its_code_finishes_at_the_codes_pace(bu):
    skill = _skill(bu, _registration(bu, 3), 600)
    forecast = skill_forecast(skill, now=WEDNESDAY)
    # 600 texts at 3 a second: 200 s, then the planner's next tick completes the skill.
    assert dt.timedelta(seconds=200) <= forecast.duration <= dt.timedelta(seconds=270)
    assert (forecast.records, forecast.texts, forecast.never_textable) == (600, 600, 0)
    assert [(d.day, d.texts, d.finished) for d in forecast.days] == [
        (dt.date(2026, 6, 17), 600, 600)
    ]
    assert forecast.per_hour == [(WEDNESDAY.astimezone(dt.UTC), 600)]
    assert any("every text is taken as delivered" in words for words in forecast.assumptions)


def test_the_priority_shares_of_the_skills_on_the_code(bu):
    registration = _registration(bu, 3)
    skill = _skill(bu, registration, 600, priority=1, name="Low")
    _skill(bu, registration, 600, priority=2, name="High", state=Skill.State.RUNNING)
    forecast = skill_forecast(skill, now=WEDNESDAY)
    # A third of 3/s while the other has texts (300 in 300 s), then the whole code: 100 s.
    assert dt.timedelta(seconds=395) <= forecast.duration <= dt.timedelta(seconds=470)
    assert any("shared by priority with High (priority 2)" in w for w in forecast.assumptions)


def test_zones_wait_for_their_own_morning(bu):
    registration = _registration(bu, 10)
    skill = _skill(bu, registration, 300, zone="America/New_York", area="212")
    for _ in range(300):
        add_record(
            skill,
            zone="America/Los_Angeles",
            phones=[("SMSPhoneNumber", "+1213555" + str(next(_area))[-4:])],
        )
    # 07:30 in Chicago: 08:30 in New York (open), 05:30 in Los Angeles (opens 08:00 = 10:00 CT).
    start = dt.datetime(2026, 6, 17, 7, 30, tzinfo=CHICAGO)
    forecast = skill_forecast(skill, now=start)
    hours = {h.astimezone(CHICAGO).hour: n for h, n in forecast.per_hour}
    assert hours[7] == 300 and hours[8] == 0 and hours[9] == 0 and hours[10] == 300
    assert forecast.finishes_at.astimezone(CHICAGO).hour == 10


def test_texas_sunday_waits_for_noon(bu):
    skill = _skill(bu, _registration(bu, 10), 100, home="TX", area="512")
    sunday = dt.datetime(2026, 6, 14, 9, 0, tzinfo=CHICAGO)
    forecast = skill_forecast(skill, now=sunday)
    (day,) = forecast.days
    assert day.first_text.astimezone(CHICAGO) == dt.datetime(2026, 6, 14, 12, 0, tzinfo=CHICAGO)
    assert forecast.finishes_at.astimezone(CHICAGO).date() == dt.date(2026, 6, 14)


def test_utah_waits_out_pioneer_day_and_the_sunday(bu):
    skill = _skill(bu, _registration(bu, 10), 100, zone="America/Denver", home="UT", area="801")
    pioneer_day = dt.datetime(2026, 7, 24, 9, 0, tzinfo=DENVER)  # a Friday, a Utah holiday
    forecast = skill_forecast(skill, now=pioneer_day)
    texted = [d.day for d in forecast.days if d.texts]
    assert texted == [dt.date(2026, 7, 25)]  # Saturday: the holiday, then not on Sunday


def test_a_blackout_of_ten_days_puts_the_texts_after_it(bu):
    from skills.models import Blackout

    skill = _skill(bu, _registration(bu, 10), 100, home="LA", area="504")
    Blackout.objects.create(
        business_unit=bu,
        states=["LA"],
        starts_at=WEDNESDAY - dt.timedelta(days=1),
        ends_at=WEDNESDAY + dt.timedelta(days=10),
        reason="Hurricane state of emergency",
    )
    forecast = skill_forecast(skill, now=WEDNESDAY)
    texted = [d.day for d in forecast.days if d.texts]
    assert texted == [dt.date(2026, 6, 27)]  # the day the blackout ends, 10:00 Chicago


def test_a_florida_cap_of_3_in_24_hours_carries_texts_to_the_next_day(bu):
    """Every text is retried (the BU's history says so) after 60 min, up to 5 texts: Georgia
    gets all 5 on the first day, Florida 3, and its 4th waits 24 h after its first."""
    _history(bu, OutcomeClass.TRANSIENT)
    registration = _registration(bu, 10)
    start = dt.datetime(2026, 6, 17, 9, 0, tzinfo=NEW_YORK)
    common = {"zone": "America/New_York", "max_attempts": 5, "min_retry_minutes": 60, "tries": 5}
    florida = _skill(bu, registration, 10, home="FL", area="305", name="FL", **common)
    georgia = _skill(bu, registration, 10, home="GA", area="404", name="GA", **common)

    assert _day_texts(skill_forecast(georgia, now=start)) == {dt.date(2026, 6, 17): 50}
    capped = skill_forecast(florida, now=start)
    assert _day_texts(capped) == {dt.date(2026, 6, 17): 30, dt.date(2026, 6, 18): 20}
    fourth = capped.days[1].first_text.astimezone(NEW_YORK)
    assert fourth >= start + dt.timedelta(days=1)


def test_the_outcomes_of_the_last_30_days_are_expected_again(bu):
    assert expected_outcomes(bu.id, dt.datetime.now(dt.UTC)).texts == 0  # no history
    _history(bu, OutcomeClass.DELIVERED, 180)
    _history(bu, OutcomeClass.TRANSIENT, 20)
    outcomes = expected_outcomes(bu.id, dt.datetime.now(dt.UTC))
    assert (outcomes.texts, outcomes.delivered, outcomes.retried) == (200, 0.9, 0.1)
    skill = _skill(bu, _registration(bu, 10), 1000, min_retry_minutes=30, tries=3)
    forecast = skill_forecast(skill, now=WEDNESDAY)
    # 1,000 first texts, 100 retried 30 min after, 10 of those again: 1,110.
    assert forecast.texts == 1110
    # The cadence's one text a number: no retry, whatever the history.
    skill.cadence_steps.update(attempts=1)
    assert skill_forecast(skill, now=WEDNESDAY).texts == 1000
    assert dt.timedelta(minutes=61) < forecast.duration < dt.timedelta(minutes=65)
    assert any("90.0% delivered, 10.0% retried later" in w for w in forecast.assumptions)


def test_records_no_window_opens_for_are_left_out_and_counted(bu):
    skill = _skill(bu, _registration(bu, 10), 50)
    _skill_records = [add_record(skill, zone="") for _ in range(7)]
    assert len(_skill_records) == 7
    forecast = skill_forecast(skill, now=WEDNESDAY)
    assert (forecast.records, forecast.never_textable, forecast.texts) == (50, 7, 50)
    assert any("7 records have no number any window opens for" in w for w in forecast.assumptions)


def test_a_segment_counting_code_paces_by_the_merged_texts_segments(bu):
    registration = _registration(bu, 10)
    code = registration.transport_code
    code.counts_segments = True
    code.save()
    long_text = "x" * 200  # two GSM-7 segments
    template = MessageTemplateFactory(business_unit=bu, body=long_text, is_active=True)
    skill = _skill(bu, registration, 600, template=template)
    forecast = skill_forecast(skill, now=WEDNESDAY)
    # 600 texts of 2 segments at 10 segments a second: 120 s.
    assert dt.timedelta(seconds=120) <= forecast.duration <= dt.timedelta(seconds=190)
    assert any("2.00 segments a text" in w for w in forecast.assumptions)


def test_the_command_prints_the_finish_and_the_days(bu):
    skill = _skill(bu, _registration(bu, 3), 600, name="Reminders")
    out = StringIO()
    call_command(
        "skill", "forecast", "Reminders", "--business-unit", bu.name,
        "--start", "2026-06-17T10:00-05:00", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert 'Forecast of skill "Reminders"' in text and "600 records to text" in text
    assert "finishes: Wed 2026-06-17 11:0" in text  # 10:0x in Chicago, 11:0x in New York
    assert "Wed 2026-06-17" in text and "assumes:" in text
    out = StringIO()
    call_command(
        "skill", "forecast", "Reminders", "--business-unit", bu.name,
        "--start", "2026-06-17T10:00-05:00", "--json", stdout=out,
    )  # fmt: skip
    data = json.loads(out.getvalue())
    assert data["texts"] == 600 and data["days"][0]["texts"] == 600
    assert skill.forecasts.count() == 0  # a forecast on demand is not kept


@pytest.mark.parametrize(
    ("start", "message"),
    [("tomorrow", "is not an ISO 8601 time"), ("2026-06-17T10:00", "needs its UTC offset")],
)
def test_the_command_refuses_a_start_it_cannot_read(bu, start, message):
    _skill(bu, _registration(bu, 3), 1, name="Reminders")
    with pytest.raises(CommandError, match=message):
        call_command("skill", "forecast", "Reminders", "--business-unit", bu.name, "--start", start)


def test_the_forecast_page_of_a_members_skill_only(client, bu, other_bu, staff_member):
    skill = _skill(bu, _registration(bu, 3), 600, name="Reminders")
    client.force_login(staff_member)
    url = reverse("admin:skills_skill_forecast", args=[skill.pk])
    page = client.get(url, {"start": "2026-06-17T11:00"})  # the BU's zone: New York
    assert page.status_code == 200
    body = page.content.decode()
    assert "Wed 17 Jun 11:0" in body and "Records to text" in body and "<rect" in body
    assert "Wed 2026-06-17" in body and "What the forecast assumes" in body
    assert client.get(url, {"start": "soon"}).content.decode().count("is not a date") == 1
    change = client.get(reverse("admin:skills_skill_change", args=[skill.pk])).content.decode()
    assert url in change

    outsider = UserFactory(username="outsider", is_staff=True)
    outsider.user_permissions.set(staff_member.user_permissions.all())
    MembershipFactory(user=outsider, business_unit=other_bu)
    client.force_login(outsider)
    assert client.get(url).status_code == 404


def test_the_start_keeps_a_forecast_and_the_dashboard_compares_it(bu, monkeypatch):
    skill = _skill(bu, _registration(bu, 3), 600, state=Skill.State.STOPPED)
    skill.template.is_active = True
    skill.template.save()
    queued = []
    monkeypatch.setattr(
        "skills.services.enqueue_on_commit", lambda path, *args, **kw: queued.append((path, args))
    )
    with time_machine.travel(WEDNESDAY, tick=False):
        skill_start(skill=skill)
    (args,) = [a for path, a in queued if path == "skills.tasks.forecast_skill_task"]
    assert args[0] == skill.pk and dt.datetime.fromisoformat(args[1]) == WEDNESDAY
    forecast_skill_task(*args)  # what the worker runs
    kept = SkillForecast.objects.get(skill=skill)
    assert kept.starts_at == WEDNESDAY and kept.texts == 600
    skill.refresh_from_db()

    # 100 s in, 200 texts sent: as forecast (3 a second would be 300; the forecast says 300).
    for i in range(200):
        AttemptFactory(
            skill=skill,
            message__business_unit=bu,
            message__status=MessageStatus.SENT,
            message__sent_at=WEDNESDAY + dt.timedelta(seconds=i // 2),
        )
    check = skill_dashboard(skill, now=WEDNESDAY + dt.timedelta(seconds=100)).forecast
    assert (check.sent, check.expected) == (200, 300)
    assert "200 texts sent against 300 expected by now (-33%)" in check.as_json()["summary"]

    # Completed 5 minutes after the forecast's finish.
    skill.state = Skill.State.COMPLETED
    skill.state_changed_at = kept.finishes_at + dt.timedelta(minutes=5)
    skill.save()
    summary = skill_dashboard(skill, now=skill.state_changed_at).forecast.as_json()["summary"]
    assert "5 min after the forecast" in summary


def test_a_kept_forecast_is_the_whole_forecast(bu):
    skill = _skill(bu, _registration(bu, 3), 60)
    kept = skill_forecast_keep(skill=skill, now=WEDNESDAY)
    assert kept.data["texts"] == 60 and kept.data["days"][0]["texts"] == 60
    assert kept.finishes_at is not None and kept.records == 60


def test_the_forecast_plans_as_far_ahead_as_the_planner():
    from skills import forecast, planner

    assert dt.timedelta(seconds=planner.PLAN_AHEAD_SECONDS) == forecast.PLAN_AHEAD
