"""The carrier callback URLs, replaying recorded Twilio payloads signed as Twilio signs them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from django.urls import reverse

from dnc.models import DncEntry, DncGroup
from dnc.services import dnc_default_group
from messaging.backends import locmem
from messaging.backends.twilio import compute_signature
from messaging.models import (
    InboundMessage,
    MessageEvent,
    MessageStatus,
    OutboundMessage,
    WithdrawReason,
)
from messaging.sender import CodeSender
from pcsms.models import KeywordSet, ProbableOptOutPolicy
from skills.models import FinalReason
from tests.factories import (
    AttemptFactory,
    BusinessUnitFactory,
    DncEntryFactory,
    DncGroupFactory,
    OutboundMessageFactory,
    SkillFactory,
    SmsRegistrationFactory,
    TransportCodeFactory,
)

FIXTURES = Path(__file__).parent / "fixtures" / "twilio_callbacks"
ACCOUNT_SID = "AC" + "a" * 32
TOKEN = "test-auth-token"
PUBLIC = "https://sms.example.com"
OUT_SID = "SM" + "1f" * 16
IN_SID = "SM" + "2e" * 16
OUR_NUMBER = "+14155550100"
RECIPIENT = "+13125550123"
STATUS = "/sms/twilio/status/"
INBOUND = "/sms/twilio/inbound/"


@pytest.fixture(autouse=True)
def _twilio(settings):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = PUBLIC
    locmem.reset()
    yield
    locmem.reset()


def payload(name: str, **changes: str) -> list[tuple[str, str]]:
    """A recorded payload as (name, value) pairs in Twilio's order, with some values changed."""
    pairs = parse_qsl((FIXTURES / f"{name}.txt").read_text().strip(), keep_blank_values=True)
    pairs = [(k, changes.pop(k)) if k in changes else (k, v) for k, v in pairs]
    return pairs + list(changes.items())


def post(client, path, pairs, *, token=TOKEN, url=None, signed=True, sent_pairs=None):
    """POST ``pairs`` form-encoded, signed over ``url`` (default: the public URL) and ``pairs``;
    ``sent_pairs`` sends other parameters than the signed ones (a tampered request)."""
    url = url or PUBLIC + path
    headers = {"X-Twilio-Signature": compute_signature(url, dict(pairs), token)} if signed else {}
    return client.post(
        path,
        data=urlencode(sent_pairs if sent_pairs is not None else pairs),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )


@pytest.fixture(params=["one_account", "two_accounts"])
def accounts(request, monkeypatch):
    """With one Twilio account configured its token checks everything; with several, the
    message's (or number's) own account is looked up first. Both must refuse the same."""
    if request.param == "two_accounts":
        monkeypatch.setenv("TWILIO_CLINIC_ACCOUNT_SID", "AC" + "c" * 32)
        monkeypatch.setenv("TWILIO_CLINIC_AUTH_TOKEN", "clinic-token")
    return request.param


@pytest.fixture
def registration(db):
    bu = BusinessUnitFactory(
        name="Acme", business_name="Acme Dental", support_contact="800-555-0100"
    )
    code = TransportCodeFactory(business_unit=bu, number=OUR_NUMBER)
    return SmsRegistrationFactory(business_unit=bu, transport_code=code)


@pytest.fixture
def message(registration):
    return OutboundMessageFactory(
        business_unit=registration.business_unit,
        registration=registration,
        to=RECIPIENT,
        status=MessageStatus.SENT,
        carrier_sid=OUT_SID,
    )


def _state(message):
    message.refresh_from_db()
    return message.status, message.events.count()


# --- status callbacks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "error_code"),
    [
        ("status_queued", MessageStatus.SENT, ""),
        ("status_accepted", MessageStatus.SENT, ""),
        ("status_sending", MessageStatus.SENT, ""),
        ("status_sent", MessageStatus.SENT, ""),
        ("status_delivered", MessageStatus.DELIVERED, ""),
        ("status_read", MessageStatus.DELIVERED, ""),
        ("status_undelivered_30003", MessageStatus.UNDELIVERED, "30003"),
        ("status_failed_30007", MessageStatus.FAILED, "30007"),
        ("status_canceled", MessageStatus.FAILED, ""),
    ],
)
def test_every_recorded_status_updates_the_message_and_is_kept_as_an_event(
    client, registration, name, status, error_code
):
    message = OutboundMessageFactory(
        business_unit=registration.business_unit,
        registration=registration,
        to=RECIPIENT,
        status=MessageStatus.SENDING,
        carrier_sid=OUT_SID,
    )
    response = post(client, STATUS, payload(name))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode().endswith("<Response></Response>")
    message.refresh_from_db()
    assert message.status == status
    assert message.error_code == error_code
    event = message.events.get(kind=MessageEvent.Kind.CALLBACK)
    assert event.status == dict(payload(name))["MessageStatus"]
    assert event.error_code == error_code


