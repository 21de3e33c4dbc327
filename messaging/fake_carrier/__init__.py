"""A local carrier that speaks enough of Twilio's Messages API for the real ``twilio`` SDK.

For demos, tests and load tests: nothing leaves the machine. Start it in-process::

    with FakeCarrier(latency_ms=150, callback_base="http://127.0.0.1:8000") as carrier:
        backend = TwilioBackend(base_url=carrier.url)
        ...
        carrier.received  # every accepted message, in order

or from the command line with ``manage.py fake_carrier`` (docs/carrier.md).

What it answers (``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``), in this order:

1. ``--throttle-rate``: 429, code 20429, ``Retry-After: 1``. **Not processed**.
2. ``--fail-rate``: 500, code 20500 (or ``fail_status``, e.g. 503 / 20503). **Not processed**:
   nothing is recorded, billed or reported. (A real Twilio 500 may have been processed: the
   Twilio backend treats it as ``unknown`` and reconciles.)
3. Validation (**not processed**, permanent): no Body 21602; Body over 1,600 characters 21617;
   neither From nor MessagingServiceSid 21603; To not a valid E.164 number 21211; To in the
   unsubscribed set (numbers that replied STOP here, plus ``unsubscribed=``) 21610; and Twilio's
   magic test numbers: +15005550001 21211, +15005550002 21612, +15005550003 21408,
   +15005550004 21610, +15005550009 21614.
4. Otherwise the message is **processed**: recorded (``received``, the JSON-lines log) and
   answered 201 with a Twilio-shaped message (``SM`` + 32 hex, status ``queued``, or
   ``accepted`` when sent through a Messaging Service, as Twilio does). At ``drop_rate`` the
   connection is closed instead of answering: processed, but the client cannot know.

The latency is slept after the decision, before the answer, so a client whose read timeout is
shorter than the latency gets no answer for a message that *was* processed: exactly the
"unknown outcome" a sender must reconcile (``GET Messages.json?To=...`` finds it). Other
routes: ``GET Messages.json`` (To, From, DateSent filters; newest first; Twilio's page shape)
and ``GET Messages/{Sid}.json``.

After acceptance the message moves on its own: ``sent`` after ``callback_delay`` seconds, then
``delivered`` (or ``undelivered`` with ErrorCode 30003 at ``undelivered_rate``) after another
``callback_delay``; each transition is posted, signed with ``X-Twilio-Signature``, to the
message's StatusCallback (or ``callback_base`` + ``/sms/twilio/status/``). At ``stop_rate`` a
delivered recipient replies STOP: the number joins the unsubscribed set and, when
``callback_base`` is set, the reply is posted to ``callback_base`` + ``/sms/twilio/inbound/``.

The package: ``wire`` (Twilio's routes, error codes and message shape), ``routes`` (the HTTP
server and the Messages API answers), ``behaviour`` (acceptance, transitions, callbacks) and
``carrier`` (``FakeCarrier``: settings, state, start and stop).
"""

from messaging.fake_carrier.carrier import FakeCarrier
from messaging.fake_carrier.wire import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    ERROR_MESSAGES,
    INBOUND_PATH,
    MAGIC_TO_ERRORS,
    MAX_BODY,
    SERVICE_POOL_NUMBER,
    STATUS_PATH,
    FakeMessage,
    new_sid,
    rfc2822,
    twilio_error,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_ACCOUNT_SID",
    "ERROR_MESSAGES",
    "INBOUND_PATH",
    "MAGIC_TO_ERRORS",
    "MAX_BODY",
    "SERVICE_POOL_NUMBER",
    "STATUS_PATH",
    "FakeCarrier",
    "FakeMessage",
    "new_sid",
    "rfc2822",
    "twilio_error",
]
