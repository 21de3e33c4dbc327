"""'Why is nothing sending?': what holds a skill's texts now, with counts, on the skill page, in
``manage.py skill status`` and per record on its page (skills/diagnosis.py)."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from dnc.models import DncEntry
from dnc.services import dnc_entry_add
from messaging.models import MessageStatus, TransportCode
from skills.diagnosis import Kind, skill_why
from skills.models import FinalReason, Record, Skill, Weekday
from skills.outcomes import _block
from skills.services import skill_start
from tests.factories import AttemptFactory, DncGroupFactory
from tests.test_planner import add_record, make_skill

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
# Wednesday 17 June 2026, 03:00 in Chicago: 04:00 in New York, 01:00 in Los Angeles, outside
# every US zone's 08:00-21:00.
NIGHT = dt.datetime(2026, 6, 17, 3, 0, tzinfo=CHICAGO)
NOON = dt.datetime(2026, 6, 17, 12, 0, tzinfo=CHICAGO)


def _kinds(why) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for reason in why.reasons:
        found.setdefault(reason.kind, []).append(reason.text)
    return found


def _night_skill(bu):
    skill = make_skill(bu, name="Reminders")
    for _ in range(3):
        add_record(skill, zone="America/New_York")
    for _ in range(2):
        add_record(skill, zone="America/Los_Angeles")
    return skill


@pytest.mark.django_db
def test_outside_every_window_the_skill_page_names_the_next_window(client, bu, staff_member):
    skill = _night_skill(bu)
    client.force_login(staff_member)
    with time_machine.travel(NIGHT, tick=False):
        page = client.get(reverse("admin:skills_skill_change", args=[skill.pk])).content.decode()
    assert "Why is nothing sending?" in page
    assert (
        "Nothing is sending now: no waiting record is inside its window. The next window opens "
        "Wed 17 Jun 08:00 EDT in America/New_York (12:00 UTC)." in page
    )
    assert (
        "3 records are outside the window in America/New_York: it opens Wed 17 Jun 08:00 EDT "
        "in America/New_York (12:00 UTC)." in page
    )
    assert (
        "2 records are outside the window in America/Los_Angeles: it opens Wed 17 Jun 08:00 PDT "
        "in America/Los_Angeles (15:00 UTC)." in page
    )


@pytest.mark.django_db
def test_inside_the_window_it_says_records_are_ready(bu):
    skill = _night_skill(bu)
    why = skill_why(skill, now=NOON)
    assert why.in_window == 5 and why.next_window is None
    assert why.headline.startswith("5 records are inside their window")
    assert Kind.OUTSIDE_WINDOW not in _kinds(why)


@pytest.mark.django_db
def test_a_skill_paused_for_a_spam_block_says_so_and_a_start_clears_it(bu):
    skill = make_skill(bu, name="Promo")
    record = add_record(skill)
    attempt = AttemptFactory(skill=skill, record=record, destination=record.destinations.first())
    _block(skill, attempt, "30007: Carrier filtering")
    skill.refresh_from_db()
    assert skill.state == Skill.State.PAUSED
    why = skill_why(skill, now=NOON)
    assert why.headline.startswith("Nothing is sending: the skill is paused since")
    assert "The carrier blocked a text as spam or filtered it (30007: Carrier filtering" in (
        why.headline
    )
    skill_start(skill=skill)
    skill.refresh_from_db()
    assert skill.paused_reason == ""
    assert Kind.PAUSED not in _kinds(skill_why(skill, now=NOON))


@pytest.mark.django_db
def test_no_provisioned_code_and_an_inactive_template(bu):
    skill = make_skill(bu)
    add_record(skill)
    code = skill.registration.transport_code
    code.provisioning_status = TransportCode.Provisioning.REQUESTED
    code.save()
    skill.template.is_active = False
    skill.template.save()
    kinds = _kinds(skill_why(skill, now=NOON))
    assert kinds[Kind.NO_CODE] == [
        f"its transport code {code.number} is requested, not provisioned"
    ]
    assert kinds[Kind.TEMPLATE] == [f'its template "{skill.template}" is not active']


@pytest.mark.django_db
def test_counts_of_unknown_zones_held_records_exhausted_and_dnc(bu):
    skill = make_skill(bu, max_attempts=2)
    add_record(skill, zone="")
    add_record(skill, zone="")
    held = add_record(skill)
    until = NOON.astimezone(dt.UTC) + dt.timedelta(hours=20)
    Record.objects.filter(pk=held.pk).update(
        held_until=until, held_by="FL: at most 3 texts to a number in 24 hours"
    )
    add_record(skill, attempts=2)
    add_record(skill, is_final=True, final_reason=FinalReason.DNC)
    add_record(skill, is_final=True, final_reason=FinalReason.OPTED_OUT)
    add_record(skill, is_final=True, final_reason=FinalReason.OPTED_OUT)
    kinds = _kinds(skill_why(skill, now=NOON))
    assert kinds[Kind.UNKNOWN_ZONE] == [
        "2 records: no known time zone (fix the zone or the number)."
    ]
    assert kinds[Kind.HELD] == [
        "1 record is held by FL: at most 3 texts to a number in 24 hours until "
        "Thu 18 Jun 09:00 at the latest."
    ]
    assert kinds[Kind.EXHAUSTED] == ["1 open record has had all 2 attempts."]
    assert kinds[Kind.DNC] == ["1 record is final: on a DNC group."]
    assert kinds[Kind.OPTED_OUT] == ["2 records are final: opted out."]


@pytest.mark.django_db
def test_all_records_final_and_a_schedule_day_off(bu):
    skill = make_skill(bu, schedule_enabled=True)
    add_record(skill, is_final=True, final_reason=FinalReason.DELIVERED)
    sunday = dt.datetime(2026, 6, 14, 12, 0, tzinfo=CHICAGO)  # the default schedule: no Sundays
    assert not skill.schedule_days.get(weekday=Weekday.SUNDAY).is_active
    why = skill_why(skill, now=sunday)
    kinds = _kinds(why)
    assert kinds[Kind.ALL_FINAL] == ["its one record is final."]
    assert why.headline == "Nothing is sending: its one record is final."
    assert kinds[Kind.SCHEDULE][0].startswith("the skill's schedule has no hours on Sundays")


@pytest.mark.django_db
def test_texts_queued_with_no_sender_running(bu):
    skill = make_skill(bu)
    record = add_record(skill)
    AttemptFactory(
        skill=skill,
        record=record,
        destination=record.destinations.first(),
        message__status=MessageStatus.QUEUED,
        message__source=f"skill:{skill.pk}",
        message__registration=skill.registration,
    )
    kinds = _kinds(skill_why(skill, now=NOON))
    assert kinds[Kind.NO_SENDER][0].startswith(
        f"no sender is sending for code {skill.registration.transport_code.number}: 1 text waiting"
    )


@pytest.mark.django_db
def test_skill_status_prints_what_holds_it(bu):
    _night_skill(bu)
    out = StringIO()
    with time_machine.travel(NIGHT, tick=False):
        call_command("skill", "status", "Reminders", stdout=out)
    text = out.getvalue()
    assert "  Nothing is sending now: no waiting record is inside its window." in text
    assert "    - 3 records are outside the window in America/New_York" in text
    out = StringIO()
    with time_machine.travel(NIGHT, tick=False):
        call_command("skill", "status", "Reminders", "--json", stdout=out)
    why = json.loads(out.getvalue())["why"]
    assert why["sending"] is False
    assert why["next_window_utc"] == "2026-06-17T12:00:00+00:00"
    assert [r["count"] for r in why["reasons"] if r["kind"] == Kind.OUTSIDE_WINDOW] == [3, 2]


@pytest.mark.django_db
def test_a_records_page_says_why_each_number_waits(client, bu, staff_member):
    skill = make_skill(bu, name="Reminders")
    record = add_record(
        skill,
        zone="America/New_York",
        phones=[("SMSPhoneNumber", "+12125550101"), ("SMSPhoneNumber", "+12125550102")],
    )
    group = DncGroupFactory(business_unit=bu)
    skill.scrubbed_dnc_groups.add(group)
    dnc_entry_add(group=group, phone_number="+12125550102", source=DncEntry.Source.MANUAL)
    client.force_login(staff_member)
    url = reverse("admin:skills_record_change", args=[record.pk])
    with time_machine.travel(NIGHT, tick=False):
        page = client.get(url).content.decode()
    assert "Why not texted now" in page
    assert (
        "+12125550101 is outside its window: it opens Wed 17 Jun 08:00 EDT in "
        "America/New_York (12:00 UTC)." in page
    )
    assert "+12125550102 is on a DNC group the skill scrubs against." in page
    with time_machine.travel(NOON, tick=False):
        client.force_login(staff_member)  # a new session: the other was idle for nine hours
        page = client.get(url).content.decode()
    assert "+12125550101 may be texted now, in America/New_York." in page