def test_status_signed_over_django_url_is_accepted_too(client, message, settings):
    # No proxy in between: Twilio requested the very URL Django sees.
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    response = post(client, STATUS, payload("status_delivered"), url="http://testserver" + STATUS)
    assert response.status_code == 200
    assert _state(message)[0] == MessageStatus.DELIVERED


def test_behind_a_tls_proxy_the_public_https_url_is_what_twilio_signed(client, message):
    # Django sees http://testserver; Twilio requested https://sms.example.com (PUBLIC_BASE_URL).
    response = post(client, f"{STATUS}?m={message.id}", payload("status_delivered"))
    assert response.status_code == 200
    assert _state(message)[0] == MessageStatus.DELIVERED


def test_behind_a_proxy_that_passes_host_and_proto_django_url_is_accepted(
    client, message, settings
):
    # PUBLIC_BASE_URL names another host; the proxy tells Django the scheme and host.
    settings.PUBLIC_BASE_URL = "https://old-name.example.com"
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["sms.example.com"]
    pairs = payload("status_delivered")
    url = "https://sms.example.com" + STATUS
    response = client.post(
        STATUS,
        data=urlencode(pairs),
        content_type="application/x-www-form-urlencoded",
        headers={
            "X-Twilio-Signature": compute_signature(url, dict(pairs), TOKEN),
            "X-Forwarded-Proto": "https",
            "Host": "sms.example.com",
        },
    )
    assert response.status_code == 200
    assert _state(message)[0] == MessageStatus.DELIVERED


@pytest.mark.parametrize(
    "attack",
    ["unsigned", "wrong_token", "tampered_status", "added_param", "wrong_url", "wrong_query"],
)
def test_status_without_a_valid_signature_is_403_and_changes_nothing(
    client, message, attack, accounts
):
    pairs = payload("status_delivered")
    before = _state(message)
    if attack == "unsigned":
        response = post(client, STATUS, pairs, signed=False)
    elif attack == "wrong_token":
        response = post(client, STATUS, pairs, token="not-the-token")
    elif attack == "tampered_status":
        sent = [(k, "failed" if k == "MessageStatus" else v) for k, v in pairs]
        response = post(client, STATUS, pairs, sent_pairs=sent)
    elif attack == "added_param":
        response = post(client, STATUS, pairs, sent_pairs=[*pairs, ("ErrorCode", "21610")])
    elif attack == "wrong_url":
        response = post(client, STATUS, pairs, url="https://evil.example.com" + STATUS)
    else:  # signed for another message id than the one in the URL
        url = f"{PUBLIC}{STATUS}?m={message.id + 1}"
        headers = {"X-Twilio-Signature": compute_signature(url, dict(pairs), TOKEN)}
        response = client.post(
            f"{STATUS}?m={message.id}",
            data=urlencode(pairs),
            content_type="application/x-www-form-urlencoded",
            headers=headers,
        )
    assert response.status_code == 403
    assert _state(message) == before
    assert not DncEntry.objects.exists()


def test_status_is_checked_with_the_token_of_the_account_that_sent_it(client, message, monkeypatch):
    other_sid, other_token = "AC" + "c" * 32, "other-account-token"
    monkeypatch.setenv("TWILIO_CLINIC_ACCOUNT_SID", other_sid)
    monkeypatch.setenv("TWILIO_CLINIC_AUTH_TOKEN", other_token)
    message.registration.carrier_account = "clinic"
    message.registration.save()
    pairs = payload("status_delivered", AccountSid=other_sid)
    # Signed by the default account: a valid token, but not the sender's.
    assert post(client, STATUS, pairs).status_code == 403
    assert _state(message)[0] == MessageStatus.SENT
    assert post(client, STATUS, pairs, token=other_token).status_code == 200
    assert _state(message)[0] == MessageStatus.DELIVERED


