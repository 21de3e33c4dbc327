"""End to end: one list with phones and email addresses, an SMS skill and an email skill that
share nothing but the planner, each sent through its local fake (the Twilio SDK to the fake
carrier, Django's SMTP backend to the SMTP sink), then what comes back: the carrier's signed
callbacks, a mailbox provider's one-click unsubscribe, and an ESP's signed bounce and
delivery webhooks (anymail's Mailgun view), all over HTTP to the running site.

It runs on the real clock in a zone where it is around noon, as tests/test_planner_e2e.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
import urllib.request

import pytest
from django.utils import timezone

from dnc.models import DncEntry
from messaging.fake_carrier import FakeCarrier
from messaging.fake_carrier.smtp_sink import SmtpSink
from messaging.models import Channel, MessageStatus, OutboundMessage, TransportCode
from messaging.sender import CodeSender
from skills.models import Destination, Record
from skills.planner import plan_tick
from skills.services import skill_apply_defaults, skill_start
from tests.factories import (
    CallingListFactory,
    DncEntryFactory,
    DncGroupFactory,
    MessageTemplateFactory,
    SkillFactory,
    SmsRegistrationFactory,
    TransportCodeFactory,
)
from tests.test_planner import add_record
from tests.test_planner_e2e import noon_zone

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT_SID = "AC" + "e" * 32
AUTH_TOKEN = "e2e-auth-token"
SIGNING_KEY = "mailgun-webhook-signing-key"
ADDRESS = "1 Main Street\nSpringfield, IL 62701"


@pytest.fixture
def sink():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def carrier():
    with FakeCarrier(auth_token=AUTH_TOKEN, account_sid=ACCOUNT_SID, callback_delay=0.01) as c:
        yield c


@pytest.fixture
def site(settings, live_server, sink, carrier):
    settings.PUBLIC_BASE_URL = live_server.url
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_API_BASE_URL = carrier.url
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    settings.SENDER_RELEASE_QUIET = 0
    return live_server


def post(url: str, data: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (127.0.0.1)
        return response.status


def mailgun_event(site, event: str, message: OutboundMessage, **data) -> int:
    """A Mailgun tracking webhook for ``message``, signed as Mailgun signs it."""
    timestamp, token = str(int(time.time())), f"token-{message.id}-{event}"
    signature = hmac.new(
        SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    payload = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "event": event,
            "timestamp": time.time(),
            "recipient": message.to,
            "message": {"headers": {"message-id": message.carrier_sid.strip("<>")}},
            **data,
        },
    }
    url = f"{site.url}/anymail/mailgun/tracking/"
    return post(url, json.dumps(payload).encode(), "application/json")


def wait_for(condition, seconds: float = 15.0) -> None:
    """Poll until ``condition()`` holds: the carrier's callbacks come on their own threads."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the callbacks did not arrive"
        time.sleep(0.05)


