"""The planner with an email skill: the same pass as for texts, with the skill's channel
deciding which of a record's destinations it takes, and the template's three parts merged."""

from __future__ import annotations

import datetime as dt

import pytest

from messaging.models import Channel, MessageStatus, OutboundMessage, TransportCode
from messaging.services import message_record_status
from skills.diagnosis import Kind, skill_why
from skills.models import Attempt, FilterCondition, Record, Skill
from skills.planner import plan_skill
from skills.selectors import skill_waiting
from skills.services import SkillStateError, skill_start
from tests.factories import SmsRegistrationFactory, TransportCodeFactory
from tests.test_planner import NOW, add_record, make_skill, planned_ids


@pytest.fixture
def email_skill(bu):
    bu.postal_address = "1 Main St, Springfield"
    bu.save()
    code = TransportCodeFactory(
        business_unit=bu,
        kind=TransportCode.Kind.EMAIL,
        number="news@mail.example.com",
        messages_per_second=10,
    )
    return make_skill(
        bu,
        registration=SmsRegistrationFactory(business_unit=bu, transport_code=code),
        channel=Channel.EMAIL,
        template__channel=Channel.EMAIL,
        template__subject="Hello {FirstName|friend}",
        template__body="Hi {FirstName|there}, your visit is near.",
        template__html_body="<p>Hi {FirstName|there}</p>",
    )


def test_an_email_skill_emails_the_addresses_and_merges_every_part(email_skill):
    add_record(
        email_skill,
        external_id="both",
        first_name="<Ada>",
        phones=[("SMSPhoneNumber", "+13125550101"), ("Email", "ada@example.com")],
    )
    add_record(email_skill, external_id="phone only", phones=[("SMSPhoneNumber", "+13125550102")])

    result = plan_skill(skill=email_skill, now=NOW)

    assert result.planned == 1
    message = OutboundMessage.objects.get()
    assert (message.to, message.subject) == ("ada@example.com", "Hello <Ada>")
    assert message.body == "Hi <Ada>, your visit is near."
    assert message.html_body == "<p>Hi &lt;Ada&gt;</p>"
    assert (message.encoding, message.segments) == ("UTF-8", 1)
    assert message.transport_code.kind == TransportCode.Kind.EMAIL
    # The record with a number alone waits: it is no final "bad numbers" for an email skill.
    assert Record.objects.get(external_id="phone only").is_final is False


def test_an_sms_skill_on_the_same_list_texts_the_numbers_only(bu, email_skill):
    sms_skill = make_skill(bu)
    sms_skill.calling_lists.set(email_skill.calling_lists.all())
    add_record(
        email_skill,
        external_id="both",
        phones=[("Email", "ada@example.com"), ("SMSPhoneNumber", "+13125550101")],
    )
    add_record(email_skill, external_id="mail only", phones=[("Email", "bo@example.com")])

    assert plan_skill(skill=sms_skill, now=NOW).planned == 1
    # The skills share the list's records: the one just texted waits its retry time.
    assert plan_skill(skill=email_skill, now=NOW).planned == 1
    later = NOW + dt.timedelta(minutes=email_skill.min_retry_minutes + 1)
    plan_skill(skill=email_skill, now=later)
    by_skill = {
        skill: sorted(
            set(Attempt.objects.filter(skill=skill).values_list("message__to", flat=True))
        )
        for skill in (sms_skill, email_skill)
    }
    assert by_skill[sms_skill] == ["+13125550101"]
    assert by_skill[email_skill] == ["ada@example.com", "bo@example.com"]
    # An address the SMS skill cannot use does not make its record final.
    assert not Record.objects.filter(is_final=True).exists()


def test_a_bounce_finalizes_the_address_and_a_record_with_none_left(email_skill):
    both = add_record(
        email_skill,
        external_id="both",
        phones=[("Email", "ada@example.com"), ("SMSPhoneNumber", "+13125550101")],
    )
    mail_only = add_record(email_skill, external_id="mail", phones=[("Email", "bo@example.com")])
    plan_skill(skill=email_skill, now=NOW)
    for n, message in enumerate(OutboundMessage.objects.all()):
        OutboundMessage.objects.filter(pk=message.pk).update(
            status=MessageStatus.SENT, carrier_sid=f"<m{n}@mail.example.com>", sent_at=NOW
        )
        message_record_status(
            carrier_sid=f"<m{n}@mail.example.com>",
            carrier_status="undelivered",
            error_code="bounced",
        )
    plan_skill(skill=email_skill, now=NOW)  # its sweep settles the failures

    assert both.destinations.get(source_field="Email").final_reason.startswith("bounced")
    both.refresh_from_db()
    assert both.is_final is False  # its number is still open, for an SMS skill
    mail_only.refresh_from_db()
    assert (mail_only.is_final, mail_only.final_reason) == (True, "bad_numbers")


def test_a_filter_on_the_email_field(email_skill):
    email_skill.filter_active = True
    email_skill.save()
    FilterCondition.objects.create(
        skill=email_skill, field="Email", operator="contains", value="@Clinic.example"
    )
    add_record(email_skill, external_id="clinic", phones=[("Email", "a@clinic.example")])
    add_record(email_skill, external_id="other", phones=[("Email", "b@example.com")])

    plan_skill(skill=email_skill, now=NOW)

    assert planned_ids(email_skill) == ["clinic"]


def test_a_subject_merged_too_long_finalizes_the_record_and_reports_it(email_skill):
    email_skill.template.subject = "{Customer1} {Customer2}"
    email_skill.template.save()
    add_record(
        email_skill,
        external_id="long",
        customer1="x" * 150,
        customer2="y" * 150,
        phones=[("Email", "a@example.com")],
    )

    result = plan_skill(skill=email_skill, now=NOW)

    assert result.planned == 0 and result.too_long == ["long"]
    assert Record.objects.get(external_id="long").final_reason == "too_long"
    assert not OutboundMessage.objects.filter(status=MessageStatus.QUEUED).exists()


def test_an_email_skill_does_not_start_without_its_units_postal_address(bu, email_skill):
    email_skill.state = Skill.State.STOPPED
    email_skill.save()
    bu.postal_address = "  "
    bu.save()

    with pytest.raises(SkillStateError, match="has no postal address: every email carries one"):
        skill_start(skill=email_skill)
    assert Skill.objects.get(pk=email_skill.pk).state == Skill.State.STOPPED


def test_the_skill_page_and_dashboard_count_only_records_the_email_skill_can_reach(email_skill):
    for n in range(3):
        add_record(email_skill, external_id=f"mail{n}", phones=[("Email", f"p{n}@example.com")])
    for n in range(2):
        add_record(
            email_skill, external_id=f"text{n}", phones=[("SMSPhoneNumber", f"+1312555020{n}")]
        )

    assert skill_waiting(email_skill) == 3
    why = skill_why(email_skill, now=NOW)
    [no_address] = [r for r in why.reasons if r.kind == Kind.NO_ADDRESS]
    assert no_address.text.startswith("2 open records have no email address the skill may use")
    assert why.in_window == 3
    plan_skill(skill=email_skill, now=NOW)
    queued = [r.text for r in skill_why(email_skill, now=NOW).reasons if r.kind == Kind.QUEUED]
    assert queued == ["3 emails are queued for the sender."]