def test_a_missing_secret_rejects_the_callback(client, message, monkeypatch):
    monkeypatch.setenv("TWILIO_CLINIC_ACCOUNT_SID", "AC" + "c" * 32)
    monkeypatch.setenv("TWILIO_CLINIC_AUTH_TOKEN", "clinic-token")
    message.registration.carrier_account = "nosuchaccount"
    message.registration.save()
    assert post(client, STATUS, payload("status_delivered")).status_code == 403
    assert _state(message)[0] == MessageStatus.SENT


def test_with_one_account_configured_its_token_is_the_one_checked(client, message):
    # No message lookup is needed: no other account can have sent anything.
    assert post(client, STATUS, payload("status_delivered"), token="other").status_code == 403
    assert post(client, STATUS, payload("status_delivered")).status_code == 200
    assert _state(message)[0] == MessageStatus.DELIVERED


def test_unknown_message_is_answered_200_and_nothing_is_created(client, registration, accounts):
    response = post(client, STATUS, payload("status_delivered", MessageSid="SM" + "9" * 32))
    assert response.status_code == 200
    assert not OutboundMessage.objects.exists()
    assert not MessageEvent.objects.exists()


def test_unknown_message_signed_with_an_unknown_token_is_403(client, registration, accounts):
    pairs = payload("status_delivered", MessageSid="SM" + "9" * 32)
    assert post(client, STATUS, pairs, token="guess").status_code == 403


def test_unknown_message_from_an_unknown_account_is_403_with_several_accounts(
    client, registration, monkeypatch
):
    monkeypatch.setenv("TWILIO_CLINIC_ACCOUNT_SID", "AC" + "c" * 32)
    monkeypatch.setenv("TWILIO_CLINIC_AUTH_TOKEN", "clinic-token")
    pairs = payload("status_delivered", MessageSid="SM" + "9" * 32, AccountSid="AC" + "d" * 32)
    assert post(client, STATUS, pairs).status_code == 403
    pairs = payload("status_delivered", MessageSid="SM" + "9" * 32)  # our AccountSid
    assert post(client, STATUS, pairs).status_code == 200


def test_replayed_callback_is_harmless_and_each_is_kept(client, message):
    for _ in range(3):
        assert post(client, STATUS, payload("status_delivered")).status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    details = list(message.events.values_list("detail", flat=True))
    assert details == ["applied", "no change", "no change"]


def test_out_of_order_callbacks_never_turn_delivered_back(client, message):
    for name in ("status_delivered", "status_sent", "status_queued", "status_undelivered_30003"):
        assert post(client, STATUS, payload(name)).status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert message.error_code == ""
    assert message.events.filter(kind=MessageEvent.Kind.CALLBACK).count() == 4


def test_fast_callback_finds_the_message_by_our_id_in_the_url(client, registration, accounts):
    message = OutboundMessageFactory(
        business_unit=registration.business_unit,
        registration=registration,
        to=RECIPIENT,
        status=MessageStatus.SENDING,
    )
    response = post(client, f"{STATUS}?m={message.id}", payload("status_sent"))
    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.status, message.carrier_sid) == (MessageStatus.SENT, OUT_SID)


def test_callback_urls_answer_post_only(client):
    assert client.get(STATUS).status_code == 405
    assert client.get(INBOUND).status_code == 405
    assert reverse("messaging:twilio-status") == STATUS
    assert reverse("messaging:twilio-inbound") == INBOUND


def test_signed_callback_without_a_status_is_400(client, message):
    pairs = [(k, v) for k, v in payload("status_sent") if k not in ("MessageStatus", "SmsStatus")]
    assert post(client, STATUS, pairs).status_code == 400
    assert _state(message)[0] == MessageStatus.SENT


# --- carrier error 21610 -------------------------------------------------------------------------


def test_21610_on_a_callback_puts_the_number_on_the_registrations_stop_group(
    client, message, registration
):
    group = DncGroupFactory(business_unit=registration.business_unit, name="STOP list")
    registration.stop_dnc_group = group
    registration.save()
    assert post(client, STATUS, payload("status_failed_21610")).status_code == 200
    entry = DncEntry.objects.get()
    assert (entry.group, str(entry.phone_number)) == (group, RECIPIENT)
    assert entry.source == DncEntry.Source.CARRIER
    assert entry.evidence == f"carrier error 21610 for message {message.id}"
    # A replay adds nothing.
    assert post(client, STATUS, payload("status_failed_21610")).status_code == 200
    assert DncEntry.objects.count() == 1


