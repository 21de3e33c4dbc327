"""A local carrier that speaks enough of Twilio's Messages API for the real ``twilio`` SDK.

For demos, tests and load tests: nothing leaves the machine. Start it in-process::

    with FakeCarrier(latency_ms=150, callback_base="http://127.0.0.1:8000") as carrier:
        backend = TwilioBackend(base_url=carrier.url)
        ...
        carrier.received  # every accepted message, in order

or from the command line with ``manage.py fake_carrier`` (docs/carrier.md).

What it answers (``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``), in this order:

1. ``--throttle-rate``: 429, code 20429, ``Retry-After: 1``. **Not processed**.
2. ``--fail-rate``: 500, code 20500 (or ``fail_status``, e.g. 503 / 20503). **Not processed**:
   nothing is recorded, billed or reported. (A real Twilio 500 may have been processed: the
   Twilio backend treats it as ``unknown`` and reconciles.)
3. Validation (**not processed**, permanent): no Body 21602; Body over 1,600 characters 21617;
   neither From nor MessagingServiceSid 21603; To not a valid E.164 number 21211; To in the
   unsubscribed set (numbers that replied STOP here, plus ``unsubscribed=``) 21610; and Twilio's
   magic test numbers: +15005550001 21211, +15005550002 21612, +15005550003 21408,
   +15005550004 21610, +15005550009 21614.
4. Otherwise the message is **processed**: recorded (``received``, the JSON-lines log) and
   answered 201 with a Twilio-shaped message (``SM`` + 32 hex, status ``queued``, or
   ``accepted`` when sent through a Messaging Service, as Twilio does). At ``drop_rate`` the
   connection is closed instead of answering: processed, but the client cannot know.

The latency is slept after the decision, before the answer, so a client whose read timeout is
shorter than the latency gets no answer for a message that *was* processed: exactly the
"unknown outcome" a sender must reconcile (``GET Messages.json?To=...`` finds it). Other
routes: ``GET Messages.json`` (To, From, DateSent filters; newest first; Twilio's page shape)
and ``GET Messages/{Sid}.json``.

After acceptance the message moves on its own: ``sent`` after ``callback_delay`` seconds, then
``delivered`` (or ``undelivered`` with ErrorCode 30003 at ``undelivered_rate``) after another
``callback_delay``; each transition is posted, signed with ``X-Twilio-Signature``, to the
message's StatusCallback (or ``callback_base`` + ``/sms/twilio/status/``). At ``stop_rate`` a
delivered recipient replies STOP: the number joins the unsubscribed set and, when
``callback_base`` is set, the reply is posted to ``callback_base`` + ``/sms/twilio/inbound/``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import heapq
import http.client
import itertools
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import phonenumbers

from messaging.backends.twilio import compute_signature
from messaging.segments import segment_count

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
STATUS_PATH = "/sms/twilio/status/"
INBOUND_PATH = "/sms/twilio/inbound/"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
# The number a Messaging Service "picks from its pool" when no From is given (Twilio's magic
# always-valid From number).
SERVICE_POOL_NUMBER = "+15005550006"
MAX_BODY = 1600

_LIST_RE = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>\w+)/Messages\.json$")
_FETCH_RE = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>\w+)/Messages/(?P<sid>\w+)\.json$")
_E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")

# Twilio's test-credential magic To numbers, so tests can ask for one error deterministically.
MAGIC_TO_ERRORS = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number: {to}.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone "
    "number via SMS.",
    21614: "'To' number {to} is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    30003: "Unreachable destination handset",
}


def rfc2822(moment: dt.datetime | None) -> str | None:
    """Twilio's timestamp format: ``Thu, 30 Jul 2015 20:12:31 +0000``."""
    return email.utils.format_datetime(moment) if moment else None


def new_sid(rng: random.Random, prefix: str = "SM") -> str:
    return f"{prefix}{rng.getrandbits(128):032x}"


