"""A lost status callback: the receipt check asks the carrier, so the record is final and the
person is not texted twice.

The real Twilio SDK against the in-process fake carrier with its callbacks switched off (as
when pcsms's web tier or database was down when the carrier called back).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from messaging.backends import locmem
from messaging.fake_carrier import FakeCarrier
from messaging.models import MessageEvent, MessageStatus, OutboundMessage
from messaging.sender import CodeSender
from messaging.services import message_receipts_check
from skills.models import Record, Skill
from skills.planner import plan_tick
from skills.services import skill_apply_defaults, skill_start
from tests.backends import ACCOUNT_SID, AUTH_TOKEN
from tests.factories import CallingListFactory, MessageTemplateFactory, SkillFactory
from tests.test_planner import add_record
from tests.test_planner_e2e import noon_zone

TWILIO = "messaging.backends.twilio.TwilioBackend"


@pytest.fixture
def carrier(settings):
    settings.SENDER_RELEASE_QUIET = 0
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    settings.RECEIPT_CHECK_AFTER = 600
    settings.RECEIPT_CHECK_FOR = 7200
    with FakeCarrier(auth_token=AUTH_TOKEN, callback_delay=0.01, callbacks=False) as carrier:
        settings.TWILIO_API_BASE_URL = carrier.url
        settings.SMS_BACKEND = TWILIO
        yield carrier


def _sent_text(bu, carrier):
    """A one-record skill whose text the carrier accepted and delivered, with no callback."""
    now = timezone.now()
    zone = noon_zone(now)
    bu.allowed_time_zones = [zone]
    bu.save()
    skill = SkillFactory(business_unit=bu, template=MessageTemplateFactory(business_unit=bu))
    skill_apply_defaults(skill=skill)
    skill.calling_lists.add(CallingListFactory(business_unit=bu))
    add_record(skill, zone=zone, external_id="R1", phones=[("SMSPhoneNumber", "+13125550001")])
    skill_start(skill=skill)
    assert plan_tick(now=now, kick=False).planned == 1
    CodeSender(skill.registration.transport_code_id, idle_exit=0, concurrency=0).run_inline()
    message = OutboundMessage.objects.get()
    assert message.status == MessageStatus.SENT
    assert carrier.wait_for(lambda: carrier.messages[message.carrier_sid].status == "delivered")
    return skill, message


def test_a_text_whose_receipt_was_lost_is_looked_up_and_its_record_finalized(bu, carrier):
    skill, message = _sent_text(bu, carrier)
    record = Record.objects.get()
    assert not record.is_final, "no receipt came: the record waits"

    later = message.sent_at + dt.timedelta(minutes=11)
    assert message_receipts_check(now=later) == {"asked": 1, "answered": 1}

    message.refresh_from_db()
    record.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert (record.is_final, record.final_reason) == (True, "delivered")
    assert message.events.filter(kind=MessageEvent.Kind.STATUS_CHECK, status="delivered").exists()
    # After the receipt wait nothing is planned again: one person, one text.
    tick = plan_tick(now=message.sent_at + dt.timedelta(minutes=61), kick=False)
    assert tick.planned == 0
    skill.refresh_from_db()
    assert skill.state == Skill.State.COMPLETED
    assert len(carrier.received) == 1


def test_the_carrier_is_asked_only_after_the_wait_and_not_again_within_it(bu, carrier):
    _skill, message = _sent_text(bu, carrier)
    early = message.sent_at + dt.timedelta(minutes=5)
    assert message_receipts_check(now=early) == {}
    # Asked once, nothing changed at the carrier yet (as if it had no receipt either).
    carrier.messages[message.carrier_sid].status = "sent"
    first = message.sent_at + dt.timedelta(minutes=11)
    assert message_receipts_check(now=first) == {"asked": 1, "answered": 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message_receipts_check(now=first + dt.timedelta(minutes=5)) == {}
    assert message_receipts_check(now=first + dt.timedelta(minutes=11))["asked"] == 1
    # Past RECEIPT_CHECK_FOR it is left alone (some carriers never confirm).
    assert message_receipts_check(now=message.sent_at + dt.timedelta(hours=3)) == {}


def test_an_undelivered_text_found_on_lookup_takes_its_error_code(bu, carrier):
    _skill, message = _sent_text(bu, carrier)
    fake = carrier.messages[message.carrier_sid]
    fake.status, fake.error_code = "undelivered", 30003
    message_receipts_check(now=message.sent_at + dt.timedelta(minutes=11))
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.UNDELIVERED, "30003")


def test_a_backend_that_cannot_ask_leaves_the_text_waiting(bu, carrier, settings):
    _skill, message = _sent_text(bu, carrier)
    settings.SMS_BACKEND = "messaging.backends.locmem.LocmemBackend"
    locmem.reset()
    counts = message_receipts_check(now=message.sent_at + dt.timedelta(minutes=11))
    assert counts == {"cannot_ask": 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