def test_21610_without_a_default_group_creates_the_bu_default(client, message):
    assert post(client, STATUS, payload("status_failed_21610")).status_code == 200
    group = DncGroup.objects.get()
    assert (group.name, group.is_default, group.is_active) == ("Default DNC", True, True)
    assert group.entries.get().source == DncEntry.Source.CARRIER


def test_stop_in_a_bu_without_groups_creates_the_default_and_says_so(client, registration):
    post(client, INBOUND, payload("inbound_stop"))
    group = DncGroup.objects.get()
    assert group.is_default and group.entries.count() == 1
    assert "had no default DNC group: created it" in InboundMessage.objects.get().action_taken


def test_21610_on_send_adds_a_carrier_entry_and_withdraws_the_rest(registration):
    default = DncGroupFactory(business_unit=registration.business_unit, is_default=True)
    first, second = (
        OutboundMessageFactory(
            business_unit=registration.business_unit, registration=registration, to=RECIPIENT
        )
        for _ in range(2)
    )
    locmem.answers[RECIPIENT] = {
        "outcome": "rejected",
        "error_code": "21610",
        "error_text": "Attempt to send to unsubscribed recipient",
    }
    CodeSender(registration.transport_code_id, concurrency=0, idle_exit=0).run_inline()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.error_code) == (MessageStatus.FAILED, "21610")
    entry = default.entries.get()
    assert entry.source == DncEntry.Source.CARRIER
    assert entry.evidence == f"carrier error 21610 for message {first.id}"
    # The second text of the same slot was rejected the same way, or withdrawn as opted out.
    assert second.status in (MessageStatus.FAILED, MessageStatus.WITHDRAWN)
    assert not locmem.outbox


# --- inbound texts -------------------------------------------------------------------------------


def _reply(response) -> str:
    text = response.content.decode()
    assert response["Content-Type"].startswith("text/xml")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    if "<Message>" not in text:
        return ""
    return text.split("<Message>", 1)[1].split("</Message>", 1)[0]


def test_stop_opts_out_withdraws_queued_texts_and_confirms_once(client, registration):
    bu = registration.business_unit
    stop_group = DncGroupFactory(business_unit=bu, name="Replies")
    registration.stop_dnc_group = stop_group
    registration.save()
    queued = [
        OutboundMessageFactory(business_unit=bu, registration=registration, to=RECIPIENT)
        for _ in range(3)
    ]
    other_number = OutboundMessageFactory(business_unit=bu, registration=registration)
    other_bu = OutboundMessageFactory(to=RECIPIENT)

    response = post(client, INBOUND, payload("inbound_stop"))

    assert response.status_code == 200
    assert _reply(response) == bu.opt_out_confirmation
    inbound = InboundMessage.objects.get()
    assert (inbound.classification, inbound.carrier_sid) == ("opt_out", IN_SID)
    assert (inbound.from_number, inbound.to_number, inbound.body) == (RECIPIENT, OUR_NUMBER, "STOP")
    entry = stop_group.entries.get()
    assert entry.source == DncEntry.Source.STOP_REPLY
    assert '"STOP" from +13125550123' in entry.evidence and IN_SID in entry.evidence
    assert list(inbound.dnc_entries.all()) == [entry]
    for message in queued:
        message.refresh_from_db()
        assert (message.status, message.withdraw_reason) == (
            MessageStatus.WITHDRAWN,
            WithdrawReason.OPTED_OUT,
        )
    other_number.refresh_from_db()
    other_bu.refresh_from_db()
    assert other_number.status == other_bu.status == MessageStatus.QUEUED
    assert "withdrew 3 queued text(s)" in inbound.action_taken
    assert "confirmation sent" in inbound.action_taken

    # The same webhook again (a carrier retry): stored once, no second reply.
    again = post(client, INBOUND, payload("inbound_stop"))
    assert again.status_code == 200 and _reply(again) == ""
    assert InboundMessage.objects.count() == 1 and DncEntry.objects.count() == 1

    # A second STOP (another text): recorded, but one confirmation only.
    second = post(client, INBOUND, payload("inbound_stop", MessageSid="SM" + "3" * 32))
    assert _reply(second) == ""
    assert (
        "no second confirmation"
        in InboundMessage.objects.get(carrier_sid="SM" + "3" * 32).action_taken
    )


