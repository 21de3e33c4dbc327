"""The Twilio backend, with the real SDK: against the in-process fake carrier (the contract of
tests/backends.py and what Twilio adds), on recorded Twilio answers, and its signatures."""

from __future__ import annotations

import datetime as dt
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import QueryDict
from django.utils import timezone

from messaging.backends import OutgoingSms, SendOutcome
from messaging.backends.twilio import (
    TwilioBackend,
    compute_signature,
    credentials_for,
    rewrite_twilio_url,
    validate_signature,
)
from messaging.fake_carrier import FakeCarrier
from messaging.pacing import StartGate
from tests.backends import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FIXTURES,
    OUR_NUMBER,
    SERVICE_SID,
    BackendContract,
    free_port,
    sms,
)
from tests.factories import us_number

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

    def test_the_gate_learns_when_each_request_left(self, make_backend, carrier):
        # The window is counted from when a text reaches the socket (StartGate.left), the
        # moment the carrier sees: a busy event loop may hold it long after the gate.
        class Recording(StartGate):
            def left(self, start):
                departures.append((start[0], time.time()))
                super().left(start)

        departures: list[tuple[float, float]] = []
        gate = Recording(50, clock=time.time)
        with make_backend(concurrency=4) as backend:
            results = backend.submit([sms(i) for i in range(6)], gate=gate).result(timeout=30)
        assert {r.outcome for r in results} == {SendOutcome.ACCEPTED}
        assert len(departures) == 6
        arrivals = sorted(m.date_created.timestamp() for m in carrier.messages.values())
        for (started, left), arrived in zip(sorted(departures), arrivals, strict=True):
            assert started <= left <= arrived + 0.001

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
