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
import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass


class SendOutcome(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RETRY = "retry"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One text to hand to the carrier."""

    message_id: int
    to: str
    body: str
    from_number: str = ""
    messaging_service_sid: str = ""
    status_callback: str = ""
    carrier_account: str = "default"


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

    @abc.abstractmethod
    def send_messages(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        """Send a batch; return one result per message, in the same order."""