def test_stop_with_twilios_advanced_opt_out_fields_is_an_opt_out(client, registration):
    # Twilio adds OptOutType when its own opt-out handling saw the keyword; the text still
    # comes to us and is acted on the same way.
    response = post(client, INBOUND, payload("inbound_stop_advanced_opt_out"))
    assert response.status_code == 200
    inbound = InboundMessage.objects.get()
    assert (inbound.classification, inbound.body) == ("opt_out", "Stop")
    assert DncEntry.objects.get().source == DncEntry.Source.STOP_REPLY
    assert "<Message>" not in response.content.decode(), "Twilio answered: no second reply"


@pytest.mark.parametrize(
    ("opt_out_type", "classification"),
    [("STOP", "opt_out"), ("START", "opt_in"), ("HELP", "help")],
)
def test_twilios_opt_out_type_decides_for_words_our_lists_lack(
    client, registration, opt_out_type, classification
):
    # Twilio's Advanced Opt-Out lists may hold words the BU's lists do not (here French).
    pairs = payload("inbound_other", Body="Quitter", OptOutType=opt_out_type)
    response = post(client, INBOUND, pairs)
    assert response.status_code == 200
    assert "<Message>" not in response.content.decode()
    inbound = InboundMessage.objects.get()
    assert inbound.classification == classification
    assert "Twilio OptOutType" in inbound.action_taken
    assert DncEntry.objects.filter(source=DncEntry.Source.STOP_REPLY).exists() == (
        opt_out_type == "STOP"
    )


def test_stop_confirmation_from_the_registration_or_none(client, registration):
    registration.opt_out_confirmation = "Acme: unsubscribed. No more msgs. Reply START to rejoin."
    registration.save()
    assert _reply(post(client, INBOUND, payload("inbound_stop"))) == (
        "Acme: unsubscribed. No more msgs. Reply START to rejoin."
    )
    registration.opt_out_confirmation = ""
    registration.save()
    bu = registration.business_unit
    bu.opt_out_confirmation = ""
    bu.save()
    DncEntry.objects.all().delete()
    response = post(client, INBOUND, payload("inbound_stop", MessageSid="SM" + "4" * 32))
    assert response.status_code == 200 and _reply(response) == ""
    assert DncEntry.objects.count() == 1


def test_stop_lands_in_the_bu_default_when_the_registration_group_is_inactive(client, registration):
    bu = registration.business_unit
    default = DncGroupFactory(business_unit=bu, is_default=True)
    registration.stop_dnc_group = DncGroupFactory(business_unit=bu, is_active=False)
    registration.save()
    post(client, INBOUND, payload("inbound_stop"))
    assert default.entries.count() == 1
    assert not registration.stop_dnc_group.entries.exists()


def test_probable_opt_out_is_an_opt_out_listed_for_review(client, registration):
    default = DncGroupFactory(business_unit=registration.business_unit, is_default=True)
    response = post(client, INBOUND, payload("inbound_probable_opt_out"))
    assert _reply(response) == registration.business_unit.opt_out_confirmation
    inbound = InboundMessage.objects.get()
    assert inbound.classification == "probable_opt_out"
    assert inbound.review == InboundMessage.Review.PENDING
    entry = default.entries.get()
    assert entry.source == DncEntry.Source.PROBABLE_OPT_OUT
    assert "Please stop texting me" in entry.evidence


def test_spanish_free_text_is_a_probable_opt_out(client, registration):
    post(client, INBOUND, payload("inbound_spanish"))
    inbound = InboundMessage.objects.get()
    assert inbound.classification == "probable_opt_out"
    assert inbound.body == "No me envíes más mensajes por favor"
    assert DncEntry.objects.get().source == DncEntry.Source.PROBABLE_OPT_OUT


