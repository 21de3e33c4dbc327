"""An email skill in a real browser: the skill page turns a skill to email and says which part
does not fit the channel; a recipient's unsubscribe page asks, then unsubscribes."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dnc.models import DncEntry
from messaging.emails import unsubscribe_token
from messaging.models import Channel, MessageStatus, TransportCode
from skills.models import Skill
from skills.services import skill_apply_defaults
from tests.factories import (
    MessageTemplateFactory,
    OutboundMessageFactory,
    SkillFactory,
    SmsRegistrationFactory,
    TransportCodeFactory,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def mail(bu):
    bu.business_name, bu.postal_address = "Acme Health", "1 Main St\nSpringfield, IL 62701"
    bu.save()
    code = TransportCodeFactory(
        business_unit=bu, kind=TransportCode.Kind.EMAIL, number="news@mail.example.com"
    )
    registration = SmsRegistrationFactory(
        business_unit=bu, name="Mail registration", transport_code=code
    )
    template = MessageTemplateFactory(
        business_unit=bu,
        name="Visit email",
        channel=Channel.EMAIL,
        subject="Your visit",
        body="Hi {FirstName|there}.",
    )
    return registration, template


def test_a_skill_turned_to_email_names_the_part_that_does_not_fit(
    page, login, staff_member, bu, mail
):
    registration, template = mail
    skill = SkillFactory(business_unit=bu, name="Reminders")
    skill_apply_defaults(skill=skill)
    login(staff_member)
    page.goto(reverse("admin:skills_skill_change", args=[skill.pk]))

    page.select_option("#id_channel", label="Email")
    page.select_option("#id_registration", label="Mail registration")
    page.locator("input[name=_continue]").last.click()

    expect(page.locator(".errornote")).to_be_visible()
    error = page.locator(".field-template .errorlist")
    expect(error).to_contain_text("is an SMS template; this skill sends email.")
    assert Skill.objects.get(pk=skill.pk).channel == Channel.SMS

    page.select_option("#id_template", label="Visit email")
    page.locator("input[name=_continue]").last.click()

    expect(page.locator(".messagelist .success")).to_be_visible()
    skill.refresh_from_db()
    assert (skill.channel, skill.template_id) == (Channel.EMAIL, template.pk)


def test_the_unsubscribe_page_asks_then_unsubscribes(page, bu, mail):
    registration, _template = mail
    message = OutboundMessageFactory(
        business_unit=bu,
        registration=registration,
        to="ada@example.com",
        subject="Your visit",
        status=MessageStatus.SENT,
    )
    page.goto(f"/email/unsubscribe/{unsubscribe_token(message.id)}/")

    expect(page.get_by_role("heading")).to_have_text("Unsubscribe")
    expect(page.locator("body")).to_contain_text("Stop emails from Acme Health to ada@example.com?")
    assert not DncEntry.objects.exists()  # opening the page changes nothing

    page.get_by_role("button", name="Unsubscribe").click()

    expect(page.get_by_role("heading")).to_have_text("You are unsubscribed")
    expect(page.locator("body")).to_contain_text("ada@example.com will receive no more emails")
    assert DncEntry.objects.get().source == DncEntry.Source.UNSUBSCRIBE
