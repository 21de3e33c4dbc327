"""The email channel's sending: the backend's outcomes through Django's mail framework (the
SMTP sink, locmem, anymail's test ESP), what each email carries, the sender's daily limit, and
the unsubscribe page a person sees."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from dnc.importing import dnc_import
from dnc.models import DncEntry, DncGroup
from messaging.backends.base import SendOutcome
from messaging.backends.email import EmailBackend
from messaging.email_services import email_tracking_event
from messaging.emails import unsubscribe_message_id, unsubscribe_token
from messaging.fake_carrier.smtp_sink import SmtpSink
from messaging.models import MessageStatus, OutboundMessage, TransportCode
from messaging.outbox import outgoing
from messaging.sender import CodeSender
from pcsms.models import BusinessUnit
from skills.evidence import NotANumber, normalise_number, number_evidence
from skills.planner import code_budget
from tests.factories import OutboundMessageFactory, SmsRegistrationFactory, TransportCodeFactory

pytestmark = pytest.mark.django_db

SMTP = "django.core.mail.backends.smtp.EmailBackend"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def registration(bu):
    bu.business_name, bu.postal_address = "Acme Health", "1 Main St\nSpringfield, IL 62701"
    bu.save()
    code = TransportCodeFactory(
        business_unit=bu, kind=TransportCode.Kind.EMAIL, number="news@mail.example.com"
    )
    return SmsRegistrationFactory(business_unit=bu, transport_code=code, backend=LOCMEM)


def email_to(registration, to: str, **fields) -> OutboundMessage:
    values = {
        "business_unit": registration.business_unit,
        "registration": registration,
        "to": to,
        "subject": "Your visit",
        "body": "Hi Ada.",
        "html_body": "<p>Hi Ada.</p>",
        "encoding": "UTF-8",
    }
    values.update(fields)
    return OutboundMessageFactory(**values)


def test_an_email_carries_its_parts_footer_and_one_click_unsubscribe(registration, settings):
    settings.PUBLIC_BASE_URL = "https://pcsms.example"
    message = email_to(registration, "ada@example.com")
    sms = outgoing(message)
    assert sms.from_number == "news@mail.example.com"
    assert sms.subject == "Your visit"
    url = dict(sms.headers)["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://pcsms.example/email/unsubscribe/")
    assert dict(sms.headers)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe_message_id(url.rstrip("/").rsplit("/", 1)[1]) == message.id
    assert (
        sms.body
        == f"Hi Ada.\n\n--\nAcme Health, 1 Main St, Springfield, IL 62701\nUnsubscribe: {url}\n"
    )
    assert sms.html_body.startswith("<p>Hi Ada.</p>\n<hr>")
    assert f'<a href="{url}">Unsubscribe</a>' in sms.html_body

    [result] = EmailBackend().send_messages([sms])
    assert result.outcome == SendOutcome.ACCEPTED
    [sent] = mail.outbox
    assert sent.to == ["ada@example.com"]
    assert sent.extra_headers["Message-ID"] == result.carrier_sid
    assert sent.alternatives[0][1] == "text/html"


def test_smtp_refusals_are_bounces_or_retries_and_a_dead_relay_is_a_retry(registration, settings):
    registration.backend = SMTP
    registration.save()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_HOST = "127.0.0.1"
    backend = EmailBackend()
    with SmtpSink() as sink:
        settings.EMAIL_PORT = sink.port
        messages = [
            email_to(registration, to)
            for to in ("ada@example.com", "bounce-x@example.com", "defer-y@example.com")
        ]
        results = backend.send_messages([outgoing(m) for m in messages])
        port = sink.port
    assert [r.outcome for r in results] == [
        SendOutcome.ACCEPTED,
        SendOutcome.REJECTED,
        SendOutcome.RETRY,
    ]
    assert results[1].error_code == "bounced"
    assert results[1].error_text.startswith("550 5.1.1")
    assert results[2].error_text.startswith("451 4.2.1")
    assert [r.to for r in sink.received] == [("ada@example.com",)]
    backend.close()
    # The relay is gone: nothing was handed over, so the message may go again later.
    settings.EMAIL_PORT = port
    [result] = EmailBackend().send_messages([outgoing(email_to(registration, "b@example.com"))])
    assert result.outcome == SendOutcome.RETRY


def test_an_esp_message_id_is_what_its_webhooks_will_name(registration):
    registration.backend = "anymail.backends.test.EmailBackend"
    registration.save()
    [result] = EmailBackend().send_messages([outgoing(email_to(registration, "ada@example.com"))])
    assert result.outcome == SendOutcome.ACCEPTED
    assert result.carrier_sid == str(mail.outbox[0].anymail_status.message_id)


def test_the_sender_sends_email_and_holds_to_the_daily_limit(registration):
    code = registration.transport_code
    code.messages_per_day = 3
    code.save()
    for n in range(5):
        email_to(registration, f"person{n}@example.com")
    CodeSender(code.id, idle_exit=0, concurrency=0).run_inline()
    assert len(mail.outbox) == 3
    statuses = OutboundMessage.objects.values_list("status", flat=True)
    assert sorted(statuses) == ["queued", "queued", "sent", "sent", "sent"]
    assert code_budget(code) == 0  # the planner queues nothing more today
    # The next UTC day the rest go.
    tomorrow = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=5) + dt.timedelta(days=1)
    with time_machine.travel(tomorrow, tick=True):
        CodeSender(code.id, idle_exit=0, concurrency=0).run_inline()
        assert len(mail.outbox) == 5
        assert code_budget(code) == 1  # 2 of the new day's 3 are sent


def test_the_unsubscribe_page_asks_first_and_a_get_changes_nothing(registration):
    message = email_to(registration, "ada@example.com", status=MessageStatus.SENT)
    url = f"/email/unsubscribe/{unsubscribe_token(message.id)}/"
    client = Client()
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Stop emails from Acme Health to <strong>ada@example.com</strong>?" in text
    assert "1 Main St Springfield, IL 62701" in text
    assert not DncEntry.objects.exists()
    done = client.post(url, {"confirm": "1"}).content.decode()
    assert "You are unsubscribed" in done
    entry = DncEntry.objects.get()
    assert (entry.phone_number, entry.source) == ("ada@example.com", "unsubscribe")
    assert "unsubscribe link (page)" in entry.evidence
    again = client.post(url, {"confirm": "1"}).content.decode()
    assert "unsubscribed already" in again
    assert DncEntry.objects.count() == 1


def test_the_evidence_of_an_address_has_its_emails_and_its_unsubscribe(registration, bu):
    message = email_to(registration, "ada@example.com", status=MessageStatus.SENT)
    Client().post(f"/email/unsubscribe/{unsubscribe_token(message.id)}/", {"confirm": "1"})

    address = normalise_number(" Ada@Example.com ")
    assert address == "ada@example.com"
    evidence = number_evidence(address, BusinessUnit.objects.filter(pk=bu.pk))
    kinds = [event.kind for event in evidence.timeline]
    assert "text" in kinds and "dnc" in kinds
    [dnc] = [event for event in evidence.timeline if event.kind == "dnc"]
    assert "unsubscribe link (page)" in dnc.detail
    with pytest.raises(NotANumber, match="not a valid email address"):
        normalise_number("ada@@example.com")


def test_an_esp_not_set_up_holds_the_queue_instead_of_failing_every_email(registration, settings):
    registration.backend = "anymail.backends.mailgun.EmailBackend"
    registration.save()
    settings.ANYMAIL = {}  # no API key
    message = email_to(registration, "ada@example.com")

    CodeSender(registration.transport_code_id, idle_exit=0, concurrency=0).run_inline()

    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert "MAILGUN_API_KEY" in message.error_text  # what the operator must set
    assert message.not_before > timezone.now()  # tried again later, not failed


def test_an_esps_complaint_and_unsubscribe_are_opt_outs_and_an_open_is_history(registration):
    sent = {
        to: email_to(registration, to, status=MessageStatus.SENT, carrier_sid=f"<{n}@esp>")
        for n, to in enumerate(["ada@example.com", "bo@example.com", "cy@example.com"])
    }
    email_tracking_event(
        esp="Mailgun", event_type="complained", message_id="<0@esp>", description="spam"
    )
    email_tracking_event(esp="Mailgun", event_type="unsubscribed", message_id="<1@esp>")
    email_tracking_event(esp="Mailgun", event_type="opened", message_id="<2@esp>")
    assert email_tracking_event(esp="Mailgun", event_type="bounced", message_id="<x@y>") is None

    entries = {e.phone_number: e for e in DncEntry.objects.all()}
    assert entries.keys() == {"ada@example.com", "bo@example.com"}
    assert entries["ada@example.com"].source == DncEntry.Source.COMPLAINT
    assert entries["ada@example.com"].evidence == (
        f"Mailgun complained event for email {sent['ada@example.com'].id}: spam"
    )
    assert entries["bo@example.com"].source == DncEntry.Source.UNSUBSCRIBE
    opened = sent["cy@example.com"]
    opened.refresh_from_db()
    assert opened.status == MessageStatus.SENT
    assert list(opened.events.values_list("detail", flat=True)) == ["Mailgun: opened"]


def test_dnc_entries_and_dnc_files_take_addresses(bu, tmp_path):
    group = DncGroup.objects.create(business_unit=bu, name="Mail suppression")
    entry = DncEntry(group=group, phone_number=" Ada@Example.COM ")
    entry.full_clean()
    assert entry.phone_number == "ada@example.com"
    with pytest.raises(ValidationError, match="is not a valid email address"):
        DncEntry(group=group, phone_number="ada@").full_clean()

    path = tmp_path / "suppression.csv"
    path.write_text("email,expire date\nBo@Example.com,\nnot-an@address@x,\n(312) 555-0123,\n")
    result = dnc_import(group=group, path=path)

    assert (result.valid, result.invalid, result.added) == (2, 1, 2)
    assert result.errors[0][1] == "not a valid email address"
    assert set(group.entries.values_list("phone_number", flat=True)) == {
        "bo@example.com",
        "+13125550123",
    }


@pytest.mark.parametrize(
    ("backend", "problem"),
    [
        ("django.core.mail.backends.smtp.EmailBackend", ""),
        ("anymail.backends.mailgun.EmailBackend", ""),
        ("django.core.mail.backends.smtpp.EmailBackend", "cannot be imported"),
        ("messaging.backends.twilio.TwilioBackend", "is not a Django mail backend"),
    ],
)
def test_an_email_registrations_mail_backend_is_checked_when_saved(registration, backend, problem):
    registration.backend = backend
    if not problem:
        registration.full_clean()
        return
    with pytest.raises(ValidationError) as refused:
        registration.full_clean()
    assert problem in refused.value.message_dict["backend"][0]


def test_an_sms_registration_refuses_a_mail_backend(bu):
    registration = SmsRegistrationFactory(business_unit=bu)
    registration.backend = "django.core.mail.backends.smtp.EmailBackend"
    with pytest.raises(ValidationError, match="is not an SMS backend"):
        registration.full_clean()
    registration.backend = "messaging.backends.twilio.TwilioBackend"
    registration.full_clean()
