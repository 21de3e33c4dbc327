"""The XS webhook: the CRM hears of each record the skill finalizes and is asked for more
records below the refill threshold; signed, batched, retried."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from messaging.models import MessageStatus
from skills.models import Record, Skill, XsEvent
from skills.outcomes import attempt_record_outcome
from skills.sweeps import sweep_records
from skills.xs import XS_MAX_ATTEMPTS, skill_xs_key_issue, xs_deliver, xs_refill_check
from tests.factories import AttemptFactory, CallingListFactory, RecordFactory, SkillFactory


class _Crm(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # else each answer waits ~40 ms (Nagle + delayed ACK)

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))
        self.send_response(self.server.answer)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def crm():
    server = HTTPServer(("127.0.0.1", 0), _Crm)
    server.received, server.answer = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def skill(bu, crm):
    made = SkillFactory(
        business_unit=bu,
        name="Visits",
        state=Skill.State.RUNNING,
        xs_webhook_url=f"http://127.0.0.1:{crm.server_port}/pcsms",
    )
    made.calling_lists.add(CallingListFactory(business_unit=bu, name="Patients"))
    return made


def _text(skill, external_id):
    attempt = AttemptFactory(
        skill=skill, record__calling_list=skill.calling_lists.get(), record__external_id=external_id
    )
    return attempt


def test_a_delivered_record_is_told_to_the_crm_signed(skill, crm):
    key = skill_xs_key_issue(skill=skill)
    for external_id in ("C-1", "C-2"):
        attempt_record_outcome(attempt=_text(skill, external_id), status=MessageStatus.DELIVERED)

    assert xs_deliver() == {"delivered": 2, "retry": 0, "failed": 0}

    [(headers, body)] = crm.received  # one call for both
    payload = json.loads(body)
    assert (payload["skill"], payload["business_unit"]) == ("Visits", "Acme")
    assert [(e["type"], e["external_id"], e["outcome"]) for e in payload["events"]] == [
        ("finalized", "C-1", "delivered"),
        ("finalized", "C-2", "delivered"),
    ]
    assert payload["events"][0]["calling_list"] == "Patients"
    # The CRM checks the body with the key it holds.
    secret = hashlib.sha256(key.encode()).hexdigest().encode()
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert headers["X-Pcsms-Signature"] == expected
    assert set(XsEvent.objects.values_list("status", flat=True)) == {"delivered"}
    assert xs_deliver() == {"delivered": 0, "retry": 0, "failed": 0}  # nothing twice


def test_records_the_sweep_finalizes_are_told_too(skill, crm):
    calling_list = skill.calling_lists.get()
    RecordFactory(calling_list=calling_list, external_id="OLD", expires_on=dt.date(2020, 1, 1))

    sweep_records(skill=skill, now=dt.datetime.now(dt.UTC))
    xs_deliver()

    [(_headers, body)] = crm.received
    [event] = json.loads(body)["events"]
    assert (event["external_id"], event["outcome"]) == ("OLD", "expired")


def test_a_skill_without_a_webhook_writes_nothing(skill, crm):
    Skill.objects.filter(pk=skill.pk).update(xs_webhook_url="")
    skill.refresh_from_db()

    attempt_record_outcome(attempt=_text(skill, "C-1"), status=MessageStatus.DELIVERED)

    assert Record.objects.get(external_id="C-1").is_final
    assert not XsEvent.objects.exists()


def test_a_crm_that_fails_is_tried_again_later_then_given_up(skill, crm):
    attempt_record_outcome(attempt=_text(skill, "C-1"), status=MessageStatus.DELIVERED)
    crm.answer = 503
    now = dt.datetime.now(dt.UTC)

    assert xs_deliver(now=now) == {"delivered": 0, "retry": 1, "failed": 0}
    event = XsEvent.objects.get()
    assert (event.status, event.attempts, event.last_error) == (
        "pending",
        1,
        "HTTP 503 Service Unavailable",
    )
    assert event.next_attempt_at == now + dt.timedelta(minutes=1)
    assert xs_deliver(now=now) == {"delivered": 0, "retry": 0, "failed": 0}  # not due yet

    crm.answer = 200
    assert xs_deliver(now=now + dt.timedelta(minutes=1))["delivered"] == 1
    assert len(crm.received) == 2

    # A CRM that never answers: given up after XS_MAX_ATTEMPTS, and kept.
    attempt_record_outcome(attempt=_text(skill, "C-2"), status=MessageStatus.DELIVERED)
    crm.answer = 500
    later = now
    for _ in range(XS_MAX_ATTEMPTS):
        later += dt.timedelta(hours=5)
        xs_deliver(now=later)
    failed = XsEvent.objects.get(payload__external_id="C-2")
    assert (failed.status, failed.attempts) == ("failed", XS_MAX_ATTEMPTS)


def test_an_unreachable_crm_is_a_retry_with_the_reason(skill, crm):
    Skill.objects.filter(pk=skill.pk).update(xs_webhook_url="http://127.0.0.1:9/nothing")
    skill.refresh_from_db()
    attempt_record_outcome(attempt=_text(skill, "C-1"), status=MessageStatus.DELIVERED)

    assert xs_deliver()["retry"] == 1
    assert XsEvent.objects.get().last_error.startswith("no answer")


def test_below_the_refill_threshold_the_crm_is_asked_once_for_more(skill, crm):
    skill.xs_refill_threshold = 5
    skill.save()
    for external_id in ("R-1", "R-2"):
        _text(skill, external_id)  # two records still waiting

    assert xs_refill_check(skill=skill)
    assert not xs_refill_check(skill=skill)  # not again within ten minutes
    xs_deliver()

    [(_headers, body)] = crm.received
    [event] = json.loads(body)["events"]
    assert (event["type"], event["waiting"], event["threshold"]) == ("refill", 2, 5)


def test_no_refill_request_at_or_above_the_threshold_or_when_not_running(skill, crm):
    skill.xs_refill_threshold = 2
    skill.save()
    for external_id in ("R-1", "R-2"):
        _text(skill, external_id)

    assert not xs_refill_check(skill=skill)
    skill.xs_refill_threshold = 10
    skill.state = Skill.State.PAUSED
    assert not xs_refill_check(skill=skill)
    assert not XsEvent.objects.exists()


def test_the_admin_lists_the_events_and_sends_failed_ones_again(client, staff_member, skill):
    from django.contrib.admin import helpers
    from django.urls import reverse

    attempt_record_outcome(attempt=_text(skill, "C-1"), status=MessageStatus.DELIVERED)
    XsEvent.objects.update(status=XsEvent.Status.FAILED, attempts=XS_MAX_ATTEMPTS)
    client.force_login(staff_member)
    url = reverse("admin:skills_xsevent_changelist")

    assert "Given up" in client.get(url).content.decode()
    client.post(
        url,
        {
            "action": "send_again",
            "index": "0",
            helpers.ACTION_CHECKBOX_NAME: list(XsEvent.objects.values_list("pk", flat=True)),
        },
    )
    event = XsEvent.objects.get()
    assert (event.status, event.attempts) == ("pending", 0)
    assert xs_deliver()["delivered"] == 1
