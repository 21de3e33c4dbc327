"""The sender's backend for email: each message through Django's own mail framework.

A registration of an email sender names a Django mail backend (``SmsRegistration.backend``,
empty: the ``EMAIL_BACKEND`` setting): SMTP for a relay or the demo's sink, an anymail backend
for an ESP, console or locmem for development and tests. This class turns the sender's
:class:`~messaging.backends.base.OutgoingSms` into an ``EmailMultiAlternatives`` and the mail
backend's answer into the four outcomes every backend reports (backends/base.py):

* accepted: the relay or the ESP took it. Its id (``carrier_sid``) is the ESP's message id
  when anymail reports one (its tracking webhooks name it), else the Message-ID we set;
* rejected: a permanent refusal of the recipient (SMTP 5xx, anymail's "rejected" or
  "invalid"), error code ``bounced`` (the CPA rule finalizes the address);
* retry: refused before it was taken (SMTP 4xx, connection refused, ESP 429 or 5xx);
* unknown: the connection broke after the message data went out: it may have been taken.

Connections are kept open per thread and mail backend (an SMTP session per message would cost
a TCP and TLS handshake each), and opened again after any error.
"""

from __future__ import annotations

import contextlib
import smtplib
import threading
from collections.abc import Sequence
from email.utils import make_msgid

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives, get_connection

from messaging.backends.base import BaseSmsBackend, OutgoingSms, SendOutcome, SendResult

BOUNCED = "bounced"  # the error code of a permanent refusal, as anymail's event names it
_REFUSED = ("rejected", "invalid")  # anymail's per-recipient statuses of a refusal


class EmailBackend(BaseSmsBackend):
    def open(self) -> None:
        self.__dict__.setdefault("_local", threading.local())

    def close(self) -> None:
        local = self.__dict__.get("_local")
        for connection in getattr(local, "connections", {}).values():
            _close(connection)
        if local is not None:
            local.connections = {}

    def _connection(self, path: str):
        self.open()
        connections = self._local.__dict__.setdefault("connections", {})
        connection = connections.get(path)
        if connection is None:
            try:
                connection = get_connection(path or None, fail_silently=False)
            except ImportError as error:  # the sender holds the queue and logs it
                raise ImproperlyConfigured(f"Mail backend {path!r}: {error}") from error
            connections[path] = connection
            connection.open()
        return connection

    def _drop(self, path: str) -> None:
        connection = self._local.__dict__.get("connections", {}).pop(path, None)
        if connection is not None:
            _close(connection)

    def send_messages(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        return [self._send(m) for m in messages]

    def _send(self, sms: OutgoingSms) -> SendResult:
        domain = sms.from_number.rpartition("@")[2] or None
        message_id = make_msgid(domain=domain)
        email = EmailMultiAlternatives(
            subject=sms.subject,
            body=sms.body,
            from_email=sms.from_number or None,
            to=[sms.to],
            headers={**dict(sms.headers), "Message-ID": message_id},
        )
        if sms.html_body:
            email.attach_alternative(sms.html_body, "text/html")
        result = _answer(sms.message_id)
        try:
            email.connection = self._connection(sms.mail_backend)
        except (OSError, AnymailAPIError) as error:  # no session: nothing went out
            self._drop(sms.mail_backend)
            return result(SendOutcome.RETRY, error_text=f"{type(error).__name__}: {error}"[:500])
        try:
            email.send()
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()), (550, b""))
            return _refused(sms.message_id, code, text)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            self._drop(sms.mail_backend)
            return _refused(sms.message_id, error.smtp_code, error.smtp_error)
        except AnymailRecipientsRefused as error:
            return result(SendOutcome.REJECTED, error_code=BOUNCED, error_text=str(error)[:500])
        except AnymailAPIError as error:
            status = getattr(error, "status_code", None)
            if status is None or status == 429 or status >= 500:
                return result(SendOutcome.RETRY, error_text=str(error)[:500])
            return result(SendOutcome.REJECTED, error_code=str(status), error_text=str(error)[:500])
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as error:
            self._drop(sms.mail_backend)
            # The session broke while the message went out: the relay may have taken it, so
            # the sender reconciles rather than sending it twice.
            return result(SendOutcome.UNKNOWN, error_text=f"{type(error).__name__}: {error}"[:500])
        status = getattr(email, "anymail_status", None)
        if status is not None:
            recipient = (status.recipients or {}).get(sms.to)
            if recipient is not None and recipient.status in _REFUSED:
                return result(SendOutcome.REJECTED, error_code=BOUNCED, error_text=recipient.status)
            if status.message_id is not None and status.message_id != "":
                message_id = status.message_id
        sid = str(message_id)[:255]
        return result(SendOutcome.ACCEPTED, carrier_sid=sid, carrier_status="sent")


def _answer(message_id: int):
    def result(outcome: SendOutcome, **fields) -> SendResult:
        return SendResult(message_id=message_id, outcome=outcome, **fields)

    return result


def _refused(message_id: int, code: int, text) -> SendResult:
    detail = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    if 400 <= code < 500:
        return SendResult(
            message_id=message_id, outcome=SendOutcome.RETRY, error_text=f"{code} {detail}"[:500]
        )
    return SendResult(
        message_id=message_id,
        outcome=SendOutcome.REJECTED,
        error_code=BOUNCED,
        error_text=f"{code} {detail}"[:500],
    )


def _close(connection) -> None:
    # A connection already broken is let go all the same.
    with contextlib.suppress(Exception):
        connection.close()
