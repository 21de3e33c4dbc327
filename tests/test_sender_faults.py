"""Faults: worker processes killed with SIGKILL mid-run, a carrier that throttles and errors.

Real ``manage.py dispatch`` processes send through the real Twilio SDK to the in-process fake
carrier. Whatever happens, the carrier must never receive a text twice, and every text must end
sent, failed with a reason, or "unknown outcome" for review: never silently missing.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from messaging.fake_carrier import FakeCarrier
from messaging.models import MessageStatus, OutboundMessage
from tests.factories import OutboundMessageFactory, SmsRegistrationFactory
from tests.processes import ROOT, database_url

TOKEN = "fault-test-token"


def _worker(carrier: FakeCarrier) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="pcsms.settings",
        DEBUG="true",
        DATABASE_URL=database_url(),
        TWILIO_ACCOUNT_SID=carrier.account_sid,
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_API_BASE_URL=carrier.url,
        SENDER_RECONCILE_AFTER="1",
        PUBLIC_BASE_URL="http://127.0.0.1:9",
        LOG_LEVEL="ERROR",
    )
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "dispatch",
            "--until-idle",
            "--backend",
            "messaging.backends.twilio.TwilioBackend",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.django_db(transaction=True)
def test_killed_workers_and_a_flaky_carrier_lose_nothing_and_duplicate_nothing():
    registration = SmsRegistrationFactory(transport_code__messages_per_second=40)
    messages = [
        OutboundMessageFactory(
            business_unit=registration.business_unit, registration=registration, body=f"Text {i}"
        )
        for i in range(80)
    ]
    rng = random.Random(7)
    with FakeCarrier(
        latency_ms=40,
        throttle_rate=0.1,
        fail_rate=0.1,
        callbacks=False,
        auth_token=TOKEN,
        seed=3,
    ) as carrier:
        for _ in range(5):
            worker = _worker(carrier)
            time.sleep(rng.uniform(1.5, 3.0))  # start-up takes about a second
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        # Then let workers finish the job (a dead holder's lease expires within seconds).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            worker = _worker(carrier)
            worker.wait(timeout=120)
            pending = OutboundMessage.objects.filter(
                status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
            )
            if not pending.exists():
                break
            # Throttled texts wait for their backoff; give them time.
            time.sleep(1)
        assert carrier.duplicates() == []
        received = {r["body"] for r in carrier.received}
    final = {m.id: m for m in OutboundMessage.objects.all()}
    assert len(final) == len(messages)
    for message in final.values():
        assert message.status in {
            MessageStatus.SENT,
            MessageStatus.FAILED,
            MessageStatus.UNKNOWN,
        }, f"{message.body} ended {message.status}"
        if message.status == MessageStatus.FAILED:
            assert message.error_code or message.error_text
        if message.status == MessageStatus.SENT:
            assert message.body in received
    assert {m.body for m in final.values() if m.status == MessageStatus.SENT} == received
