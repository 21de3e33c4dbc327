"""Twilio's side of the wire: the routes, error codes and message shape the fake carrier answers."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import re
from dataclasses import dataclass, field

API_VERSION = "2010-04-01"
STATUS_PATH = "/sms/twilio/status/"
INBOUND_PATH = "/sms/twilio/inbound/"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
# The number a Messaging Service "picks from its pool" when no From is given (Twilio's magic
# always-valid From number).
SERVICE_POOL_NUMBER = "+15005550006"
MAX_BODY = 1600

LIST_RE = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>\w+)/Messages\.json$")
FETCH_RE = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>\w+)/Messages/(?P<sid>\w+)\.json$")
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")

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


def parse_date(value: str) -> dt.datetime | None:
    """A ``DateSent`` filter's value: an ISO date or datetime, or an RFC 2822 one (UTC if naive)."""
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


def date_matches(date_sent: dt.datetime | None, op: str, bound: dt.datetime) -> bool:
    # Like Twilio, a message not yet sent has no date_sent and matches no DateSent filter.
    if date_sent is None:
        return False
    if op == "=":
        return date_sent.date() == bound.date()
    if op in (">=", ">"):
        return date_sent >= bound
    return date_sent <= bound


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
