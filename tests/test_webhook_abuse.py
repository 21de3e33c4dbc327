"""Attacks on the carrier webhooks: nothing forged, replayed or oversized changes anything.

The status callback's signature checks are in ``tests/test_callbacks.py``; this file adds the
inbound webhook (a forged STOP must opt no one out, a forged START must opt no one back in), bodies
over the size limits, and replays (docs/security.md, "The public endpoints").
"""

# The fixtures are imported from test_callbacks and used as arguments, which ruff reads as
# redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from dnc.models import DncEntry
from messaging.backends.twilio import compute_signature
from messaging.models import InboundMessage, MessageStatus, OutboundMessage
from tests.factories import DncEntryFactory, DncGroupFactory, OutboundMessageFactory
from tests.test_callbacks import (  # noqa: F401  (fixtures)
    INBOUND,
    PUBLIC,
    RECIPIENT,
    STATUS,
    TOKEN,
    _twilio,
    message,
    payload,
    post,
    registration,
)


def _world(registration) -> tuple:
    """Counts a forged request must leave as they are."""
    statuses = tuple(OutboundMessage.objects.order_by("pk").values_list("status", flat=True))
    return (
        InboundMessage.objects.count(),
        tuple(DncEntry.objects.order_by("pk").values_list("pk", "phone_number", "source")),
        statuses,
    )


@pytest.fixture
def queued(registration):
    return OutboundMessageFactory(
        business_unit=registration.business_unit, registration=registration, to=RECIPIENT
    )


@pytest.mark.parametrize("attack", ["unsigned", "wrong_token", "wrong_url", "tampered_body"])
def test_a_forged_stop_opts_no_one_out(client, registration, queued, attack):
    pairs = payload("inbound_stop")
    before = _world(registration)
    if attack == "unsigned":
        response = post(client, INBOUND, pairs, signed=False)
    elif attack == "wrong_token":
        response = post(client, INBOUND, pairs, token="guessed")
    elif attack == "wrong_url":
        response = post(client, INBOUND, pairs, url="https://evil.example.com" + INBOUND)
    else:  # a signed "hello" whose body was changed to STOP on the way
        signed = payload("inbound_stop", Body="hello")
        response = post(client, INBOUND, signed, sent_pairs=pairs)
    assert response.status_code == 403
    assert _world(registration) == before
    queued.refresh_from_db()
    assert queued.status == MessageStatus.QUEUED


def test_a_forged_start_opts_no_one_back_in(client, registration):
    group = DncGroupFactory(business_unit=registration.business_unit)
    DncEntryFactory(group=group, phone_number=RECIPIENT, source=DncEntry.Source.STOP_REPLY)
    before = _world(registration)
    response = post(client, INBOUND, payload("inbound_stop", Body="START"), token="guessed")
    assert response.status_code == 403
    assert _world(registration) == before


def test_a_replayed_stop_is_acted_on_once(client, registration, queued):
    first = post(client, INBOUND, payload("inbound_stop"))
    assert first.status_code == 200
    after_first = _world(registration)
    for _ in range(3):
        assert post(client, INBOUND, payload("inbound_stop")).status_code == 200
    assert _world(registration) == after_first
    assert InboundMessage.objects.count() == 1


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_body_over_the_size_limit_is_refused(client, registration, message, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    name = "status_delivered" if path == STATUS else "inbound_stop"
    pairs = payload(name, Padding="x" * 20_000)
    before = _world(registration)
    response = post(client, path, pairs)
    assert response.status_code in (400, 413)
    assert _world(registration) == before


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_body_with_too_many_fields_is_refused(client, registration, message, path):
    name = "status_delivered" if path == STATUS else "inbound_stop"
    pairs = payload(name) + [(f"f{i}", "1") for i in range(2_000)]
    before = _world(registration)
    response = post(client, path, pairs)
    assert response.status_code in (400, 413)
    assert _world(registration) == before


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
    response = client.post(
        STATUS,
        data=urlencode(tampered),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_get_is_refused(client, path):
    assert client.get(path).status_code == 405