def twilio_error(code: int, status: int, **context) -> dict:
    """An error body shaped like Twilio's (the SDK reads ``code`` and ``message``)."""
    return {
        "code": code,
        "message": ERROR_MESSAGES.get(code, "Error").format(**context),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class FakeMessage:
    sid: str
    account_sid: str
    to: str
    from_number: str
    messaging_service_sid: str
    body: str
    status_callback: str
    date_created: dt.datetime
    status: str = "queued"
    date_sent: dt.datetime | None = None
    date_updated: dt.datetime | None = None
    error_code: int | None = None
    num_segments: int = 1
    outcome: str = "delivered"  # decided at acceptance: delivered | undelivered
    replies_stop: bool = False
    events: list[str] = field(default_factory=list)

    def as_twilio(self, *, created: bool = False) -> dict:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        # Through a Messaging Service, Twilio answers the create with ``from: null``; the pool
        # number shows once the message is sent.
        from_number, segments = self.from_number, str(self.num_segments)
        if created and self.messaging_service_sid and self.status == "accepted":
            # ...and 0 segments, since no sender has been assigned yet.
            from_number, segments = None, "0"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated or self.date_created),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": ERROR_MESSAGES.get(self.error_code) if self.error_code else None,
            "from": from_number,
            "messaging_service_sid": self.messaging_service_sid or None,
            "num_media": "0",
            "num_segments": segments,
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    # Without this, the stdlib server stalls ~40 ms per response (Nagle + delayed ACK).
    disable_nagle_algorithm = True
    server_version = "FakeTwilio/1.0"
    sys_version = ""
    # Idle keep-alive connections are dropped after this; clients' pools give up sooner (aiohttp
    # 15 s), so a reused connection is not closed under a request.
    timeout = 120

    def setup(self) -> None:
        super().setup()
        self.server.carrier._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.carrier._track(self.connection, add=False)

    def do_POST(self) -> None:  # noqa: N802 (stdlib naming)
        self.server.carrier._dispatch(self, "POST")

    def do_GET(self) -> None:  # noqa: N802
        self.server.carrier._dispatch(self, "GET")

    def log_message(self, format, *args) -> None:  # noqa: A002 (stdlib signature)
        logger.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops SYNs when a client opens hundreds of connections at once,
    # and a dropped SYN costs a 1 s retransmit.
    request_queue_size = 1024

    def handle_error(self, request, client_address) -> None:
        # A client that timed out and hung up is expected (the timeout tests do it).
        logger.debug("Connection from %s ended abruptly", client_address, exc_info=True)


