"""The fake carrier's HTTP side: the server, its request handler, and the Messages API routes."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from messaging.fake_carrier.wire import (
    FETCH_RE,
    LIST_RE,
    FakeMessage,
    date_matches,
    parse_date,
    twilio_error,
)

# One logger for the whole fake carrier, whichever of its modules logs.
logger = logging.getLogger(__package__)

# Linux's SO_TIMESTAMP (not exported by Python's socket module): the kernel stamps each packet
# with its arrival time, which recvmsg hands back as a struct timeval.
SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)


class Handler(BaseHTTPRequestHandler):
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
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        self.server.carrier._track(self.connection, add=True)

    def handle_one_request(self) -> None:
        self.arrived = self._arrival()
        super().handle_one_request()

    def _arrival(self) -> float | None:
        """When the kernel received the next request's first byte (wall clock), or None.

        A carrier counts a code's pace by when its texts reach it. This process, one Python
        process on a machine it shares with the senders, may get round to a request tens or
        hundreds of milliseconds after it arrived (the GIL, a busy CPU); stamping then would
        charge the sender with the carrier's own delay (docs/carrier.md, "Clock"). The peek
        leaves the bytes for the normal read; it sees the next request because no client of a
        Messages API pipelines (each waits for its answer), so the read buffer is empty here.
        """
        try:
            _data, ancillary, _flags, _address = self.connection.recvmsg(
                1, socket.CMSG_SPACE(16), socket.MSG_PEEK
            )
        except OSError:  # a timeout or a closed connection: the normal read handles both
            return None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(payload) >= 16:
                seconds, micros = struct.unpack("qq", payload[:16])
                return seconds + micros / 1_000_000
        return None

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


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops SYNs when a client opens hundreds of connections at once,
    # and a dropped SYN costs a 1 s retransmit.
    request_queue_size = 1024

    def handle_error(self, request, client_address) -> None:
        # A client that timed out and hung up is expected (the timeout tests do it).
        logger.debug("Connection from %s ended abruptly", client_address, exc_info=True)


class MessagesApiRoutes:
    """Routing, authentication, latency and the list and fetch answers of ``FakeCarrier``.

    Creating a message (``_create``) is the carrier's behaviour (``behaviour.py``); the state
    read here is set up by ``FakeCarrier.__init__``.
    """

    latency_ms: float
    check_auth: bool
    auth_token: str
    messages: dict[str, FakeMessage]
    _lock: threading.Lock
    _by_to: dict[str, list[str]]

    def _dispatch(self, handler: Handler, method: str) -> None:
        started = time.monotonic()
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        headers: dict[str, str] = {}
        list_match = LIST_RE.match(parts.path)
        fetch_match = FETCH_RE.match(parts.path)
        account = (list_match or fetch_match).group("account") if list_match or fetch_match else ""
        if not (list_match or fetch_match):
            status, payload = 404, twilio_error(20404, 404)
        elif not self._authorised(handler, account):
            status, payload = 401, twilio_error(20003, 401)
        elif list_match and method == "POST":
            form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
            status, payload, headers = self._create(
                account, form, arrived=getattr(handler, "arrived", None)
            )
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

    def _authorised(self, handler: Handler, account: str) -> bool:
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
            op, bound = match.group(1) or compare, parse_date(match.group(2))
            if bound is None:
                continue
            candidates = [m for m in candidates if date_matches(m.date_sent, op, bound)]
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
