"""What the fake carrier does with a message: refuse, reject or accept it, then move it along.

Acceptance draws the throttle, fail, drop, undelivered and STOP-reply outcomes from the seeded
generator; afterwards a scheduler thread advances each message (``sent``, then ``delivered`` or
``undelivered``, then perhaps a STOP reply) and a pool posts the signed callbacks.
"""

from __future__ import annotations

import datetime as dt
import heapq
import http.client
import itertools
import json
import random
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO
from urllib.parse import urlencode, urlsplit

import phonenumbers

from messaging.backends.twilio import compute_signature
from messaging.fake_carrier.wire import (
    API_VERSION,
    E164_RE,
    INBOUND_PATH,
    MAGIC_TO_ERRORS,
    MAX_BODY,
    SERVICE_POOL_NUMBER,
    STATUS_PATH,
    FakeMessage,
    new_sid,
    twilio_error,
)
from messaging.segments import segment_count


class CarrierBehaviour:
    """Acceptance, transitions and callbacks of ``FakeCarrier``.

    ``FakeCarrier.__init__`` sets the state read and written here.
    """

    throttle_rate: float
    fail_rate: float
    fail_status: int
    drop_rate: float
    stop_rate: float
    undelivered_rate: float
    callback_base: str
    callback_delay: float
    send_callbacks: bool
    auth_token: str
    unsubscribed: set[str]
    received: list[dict]
    messages: dict[str, FakeMessage]
    stats: Counter[str]
    callbacks: deque[dict]
    _rng: random.Random
    _lock: threading.Lock
    _by_to: dict[str, list[str]]
    _pairs: Counter[tuple[str, str]]
    _events: list[tuple[float, int, str, str]]
    _events_cv: threading.Condition
    _seq: itertools.count
    _running: bool
    _pool: ThreadPoolExecutor | None
    _log_file: TextIO | None
    _http: threading.local

    # --- the Messages API's create ---------------------------------------------------------

    def _create(
        self, account: str, form: dict[str, str], *, arrived: float | None = None
    ) -> tuple[int, dict, dict[str, str]]:
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
        # The message's creation time is when its request arrived, as at Twilio.
        now = dt.datetime.fromtimestamp(arrived, dt.UTC) if arrived else dt.datetime.now(dt.UTC)
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
        if not E164_RE.match(to):
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
