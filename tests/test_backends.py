"""SMS backends: one contract every backend keeps, then what each one adds.

``BackendContract`` is run against every backend (console, locmem, simulator, and twilio with the
real SDK against the in-process fake carrier). Each subclass states what its backend can do
(``validates_numbers``, ``reconciles``) and the shared tests assert that behaviour either way,
so nothing is skipped silently. No network but 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.http import QueryDict
from django.utils import timezone

from messaging.backends import OutgoingSms, SendOutcome, get_backend, locmem, simulator
from messaging.backends.twilio import (
    TwilioBackend,
    compute_signature,
    credentials_for,
    rewrite_twilio_url,
    validate_signature,
)
from messaging.fake_carrier import FakeCarrier
from messaging.models import InboundMessage, MessageEvent, MessageStatus
from messaging.pacing import StartGate, max_in_window
from tests.factories import OutboundMessageFactory, us_number

FIXTURES = Path(__file__).parent / "fixtures" / "twilio"
ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "test-auth-token"
OUR_NUMBER = "+14155550100"
SERVICE_SID = "MG" + "c" * 32
INVALID_NUMBER = "12345"


def sms(n: int, **fields) -> OutgoingSms:
    values = {
        "message_id": n,
        "to": us_number(5000 + n),
        "body": f"Hello number {n}",
        "from_number": OUR_NUMBER,
    }
    values.update(fields)
    return OutgoingSms(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the contract --------------------------------------------------------------------------


class BackendContract:
    """What every backend promises the sender. Subclasses set the class attributes below."""

    backend_path: str
    #: True: an invalid number comes back ``rejected`` with 21211. False: the backend passes
    #: numbers through unchecked and accepts it (the sender's own validation must catch it).
    validates_numbers: bool
    #: True: ``find_sent`` asks the carrier. False: it returns None ("cannot tell").
    reconciles: bool

    @pytest.fixture
    def backend_options(self) -> dict:
        return {}

    @pytest.fixture
    def make_backend(self, backend_options):
        return lambda **options: get_backend(self.backend_path, **{**backend_options, **options})

    @pytest.fixture
    def backend(self, make_backend):
        with make_backend() as backend:
            yield backend

    def test_get_backend_builds_the_class_named_by_the_dotted_path(self, backend):
        module, _, name = self.backend_path.rpartition(".")
        assert type(backend).__module__ == module
        assert type(backend).__name__ == name

    def test_a_batch_gets_one_result_per_message_in_order(self, backend):
        batch = [sms(5), sms(3), sms(9), sms(1)]
        results = backend.send_messages(batch)
        assert [r.message_id for r in results] == [5, 3, 9, 1]
        assert {r.outcome for r in results} == {SendOutcome.ACCEPTED}

    def test_an_empty_batch_sends_nothing(self, backend):
        assert backend.send_messages([]) == []

    def test_submit_returns_at_once_and_the_future_holds_the_results(self, backend):
        future = backend.submit([sms(5), sms(3)])
        results = future.result(timeout=10)
        assert [r.message_id for r in results] == [5, 3]
        assert {r.outcome for r in results} == {SendOutcome.ACCEPTED}
        assert all(r.started_at for r in results)  # when each request started

    def test_submit_through_a_gate_keeps_the_window_on_real_starts(self, backend):
        # 25 texts at once through a 10/s gate: they start over ~2 s, never 11 in a second.
        gate = StartGate(10)
        results = backend.submit([sms(n) for n in range(1, 26)], gate=gate).result(timeout=20)
        assert {r.outcome for r in results} == {SendOutcome.ACCEPTED}
        assert max_in_window([r.started_at for r in results]) <= 10

    def test_accepted_texts_get_distinct_carrier_ids_and_a_status(self, backend):
        first = backend.send_messages([sms(1), sms(2), sms(3)])
        second = backend.send_messages([sms(4), sms(5)])
        sids = [r.carrier_sid for r in first + second]
        assert all(sids)
        assert len(set(sids)) == 5
        assert all(r.carrier_status for r in first + second)

    def test_an_invalid_number_is_answered_as_declared(self, backend):
        results = backend.send_messages([sms(1), sms(2, to=INVALID_NUMBER), sms(3)])
        assert results[0].outcome == results[2].outcome == SendOutcome.ACCEPTED
        if self.validates_numbers:
            assert results[1].outcome == SendOutcome.REJECTED
            assert results[1].error_code == "21211"
            assert INVALID_NUMBER in results[1].error_text
            assert not results[1].carrier_sid
        else:
            assert results[1].outcome == SendOutcome.ACCEPTED

    def test_find_sent_answers_as_declared(self, backend):
        since = timezone.now()
        [accepted] = backend.send_messages([sms(1)])
        found = backend.find_sent([sms(1), sms(2)], since)
        if self.reconciles:
            assert set(found) == {1}
            assert found[1].outcome == SendOutcome.ACCEPTED
            assert found[1].carrier_sid == accepted.carrier_sid
        else:
            assert found is None

    def test_open_and_close_can_be_repeated(self, make_backend):
        backend = make_backend()
        backend.open()
        backend.open()
        assert backend.send_messages([sms(1)])[0].outcome == SendOutcome.ACCEPTED
        backend.close()
        backend.close()
        # Closed is not broken: a send opens what it needs for that call.
        assert backend.send_messages([sms(2)])[0].outcome == SendOutcome.ACCEPTED


# --- console and locmem --------------------------------------------------------------------


class TestConsoleBackend(BackendContract):
    backend_path = "messaging.backends.console.ConsoleBackend"
    validates_numbers = False
    reconciles = False

    @pytest.fixture
    def stream(self):
        return io.StringIO()

    @pytest.fixture
    def backend_options(self, stream):
        return {"stream": stream}

    def test_prints_sender_recipient_and_body(self, backend, stream):
        backend.send_messages([sms(7, body="See you at 9")])
        output = stream.getvalue()
        assert f"{OUR_NUMBER} -> {us_number(5007)}" in output
        assert "See you at 9" in output


class TestLocmemBackend(BackendContract):
    backend_path = "messaging.backends.locmem.LocmemBackend"
    validates_numbers = False
    reconciles = False

    @pytest.fixture(autouse=True)
    def empty_outbox(self):
        locmem.reset()
        yield
        locmem.reset()

    def test_keeps_accepted_texts_in_the_outbox(self, backend):
        backend.send_messages([sms(1), sms(2)])
        assert [m.message_id for m in locmem.outbox] == [1, 2]

    def test_answers_drive_a_refusal_without_a_network(self, backend):
        locmem.answers[INVALID_NUMBER] = {
            "outcome": SendOutcome.REJECTED,
            "error_code": "21211",
            "error_text": "invalid",
        }
        results = backend.send_messages([sms(1), sms(2, to=INVALID_NUMBER)])
        assert results[1].outcome == SendOutcome.REJECTED
        assert results[1].error_code == "21211"
        assert [m.message_id for m in locmem.outbox] == [1]


# --- simulator -----------------------------------------------------------------------------


@pytest.fixture
def no_pending_reports():
    simulator.reset()
    yield
    simulator.reset()


@pytest.mark.usefixtures("no_pending_reports")
class TestSimulatorBackend(BackendContract):
    backend_path = "messaging.backends.simulator.SimulatorBackend"
    # Configured to validate (the demo default accepts every text: see the test below).
    validates_numbers = True
    reconciles = False

    @pytest.fixture
    def backend_options(self):
        # Reports wait an hour, so only flush() runs them: in this thread, inside the test's
        # transaction.
        return {"delay": 3600, "validate_numbers": True}

    def send(self, backend, message, **fields) -> str:
        """Hand ``message`` to the backend and store the carrier id, as the sender does."""
        outgoing = OutgoingSms(
            message_id=message.id,
            to=message.to,
            body=message.body,
            from_number=message.transport_code.number,
            **fields,
        )
        [result] = backend.send_messages([outgoing])
        assert result.outcome == SendOutcome.ACCEPTED
        assert result.carrier_sid.startswith("SM")
        assert len(result.carrier_sid) == 34
        message.status = MessageStatus.SENT
        message.carrier_sid = result.carrier_sid
        message.save()
        return result.carrier_sid

    def test_by_default_accepts_every_text(self):
        backend = simulator.SimulatorBackend(delay=3600)
        [result] = backend.send_messages([sms(1, to=INVALID_NUMBER)])
        assert result.outcome == SendOutcome.ACCEPTED

    def test_options_default_to_the_environment(self, monkeypatch):
        monkeypatch.setenv("SIMULATOR_DELAY_SECONDS", "7")
        monkeypatch.setenv("SIMULATOR_STOP_RATE", "0.5")
        backend = simulator.SimulatorBackend(failed_rate=0.2)
        assert (backend.delay, backend.stop_rate, backend.failed_rate) == (7, 0.5, 0.2)
        assert backend.undelivered_rate == 0.03

    def test_delivery_is_reported_through_message_record_status(self, db, make_backend):
        backend = make_backend(undelivered_rate=0, failed_rate=0, stop_rate=0)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        sid = self.send(backend, message)
        assert simulator.pending() == 1
        assert simulator.flush() == 1
        message.refresh_from_db()
        assert message.status == MessageStatus.DELIVERED
        assert message.delivered_at is not None
        event = MessageEvent.objects.get(message=message, kind=MessageEvent.Kind.CALLBACK)
        assert event.status == "delivered"
        assert message.carrier_sid == sid
        assert simulator.pending() == 0

    @pytest.mark.parametrize(
        ("rates", "status", "code"),
        [
            ({"undelivered_rate": 1, "failed_rate": 0}, MessageStatus.UNDELIVERED, "30003"),
            ({"undelivered_rate": 0, "failed_rate": 1}, MessageStatus.FAILED, "30006"),
        ],
    )
    def test_failures_are_reported_with_their_code(self, db, make_backend, rates, status, code):
        backend = make_backend(stop_rate=0, **rates)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        self.send(backend, message)
        simulator.flush()
        message.refresh_from_db()
        assert message.status == status
        assert message.error_code == code
        assert MessageEvent.objects.filter(message=message, error_code=code).exists()

    def test_a_report_before_the_sender_stored_the_id_finds_the_message_by_id(
        self, db, make_backend
    ):
        backend = make_backend(undelivered_rate=0, failed_rate=0, stop_rate=0)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        [result] = backend.send_messages(
            [OutgoingSms(message_id=message.id, to=message.to, body=message.body)]
        )
        simulator.flush()
        message.refresh_from_db()
        assert message.carrier_sid == result.carrier_sid
        assert message.status == MessageStatus.DELIVERED

    def test_a_stop_reply_goes_through_inbound_receive(self, db, make_backend):
        backend = make_backend(undelivered_rate=0, failed_rate=0, stop_rate=1)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        self.send(backend, message)
        simulator.flush()
        inbound = InboundMessage.objects.get()
        assert (inbound.from_number, inbound.to_number) == (
            message.to,
            message.transport_code.number,
        )
        assert inbound.body == "STOP"
        assert inbound.business_unit == message.business_unit
        assert inbound.carrier_sid.startswith("SM")

    def test_no_stop_reply_when_our_number_is_unknown(self, db, make_backend):
        backend = make_backend(undelivered_rate=0, failed_rate=0, stop_rate=1)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        [result] = backend.send_messages(
            [
                OutgoingSms(
                    message_id=message.id,
                    to=message.to,
                    body="x",
                    messaging_service_sid=SERVICE_SID,
                )
            ]
        )
        simulator.flush()
        assert not InboundMessage.objects.exists()

    def test_a_seed_makes_the_outcomes_repeatable(self, db, make_backend):
        def run() -> list[str]:
            backend = make_backend(seed=7, undelivered_rate=0.3, failed_rate=0.3, stop_rate=0)
            messages = [OutboundMessageFactory(status=MessageStatus.SENDING) for _ in range(12)]
            for message in messages:
                self.send(backend, message)
            simulator.flush()
            return [m.status for m in (m.__class__.objects.get(pk=m.pk) for m in messages)]

        first, second = run(), run()
        assert first == second
        assert len(set(first)) > 1  # the rates really mixed the outcomes

    @pytest.mark.django_db(transaction=True)
    def test_the_background_thread_reports_after_the_delay(self, make_backend):
        backend = make_backend(delay=0.05, undelivered_rate=0, failed_rate=0, stop_rate=0)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        self.send(backend, message)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message.refresh_from_db()
            if message.status == MessageStatus.DELIVERED:
                break
            time.sleep(0.02)
        assert message.status == MessageStatus.DELIVERED
        assert simulator.pending() == 0


# --- twilio, against the fake carrier ------------------------------------------------------


@pytest.fixture
def twilio_settings(settings):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    return settings


@pytest.fixture
def carrier():
    with FakeCarrier(auth_token=AUTH_TOKEN, callback_delay=0.02, seed=1) as carrier:
        yield carrier


class CallbackSink:
    """A local web server that keeps every POST: stands in for pcsms's callback views."""

    def __init__(self) -> None:
        sink = self
        self.posts: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                sink.posts.append(
                    {
                        "url": f"{sink.url}{self.path}",
                        "path": self.path,
                        "signature": self.headers.get("X-Twilio-Signature"),
                        "params": {k: v[0] for k, v in parse_qs(body).items()},
                    }
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    sink = CallbackSink()
    yield sink
    sink.close()


@pytest.mark.usefixtures("twilio_settings")
class TestTwilioBackend(BackendContract):
    backend_path = "messaging.backends.twilio.TwilioBackend"
    validates_numbers = True
    reconciles = True

    @pytest.fixture
    def backend_options(self, carrier):
        return {"base_url": carrier.url, "status_callback": "", "timeout": 5}

    def test_sends_from_our_number_with_the_status_callback(self, backend, carrier):
        callback = "http://127.0.0.1:9/sms/twilio/status/?m=1"
        carrier.send_callbacks = False
        [result] = backend.send_messages([sms(1, status_callback=callback)])
        [record] = carrier.received
        assert (record["from"], record["messaging_service_sid"]) == (OUR_NUMBER, "")
        assert (record["to"], record["body"]) == (us_number(5001), "Hello number 1")
        assert record["sid"] == result.carrier_sid
        assert result.carrier_status == "queued"
        assert carrier.messages[result.carrier_sid].status_callback == callback

    def test_the_form_reaches_the_carrier_as_written(self, backend, carrier):
        # The backend encodes the SDK's form itself (not through aiohttp's FormData): every
        # character that needs escaping in a form must still arrive as written.
        body = "Caf\u00e9 & cr\u00e8me: 50% off + free = yes?\nReply STOP \U0001f600"
        carrier.send_callbacks = False
        [result] = backend.send_messages([sms(1, body=body)])
        [record] = carrier.received
        assert (record["to"], record["body"]) == (us_number(5001), body)
        assert result.outcome == SendOutcome.ACCEPTED

    def test_sends_through_the_messaging_service_when_one_is_set(self, backend, carrier):
        [result] = backend.send_messages([sms(1, messaging_service_sid=SERVICE_SID)])
        [record] = carrier.received
        assert (record["from"], record["messaging_service_sid"]) == ("", SERVICE_SID)
        assert result.outcome == SendOutcome.ACCEPTED
        assert result.carrier_status == "accepted"  # Twilio's word for "queued in a service"

    def test_status_callback_defaults_to_the_public_base_url(self, make_backend, carrier):
        carrier.send_callbacks = False
        backend = make_backend(status_callback=None)
        [result] = backend.send_messages([sms(1)])
        assert carrier.messages[result.carrier_sid].status_callback == (
            "http://127.0.0.1:9/sms/twilio/status/"
        )

    def test_throttling_is_retried_after_retry_after(self, backend, carrier):
        carrier.throttle_rate = 1
        [result] = backend.send_messages([sms(1)])
        assert result.outcome == SendOutcome.RETRY
        assert result.error_code == "20429"
        assert result.retry_after == 1.0
        assert carrier.received == []

    def test_an_unsubscribed_recipient_is_rejected_with_21610(self, backend, carrier):
        carrier.unsubscribed.add(us_number(5002))
        results = backend.send_messages([sms(1), sms(2)])
        assert results[0].outcome == SendOutcome.ACCEPTED
        assert results[1].outcome == SendOutcome.REJECTED
        assert results[1].error_code == "21610"
        assert "unsubscribed" in results[1].error_text

    @pytest.mark.parametrize(
        ("to", "code"),
        [("+15005550009", "21614"), ("+15005550002", "21612"), ("+15005550003", "21408")],
    )
    def test_other_permanent_refusals_carry_their_code(self, backend, to, code):
        [result] = backend.send_messages([sms(1, to=to)])
        assert (result.outcome, result.error_code) == (SendOutcome.REJECTED, code)

    @pytest.mark.parametrize(
        ("status", "code", "outcome"),
        [
            (503, "20503", SendOutcome.RETRY),  # Twilio's "try again with back-off"
            # Twilio warns a 500 may come after the text was taken; gateways lose answers.
            (500, "20500", SendOutcome.UNKNOWN),
            (502, "20500", SendOutcome.UNKNOWN),
            (504, "20500", SendOutcome.UNKNOWN),
        ],
    )
    def test_server_errors(self, backend, carrier, status, code, outcome):
        carrier.fail_rate, carrier.fail_status = 1, status
        [result] = backend.send_messages([sms(1)])
        assert (result.outcome, result.error_code) == (outcome, code)
        assert carrier.received == []

    def test_retry_5xx_widens_what_is_retried(self, make_backend, carrier):
        carrier.fail_rate, carrier.fail_status = 1, 500
        backend = make_backend(retry_5xx=[500, 502, 503, 504])
        [result] = backend.send_messages([sms(1)])
        assert result.outcome == SendOutcome.RETRY

    def test_no_answer_in_time_is_unknown_and_reconciliation_finds_it(self, make_backend, carrier):
        since = timezone.now()
        carrier.latency_ms = 1000
        backend = make_backend(timeout=0.2)
        [result] = backend.send_messages([sms(1)])
        assert result.outcome == SendOutcome.UNKNOWN
        assert "No answer" in result.error_text
        # The carrier did take it: reconciliation says so, so the sender must not resend.
        carrier.latency_ms = 0
        found = backend.find_sent([sms(1)], since)
        assert found[1].carrier_sid == carrier.received[0]["sid"]

    def test_a_connection_closed_before_the_answer_is_unknown(self, backend, carrier):
        carrier.drop_rate = 1
        [result] = backend.send_messages([sms(1)])
        assert result.outcome == SendOutcome.UNKNOWN
        assert len(carrier.received) == 1

    def test_a_refused_connection_is_retried_and_cannot_be_reconciled(self, make_backend):
        backend = make_backend(base_url=f"http://127.0.0.1:{free_port()}")
        [result] = backend.send_messages([sms(1)])
        assert result.outcome == SendOutcome.RETRY
        assert backend.find_sent([sms(1)], timezone.now()) is None

    def test_wrong_credentials_hold_the_queue_instead_of_failing_texts(
        self, backend, carrier, twilio_settings
    ):
        carrier.check_auth = True
        twilio_settings.TWILIO_AUTH_TOKEN = "not-the-token"
        [result] = backend.send_messages([sms(1)])
        assert (result.outcome, result.error_code, result.retry_after) == (
            SendOutcome.RETRY,
            "20003",
            60.0,
        )

    def test_a_named_carrier_account_reads_its_own_variables(self, backend, carrier, monkeypatch):
        acme_sid = "AC" + "e" * 32
        monkeypatch.setenv("TWILIO_ACME_ACCOUNT_SID", acme_sid)
        monkeypatch.setenv("TWILIO_ACME_AUTH_TOKEN", "acme-token")
        carrier.check_auth, carrier.auth_token = True, "acme-token"
        [result] = backend.send_messages([sms(1, carrier_account="acme")])
        assert result.outcome == SendOutcome.ACCEPTED
        assert carrier.messages[result.carrier_sid].account_sid == acme_sid

    @pytest.mark.parametrize(
        ("account", "missing"),
        [("default", "TWILIO_AUTH_TOKEN"), ("acme", "TWILIO_ACME_ACCOUNT_SID")],
    )
    def test_missing_credentials_fail_the_batch_before_sending(
        self, backend, carrier, twilio_settings, account, missing
    ):
        if account == "default":
            twilio_settings.TWILIO_AUTH_TOKEN = ""
        with pytest.raises(ImproperlyConfigured, match=missing):
            backend.send_messages([sms(1), sms(2, carrier_account=account)])
        assert carrier.received == []

    def test_credentials_for_names_the_account_and_rejects_odd_names(self, monkeypatch):
        assert credentials_for("default").account_sid == ACCOUNT_SID
        monkeypatch.setenv("TWILIO_EU_ACCOUNT_SID", "AC1")
        monkeypatch.setenv("TWILIO_EU_AUTH_TOKEN", "t")
        assert credentials_for("eu").auth_token == "t"
        with pytest.raises(ImproperlyConfigured, match="letters, digits"):
            credentials_for("acme-corp")

    def test_find_sent_matches_each_carrier_message_once(self, backend):
        since = timezone.now()
        twin = sms(1)
        backend.send_messages([twin])
        same_text_never_sent = sms(2, to=twin.to, body=twin.body)
        assert set(backend.find_sent([twin, same_text_never_sent], since)) == {1}

    def test_find_sent_ignores_texts_from_before_since(self, make_backend):
        backend = make_backend(reconcile_slack=0)
        backend.send_messages([sms(1)])
        later = timezone.now() + dt.timedelta(seconds=2)
        assert backend.find_sent([sms(1)], later) == {}

    def test_find_sent_matches_the_sender_not_just_the_text(self, backend):
        since = timezone.now()
        backend.send_messages([sms(1)])
        other_sender = sms(1, from_number="+14155550199")
        assert backend.find_sent([other_sender], since) == {}

    def test_find_sent_reads_every_page(self, backend, carrier):
        since = timezone.now()
        to = us_number(4242)
        batch = [sms(n, to=to) for n in range(1, 121)]
        backend.send_messages(batch)
        found = backend.find_sent(batch, since)
        assert set(found) == set(range(1, 121))
        assert len({r.carrier_sid for r in found.values()}) == 120

    def test_an_open_backend_reuses_its_connections(self, make_backend, carrier):
        with make_backend(concurrency=4) as backend:
            for n in range(3):
                backend.send_messages([sms(10 * n + i) for i in range(8)])
        assert carrier.stats["accepted"] == 24
        assert carrier.stats["connections"] <= 4

    def test_threads_can_share_an_open_backend(self, make_backend, carrier):
        # The sender hands batches to a thread pool; they share one loop and one pool.
        results: list = []
        with make_backend(concurrency=8) as backend:

            def send(first: int) -> None:
                results.extend(backend.send_messages([sms(first + i) for i in range(10)]))

            threads = [threading.Thread(target=send, args=(100 * t,)) for t in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
        assert len(results) == 40
        assert {r.outcome for r in results} == {SendOutcome.ACCEPTED}
        assert len({r.carrier_sid for r in results}) == len(carrier.received) == 40

    def test_a_send_on_a_closed_backend_leaves_it_closed(self, make_backend):
        backend = make_backend()
        backend.send_messages([sms(1)])
        assert not backend.is_open

    def test_status_callbacks_are_signed_like_twilio(self, backend, carrier, sink):
        carrier.undelivered_rate = 1
        callback = f"{sink.url}/sms/twilio/status/?message_id=1"
        [result] = backend.send_messages([sms(1, status_callback=callback)])
        assert carrier.wait_for(lambda: len(sink.posts) == 2)
        assert [p["params"]["MessageStatus"] for p in sink.posts] == ["sent", "undelivered"]
        for post in sink.posts:
            assert post["url"] == callback
            assert post["params"]["MessageSid"] == result.carrier_sid
            assert post["params"]["AccountSid"] == ACCOUNT_SID
            assert validate_signature(post["url"], post["params"], post["signature"], AUTH_TOKEN)
            assert not validate_signature(post["url"], post["params"], post["signature"], "x")
        assert sink.posts[1]["params"]["ErrorCode"] == "30003"
        assert "ErrorCode" not in sink.posts[0]["params"]

    def test_a_stop_reply_is_posted_and_unsubscribes_the_number(self, make_backend, carrier, sink):
        carrier.callback_base, carrier.stop_rate = sink.url, 1
        backend = make_backend()
        backend.send_messages([sms(1)])
        assert carrier.wait_for(lambda: any("inbound" in p["path"] for p in sink.posts))
        [reply] = [p for p in sink.posts if p["path"] == "/sms/twilio/inbound/"]
        assert reply["params"]["Body"] == "STOP"
        assert (reply["params"]["From"], reply["params"]["To"]) == (us_number(5001), OUR_NUMBER)
        assert validate_signature(reply["url"], reply["params"], reply["signature"], AUTH_TOKEN)
        statuses = [p for p in sink.posts if p["path"] == "/sms/twilio/status/"]
        assert statuses[-1]["params"]["MessageStatus"] == "delivered"
        [again] = backend.send_messages([sms(2, to=us_number(5001))])
        assert again.error_code == "21610"


# --- the SDK on recorded Twilio answers ----------------------------------------------------


class ReplayServer:
    """Answers every request with one recorded payload."""

    def __init__(self, status: int, body: str, headers: dict | None = None) -> None:
        replay = self
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                replay.requests.append(f"{self.command} {self.path}")
                data = body.encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def replay():
    servers = []

    def start(fixture: str, status: int, headers: dict | None = None) -> ReplayServer:
        servers.append(ReplayServer(status, (FIXTURES / fixture).read_text(), headers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.mark.usefixtures("twilio_settings")
@pytest.mark.parametrize(
    ("fixture", "status", "headers", "outcome", "code", "retry_after"),
    [
        ("message_create_201.json", 201, None, SendOutcome.ACCEPTED, "", None),
        ("error_400_21211.json", 400, None, SendOutcome.REJECTED, "21211", None),
        ("error_400_21610.json", 400, None, SendOutcome.REJECTED, "21610", None),
        ("error_429_20429.json", 429, {"Retry-After": "3"}, SendOutcome.RETRY, "20429", 3.0),
    ],
)
def test_recorded_twilio_answers_map_to_outcomes(
    replay, fixture, status, headers, outcome, code, retry_after
):
    server = replay(fixture, status, headers)
    backend = TwilioBackend(base_url=server.url, status_callback="")
    [result] = backend.send_messages([sms(1)])
    assert (result.outcome, result.error_code, result.retry_after) == (outcome, code, retry_after)
    if outcome == SendOutcome.ACCEPTED:
        assert (result.carrier_sid, result.carrier_status) == ("SM" + "b" * 32, "queued")
    assert server.requests == [f"POST /2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"]


@pytest.mark.usefixtures("twilio_settings")
def test_recorded_message_list_reconciles(replay):
    server = replay("message_list_200.json", 200)
    backend = TwilioBackend(base_url=server.url)
    text = "Hi Ada, your appointment is tomorrow. Reply STOP to opt out."
    message = OutgoingSms(message_id=1, to="+13122000001", body=text, from_number="+14155552345")
    since = dt.datetime(2015, 7, 30, 20, 12, 31, 500_000, tzinfo=dt.UTC)
    found = backend.find_sent([message], since)
    assert found[1].carrier_sid == "SM" + "b" * 32
    assert found[1].carrier_status == "delivered"


# --- signatures and URL rewriting ----------------------------------------------------------


def test_signature_helpers_agree_with_each_other():
    url = "https://sms.example.com/sms/twilio/status/?message_id=4"
    params = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+13122000001"}
    signature = compute_signature(url, params, AUTH_TOKEN)
    assert validate_signature(url, params, signature, AUTH_TOKEN)
    assert validate_signature(url, QueryDict(urlencode(params)), signature, AUTH_TOKEN)
    assert not validate_signature(url, params, signature, "another-token")
    assert not validate_signature(url.replace("4", "5"), params, signature, AUTH_TOKEN)
    assert not validate_signature(url, {**params, "MessageStatus": "sent"}, signature, AUTH_TOKEN)
    assert not validate_signature(url, params, "", AUTH_TOKEN)
    assert not validate_signature(url, params, signature, "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            "http://127.0.0.1:8975/2010-04-01/Accounts/AC1/Messages.json",
        ),
        ("https://messaging.twilio.com/v1/Services", "http://127.0.0.1:8975/v1/Services"),
        ("https://api.dublin.ie1.twilio.com/x?y=1", "http://127.0.0.1:8975/x?y=1"),
        ("https://example.com/twilio.com/x", "https://example.com/twilio.com/x"),
        ("https://api.twilio.com.evil.example/x", "https://api.twilio.com.evil.example/x"),
    ],
)
def test_base_url_replaces_only_twilio_hosts(url, expected):
    assert rewrite_twilio_url(url, "http://127.0.0.1:8975/") == expected
    assert rewrite_twilio_url(url, "") == url


# --- the fake carrier itself ---------------------------------------------------------------


def http(method: str, url: str, form: dict | None = None) -> tuple[int, dict]:
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def messages_url(carrier: FakeCarrier) -> str:
    return f"{carrier.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def test_fake_carrier_answers_in_twilios_shapes(carrier):
    form = {"To": "+13122000001", "From": OUR_NUMBER, "Body": "Hi"}
    status, created = http("POST", messages_url(carrier), form)
    recorded = json.loads((FIXTURES / "message_create_201.json").read_text())
    assert status == 201
    assert created.keys() == recorded.keys()
    assert created["sid"].startswith("SM") and len(created["sid"]) == 34
    assert created["num_segments"] == "1"
    assert created["date_created"].endswith("+0000")

    status, listed = http("GET", messages_url(carrier) + "?To=%2B13122000001")
    recorded = json.loads((FIXTURES / "message_list_200.json").read_text())
    assert status == 200
    assert listed.keys() == recorded.keys()
    assert [m["sid"] for m in listed["messages"]] == [created["sid"]]

    status, fetched = http("GET", messages_url(carrier).replace(".json", f"/{created['sid']}.json"))
    assert (status, fetched["sid"]) == (200, created["sid"])

    for number, fixture in (
        ("12345", "error_400_21211.json"),
        ("+15005550004", "error_400_21610.json"),
    ):
        status, error = http("POST", messages_url(carrier), {**form, "To": number})
        recorded = json.loads((FIXTURES / fixture).read_text())
        assert (status, error.keys(), error["code"]) == (400, recorded.keys(), recorded["code"])


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "+13122000001", "From": OUR_NUMBER}, 21602),
        ({"To": "+13122000001", "Body": "Hi"}, 21603),
        ({"To": "+13122000001", "From": OUR_NUMBER, "Body": "x" * 1601}, 21617),
        ({"To": "3122000001", "From": OUR_NUMBER, "Body": "Hi"}, 21211),
        ({"To": "+1312200", "From": OUR_NUMBER, "Body": "Hi"}, 21211),
    ],
)
def test_fake_carrier_validates_like_twilio(carrier, form, code):
    status, error = http("POST", messages_url(carrier), form)
    assert (status, error["code"]) == (400, code)
    assert carrier.received == []