class FakeCarrier:
    """A threaded HTTP server imitating Twilio's Messages API. See the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        fail_rate: float = 0.0,
        fail_status: int = 500,
        drop_rate: float = 0.0,
        throttle_rate: float = 0.0,
        stop_rate: float = 0.0,
        undelivered_rate: float = 0.0,
        callback_base: str = "",
        callback_delay: float = 0.5,
        callback_workers: int = 8,
        callbacks: bool = True,
        auth_token: str = "",
        account_sid: str = DEFAULT_ACCOUNT_SID,
        check_auth: bool = False,
        unsubscribed: Iterable[str] = (),
        log: str | Path | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.fail_status = fail_status
        self.drop_rate = drop_rate
        self.throttle_rate = throttle_rate
        self.stop_rate = stop_rate
        self.undelivered_rate = undelivered_rate
        self.callback_base = callback_base.rstrip("/")
        self.callback_delay = callback_delay
        self.callback_workers = callback_workers
        self.send_callbacks = callbacks
        self.auth_token = auth_token
        self.account_sid = account_sid
        self.check_auth = check_auth
        self.unsubscribed: set[str] = set(unsubscribed)
        self.log_path = Path(log) if log else None

        #: Every accepted message as logged (sid, to, from, messaging_service_sid, body, time).
        self.received: list[dict] = []
        #: Every message by sid, for GET.
        self.messages: dict[str, FakeMessage] = {}
        #: Counts of answers and callbacks: accepted, throttled, failed, rejected, callbacks...
        self.stats: Counter[str] = Counter()
        #: The most recent callbacks posted: url, params, signature, HTTP status (or error).
        self.callbacks: deque[dict] = deque(maxlen=10_000)

        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._by_to: dict[str, list[str]] = {}
        self._pairs: Counter[tuple[str, str]] = Counter()
        self._log_file = None
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        # Scheduled transitions: (due monotonic time, sequence, action, sid).
        self._events: list[tuple[float, int, str, str]] = []
        self._events_cv = threading.Condition(self._lock)
        self._seq = itertools.count()
        self._running = False
        self._scheduler: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http = threading.local()

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to give the SDK (``TWILIO_API_BASE_URL``), e.g. ``http://127.0.0.1:8975``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeCarrier:
        if self._running:
            return self
        if self.log_path:
            self._log_file = self.log_path.open("a", encoding="utf-8")
        self._server = _Server((self.host, self.port), _Handler)
        self._server.carrier = self
        self.port = self._server.server_address[1]
        self._running = True
        self._pool = ThreadPoolExecutor(self.callback_workers, thread_name_prefix="fake-callback")
        self._scheduler = threading.Thread(
            target=self._run_events, name="fake-carrier-events", daemon=True
        )
        self._scheduler.start()
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="fake-carrier",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            # Idle keep-alive connections would keep their handler threads reading.
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._events_cv.notify_all()
        self._scheduler.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> FakeCarrier:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _count(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self.stats[name] += 1

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
                self.stats["connections"] += 1
            else:
                self._connections.discard(conn)

    # --- helpers for tests and benches -----------------------------------------------------

    def duplicates(self) -> list[tuple[str, str]]:
        """(to, body) pairs accepted more than once."""
        with self._lock:
            return [pair for pair, n in self._pairs.items() if n > 1]

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        """Poll ``predicate()`` until true or ``timeout`` seconds pass (for callback tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    # --- HTTP ------------------------------------------------------------------------------

    def _dispatch(self, handler: _Handler, method: str) -> None:
        started = time.monotonic()
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        headers: dict[str, str] = {}
        list_match = _LIST_RE.match(parts.path)
        fetch_match = _FETCH_RE.match(parts.path)
        account = (list_match or fetch_match).group("account") if list_match or fetch_match else ""
        if not (list_match or fetch_match):
            status, payload = 404, twilio_error(20404, 404)
        elif not self._authorised(handler, account):
            status, payload = 401, twilio_error(20003, 401)
        elif list_match and method == "POST":
            form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
            status, payload, headers = self._create(account, form)
        elif list_match and method == "GET":
            status, payload = 200, self._list(account, parts.path, parse_qs(parts.query))
        elif fetch_match and method == "GET":
            message = self.messages.get(fetch_match.group("sid"))
            if message is None or message.account_sid != account:
                status, payload = 404, twilio_error(20404, 404)
            else:
                status, payload = 200, message.as_twilio()
        else:
            status, payload = 405, twilio_error(20004, 405)
        remaining = self.latency_ms / 1000 - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)
        if headers.pop("X-Fake-Drop", None):
            # Processed, then the connection dies before the answer: the client cannot know.
            self._count("dropped")
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        body = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Twilio-Request-Id", "RQ" + uuid.uuid4().hex)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            # The client gave up waiting (its timeout); what was processed stays processed.
            self._count("answers_lost")
            handler.close_connection = True

    def _authorised(self, handler: _Handler, account: str) -> bool:
        if not self.check_auth:
            return True
        scheme, _, encoded = (handler.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return user == account and password == self.auth_token

    def _create(self, account: str, form: dict[str, str]) -> tuple[int, dict, dict[str, str]]:
        to = form.get("To", "").strip()
        from_number = form.get("From", "").strip()
        service = form.get("MessagingServiceSid", "").strip()
        body = form.get("Body", "")
        with self._lock:
            draw = self._rng.random()
            if draw < self.throttle_rate:
                self.stats["throttled"] += 1
                return 429, twilio_error(20429, 429), {"Retry-After": "1"}
            draw = self._rng.random()
            if draw < self.fail_rate:
                self.stats["failed"] += 1
                code = 20503 if self.fail_status == 503 else 20500
                return self.fail_status, twilio_error(code, self.fail_status), {}
        code = self._validate(to, from_number, service, body)
        if code:
            self._count("rejected", f"rejected_{code}")
            return 400, twilio_error(code, 400, to=to), {}
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            drop = self._rng.random() < self.drop_rate
            undelivered = self._rng.random() < self.undelivered_rate
            replies_stop = not undelivered and self._rng.random() < self.stop_rate
            message = FakeMessage(
                sid=new_sid(self._rng),
                account_sid=account,
                to=to,
                from_number=from_number or SERVICE_POOL_NUMBER,
                messaging_service_sid=service,
                body=body,
                status_callback=form.get("StatusCallback", ""),
                date_created=now,
                status="accepted" if service and not from_number else "queued",
                num_segments=max(1, segment_count(body)),
                outcome="undelivered" if undelivered else "delivered",
                replies_stop=replies_stop,
            )
            self.messages[message.sid] = message
            self._by_to.setdefault(to, []).append(message.sid)
            record = {
                "sid": message.sid,
                "to": to,
                "from": from_number,
                "messaging_service_sid": service,
                "body": body,
                "time": now.isoformat(),
            }
            self.received.append(record)
            self.stats["accepted"] += 1
            self._pairs[(to, body)] += 1
            if self._pairs[(to, body)] > 1:
                self.stats["duplicates"] += 1
            if self._log_file:
                self._log_file.write(json.dumps(record) + "\n")
                self._log_file.flush()
            self._schedule_locked(self.callback_delay, "sent", message.sid)
            payload = message.as_twilio(created=True)
        return 201, payload, {"X-Fake-Drop": "1"} if drop else {}

    def _validate(self, to: str, from_number: str, service: str, body: str) -> int | None:
        if not body:
            return 21602
        if len(body) > MAX_BODY:
            return 21617
        if not from_number and not service:
            return 21603
        if to in MAGIC_TO_ERRORS:
            return MAGIC_TO_ERRORS[to]
        if not _E164_RE.match(to):
            return 21211
        try:
            valid = phonenumbers.is_valid_number(phonenumbers.parse(to))
        except phonenumbers.NumberParseException:
            valid = False
        if not valid:
            return 21211
        with self._lock:
            if to in self.unsubscribed:
                return 21610
        return None

    def _list(self, account: str, path: str, query: dict[str, list[str]]) -> dict:
        """A page of messages, newest first, filtered like Twilio (To, From, DateSent)."""

        def first(name: str) -> str:
            return (query.get(name) or [""])[0]

        to, from_number = first("To"), first("From")
        with self._lock:
            sids = self._by_to.get(to, []) if to else list(self.messages)
            candidates = [self.messages[sid] for sid in sids]
        candidates = [
            m
            for m in candidates
            if m.account_sid == account and (not from_number or m.from_number == from_number)
        ]
        for name, compare in (
            ("DateSent", "="),
            ("DateSent>", ">="),
            ("DateSent<", "<="),
        ):
            value = first(name)
            if not value:
                continue
            # Twilio accepts a date or a datetime; a prefix inside the value ("<=...") too.
            match = re.match(r"^(<=|>=|<|>)?(.+)$", value)
            op, bound = match.group(1) or compare, _parse_date(match.group(2))
            if bound is None:
                continue
            candidates = [m for m in candidates if _date_matches(m.date_sent, op, bound)]
        candidates.sort(key=lambda m: (m.date_created, m.sid), reverse=True)
        page_size = max(1, min(1000, int(first("PageSize") or 50)))
        page = int(first("Page") or 0)
        start = page * page_size
        chunk = candidates[start : start + page_size]
        params = {k: v[0] for k, v in query.items() if k not in ("Page", "PageToken")}

        def page_uri(number: int) -> str:
            return f"{path}?{urlencode({**params, 'Page': number, 'PageToken': f'PT{number}'})}"

        has_next = start + page_size < len(candidates)
        return {
            "messages": [m.as_twilio() for m in chunk],
            "end": start + max(0, len(chunk) - 1),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if has_next else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": start,
            "uri": page_uri(page),
        }

    # --- the carrier's side: transitions and callbacks -------------------------------------

    def _schedule_locked(self, delay: float, action: str, sid: str) -> None:
        heapq.heappush(self._events, (time.monotonic() + delay, next(self._seq), action, sid))
        self._events_cv.notify()

    def _run_events(self) -> None:
        while True:
            with self._lock:
                while self._running and (not self._events or self._events[0][0] > time.monotonic()):
                    timeout = self._events[0][0] - time.monotonic() if self._events else None
                    self._events_cv.wait(timeout)
                if not self._running:
                    return
                _, _, action, sid = heapq.heappop(self._events)
                message = self.messages[sid]
                posts = self._advance_locked(message, action)
            for url, params in posts:
                self._pool.submit(self._post, url, params)

    def _advance_locked(self, message: FakeMessage, action: str) -> list[tuple[str, dict]]:
        """Move a message one step; return the callbacks to post."""
        now = dt.datetime.now(dt.UTC)
        message.events.append(action)
        if action == "stop_reply":
            self.unsubscribed.add(message.to)
            if not self.callback_base or not self.send_callbacks:
                return []
            reply_sid = new_sid(self._rng)
            params = {
                "MessageSid": reply_sid,
                "SmsSid": reply_sid,
                "SmsMessageSid": reply_sid,
                "AccountSid": message.account_sid,
                "From": message.to,
                "To": message.from_number,
                "Body": "STOP",
                "NumMedia": "0",
                "NumSegments": "1",
                "SmsStatus": "received",
                "ApiVersion": API_VERSION,
            }
            if message.messaging_service_sid:
                params["MessagingServiceSid"] = message.messaging_service_sid
            return [(self.callback_base + INBOUND_PATH, params)]
        if action == "sent":
            message.status = "sent"
            message.date_sent = now
            self._schedule_locked(self.callback_delay, "final", message.sid)
        else:
            message.status = message.outcome
            if message.outcome == "undelivered":
                message.error_code = 30003
            elif message.replies_stop:
                self._schedule_locked(self.callback_delay, "stop_reply", message.sid)
        message.date_updated = now
        if not self.send_callbacks:
            return []
        url = message.status_callback or (
            self.callback_base + STATUS_PATH if self.callback_base else ""
        )
        if not url:
            return []
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": message.status,
            "SmsStatus": message.status,
            "AccountSid": message.account_sid,
            "To": message.to,
            "From": message.from_number,
            "ApiVersion": API_VERSION,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code:
            params["ErrorCode"] = str(message.error_code)
        return [(url, params)]

    def _post(self, url: str, params: dict[str, str]) -> None:
        """POST a signed form to ``url`` on a kept-alive connection of this pool thread."""
        signature = compute_signature(url, params, self.auth_token)
        body = urlencode(params)
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": uuid.uuid4().hex,
            "User-Agent": "TwilioProxy/1.1",
        }
        entry = {"url": url, "params": params, "signature": signature, "status": None}
        for attempt in range(2):
            conn = self._connection(parts, fresh=attempt > 0)
            try:
                conn.request("POST", target, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                entry["status"] = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                entry["status"] = f"error: {exc}"
        with self._lock:
            self.callbacks.append(entry)
            ok = isinstance(entry["status"], int) and entry["status"] < 400
            self.stats["callbacks" if ok else "callback_errors"] += 1

    def _connection(self, parts, *, fresh: bool) -> http.client.HTTPConnection:
        cache = self._http.__dict__.setdefault("connections", {})
        key = (parts.scheme, parts.netloc)
        conn = cache.get(key)
        if conn is None or fresh:
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(parts.netloc, timeout=10)
            else:
                conn = http.client.HTTPConnection(parts.netloc, timeout=10)
            cache[key] = conn
        return conn


def _parse_date(value: str) -> dt.datetime | None:
    value = value.strip()
    for parse in (
        lambda v: dt.datetime.fromisoformat(v.replace("Z", "+00:00")),
        lambda v: email.utils.parsedate_to_datetime(v),
    ):
        try:
            parsed = parse(value)
        except (ValueError, TypeError):
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def _date_matches(date_sent: dt.datetime | None, op: str, bound: dt.datetime) -> bool:
    # Like Twilio, a message not yet sent has no date_sent and matches no DateSent filter.
    if date_sent is None:
        return False
    if op == "=":
        return date_sent.date() == bound.date()
    if op in (">=", ">"):
        return date_sent >= bound
    return date_sent <= bound
