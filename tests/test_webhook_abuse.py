"""Attacks on the carrier webhooks: nothing forged, replayed or oversized changes anything.

The status callback's everyday signature checks are in ``tests/test_callbacks.py``; this file adds
the inbound webhook (a forged STOP must opt no one out, a forged START must opt no one back in),
forgeries under both account set-ups, replays (acted on once, never backwards), bodies over the
size limits and other methods (docs/security.md, "The public endpoints"). Each attack runs
against a world with things in it (a skill's text awaiting its receipt, a queued text, a DNC
group, a CRM webhook) and must leave all of it as it was.
"""

# The fixtures are imported from test_callbacks and used as arguments, which ruff reads as
# redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from dnc.models import DncEntry, DncGroup
from messaging.backends.twilio import compute_signature
from messaging.models import InboundMessage, MessageEvent, MessageStatus, OutboundMessage
from skills.models import Attempt, FinalReason, Record, XsEvent
from tests.factories import (
    AttemptFactory,
    DncEntryFactory,
    DncGroupFactory,
    OutboundMessageFactory,
    SkillFactory,
)
from tests.test_callbacks import (  # noqa: F401  (fixtures)
    INBOUND,
    OUT_SID,
    PUBLIC,
    RECIPIENT,
    STATUS,
    TOKEN,
    _reply,
    _through_wsgi,
    _twilio,
    accounts,
    message,
    payload,
    post,
    registration,
)

CLINIC_TOKEN = "clinic-token"  # the second account's token in the ``accounts`` fixture
FORM = "application/x-www-form-urlencoded"
SMALL_LIMIT = 10_000  # DATA_UPLOAD_MAX_MEMORY_SIZE in the size tests: the same code path, faster


def _world(*_) -> dict:
    """Everything a webhook can change, as a user (or the CRM) would see it."""
    return {
        "messages": sorted(
            OutboundMessage.objects.values_list(
                "pk", "status", "error_code", "carrier_sid", "withdraw_reason"
            )
        ),
        "events": MessageEvent.objects.count(),
        "inbound": InboundMessage.objects.count(),
        "dnc": sorted(
            (pk, str(phone), source)
            for pk, phone, source in DncEntry.objects.values_list("pk", "phone_number", "source")
        ),
        "dnc_groups": DncGroup.objects.count(),
        "records": sorted(Record.objects.values_list("pk", "is_final", "final_reason")),
        "attempts": sorted(Attempt.objects.values_list("pk", "outcome")),
        "crm_events": XsEvent.objects.count(),
    }


def _opted_out() -> bool:
    return DncEntry.objects.filter(phone_number=RECIPIENT).exists()


def _inbound(name: str, sid: str) -> list[tuple[str, str]]:
    """A recorded inbound payload as another text (its own carrier id)."""
    return payload(name, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)


def _signed(client, path, pairs, *, signature: str | None = None, signed_url: str = ""):
    """POST ``pairs`` with ``signature``, or one made over ``signed_url`` (not ``path``)."""
    if signature is None:
        signature = compute_signature(signed_url, dict(pairs), TOKEN)
    return client.post(
        path, data=urlencode(pairs), content_type=FORM, headers={"X-Twilio-Signature": signature}
    )


@pytest.fixture
def queued(registration):
    return OutboundMessageFactory(
        business_unit=registration.business_unit, registration=registration, to=RECIPIENT
    )


@pytest.fixture
def world(registration, queued):
    """A skill's text to RECIPIENT awaiting its receipt (its record open, the skill's CRM
    webhook told of every finalized record), a queued text a STOP would withdraw and the BU's
    default DNC group."""
    bu = registration.business_unit
    DncGroupFactory(business_unit=bu, name="Default DNC", is_default=True)
    skill = SkillFactory(
        business_unit=bu, registration=registration, xs_webhook_url="https://crm.example.com/h"
    )
    attempt = AttemptFactory(
        skill=skill,
        destination__phone_number=RECIPIENT,
        message__registration=registration,
        message__to=RECIPIENT,
        message__status=MessageStatus.SENT,
        message__carrier_sid=OUT_SID,
        message__source=f"skill:{skill.pk}",
        message__sent_at="2026-01-05T15:00:00Z",
    )
    assert not attempt.record.is_final and queued.status == MessageStatus.QUEUED
    return {"attempt": attempt, "queued": queued, "skill": skill}


