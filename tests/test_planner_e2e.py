"""End to end: seed-like data -> start -> plan -> sender -> carrier receipts -> completed.

It runs on the real clock (the sender checks windows against it), in a zone where it is
around noon whatever time the test runs, so the 08:00-21:00 window is open.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from messaging.backends import locmem
from messaging.models import MessageStatus, OutboundMessage
from messaging.sender import CodeSender
from messaging.services import message_record_status
from skills.models import CustomField, FieldType, Record, Skill
from skills.planner import plan_tick
from skills.services import skill_apply_defaults, skill_start
from tests.factories import (
    CallingListFactory,
    DncEntryFactory,
    DncGroupFactory,
    MessageTemplateFactory,
    SkillFactory,
)
from tests.test_planner import add_record


@pytest.fixture(autouse=True)
def _outbox(settings):
    settings.SENDER_RELEASE_QUIET = 0
    locmem.reset()
    yield
    locmem.reset()


def noon_zone(now: dt.datetime) -> str:
    """An IANA zone where ``now`` is between 11:00 and 13:00."""
    offset = 12 - now.astimezone(dt.UTC).hour
    if offset > 14:
        offset -= 24
    if offset < -12:
        offset += 24
    # POSIX-style names: Etc/GMT-5 is UTC+05:00.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def test_a_list_is_texted_delivered_and_the_skill_completes(bu):
    now = timezone.now()
    zone = noon_zone(now)
    bu.allowed_time_zones = [zone]
    bu.save()
    template = MessageTemplateFactory(
        business_unit=bu,
        body="Hi {FirstName|there}, your appointment is on {AppointmentDate}. "
        "Reply STOP to opt out.",
    )
    skill = SkillFactory(business_unit=bu, template=template, name="Demo reminders")
    skill_apply_defaults(skill=skill)
    calling_list = CallingListFactory(business_unit=bu)
    CustomField.objects.create(
        calling_list=calling_list, name="AppointmentDate", field_type=FieldType.DATE
    )
    skill.calling_lists.add(calling_list)
    group = DncGroupFactory(business_unit=bu, is_default=True)
    skill.scrubbed_dnc_groups.add(group)
    people = [
        ("Ada", "2026-12-01"),
        ("", "2026-12-02"),
        ("Grace", "2026-12-03"),
        ("Alan", "2026-12-04"),
    ]
    for i, (first_name, day) in enumerate(people):
        add_record(
            skill,
            zone=zone,
            external_id=f"P{i}",
            first_name=first_name,
            custom={"AppointmentDate": day},
            phones=[("SMSPhoneNumber", f"+1312555{i:04d}")],
        )
    DncEntryFactory(group=group, phone_number="+13125550003")  # Alan is on the DNC list

    skill_start(skill=skill)
    tick = plan_tick(now=now, kick=False)
    assert tick.planned == 3
    assert tick.skills[0].finalized == {"dnc": 1}

    CodeSender(skill.registration.transport_code_id, idle_exit=0, concurrency=0).run_inline()
    bodies = sorted(sms.body for sms in locmem.outbox)
    assert bodies == [
        "Hi Ada, your appointment is on 2026-12-01. Reply STOP to opt out.",
        "Hi Grace, your appointment is on 2026-12-03. Reply STOP to opt out.",
        "Hi there, your appointment is on 2026-12-02. Reply STOP to opt out.",
    ]
    assert OutboundMessage.objects.filter(status=MessageStatus.SENT).count() == 3

    for sms in locmem.outbox:
        message = OutboundMessage.objects.get(pk=sms.message_id)
        message_record_status(
            carrier_sid=message.carrier_sid, carrier_status="delivered", message_id=message.pk
        )
    reasons = dict(Record.objects.values_list("external_id", "final_reason"))
    assert reasons == {"P0": "delivered", "P1": "delivered", "P2": "delivered", "P3": "dnc"}

    tick = plan_tick(now=timezone.now(), kick=False)
    assert tick.skills[0].completed
    skill.refresh_from_db()
    assert skill.state == Skill.State.COMPLETED
