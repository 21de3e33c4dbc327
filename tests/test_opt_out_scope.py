"""What a recipient's opt-out binds: this registration, or the whole business unit (revoke
all), and the day the FCC's revoke-all rule takes effect (docs/spec.md section 12)."""

from __future__ import annotations

import datetime as dt
import tomllib
import zoneinfo

import pytest
import time_machine

from messaging.backends import locmem
from messaging.models import InboundMessage, MessageStatus, WithdrawReason
from pcsms.models import FCC_REVOKE_ALL_DATE, BusinessUnit, OptOutScope
from skills.config import config_export
from skills.models import FinalReason, Record
from skills.planner import plan_skill
from tests.factories import (
    AttemptFactory,
    BusinessUnitFactory,
    DncGroupFactory,
    OutboundMessageFactory,
    SmsRegistrationFactory,
    TransportCodeFactory,
)
from tests.test_callbacks import INBOUND, RECIPIENT, _reply, _twilio, payload, post  # noqa: F401
from tests.test_planner import add_record, make_skill, planned_ids
from tests.test_sender import _send_all

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
# A Thursday in December 2026, before the revoke-all date; Chicago's window is open.
BEFORE = dt.datetime(2026, 12, 10, 11, 0, tzinfo=CHICAGO)
REMINDERS_NUMBER, BILLING_NUMBER = "+14155550100", "+14155550101"


def _registration(bu, number, group_name=None):
    code = TransportCodeFactory(business_unit=bu, number=number, messages_per_second=100)
    group = DncGroupFactory(business_unit=bu, name=group_name) if group_name else None
    return SmsRegistrationFactory(
        business_unit=bu, transport_code=code, name=f"via {number}", stop_dnc_group=group
    )


@pytest.fixture
def programs(db):
    """A BU with two programs, each with its own STOP group, scoped per registration."""
    bu = BusinessUnitFactory(
        name="Acme",
        opt_out_scope=OptOutScope.REGISTRATION,
        revoke_all_from=FCC_REVOKE_ALL_DATE,
    )
    return (
        _registration(bu, REMINDERS_NUMBER, "Reminders STOPs"),
        _registration(bu, BILLING_NUMBER, "Billing STOPs"),
    )


def _queued(registration):
    return OutboundMessageFactory(
        business_unit=registration.business_unit, registration=registration, to=RECIPIENT
    )


def _sent(skill, registration, *, hours_ago):
    """A text of ``skill`` to the recipient, sent ``hours_ago`` before BEFORE."""
    return AttemptFactory(
        skill=skill,
        message__business_unit=registration.business_unit,
        message__registration=registration,
        message__to=RECIPIENT,
        message__status=MessageStatus.SENT,
        message__sent_at=BEFORE - dt.timedelta(hours=hours_ago),
    )


def _stop(client, to_number, sid="SM" + "2e" * 16):
    return post(client, INBOUND, payload("inbound_stop", To=to_number, MessageSid=sid))


def _status(message):
    message.refresh_from_db()
    return message.status, message.withdraw_reason


def test_a_new_business_unit_scopes_opt_outs_per_registration_until_the_fcc_date(db):
    bu = BusinessUnit.objects.create(name="New")
    assert bu.opt_out_scope == OptOutScope.REGISTRATION
    assert bu.revoke_all_from == dt.date(2027, 1, 31)
    assert not bu.revokes_all(dt.date(2027, 1, 30))
    assert bu.revokes_all(dt.date(2027, 1, 31))


def test_a_stop_to_one_program_stops_that_program_only_until_revoke_all_takes_effect(
    client, programs
):
    reminders, billing = programs
    with time_machine.travel(BEFORE, tick=False):
        mine, other = _queued(reminders), _queued(billing)

        response = _stop(client, REMINDERS_NUMBER)

        assert _reply(response) == reminders.business_unit.opt_out_confirmation
        assert _status(mine) == (MessageStatus.WITHDRAWN, WithdrawReason.OPTED_OUT)
        assert _status(other) == (MessageStatus.QUEUED, "")
        action = InboundMessage.objects.get().action_taken
        assert "binds the registrations whose STOP replies land in 'Reminders STOPs'" in action
        assert reminders.stop_dnc_group.entries.filter(phone_number=RECIPIENT).exists()

        # The billing program still texts the number: at the moment of sending too.
        _send_all(billing.transport_code_id)
        assert [sms.to for sms in locmem.outbox] == [RECIPIENT]
        assert _status(other)[0] == MessageStatus.SENT

    # From the revoke-all date the same STOP binds every program of the BU.
    with time_machine.travel(dt.datetime(2027, 1, 31, 11, 0, tzinfo=CHICAGO), tick=False):
        locmem.reset()
        later = _queued(billing)
        _send_all(billing.transport_code_id)
        assert locmem.outbox == []
        assert _status(later) == (MessageStatus.WITHDRAWN, WithdrawReason.OPTED_OUT)