# --- forged requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attack",
    [
        "unsigned",
        "wrong_token",
        "other_accounts_token",
        "wrong_url",
        "signed_for_the_status_url",
        "tampered_body",
        "opt_out_type_added",
        "empty_signature",
        "non_ascii_signature",
    ],
)
def test_a_forged_stop_opts_no_one_out(client, world, accounts, attack):
    pairs = payload("inbound_stop")
    before = _world()
    if attack == "unsigned":
        response = post(client, INBOUND, pairs, signed=False)
    elif attack == "wrong_token":
        response = post(client, INBOUND, pairs, token="guessed")
    elif attack == "other_accounts_token":
        # With two accounts a real token of this installation, but not the number's account's.
        response = post(client, INBOUND, pairs, token=CLINIC_TOKEN)
    elif attack == "wrong_url":
        response = post(client, INBOUND, pairs, url="https://evil.example.com" + INBOUND)
    elif attack == "signed_for_the_status_url":
        response = _signed(client, INBOUND, pairs, signed_url=PUBLIC + STATUS)
    elif attack == "tampered_body":  # a signed "hello" whose body was changed to STOP on the way
        signed = payload("inbound_stop", Body="hello")
        response = post(client, INBOUND, signed, sent_pairs=pairs)
    elif attack == "opt_out_type_added":
        # Twilio's OptOutType decides for words our lists lack: adding it must break the seal.
        signed = payload("inbound_other")
        response = post(client, INBOUND, signed, sent_pairs=[*signed, ("OptOutType", "STOP")])
    elif attack == "empty_signature":
        response = _signed(client, INBOUND, pairs, signature="")
    else:
        response = _signed(client, INBOUND, pairs, signature="é" * 28)
    assert response.status_code == 403
    assert not _opted_out()
    assert _world() == before


def test_a_forged_start_opts_no_one_back_in(client, registration):
    group = DncGroupFactory(business_unit=registration.business_unit)
    DncEntryFactory(group=group, phone_number=RECIPIENT, source=DncEntry.Source.STOP_REPLY)
    before = _world()
    response = post(client, INBOUND, payload("inbound_stop", Body="START"), token="guessed")
    assert response.status_code == 403
    assert _world() == before


@pytest.mark.parametrize(
    "attack", ["signed_for_the_inbound_url", "forged_21610", "empty_signature", "non_ascii"]
)
def test_a_forged_status_callback_changes_nothing(client, world, accounts, attack):
    delivered = payload("status_delivered")
    before = _world()
    if attack == "signed_for_the_inbound_url":
        response = _signed(client, STATUS, delivered, signed_url=PUBLIC + INBOUND)
    elif attack == "forged_21610":
        # "Unsubscribed recipient" would put the number on the DNC list and end the record.
        response = post(client, STATUS, payload("status_failed_21610"), token="guessed")
    elif attack == "empty_signature":
        response = _signed(client, STATUS, delivered, signature="")
    else:
        response = _signed(client, STATUS, delivered, signature="☃" * 28)
    assert response.status_code == 403
    assert not _opted_out()
    assert _world() == before


def test_a_signature_for_another_message_cannot_move_this_one(client, registration, message):
    other = OutboundMessageFactory(
        business_unit=registration.business_unit,
        registration=registration,
        status=MessageStatus.SENT,
        carrier_sid="SM" + "9" * 32,
    )
    pairs = payload("status_undelivered_30003", MessageSid=other.carrier_sid)
    signature = compute_signature(PUBLIC + STATUS, dict(pairs), TOKEN)
    tampered = [(k, message.carrier_sid if k == "MessageSid" else v) for k, v in pairs]
    before = _world()
    response = _signed(client, STATUS, tampered, signature=signature)
    assert response.status_code == 403
    assert _world() == before


# --- replays ------------------------------------------------------------------------------------


def test_a_replayed_stop_is_acted_on_once(client, registration, queued):
    first = post(client, INBOUND, payload("inbound_stop"))
    assert first.status_code == 200
    after_first = _world()
    for _ in range(3):
        assert post(client, INBOUND, payload("inbound_stop")).status_code == 200
    assert _world() == after_first
    assert InboundMessage.objects.count() == 1


def test_a_replayed_receipt_finalizes_the_record_once_and_tells_the_crm_once(client, world):
    record = world["attempt"].record
    assert post(client, STATUS, payload("status_delivered")).status_code == 200
    record.refresh_from_db()
    assert (record.is_final, record.final_reason) == (True, FinalReason.DELIVERED)
    assert XsEvent.objects.filter(skill=world["skill"]).count() == 1
    after_first = _world()

    # The same receipt again, then older reports delivered late: nothing moves back.
    for name in ("status_delivered", "status_sent", "status_queued", "status_undelivered_30003"):
        assert post(client, STATUS, payload(name)).status_code == 200

    sent = world["attempt"].message
    sent.refresh_from_db()
    assert (sent.status, sent.error_code) == (MessageStatus.DELIVERED, "")
    # Every report is kept as an event (the carrier's log, messaging.services), but only the
    # first applied; the record, the CRM's events and the DNC list are as after the first.
    assert list(sent.events.values_list("detail", flat=True)) == ["applied"] + ["no change"] * 4
    now = _world()
    assert now.pop("events") == after_first.pop("events") + 4
    assert now == after_first


