"""Prints every text to standard output instead of sending it (for development)."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Sequence

from messaging.backends.base import BaseSmsBackend, OutgoingSms, SendOutcome, SendResult

_lock = threading.Lock()


class ConsoleBackend(BaseSmsBackend):
    def __init__(self, stream=None, **options) -> None:
        super().__init__(**options)
        self.stream = stream or sys.stdout

    def send_messages(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        results = []
        with _lock:
            for sms in messages:
                sender = sms.from_number or sms.messaging_service_sid or "(default)"
                self.stream.write(f"SMS #{sms.message_id} {sender} -> {sms.to}\n{sms.body}\n")
                self.stream.write("-" * 79 + "\n")
                results.append(
                    SendResult(
                        message_id=sms.message_id,
                        outcome=SendOutcome.ACCEPTED,
                        carrier_sid=f"CO{uuid.uuid4().hex}",
                        carrier_status="sent",
                    )
                )
            self.stream.flush()
        return results