def test_review_only_policy_lists_a_probable_opt_out_without_acting(client, registration):
    bu = registration.business_unit
    bu.probable_opt_out_policy = ProbableOptOutPolicy.REVIEW_ONLY
    bu.save()
    queued = OutboundMessageFactory(business_unit=bu, registration=registration, to=RECIPIENT)
    response = post(client, INBOUND, payload("inbound_probable_opt_out"))
    assert _reply(response) == ""
    inbound = InboundMessage.objects.get()
    assert (inbound.classification, inbound.review) == ("probable_opt_out", "pending")
    assert "review only" in inbound.action_taken
    assert not DncEntry.objects.exists()
    queued.refresh_from_db()
    assert queued.status == MessageStatus.QUEUED


def test_start_removes_only_the_recipients_own_entries_and_confirms(client, registration):
    bu = registration.business_unit
    groups = [DncGroupFactory(business_unit=bu) for _ in range(5)]
    sources = [
        DncEntry.Source.STOP_REPLY,
        DncEntry.Source.PROBABLE_OPT_OUT,
        DncEntry.Source.MANUAL,
        DncEntry.Source.FILE_IMPORT,
        DncEntry.Source.CARRIER,
    ]
    for group, source in zip(groups, sources, strict=True):
        DncEntryFactory(group=group, phone_number=RECIPIENT, source=source)
    elsewhere = DncEntryFactory(phone_number=RECIPIENT, source=DncEntry.Source.STOP_REPLY)

    response = post(client, INBOUND, payload("inbound_start"))

    assert _reply(response) == registration.opt_in_confirmation
    left = set(DncEntry.objects.filter(group__business_unit=bu).values_list("source", flat=True))
    assert left == {DncEntry.Source.MANUAL, DncEntry.Source.FILE_IMPORT, DncEntry.Source.CARRIER}
    assert DncEntry.objects.filter(pk=elsewhere.pk).exists()  # another BU's entry stays
    inbound = InboundMessage.objects.get()
    assert inbound.classification == "opt_in"
    assert "removed 2 opt-out entries" in inbound.action_taken
    assert "still blocked by" in inbound.action_taken


def test_help_replies_with_business_name_contact_rates_and_opt_out(client, registration):
    reply = _reply(post(client, INBOUND, payload("inbound_help")))
    assert "Acme Dental" in reply
    assert "800-555-0100" in reply
    assert "Msg &amp; data rates may apply" in reply  # XML-escaped in the TwiML
    assert "Reply STOP to opt out" in reply
    assert InboundMessage.objects.get().classification == "help"
    assert not DncEntry.objects.exists()


def test_help_reply_of_the_registration_wins(client, registration):
    registration.help_reply = "Acme <Dental>: call 800-555-0199. Reply STOP to end."
    registration.save()
    reply = _reply(post(client, INBOUND, payload("inbound_help")))
    assert reply == "Acme &lt;Dental&gt;: call 800-555-0199. Reply STOP to end."


def test_other_text_is_stored_and_not_answered(client, registration):
    response = post(client, INBOUND, payload("inbound_other"))
    assert response.status_code == 200 and _reply(response) == ""
    inbound = InboundMessage.objects.get()
    assert (inbound.classification, inbound.review) == ("other", "not_needed")
    assert not DncEntry.objects.exists()


def test_inbound_to_an_unknown_number_is_200_and_stores_nothing(client, registration, accounts):
    response = post(client, INBOUND, payload("inbound_stop", To="+14155550199"))
    assert response.status_code == 200 and _reply(response) == ""
    assert not InboundMessage.objects.exists()
    assert not DncEntry.objects.exists()


@pytest.mark.parametrize(
    "attack", ["unsigned", "wrong_token", "tampered_body", "tampered_from", "wrong_url"]
)
def test_inbound_without_a_valid_signature_is_403_and_stores_nothing(client, registration, attack):
    pairs = payload("inbound_stop")
    if attack == "unsigned":
        response = post(client, INBOUND, pairs, signed=False)
    elif attack == "wrong_token":
        response = post(client, INBOUND, pairs, token="not-the-token")
    elif attack == "tampered_body":
        pairs = payload("inbound_other")
        sent = [(k, "STOP" if k == "Body" else v) for k, v in pairs]
        response = post(client, INBOUND, pairs, sent_pairs=sent)
    elif attack == "tampered_from":
        sent = [(k, "+13125550999" if k == "From" else v) for k, v in pairs]
        response = post(client, INBOUND, pairs, sent_pairs=sent)
    else:
        response = post(client, INBOUND, pairs, url=PUBLIC + STATUS)
    assert response.status_code == 403
    assert not InboundMessage.objects.exists()
    assert not DncEntry.objects.exists()