def test_fake_carrier_lists_newest_first_by_page_and_date_sent(carrier):
    for n in range(3):
        http(
            "POST",
            messages_url(carrier),
            {"To": "+13122000001", "From": OUR_NUMBER, "Body": str(n)},
        )
    status, page = http("GET", messages_url(carrier) + "?To=%2B13122000001&PageSize=2")
    assert [m["body"] for m in page["messages"]] == ["2", "1"]
    assert "Page=1" in page["next_page_uri"]
    _, last = http("GET", carrier.url + page["next_page_uri"])
    assert [m["body"] for m in last["messages"]] == ["0"]
    assert last["next_page_uri"] is None
    # Not sent yet (still queued): like Twilio, no date_sent, so no DateSent match.
    carrier.callback_delay = 3600
    http("POST", messages_url(carrier), {"To": "+13122000009", "From": OUR_NUMBER, "Body": "q"})
    _, none = http("GET", messages_url(carrier) + "?To=%2B13122000009&DateSent%3E=2000-01-01")
    assert none["messages"] == []


def test_fake_carrier_logs_every_accepted_text_and_counts_duplicates(tmp_path):
    log = tmp_path / "carrier.jsonl"
    with FakeCarrier(log=log) as carrier:
        form = {"To": "+13122000001", "From": OUR_NUMBER, "Body": "Same"}
        http("POST", messages_url(carrier), form)
        http("POST", messages_url(carrier), form)
        http("POST", messages_url(carrier), {**form, "To": "12345"})
        assert carrier.duplicates() == [("+13122000001", "Same")]
        assert carrier.stats["duplicates"] == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["to"], x["body"], x["from"]) for x in lines] == [
        ("+13122000001", "Same", OUR_NUMBER)
    ] * 2
    assert {"sid", "time", "messaging_service_sid"} <= lines[0].keys()


def test_fake_carrier_checks_basic_auth_when_asked():
    with FakeCarrier(auth_token=AUTH_TOKEN, check_auth=True) as carrier:
        status, error = http("POST", messages_url(carrier), {"To": "+13122000001", "Body": "x"})
        assert (status, error["code"]) == (401, 20003)


def test_fake_carrier_command_prints_its_url_and_a_summary():
    out = io.StringIO()
    call_command("fake_carrier", port=0, duration=0.3, json=True, stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "listening"
    assert lines[0]["url"].startswith("http://127.0.0.1:")
    assert lines[-1]["event"] == "stopped"
    assert lines[-1]["duplicates"] == 0
