"""A carrier simulated in process: the demo default, so nothing leaves the machine.

It accepts every text (a Twilio-like ``SM`` + 32 hex id, status ``queued``), then a little later
reports what a carrier would: ``delivered``, or ``undelivered`` (30003 unreachable handset) or
``failed`` (30006 landline or unreachable carrier) at configurable rates, and now and then a STOP
reply from the recipient. Reports go through :func:`messaging.services.message_record_status` and
:func:`messaging.services.inbound_receive`, the very code the carrier callback views call, so a
demo exercises the real receipt, opt-out and DNC paths.

Options (``get_backend(path, **options)``), each defaulting to an environment variable:

==================  ===============================  =======
option              environment variable             default
==================  ===============================  =======
``delay``           ``SIMULATOR_DELAY_SECONDS``      2
``undelivered_rate`` ``SIMULATOR_UNDELIVERED_RATE``  0.03
``failed_rate``     ``SIMULATOR_FAILED_RATE``        0.01
``stop_rate``       ``SIMULATOR_STOP_RATE``          0.01
``validate_numbers`` ``SIMULATOR_VALIDATE_NUMBERS``  false
``seed``            (none)                           random
==================  ===============================  =======

Each report is due ``delay`` x a random factor in [0.5, 1.5) after the send. ``seed`` makes the
outcomes (not the ids) repeatable. With ``validate_numbers`` a number that is not a valid phone
number is rejected with 21211, as Twilio would.

Reports wait on one daemon thread per process (a heap ordered by due time). It closes its
database connections like a request does. Reports still pending when the process exits are
lost (the messages stay ``sent``), as receipts from a real carrier can be. Tests call
:func:`flush` to run every pending report at once, in the calling thread, instead of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import phonenumbers
from django.db import close_old_connections, connection

from messaging.backends.base import BaseSmsBackend, OutgoingSms, SendOutcome, SendResult

logger = logging.getLogger(__name__)

# A report that finds no message (neither by carrier id nor by our message id) is tried again
# this many times, ``retry_in`` apart: the sender may not have committed its row yet.
UNKNOWN_ID_RETRIES = 5


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return value in ("1", "true", "yes", "on") if value else default


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


@dataclass(order=True)
class _Report:
    due: float
    seq: int
    carrier_sid: str = field(compare=False)
    message_id: int | None = field(compare=False)
    status: str = field(compare=False)
    error_code: str = field(compare=False, default="")
    error_text: str = field(compare=False, default="")
    # (recipient, our number) when the recipient replies STOP after this report.
    stop_reply: tuple[str, str] | None = field(compare=False, default=None)
    retry_in: float = field(compare=False, default=1.0)
    attempts: int = field(compare=False, default=0)


class _Reporter:
    """Due reports on a heap, run by one daemon thread (started on first use, per process)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[_Report] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def after_fork_in_child(self) -> None:
        # The child inherits the parent's queue (the parent still owns those reports), not its
        # thread, and possibly a lock held by a thread that does not exist here.
        self._cv = threading.Condition()
        self._heap = []
        self._thread = None
        self._pid = 0

    def schedule(self, report: _Report) -> None:
        with self._cv:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="sms-simulator", daemon=True)
                self._thread.start()
            report.seq = next(self._seq)
            heapq.heappush(self._heap, report)
            self._cv.notify()

    def pending(self) -> int:
        with self._cv:
            return len(self._heap)

    def clear(self) -> None:
        with self._cv:
            self._heap.clear()

    def flush(self) -> int:
        """Run every pending report now, in this thread. Returns how many ran."""
        with self._cv:
            reports, self._heap = sorted(self._heap), []
        for report in reports:
            self._deliver(report)
        return len(reports)

    def _run(self) -> None:
        while True:
            with self._cv:
                idle_closed = False
                while not self._heap or self._heap[0].due > time.monotonic():
                    timeout = self._heap[0].due - time.monotonic() if self._heap else None
                    if not idle_closed and (timeout is None or timeout > 1):
                        # Idle for a while: give the database connection back.
                        connection.close()
                        idle_closed = True
                    self._cv.wait(timeout)
                due = []
                now = time.monotonic()
                while self._heap and self._heap[0].due <= now and len(due) < 500:
                    due.append(heapq.heappop(self._heap))
            close_old_connections()
            try:
                for report in due:
                    self._deliver(report)
            finally:
                close_old_connections()

    def _deliver(self, report: _Report) -> None:
        # Imported here: services imports models, and backends are importable before apps load.
        from messaging import services

        try:
            message = services.message_record_status(
                carrier_sid=report.carrier_sid,
                carrier_status=report.status,
                error_code=report.error_code,
                error_text=report.error_text,
                message_id=report.message_id,
            )
            if message is None:
                if report.attempts < UNKNOWN_ID_RETRIES:
                    report.attempts += 1
                    report.due = time.monotonic() + report.retry_in
                    self.schedule(report)
                return
            if report.stop_reply:
                recipient, our_number = report.stop_reply
                services.inbound_receive(
                    carrier_sid=new_sid(),
                    from_number=recipient,
                    to_number=our_number,
                    body="STOP",
                )
        except Exception:
            logger.exception("Simulated report for %s failed", report.carrier_sid)