def test_inbound_checked_with_the_numbers_registration_account(client, registration, monkeypatch):
    monkeypatch.setenv("TWILIO_CLINIC_ACCOUNT_SID", "AC" + "c" * 32)
    monkeypatch.setenv("TWILIO_CLINIC_AUTH_TOKEN", "clinic-token")
    registration.carrier_account = "clinic"
    registration.save()
    assert post(client, INBOUND, payload("inbound_stop")).status_code == 403
    assert post(client, INBOUND, payload("inbound_stop"), token="clinic-token").status_code == 200
    assert InboundMessage.objects.count() == 1


# --- the skills' side --------------------------------------------------------------------------


def test_opt_out_reaches_the_contributing_groups_of_the_skill_that_texted_last(
    client, registration
):
    bu = registration.business_unit
    default = DncGroupFactory(business_unit=bu, is_default=True)
    contributing = DncGroupFactory(business_unit=bu, name="Skill opt-outs")
    skill = SkillFactory(business_unit=bu, registration=registration)
    skill.contributing_dnc_groups.add(contributing, default)
    attempt = AttemptFactory(
        skill=skill,
        destination__phone_number=RECIPIENT,
        message__registration=registration,
        message__to=RECIPIENT,
        message__status=MessageStatus.DELIVERED,
        message__sent_at="2026-01-05T15:00:00Z",
    )

    post(client, INBOUND, payload("inbound_stop"))

    assert default.entries.get().source == DncEntry.Source.STOP_REPLY
    assert contributing.entries.get().source == DncEntry.Source.STOP_REPLY
    inbound = InboundMessage.objects.get()
    assert inbound.dnc_entries.count() == 2
    attempt.record.refresh_from_db()
    assert attempt.record.is_final and attempt.record.final_reason == FinalReason.OPTED_OUT
    assert "Skill opt-outs" in inbound.action_taken


def test_no_contributing_groups_when_the_last_text_was_not_a_skills(client, registration):
    bu = registration.business_unit
    contributing = DncGroupFactory(business_unit=bu)
    skill = SkillFactory(business_unit=bu, registration=registration)
    skill.contributing_dnc_groups.add(contributing)
    AttemptFactory(
        skill=skill,
        message__registration=registration,
        message__to=RECIPIENT,
        message__status=MessageStatus.DELIVERED,
        message__sent_at="2026-01-05T15:00:00Z",
    )
    # A later text to that number that no skill sent (e.g. an API message).
    OutboundMessageFactory(
        business_unit=bu,
        registration=registration,
        to=RECIPIENT,
        status=MessageStatus.DELIVERED,
        sent_at="2026-01-06T15:00:00Z",
    )
    post(client, INBOUND, payload("inbound_stop"))
    assert not contributing.entries.exists()
    assert DncEntry.objects.count() == 1


# --- the WSGI entry point: webhooks without the admin's middleware ----------------------------


def _through_wsgi(request) -> tuple[int, dict, bytes]:
    """``request`` (from RequestFactory) through ``pcsms.wsgi.application``, as gunicorn calls
    it, with the test's database connection kept open (as Django's test client does)."""
    from django.core import signals
    from django.db import close_old_connections

    from pcsms.wsgi import application

    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    try:
        body = b"".join(application(request.environ, start_response))
    finally:
        for signal in (signals.request_started, signals.request_finished):
            signal.connect(close_old_connections)
    return answer["status"], answer["headers"], body


def test_the_wsgi_entry_point_applies_signed_webhooks_without_the_admins_middleware(
    rf, message, settings
):
    settings.ALLOWED_HOSTS = ["testserver", "sms.example.com"]
    pairs = payload("status_delivered")
    signature = compute_signature(PUBLIC + STATUS, dict(pairs), TOKEN)
    form = "application/x-www-form-urlencoded"
    unsigned = rf.post(STATUS, data=urlencode(pairs), content_type=form)
    status, _headers, _body = _through_wsgi(unsigned)
    assert status == 403
    assert _state(message) == (MessageStatus.SENT, 0)

    signed = rf.post(
        STATUS, data=urlencode(pairs), content_type=form, headers={"X-Twilio-Signature": signature}
    )
    status, headers, body = _through_wsgi(signed)
    assert (status, body.decode().endswith("<Response></Response>")) == (200, True)
    assert _state(message) == (MessageStatus.DELIVERED, 1)
    assert "X-Frame-Options" not in headers and "Set-Cookie" not in headers

    # People's pages keep every middleware.
    status, headers, _body = _through_wsgi(rf.get("/admin/login/"))
    assert status == 200 and headers["X-Frame-Options"] == "DENY"


