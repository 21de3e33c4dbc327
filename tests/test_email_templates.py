"""Email templates: a subject, a plain-text body and an HTML body merged with the same
``{Field|fallback}`` variables as SMS, the HTML part with every merged value escaped."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from messaging import templating
from messaging.models import MessageTemplate
from skills.diagnosis import Kind, start_problems
from tests.factories import MessageTemplateFactory, SkillFactory

EMAIL = MessageTemplate.Channel.EMAIL


def email_template(bu, **fields) -> MessageTemplate:
    fields.setdefault("subject", "Your appointment, {FirstName|friend}")
    fields.setdefault("html_body", "<p>Hi <b>{FirstName|there}</b>, see you soon.</p>")
    return MessageTemplateFactory.build(business_unit=bu, channel=EMAIL, **fields)


# --- merging ---------------------------------------------------------------------------------


def test_the_html_part_escapes_every_merged_value_and_keeps_its_own_markup():
    html = templating.parse('<a title="{LastName}">Hi {FirstName|<friend>}</a>', html=True)

    merged = html.render({"FirstName": "<script>alert(1)</script> & co", "LastName": 'O"Hara'})
    assert merged == (
        '<a title="O&quot;Hara">Hi &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</a>'
    )
    assert html.render({"LastName": "x"}) == '<a title="x">Hi &lt;friend&gt;</a>'  # fallback too


def test_the_text_parts_merge_as_written():
    text = templating.parse("Hi {FirstName}, <b> stays")

    assert text.render({"FirstName": "<Al & Bo>"}) == "Hi <Al & Bo>, <b> stays"
    assert templating.parse("{FirstName}") is not templating.parse("{FirstName}", html=True)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_email_template_with_its_three_parts_is_valid(bu):
    email_template(bu).full_clean()


@pytest.mark.django_db
def test_an_email_needs_a_subject_and_every_part_is_checked_for_fields(bu):
    with pytest.raises(ValidationError) as refused:
        email_template(
            bu,
            subject="  ",
            body="Hi {FirstNmae}",
            html_body="<p>{Citty</p>",
        ).full_clean()

    errors = refused.value.message_dict
    assert errors["subject"] == ["An email needs a subject."]
    assert errors["body"] == [
        "Unknown field 'FirstNmae' at position 3 (line 1, column 4): did you mean 'FirstName'?"
    ]
    assert errors["html_body"][0].startswith("Unclosed '{' at position 3")

    with pytest.raises(ValidationError) as unknown:
        email_template(bu, subject="{Balance} due").full_clean()
    assert "Unknown field 'Balance'" in unknown.value.message_dict["subject"][0]


@pytest.mark.django_db
def test_an_email_without_an_html_part_is_plain_text(bu):
    email_template(bu, html_body="").full_clean()


@pytest.mark.django_db
def test_an_sms_template_has_no_subject_or_html_part(bu):
    sms = MessageTemplateFactory.build(business_unit=bu, subject="Hello", html_body="<p>x</p>")
    with pytest.raises(ValidationError) as refused:
        sms.full_clean()
    assert set(refused.value.message_dict) == {"subject", "html_body"}

    # Nor can one be written around the form: nothing typed there would be sent.
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageTemplateFactory(business_unit=bu, subject="Hello")


# --- an SMS skill and an email template --------------------------------------------------------


@pytest.mark.django_db
def test_an_sms_skill_refuses_an_email_template(bu):
    template = email_template(bu, name="Welcome mail")
    template.save()
    skill = SkillFactory(business_unit=bu)
    skill.template = template

    with pytest.raises(ValidationError) as refused:
        skill.full_clean()
    assert refused.value.message_dict["template"] == [
        '"Welcome mail" is an email template; this skill sends SMS.'
    ]
    assert any(
        r.kind == Kind.TEMPLATE and "is an email template" in r.text for r in start_problems(skill)
    )


# --- the admin page ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_operator_adds_an_email_template_in_the_admin(client, bu, staff_member):
    client.force_login(staff_member)
    page = client.get(reverse("admin:messaging_messagetemplate_add"))
    assert 'name="subject"' in page.content.decode() and 'name="html_body"' in page.content.decode()

    response = client.post(
        reverse("admin:messaging_messagetemplate_add"),
        {
            "business_unit": bu.pk,
            "name": "Reminder mail",
            "channel": "email",
            "subject": "See you {AppointmentDay|soon}",
            "body": "Hi {FirstName|there},\r\nsee you soon.",
            "html_body": "<p>Hi {FirstName|there},</p>\r\n<p>see you soon.</p>",
        },
    )
    assert response.status_code == 200  # the unknown field in the subject is named
    assert "Unknown field &#x27;AppointmentDay&#x27;" in response.content.decode()

    response = client.post(
        reverse("admin:messaging_messagetemplate_add"),
        {
            "business_unit": bu.pk,
            "name": "Reminder mail",
            "channel": "email",
            "subject": "See you {FirstName|soon}",
            "body": "Hi {FirstName|there},\r\nsee you soon.",
            "html_body": "<p>Hi {FirstName|there},</p>\r\n<p>see you soon.</p>",
        },
    )
    assert response.status_code == 302
    saved = MessageTemplate.objects.get(name="Reminder mail")
    assert (saved.channel, saved.subject) == ("email", "See you {FirstName|soon}")
    assert saved.html_body == "<p>Hi {FirstName|there},</p>\n<p>see you soon.</p>"


# --- configuration as TOML ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_email_templates_parts_go_through_config_export_and_apply(bu):
    from skills.config import config_apply, config_export

    template = email_template(bu, name="Reminder mail")
    template.save()
    exported = config_export()
    assert 'subject = "Your appointment, {FirstName|friend}"' in exported
    MessageTemplate.objects.filter(pk=template.pk).update(subject="Changed", html_body="")

    result = config_apply(exported)

    template.refresh_from_db()
    assert result.updated["message templates"] == 1
    assert template.subject == "Your appointment, {FirstName|friend}"
    assert template.html_body == "<p>Hi <b>{FirstName|there}</b>, see you soon.</p>"