_reporter = _Reporter()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reporter.after_fork_in_child)


def flush() -> int:
    """Run every pending simulated report now, in the calling thread (for tests)."""
    return _reporter.flush()


def pending() -> int:
    """How many simulated reports are waiting."""
    return _reporter.pending()


def reset() -> None:
    """Forget every pending report."""
    _reporter.clear()


class SimulatorBackend(BaseSmsBackend):
    """Accepts every text and reports outcomes later through the callback code paths."""

    flush = staticmethod(flush)
    pending = staticmethod(pending)
    reset = staticmethod(reset)

    def __init__(
        self,
        *,
        delay: float | None = None,
        undelivered_rate: float | None = None,
        failed_rate: float | None = None,
        stop_rate: float | None = None,
        validate_numbers: bool | None = None,
        seed: int | None = None,
        **options,
    ) -> None:
        super().__init__(**options)

        def pick(value, name, default):
            return _env_float(name, default) if value is None else float(value)

        self.delay = pick(delay, "SIMULATOR_DELAY_SECONDS", 2.0)
        self.undelivered_rate = pick(undelivered_rate, "SIMULATOR_UNDELIVERED_RATE", 0.03)
        self.failed_rate = pick(failed_rate, "SIMULATOR_FAILED_RATE", 0.01)
        self.stop_rate = pick(stop_rate, "SIMULATOR_STOP_RATE", 0.01)
        self.validate_numbers = (
            _env_bool("SIMULATOR_VALIDATE_NUMBERS", False)
            if validate_numbers is None
            else bool(validate_numbers)
        )
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def send_messages(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        results = []
        for sms in messages:
            if self.validate_numbers and not _valid_number(sms.to):
                results.append(
                    SendResult(
                        message_id=sms.message_id,
                        outcome=SendOutcome.REJECTED,
                        error_code="21211",
                        error_text=f"The 'To' number {sms.to} is not a valid phone number.",
                    )
                )
                continue
            sid = new_sid()
            _reporter.schedule(self._report_for(sms, sid))
            results.append(
                SendResult(
                    message_id=sms.message_id,
                    outcome=SendOutcome.ACCEPTED,
                    carrier_sid=sid,
                    carrier_status="queued",
                )
            )
        return results

    def _report_for(self, sms: OutgoingSms, sid: str) -> _Report:
        with self._lock:
            draw = self._rng.random()
            stop = self._rng.random() < self.stop_rate
            factor = self._rng.uniform(0.5, 1.5)
        if draw < self.failed_rate:
            status, code, text = "failed", "30006", "Landline or unreachable carrier"
        elif draw < self.failed_rate + self.undelivered_rate:
            status, code, text = "undelivered", "30003", "Unreachable destination handset"
        else:
            status, code, text = "delivered", "", ""
        # A STOP needs our number to reply to; through a Messaging Service we do not know it.
        stop_reply = (sms.to, sms.from_number) if stop and sms.from_number else None
        return _Report(
            due=time.monotonic() + self.delay * factor,
            seq=0,
            carrier_sid=sid,
            message_id=sms.message_id,
            status=status,
            error_code=code,
            error_text=text,
            stop_reply=stop_reply,
            retry_in=max(1.0, self.delay),
        )


def _valid_number(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False
