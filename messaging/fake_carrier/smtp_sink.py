"""A local SMTP server that takes every email and keeps it: the email skills' stand-in for a
relay, as the fake carrier is the SMS skills' (the demo, the tests, bench/email_sending.py).

Built on aiosmtpd. It speaks real SMTP, so the mail goes through Django's SMTP backend exactly
as it would to a production relay. Recipients whose local part starts with ``bounce`` are
refused with ``550 5.1.1`` (the hard bounce a relay gives for an unknown mailbox), so a demo or
a test can watch a bounce finalize an address; those starting with ``defer`` get ``451``
(try later). Accepted messages are kept in memory (the last
``keep``) and, with ``mbox``, appended to an mbox file any mail reader opens.
"""

from __future__ import annotations

import collections
import email
import email.policy
import mailbox
import socket
import threading
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller

REFUSED_PREFIX = "bounce"  # 550: a hard bounce
DEFERRED_PREFIX = "defer"  # 451: try again later


@dataclass(frozen=True)
class Received:
    mail_from: str
    to: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def header(self, name: str) -> str:
        """The header's value unfolded (a long List-Unsubscribe comes folded over lines)."""
        return " ".join(str(self.message[name] or "").split())

    def part(self, content_type: str) -> str:
        """The text of the first part of ``content_type`` (text/plain or text/html)."""
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part.get_content()
        return ""


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        local = address.partition("@")[0].lower()
        if local.startswith(REFUSED_PREFIX):
            return "550 5.1.1 The email account that you tried to reach does not exist"
        if local.startswith(DEFERRED_PREFIX):
            return "451 4.2.1 The user you are trying to contact is receiving mail too quickly"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.sink.keep(Received(envelope.mail_from, tuple(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


class SmtpSink:
    """``with SmtpSink() as sink:`` listens on ``sink.port`` until the block ends."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, keep: int = 10_000, mbox: str | None = None
    ) -> None:
        self.host = host
        self._port = port
        self.received: collections.deque[Received] = collections.deque(maxlen=keep)
        self.count = 0
        self._lock = threading.Lock()
        self._mbox = mailbox.mbox(mbox) if mbox else None
        self._controller: Controller | None = None

    def keep(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)
            self.count += 1
            if self._mbox is not None:
                self._mbox.add(received.message)
                self._mbox.flush()

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> SmtpSink:
        if not self._port:  # aiosmtpd needs a number: the OS picks a free one first
            with socket.socket() as probe:
                probe.bind((self.host, 0))
                self._port = probe.getsockname()[1]
        self._controller = Controller(_Handler(self), hostname=self.host, port=self._port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._mbox is not None:
            self._mbox.close()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address in r.to]