def test_start_lifts_the_carriers_block_only_when_the_carrier_confirms_it(client, registration):
    """A 21610 ("unsubscribed") made a carrier entry: the carrier itself blocks the number.
    A START that Twilio did not handle leaves it (a text would fail anyway); Twilio's own
    START (OptOutType=START: it lifted its block) removes it."""
    group = dnc_default_group(business_unit=registration.business_unit)
    DncEntry.objects.create(
        group=group, phone_number=RECIPIENT, source=DncEntry.Source.CARRIER, evidence="21610"
    )
    post(client, INBOUND, payload("inbound_start"))
    assert DncEntry.objects.filter(source=DncEntry.Source.CARRIER).exists()
    inbound = InboundMessage.objects.get()
    assert "the carrier's block (21610) stays until the carrier confirms" in inbound.action_taken

    confirmed = payload("inbound_start", MessageSid="SM" + "4" * 32, OptOutType="START")
    post(client, INBOUND, confirmed)
    assert not DncEntry.objects.filter(phone_number=RECIPIENT).exists()
    later = InboundMessage.objects.get(carrier_sid="SM" + "4" * 32)
    assert "removed 1 opt-out entry" in later.action_taken


# --- Keywords in other languages ---------------------------------------------------------------


def test_alto_opts_out_and_is_confirmed_in_spanish_once(client, registration):
    """Every BU starts with the Spanish set carriers require (ALTO, AYUDA)."""
    response = post(client, INBOUND, payload("inbound_stop", Body="Alto"))
    assert _reply(response).startswith("Se ha dado de baja y no recibirá más mensajes.")
    inbound = InboundMessage.objects.get()
    assert inbound.classification == "opt_out"
    assert "keyword ALTO" in inbound.action_taken and "answered in Spanish" in inbound.action_taken
    assert DncEntry.objects.get().source == DncEntry.Source.STOP_REPLY
    again = post(client, INBOUND, payload("inbound_stop", Body="PARAR", MessageSid="SM" + "5" * 32))
    assert _reply(again) == "", "one confirmation, never a second"


def test_ayuda_is_answered_in_spanish_with_the_business_units_details(client, registration):
    response = post(client, INBOUND, payload("inbound_help", Body="AYUDA"))
    assert _reply(response) == (
        "Acme Dental: para ayuda, contacte a 800-555-0100. La frecuencia de los mensajes varía. "
        "Pueden aplicarse tarifas de mensajes y datos. Responda ALTO para cancelar."
    )
    english = post(client, INBOUND, payload("inbound_help", MessageSid="SM" + "6" * 32))
    assert _reply(english).startswith("Acme Dental: for help contact 800-555-0100.")


def test_spanish_free_text_is_confirmed_in_spanish(client, registration):
    response = post(client, INBOUND, payload("inbound_spanish"))
    assert _reply(response).startswith("Se ha dado de baja")


def test_a_compliance_owner_adds_a_language_and_a_word(client, registration, other_bu):
    """A French set (ARRET, AIDE) in this BU answers in French; another BU's set does not
    reach this one."""
    bu = registration.business_unit
    KeywordSet.objects.create(
        business_unit=bu,
        language="French",
        opt_out_keywords=["ARRET"],
        help_keywords=["AIDE"],
        opt_out_confirmation="Vous êtes désabonné(e).",
    )
    KeywordSet.objects.create(
        business_unit=other_bu, language="Italian", opt_out_keywords=["ABMELDEN"]
    )
    assert _reply(post(client, INBOUND, payload("inbound_stop", Body="Arrêt"))) == (
        "Vous êtes désabonné(e)."
    )
    other = post(
        client, INBOUND, payload("inbound_other", Body="ABMELDEN", MessageSid="SM" + "8" * 32)
    )
    assert _reply(other) == ""
    assert InboundMessage.objects.get(carrier_sid="SM" + "8" * 32).classification != "opt_out"