def test_a_replayed_failure_counts_once(client, world):
    assert post(client, STATUS, payload("status_undelivered_30003")).status_code == 200
    world["attempt"].refresh_from_db()
    assert world["attempt"].outcome  # the failure was recorded on the attempt
    after_first = _world()
    assert post(client, STATUS, payload("status_undelivered_30003")).status_code == 200
    assert post(client, STATUS, payload("status_sent")).status_code == 200
    now = _world()
    assert now.pop("events") == after_first.pop("events") + 2
    assert now == after_first  # no second failure counted, no new text, no status back


def test_a_replayed_stop_does_not_undo_a_later_start(client, world):
    stop, start = "SM" + "5" * 32, "SM" + "6" * 32
    assert post(client, INBOUND, _inbound("inbound_stop", stop)).status_code == 200
    assert _opted_out()
    assert post(client, INBOUND, _inbound("inbound_start", start)).status_code == 200
    assert not _opted_out()
    before = _world()

    again = post(client, INBOUND, _inbound("inbound_stop", stop))

    assert again.status_code == 200 and _reply(again) == ""  # no second confirmation either
    assert not _opted_out()
    assert _world() == before


def test_a_replayed_start_does_not_undo_a_later_stop(client, world):
    first_stop, start, second_stop = "SM" + "5" * 32, "SM" + "6" * 32, "SM" + "8" * 32
    for name, sid in (
        ("inbound_stop", first_stop),
        ("inbound_start", start),
        ("inbound_stop", second_stop),
    ):
        assert post(client, INBOUND, _inbound(name, sid)).status_code == 200
    assert _opted_out()
    before = _world()

    again = post(client, INBOUND, _inbound("inbound_start", start))

    assert again.status_code == 200 and _reply(again) == ""
    assert _opted_out()
    assert _world() == before


# --- oversized requests -------------------------------------------------------------------------

PAYLOADS = {STATUS: "status_delivered", INBOUND: "inbound_stop"}


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_body_over_the_size_limit_is_refused(client, world, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = SMALL_LIMIT
    # Signed with the right token: the size alone refuses it, before anything is looked up.
    pairs = payload(PAYLOADS[path], Padding="x" * 2 * SMALL_LIMIT)
    before = _world()
    response = post(client, path, pairs)
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")
    assert f"larger than {SMALL_LIMIT:,} bytes" in response.content.decode()
    assert not _opted_out()
    assert _world() == before


def test_an_oversized_stop_is_refused_by_the_wsgi_entry_point_too(rf, world, settings):
    # Production serves the webhooks without middleware (pcsms/wsgi.py): the same answer there.
    settings.ALLOWED_HOSTS = ["testserver", "sms.example.com"]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = SMALL_LIMIT
    pairs = payload("inbound_stop", Padding="x" * 2 * SMALL_LIMIT)
    signature = compute_signature(PUBLIC + INBOUND, dict(pairs), TOKEN)
    request = rf.post(
        INBOUND, data=urlencode(pairs), content_type=FORM, headers={"X-Twilio-Signature": signature}
    )
    before = _world()
    status, _headers, body = _through_wsgi(request)
    assert (status, b"larger than" in body) == (413, True)
    assert _world() == before


@pytest.mark.parametrize("path", [STATUS, INBOUND])
@pytest.mark.parametrize("where", ["form", "query"])
def test_a_body_with_too_many_fields_is_refused(client, world, settings, path, where):
    extra = [(f"f{i}", "1") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)]
    before = _world()
    if where == "form":
        response = post(client, path, payload(PAYLOADS[path]) + extra)
    else:
        url = f"{path}?{urlencode(extra)}"
        response = post(client, url, payload(PAYLOADS[path]), url=PUBLIC + url)
    assert response.status_code == 400
    assert "Too many parameters" in response.content.decode()
    assert _world() == before


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_multipart_body_is_refused_before_it_is_read(client, world, settings, path):
    # Twilio posts a urlencoded form. A multipart body's files are not bound by
    # DATA_UPLOAD_MAX_MEMORY_SIZE: Django would stream one of any size to disk first.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = SMALL_LIMIT
    upload = SimpleUploadedFile("big.bin", b"\0" * 2 * SMALL_LIMIT)
    before = _world()
    response = client.post(path, data={**dict(payload(PAYLOADS[path])), "file": upload})
    assert response.status_code == 415
    assert _world() == before


# --- other methods ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [STATUS, INBOUND])
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_are_405_and_change_nothing(client, world, path, method):
    pairs = payload(PAYLOADS[path])
    before = _world()
    if method == "get":  # the report in the query string, signed as Twilio would sign a GET
        url = f"{path}?{urlencode(pairs)}"
        headers = {"X-Twilio-Signature": compute_signature(PUBLIC + url, {}, TOKEN)}
        response = client.get(url, headers=headers)
    else:
        headers = {"X-Twilio-Signature": compute_signature(PUBLIC + path, dict(pairs), TOKEN)}
        send = getattr(client, method)
        response = send(path, data=urlencode(pairs), content_type=FORM, headers=headers)
    assert response.status_code == 405
    assert not _opted_out()
    assert _world() == before