def test_the_planner_follows_the_scope(client, programs):
    reminders, billing = programs
    bu = reminders.business_unit
    reminder_skill = make_skill(bu, registration=reminders, name="Reminders")
    billing_skill = make_skill(bu, registration=billing, name="Billing")
    for skill in (reminder_skill, billing_skill):
        add_record(skill, external_id=skill.name, phones=[("SMSPhoneNumber", RECIPIENT)])
    with time_machine.travel(BEFORE, tick=False):
        _stop(client, REMINDERS_NUMBER)
        now = dt.datetime.now(dt.UTC)
        plan_skill(skill=reminder_skill, now=now)
        plan_skill(skill=billing_skill, now=now)
    assert planned_ids(reminder_skill) == []
    assert Record.objects.get(external_id="Reminders").final_reason == FinalReason.OPTED_OUT
    assert planned_ids(billing_skill) == ["Billing"]

    bu.opt_out_scope = OptOutScope.BUSINESS_UNIT
    bu.save()
    add_record(billing_skill, external_id="Billing again", phones=[("SMSPhoneNumber", RECIPIENT)])
    with time_machine.travel(BEFORE + dt.timedelta(minutes=5), tick=False):
        plan_skill(skill=billing_skill, now=dt.datetime.now(dt.UTC))
    assert "Billing again" not in planned_ids(billing_skill)
    assert Record.objects.get(external_id="Billing again").final_reason == FinalReason.OPTED_OUT


def test_the_record_finalized_is_the_one_the_stop_answered(client, programs):
    """Under "this registration" a STOP finalizes the record of the program it answered, even
    when another program texted the number last."""
    reminders, billing = programs
    bu = reminders.business_unit
    reminder_skill = make_skill(bu, registration=reminders, name="Reminders")
    billing_skill = make_skill(bu, registration=billing, name="Billing")
    with time_machine.travel(BEFORE, tick=False):
        reminded = _sent(reminder_skill, reminders, hours_ago=2)
        billed = _sent(billing_skill, billing, hours_ago=1)
        _stop(client, REMINDERS_NUMBER)
    reminded.record.refresh_from_db()
    billed.record.refresh_from_db()
    assert reminded.record.final_reason == FinalReason.OPTED_OUT
    assert not billed.record.is_final


def test_programs_sharing_the_default_group_share_their_opt_outs(client, db):
    bu = BusinessUnitFactory(opt_out_scope=OptOutScope.REGISTRATION, revoke_all_from=None)
    first = _registration(bu, REMINDERS_NUMBER)
    second = _registration(bu, BILLING_NUMBER)
    own = _registration(bu, "+14155550102", "Surveys STOPs")
    with time_machine.travel(BEFORE, tick=False):
        second_text, own_text = _queued(second), _queued(own)
        _stop(client, REMINDERS_NUMBER)
    assert first.stop_dnc_group is None
    assert _status(second_text) == (MessageStatus.WITHDRAWN, WithdrawReason.OPTED_OUT)
    assert _status(own_text) == (MessageStatus.QUEUED, "")


def test_each_program_confirms_its_own_opt_out_once(client, programs):
    reminders, billing = programs
    with time_machine.travel(BEFORE, tick=False):
        first = _stop(client, REMINDERS_NUMBER)
        again = _stop(client, REMINDERS_NUMBER, sid="SM" + "3" * 32)
        other = _stop(client, BILLING_NUMBER, sid="SM" + "4" * 32)
    confirmation = reminders.business_unit.opt_out_confirmation
    assert (_reply(first), _reply(again), _reply(other)) == (confirmation, "", confirmation)


def test_revoke_all_stops_every_program_and_confirms_once(client, programs):
    reminders, billing = programs
    bu = reminders.business_unit
    bu.opt_out_scope = OptOutScope.BUSINESS_UNIT
    bu.save()
    with time_machine.travel(BEFORE, tick=False):
        other = _queued(billing)
        first = _stop(client, REMINDERS_NUMBER)
        second = _stop(client, BILLING_NUMBER, sid="SM" + "4" * 32)
    assert _status(other) == (MessageStatus.WITHDRAWN, WithdrawReason.OPTED_OUT)
    assert (_reply(first), _reply(second)) == (bu.opt_out_confirmation, "")
    assert "binds the registrations" not in InboundMessage.objects.first().action_taken


def test_the_scope_is_exported_with_the_business_unit(programs):
    bu = programs[0].business_unit
    unit = tomllib.loads(config_export())["business_units"][0]
    assert (unit["opt_out_scope"], unit["revoke_all_from"]) == ("registration", bu.revoke_all_from)


def test_the_scope_is_set_on_the_business_units_page(admin_client, programs):
    bu = programs[0].business_unit
    page = admin_client.get(f"/admin/pcsms/businessunit/{bu.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Opt-out scope" in body and 'name="revoke_all_from"' in body