def test_sms_and_email_skills_share_only_the_planner(site, sink, carrier, bu):
    now = timezone.now()
    zone = noon_zone(now)
    bu.allowed_time_zones = [zone]
    bu.business_name, bu.postal_address = "Acme Health", ADDRESS
    bu.save()
    calling_list = CallingListFactory(business_unit=bu)

    sms_skill = SkillFactory(
        business_unit=bu,
        name="Texts",
        registration=SmsRegistrationFactory(
            business_unit=bu, backend="messaging.backends.twilio.TwilioBackend"
        ),
    )
    mail_code = TransportCodeFactory(
        business_unit=bu, kind=TransportCode.Kind.EMAIL, number="news@mail.example.com"
    )
    email_skill = SkillFactory(
        business_unit=bu,
        name="Mail",
        channel=Channel.EMAIL,
        registration=SmsRegistrationFactory(
            business_unit=bu,
            transport_code=mail_code,
            backend="django.core.mail.backends.smtp.EmailBackend",
        ),
        template=MessageTemplateFactory(
            business_unit=bu,
            channel=Channel.EMAIL,
            subject="Your visit, {FirstName|friend}",
            body="Hi {FirstName|there}, see you soon.",
            html_body="<html><body><p>Hi <b>{FirstName|there}</b></p></body></html>",
        ),
    )
    suppressed = DncGroupFactory(business_unit=bu, name="Mail suppression")
    for skill in (sms_skill, email_skill):
        skill_apply_defaults(skill=skill)
        skill.calling_lists.add(calling_list)
    email_skill.scrubbed_dnc_groups.add(suppressed)
    DncEntryFactory(group=suppressed, phone_number="alan@example.com")

    def person(external_id, first_name, *destinations):
        return add_record(
            sms_skill,
            zone=zone,
            external_id=external_id,
            first_name=first_name,
            phones=list(destinations),
        )

    person("ada", "Ada", ("Email", "Ada@Example.com"))
    person("grace", "Grace", ("Email", "bounce-grace@example.com"))  # the sink refuses it
    person("alan", "Alan", ("Email", "alan@example.com"))  # suppressed
    person("hedy", "<Hedy>", ("Email", "hedy@example.com"))  # unsubscribes
    person("joan", "Joan", ("Email", "joan@example.com"))  # bounces later, at the ESP
    person("tex", "Tex", ("SMSPhoneNumber", "+13125550101"))
    person("rex", "Rex", ("SMSPhoneNumber", "+13125550102"))
    Destination.objects.filter(phone_number="Ada@Example.com").update(
        phone_number="ada@example.com"
    )

    # Each start plans its skill and kicks the senders (django-q runs tasks at once in tests);
    # the senders run again here for anything a kick left.
    skill_start(skill=sms_skill)
    skill_start(skill=email_skill)
    CodeSender(sms_skill.registration.transport_code_id, idle_exit=0, concurrency=0).run_inline()
    CodeSender(mail_code.id, idle_exit=0, concurrency=0).run_inline()
    to = {m.to: m for m in OutboundMessage.objects.all()}
    assert to.keys() == {
        "+13125550101",
        "+13125550102",
        "ada@example.com",
        "bounce-grace@example.com",
        "hedy@example.com",
        "joan@example.com",
    }
    assert {to[a].transport_code_id for a in to if "@" in a} == {mail_code.id}
    assert Record.objects.get(external_id="alan").final_reason == "dnc"

    # Texts: through the Twilio SDK to the fake carrier, whose signed receipts reach the site.
    assert sorted(m["to"] for m in carrier.received) == ["+13125550101", "+13125550102"]
    wait_for(
        lambda: Record.objects.filter(external_id__in=["tex", "rex"], is_final=True).count() == 2
    )
    assert set(
        Record.objects.filter(external_id__in=["tex", "rex"]).values_list("final_reason", flat=True)
    ) == {"delivered"}

    # Email: over SMTP to the sink, each with its footer and one-click unsubscribe.
    assert sorted(r.to[0] for r in sink.received) == [
        "ada@example.com",
        "hedy@example.com",
        "joan@example.com",
    ]
    ada = sink.to("ada@example.com")[0]
    assert ada.subject == "Your visit, Ada"
    assert ada.header("From") == "news@mail.example.com"
    assert ada.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    unsubscribe_url = ada.header("List-Unsubscribe").strip("<>")
    assert unsubscribe_url.startswith(f"{site.url}/email/unsubscribe/")
    text = ada.part("text/plain")
    assert text.startswith("Hi Ada, see you soon.")
    assert "Acme Health, 1 Main Street, Springfield, IL 62701" in text
    assert f"Unsubscribe: {unsubscribe_url}" in text
    hedy_html = sink.to("hedy@example.com")[0].part("text/html")
    assert "Hi <b>&lt;Hedy&gt;</b>" in hedy_html  # the merged value escaped, the markup kept
    assert hedy_html.index("Unsubscribe</a>") < hedy_html.index("</body>")

    # The sink's 550 is a hard bounce: the address is final, and so is its record (failures
    # are settled by the planner's next sweep).
    grace = OutboundMessage.objects.get(to="bounce-grace@example.com")
    assert (grace.status, grace.error_code) == (MessageStatus.FAILED, "bounced")
    plan_tick(now=timezone.now(), kick=False)
    assert Record.objects.get(external_id="grace").final_reason == "bad_numbers"
    mail = {m.to: m for m in OutboundMessage.objects.filter(transport_code=mail_code)}
    assert mail["ada@example.com"].status == MessageStatus.SENT

    # The ESP's signed webhooks: ada's delivery, joan's bounce.
    assert mailgun_event(site, "delivered", mail["ada@example.com"]) == 200
    bounce = {
        "severity": "permanent",
        "reason": "bounce",
        "delivery-status": {"code": 550, "message": "5.1.1 mailbox unavailable"},
    }
    assert mailgun_event(site, "failed", mail["joan@example.com"], **bounce) == 200
    plan_tick(now=timezone.now(), kick=False)
    assert Record.objects.get(external_id="ada").final_reason == "delivered"
    joan = Record.objects.get(external_id="joan")
    assert joan.final_reason == "bad_numbers"
    assert joan.destinations.get().final_reason.startswith("bounced")
    # A webhook whose signature does not verify changes nothing.
    forged = mail["hedy@example.com"]
    forged_payload = {
        "signature": {"timestamp": "1", "token": "t", "signature": "0" * 64},
        "event-data": {"event": "failed", "severity": "permanent", "message": {"headers": {}}},
    }
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(
            f"{site.url}/anymail/mailgun/tracking/",
            json.dumps(forged_payload).encode(),
            "application/json",
        )
    assert refused.value.code == 400
    forged.refresh_from_db()
    assert forged.status == MessageStatus.SENT

    # Hedy's mailbox provider posts the one-click unsubscribe (RFC 8058).
    hedy_url = sink.to("hedy@example.com")[0].header("List-Unsubscribe").strip("<>")
    form = urllib.parse.urlencode({"List-Unsubscribe": "One-Click"}).encode()
    assert post(hedy_url, form, "application/x-www-form-urlencoded") == 200
    entry = DncEntry.objects.get(phone_number="hedy@example.com")
    assert entry.source == DncEntry.Source.UNSUBSCRIBE
    assert entry.group.is_default
    assert f"email {mail['hedy@example.com'].id}" in entry.evidence
    assert "one-click" in entry.evidence
    # A link that was tampered with is refused and changes nothing.
    with pytest.raises(urllib.error.HTTPError) as tampered:
        post(
            hedy_url.replace("/unsubscribe/", "/unsubscribe/x"),
            form,
            "application/x-www-form-urlencoded",
        )
    assert tampered.value.code == 404

    # A new record with hedy's address is never emailed; the sink has nothing more.
    person("hedy-again", "Hedy", ("Email", "hedy@example.com"))
    received = sink.count
    plan_tick(now=timezone.now(), kick=False)
    CodeSender(mail_code.id, idle_exit=0, concurrency=0).run_inline()
    assert sink.count == received
    assert Record.objects.get(external_id="hedy-again").final_reason == "opted_out"
