"""Keeps every text in a module-level outbox instead of sending it (for tests).

Like Django's locmem e-mail backend: ``messaging.backends.locmem.outbox`` is a list of the
:class:`OutgoingSms` handed over, in order. Tests may set ``answers`` to a dict mapping a number
to the :class:`SendResult` fields to return for it (e.g. a permanent error), to drive the
sender's error handling without a network.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

from messaging.backends.base import BaseSmsBackend, OutgoingSms, SendOutcome, SendResult

outbox: list[OutgoingSms] = []
answers: dict[str, dict] = {}
_lock = threading.Lock()


def reset() -> None:
    with _lock:
        outbox.clear()
        answers.clear()


class LocmemBackend(BaseSmsBackend):
    def send_messages(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        results = []
        with _lock:
            for sms in messages:
                answer = answers.get(sms.to)
                if answer and answer.get("outcome", SendOutcome.ACCEPTED) != SendOutcome.ACCEPTED:
                    results.append(SendResult(message_id=sms.message_id, **answer))
                    continue
                outbox.append(sms)
                results.append(
                    SendResult(
                        message_id=sms.message_id,
                        outcome=SendOutcome.ACCEPTED,
                        carrier_sid=f"LM{uuid.uuid4().hex}",
                        carrier_status="queued",
                    )
                )
        return results
