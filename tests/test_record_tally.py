"""Record tallies: the counts the dashboards read instead of counting the records. Whatever
writes the records (an import, the planner, a receipt, a STOP, the admin, a delete), the tallies
say what a count of the records says, before and after they are folded."""

from __future__ import annotations

import pytest
from django.db.models import Count
from django.utils import timezone

from dnc.services import dnc_opt_out
from messaging.backends import locmem
from messaging.models import OutboundMessage
from messaging.sender import CodeSender
from messaging.services import message_record_status
from skills.models import CallingList, FinalReason, Record, RecordTally, Skill
from skills.outcomes import finalize_records
from skills.planner import plan_tick
from skills.selectors import list_tallies, skill_dashboard
from skills.services import record_tallies_compact, skill_apply_defaults, skill_start
from tests.factories import (
    CallingListFactory,
    MessageTemplateFactory,
    SkillFactory,
)
from tests.imports import run_import
from tests.test_planner_e2e import noon_zone


def scanned(list_ids: list[int]) -> list[tuple]:
    rows = (
        Record.objects.filter(calling_list_id__in=list_ids)
        .values_list("is_final", "final_reason", "attempts", "time_zone")
        .annotate(n=Count("id"))
        .order_by()
    )
    return sorted(rows)


def assert_tallies_agree(*lists: CallingList) -> None:
    ids = [c.pk for c in lists]
    assert sorted(list_tallies(ids)) == scanned(ids)
    record_tallies_compact()
    assert sorted(list_tallies(ids)) == scanned(ids)
    # Folded: one row per state, none that adds up to nothing.
    rows = RecordTally.objects.filter(calling_list_id__in=ids)
    assert rows.count() == sum(len(scanned([i])) for i in ids)
    assert not rows.filter(records=0).exists()


def csv(zone: str, other: str, count: int, first: int = 0) -> str:
    # Toll-free numbers: no zone of their own, so each is texted in its record's zone.
    lines = ["ExternalId,FirstName,SMSPhoneNumber,TimeZone"]
    for i in range(first, first + count):
        lines.append(f"R{i},Name{i},+1800200{i:04d},{zone if i % 4 else other}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def texted(bu):
    """A 20-record list in two zones (one the BU does not allow), a skill texting it."""
    now = timezone.now()
    zone = noon_zone(now)
    bu.allowed_time_zones = [zone]
    bu.save()
    calling_list = CallingListFactory(business_unit=bu)
    job = run_import(calling_list, "list.csv", csv(zone, "Pacific/Kiritimati", 20))
    assert job.rows_valid == 20
    template = MessageTemplateFactory(business_unit=bu, body="Hi {FirstName}. Reply STOP to end.")
    skill = SkillFactory(business_unit=bu, template=template)
    skill_apply_defaults(skill=skill)
    skill.calling_lists.add(calling_list)
    locmem.reset()
    return skill, calling_list, zone


def test_tallies_follow_every_writer_of_records(texted, bu):
    skill, calling_list, zone = texted
    other = CallingListFactory(business_unit=bu)
    run_import(other, "other.csv", csv(zone, zone, 5, first=100))
    assert_tallies_agree(calling_list, other)

    # A second upload updates 5 records (a new zone) and adds 5.
    run_import(calling_list, "more.csv", csv("America/Chicago", zone, 10, first=15))
    assert_tallies_agree(calling_list, other)

    # The planner counts attempts; the sender sends; receipts finalize.
    skill_start(skill=skill)
    plan_tick(now=timezone.now(), kick=False)
    assert Record.objects.filter(calling_list=calling_list, attempts=1).exists()
    assert_tallies_agree(calling_list, other)
    CodeSender(skill.registration.transport_code_id, idle_exit=0, concurrency=0).run_inline()
    for message in OutboundMessage.objects.exclude(carrier_sid="")[:6]:
        message_record_status(
            carrier_sid=message.carrier_sid, carrier_status="delivered", message_id=message.pk
        )
    assert Record.objects.filter(final_reason="delivered").count() == 6
    assert_tallies_agree(calling_list, other)

    # A STOP (its texts withdrawn, its record finalized by the sweep); an operator deletes a
    # record; another list goes.
    open_record = Record.objects.filter(calling_list=calling_list, is_final=False).first()
    dnc_opt_out(business_unit=bu, phone_number=open_record.destinations.first().phone_number)
    finalize_records([open_record.pk], FinalReason.OPTED_OUT, skill=skill)
    assert Record.objects.filter(final_reason="opted_out").count() == 1
    Record.objects.filter(pk=Record.objects.filter(calling_list=calling_list).last().pk).delete()
    assert_tallies_agree(calling_list, other)
    other_id = other.pk
    other.delete()
    assert scanned([other_id]) == [] and list_tallies([other_id]) == []
    assert_tallies_agree(calling_list)


def test_the_dashboard_counts_from_the_tallies(texted):
    skill, calling_list, zone = texted
    skill_start(skill=skill)
    board = skill_dashboard(skill).as_json()
    # 15 records in the allowed zone wait; the 5 in a zone the BU does not allow never will.
    assert (board["records"], board["open"], board["waiting"]) == (20, 20, 15)

    plan_tick(now=timezone.now(), kick=False)
    Record.objects.filter(calling_list=calling_list, time_zone=zone).update(
        attempts=skill.max_attempts
    )
    record = Record.objects.filter(calling_list=calling_list, time_zone=zone).first()
    Record.objects.filter(pk=record.pk).update(is_final=True, final_reason="delivered")
    board = skill_dashboard(Skill.objects.get(pk=skill.pk)).as_json()
    assert (board["records"], board["open"], board["finalized"], board["waiting"]) == (
        20,
        19,
        1,
        0,
    )
    assert board["outcomes"] == [("Delivered", 1)]
