"""A STOP takes effect at once: with a sender running, nothing more goes to that number.

A real sender thread sends to the number at a steady pace; a signed STOP arrives through the
inbound webhook in the middle. Every text handed to the backend for that number must have been
handed over before the opt-out's DNC entry was stored, and the rest must be withdrawn.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.utils import timezone

from dnc.models import DncEntry
from messaging.backends import locmem
from messaging.backends.twilio import compute_signature
from messaging.models import MessageStatus, OutboundMessage, WithdrawReason
from messaging.sender import CodeSender
from tests.factories import (
    DncGroupFactory,
    OutboundMessageFactory,
    SmsRegistrationFactory,
    TransportCodeFactory,
)

TOKEN = "stop-test-token"
PUBLIC = "https://sms.example.com"
OUR_NUMBER = "+14155550100"
RECIPIENT = "+13125550123"

# (message, the moment it was handed to the backend)
handed_over: list[tuple[int, str, object]] = []
_lock = threading.Lock()


class TimedLocmemBackend(locmem.LocmemBackend):
    """The locmem backend, noting when each text was handed to it."""

    def send_messages(self, messages):
        now = timezone.now()
        with _lock:
            handed_over.extend((sms.message_id, sms.to, now) for sms in messages)
        return super().send_messages(messages)


@pytest.fixture(autouse=True)
def _setup(settings):
    settings.TWILIO_ACCOUNT_SID = "AC" + "a" * 32
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.SENDER_RELEASE_QUIET = 0
    locmem.reset()
    handed_over.clear()
    yield
    locmem.reset()


def _post_stop(client):
    params = {
        "MessageSid": "SM" + "5" * 32,
        "AccountSid": "AC" + "a" * 32,
        "From": RECIPIENT,
        "To": OUR_NUMBER,
        "Body": "STOP",
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    url = PUBLIC + "/sms/twilio/inbound/"
    return client.post(
        "/sms/twilio/inbound/",
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": compute_signature(url, params, TOKEN)},
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("concurrency", [0, 4], ids=["inline-delivery", "delivery-threads"])
def test_no_text_goes_to_a_number_after_its_stop_is_stored(client, concurrency):
    code = TransportCodeFactory(number=OUR_NUMBER, messages_per_second=20)
    registration = SmsRegistrationFactory(business_unit=code.business_unit, transport_code=code)
    bu = registration.business_unit
    DncGroupFactory(business_unit=bu, is_default=True)
    # Texts to the recipient interleaved with texts to others, oldest first: ~6 s at 20/s.
    for n in range(60):
        OutboundMessageFactory(business_unit=bu, registration=registration, to=RECIPIENT)
        OutboundMessageFactory(business_unit=bu, registration=registration, to=f"+1312200{n:04d}")

    sender = CodeSender(
        code.id,
        backend_path=f"{__name__}.TimedLocmemBackend",
        concurrency=concurrency,
        idle_exit=0.5,
    )

    def run():
        try:
            sender.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="test-sender")
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while sum(1 for _, to, _ in handed_over if to == RECIPIENT) < 10:
            assert time.monotonic() < deadline, "the sender did not start sending"
            time.sleep(0.01)
        response = _post_stop(client)
        assert response.status_code == 200
        assert "<Message>" in response.content.decode()
        # Let it keep sending to the others for a while.
        time.sleep(0.5)
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive()

    stored = DncEntry.objects.get(phone_number=RECIPIENT).created_at
    to_recipient = [(i, at) for i, to, at in handed_over if to == RECIPIENT]
    late = [(i, at) for i, at in to_recipient if at >= stored]
    assert 10 <= len(to_recipient) < 60
    rows = OutboundMessage.objects.filter(to=RECIPIENT)
    if concurrency == 0:
        # Delivered in the sender's own thread: the hand-over itself precedes the entry.
        assert late == [], f"{len(late)} text(s) handed over after the STOP was stored"
    else:
        # With delivery threads, a text claimed just before may reach the backend a moment
        # later; none was *claimed* after the opt-out was stored.
        claimed = rows.filter(claimed_at__isnull=False).values_list("claimed_at", flat=True)
        assert all(at < stored for at in claimed)
    # Everything not handed over was withdrawn as opted out; nothing is left to send.
    sent_ids = {i for i, _ in to_recipient}
    for message in rows.exclude(id__in=sent_ids):
        assert (message.status, message.withdraw_reason) == (
            MessageStatus.WITHDRAWN,
            WithdrawReason.OPTED_OUT,
        )
    assert rows.filter(id__in=sent_ids).exclude(status=MessageStatus.SENT).count() == 0
    # The sender went on with the other numbers.
    others = OutboundMessage.objects.exclude(to=RECIPIENT)
    assert others.filter(status=MessageStatus.SENT).count() > len(to_recipient)
