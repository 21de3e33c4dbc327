"""The contract every SMS backend keeps.

A backend is told *what* to send; it never decides *whether* or *when* (the sender does that:
pace, guards, retries). Its one job is to hand a batch to a carrier and say, per message, what
the carrier answered, sorted into four outcomes the sender acts on:

* ``accepted``: the carrier took it and gave an id; receipts may follow.
* ``rejected``: a permanent refusal with an error code (e.g. 21211 invalid number, 21610
  unsubscribed); never retried.
* ``retry``: refused before processing (429/20429, 5xx before acceptance, connection refused);
  safe to send again later, after ``retry_after`` seconds if given.
* ``unknown``: the request may have reached the carrier but no answer came back (timeout, reset
  mid-response). Sending again could duplicate the text, so the sender must reconcile first.
"""

from __future__ import annotations

import abc
import concurrent.futures
import dataclasses
import datetime as dt
import enum
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from messaging.pacing import StartGate


class SendOutcome(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RETRY = "retry"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One message to hand over: a text to the carrier or, from an email sender, an email to
    the mail backend (then ``from_number`` is the From address and ``body`` the plain-text
    part, each with the footer of messaging/emails.py)."""

    message_id: int
    to: str
    body: str
    from_number: str = ""
    messaging_service_sid: str = ""
    status_callback: str = ""
    carrier_account: str = "default"
    #: What it counts against the code's pace (1, or its segments on a code that counts them).
    cost: int = 1
    # Email only.
    subject: str = ""
    html_body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    #: The Django mail backend's dotted path; empty: the EMAIL_BACKEND setting.
    mail_backend: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the carrier answered for one :class:`OutgoingSms`."""

    message_id: int
    outcome: SendOutcome
    carrier_sid: str = ""
    carrier_status: str = ""
    error_code: str = ""
    error_text: str = ""
    retry_after: float | None = None
    #: Wall-clock moment (``time.time()``) the request for this text was handed to the
    #: carrier's client, when the backend knows it better than the caller (async backends).
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class CarrierReport:
    """What the carrier says now of a text it accepted (its status, as a callback carries it)."""

    carrier_sid: str
    carrier_status: str
    error_code: str = ""
    error_text: str = ""
    #: When the carrier last changed the text's status, if it says.
    updated_at: dt.datetime | None = None


class BaseSmsBackend(abc.ABC):
    """Subclasses implement :meth:`send_messages`; ``open``/``close`` manage connections."""

    def __init__(self, **options) -> None:
        self.options = options

    def open(self) -> None:
        """Prepare long-lived resources (connection pools). Safe to call twice."""
        return None

    def close(self) -> None:
        """Release what :meth:`open` acquired."""
        return None

    def __enter__(self) -> BaseSmsBackend:
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def find_sent(
        self, messages: Sequence[OutgoingSms], since: dt.datetime
    ) -> dict[int, SendResult] | None:
        """Reconcile texts whose send may or may not have reached the carrier.

        Returns ``{message_id: result}`` for those the carrier has (sent at or after ``since``),
        meaning the rest were never received and may be sent again safely; or ``None`` when the
        backend cannot ask the carrier, in which case the sender marks them "unknown outcome".
        """
        return None

    def fetch_statuses(self, sids: dict[str, str]) -> dict[str, CarrierReport] | None:
        """Ask the carrier for the current status of texts it accepted.

        ``sids`` maps each carrier id to its carrier account. Returns a report per text the
        carrier knows (a text it does not know is left out), or ``None`` when the backend cannot
        ask (then the texts wait for their callbacks alone).
        """
        return None

    @abc.abstractmethod
    def send_messages(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        """Send a batch; return one result per message, in the same order."""

    def submit(
        self, messages: Sequence[OutgoingSms], *, gate: StartGate | None = None
    ) -> concurrent.futures.Future:
        """Start sending a batch and return at once; the future's result is what
        :meth:`send_messages` returns. The sender uses this so that a slow carrier answer never
        holds up the next slot. Default: a few threads of the backend's own call
        :meth:`send_messages`; an asynchronous backend schedules the batch on its event loop.
        Must not raise for a carrier failure (those are outcomes); may raise
        ``ImproperlyConfigured`` before anything is sent.

        ``gate`` (the code's :class:`~messaging.pacing.StartGate`): pass every text through it
        right before its request starts, so the pace holds on the real start times; report
        that moment as ``SendResult.started_at``."""
        with self._lock_for_submit():
            pool = self.__dict__.get("_submit_pool")
            if pool is None:
                pool = self.__dict__["_submit_pool"] = concurrent.futures.ThreadPoolExecutor(
                    max_workers=8, thread_name_prefix=f"{type(self).__name__}-submit"
                )
            return pool.submit(self._send_gated, list(messages), gate)

    def _send_gated(self, messages: list[OutgoingSms], gate: StartGate | None) -> list[SendResult]:
        if gate is None:
            started = time.time()
            return [
                r if r.started_at is not None else dataclasses.replace(r, started_at=started)
                for r in self.send_messages(messages)
            ]
        # Through a gate, text by text: each starts only when the window has room for it.
        results = []
        for sms in messages:
            gate.enter(sms.cost)
            started = time.time()
            for r in self.send_messages([sms]):
                results.append(r if r.started_at else dataclasses.replace(r, started_at=started))
        return results

    def _lock_for_submit(self) -> threading.Lock:
        # Set on first use (dict.setdefault is atomic): subclasses need not call __init__.
        return self.__dict__.setdefault("_submit_lock", threading.Lock())

    def shutdown(self) -> None:
        """Wait for submitted batches, then :meth:`close`."""
        with self._lock_for_submit():
            pool = self.__dict__.pop("_submit_pool", None)
        if pool is not None:
            pool.shutdown(wait=True)
        self.close()
