"""Writes of the email channel: an unsubscribe, and what an ESP's tracking webhook reports.

Both come down to what texts already do: a status through
:func:`messaging.services.message_record_status` (forward only, every report kept as an
event, the skills' outcome listeners told) and an opt-out through
:func:`messaging.services.phone_opt_out` (queued messages to the address withdrawn, then the DNC
entry with its evidence in the registration's STOP group, or the BU's default). docs/email.md.
"""

from __future__ import annotations

import logging

from dnc.models import DncEntry
from dnc.services import OptOut
from messaging.backends.email import BOUNCED
from messaging.models import MessageEvent, OutboundMessage, TransportCode
from messaging.services import message_record_status, phone_opt_out

logger = logging.getLogger(__name__)

# anymail's normalised event types -> the status word message_record_status reads and the
# error code the skills' CPA rules match ("bounced": the address is bad).
_STATUS_EVENTS = {
    "delivered": ("delivered", ""),
    "bounced": ("undelivered", BOUNCED),
    "rejected": ("failed", BOUNCED),
    "failed": ("failed", "failed"),
}
# Events that are an opt-out of the address, and the DNC entry's source.
_OPT_OUT_EVENTS = {
    "unsubscribed": DncEntry.Source.UNSUBSCRIBE,
    "complained": DncEntry.Source.COMPLAINT,
}


def email_messages():
    return OutboundMessage.objects.filter(transport_code__kind=TransportCode.Kind.EMAIL)


def email_unsubscribe(*, message: OutboundMessage, how: str) -> OptOut:
    """The recipient of ``message`` unsubscribes by its link (``how``: "one-click" from the
    mailbox provider, or "page" from our confirmation page)."""
    return _opt_out(
        message,
        DncEntry.Source.UNSUBSCRIBE,
        f"unsubscribe link ({how}) of email {message.id} "
        f'"{message.subject[:80]}" sent {message.sent_at or message.created_at:%Y-%m-%d %H:%M} UTC',
    )


def email_tracking_event(
    *,
    esp: str,
    event_type: str,
    message_id: str,
    description: str = "",
    mta_response: str = "",
) -> OutboundMessage | None:
    """One event of an ESP's tracking webhook, as anymail normalises it. An event for a message
    we do not know (another system's mail on the same ESP account) is logged and ignored."""
    message = (
        email_messages()
        .select_related("registration", "business_unit")
        .filter(carrier_sid=message_id)
        .first()
        if message_id
        else None
    )
    if message is None:
        logger.info("%s %s event for unknown message id %r ignored", esp, event_type, message_id)
        return None
    detail = (mta_response or description or "")[:500]
    if event_type in _STATUS_EVENTS:
        status, code = _STATUS_EVENTS[event_type]
        message_record_status(
            carrier_sid=message_id, carrier_status=status, error_code=code, error_text=detail
        )
    elif event_type in _OPT_OUT_EVENTS:
        _opt_out(
            message,
            _OPT_OUT_EVENTS[event_type],
            f"{esp} {event_type} event for email {message.id}" + (f": {detail}" if detail else ""),
        )
        _event(message, f"{esp}: {event_type}")
    else:  # opened, clicked, deferred, queued...: the message's history keeps them
        _event(message, f"{esp}: {event_type} {detail}")
    return message


def _event(message: OutboundMessage, detail: str) -> None:
    MessageEvent.objects.create(
        message=message, kind=MessageEvent.Kind.CALLBACK, detail=detail.strip()[:500]
    )


def _opt_out(message: OutboundMessage, source: str, evidence: str) -> OptOut:
    return phone_opt_out(
        business_unit=message.business_unit,
        phone_number=message.to,
        source=source,
        evidence=evidence,
        group=message.registration.stop_dnc_group,
        message_id=message.id,
    )


def on_tracking(sender, event, esp_name: str, **_) -> None:
    """anymail's ``tracking`` signal, sent by its webhook views once the ESP's signature (and
    the webhook's basic-auth secret) is verified."""
    email_tracking_event(
        esp=esp_name,
        event_type=str(event.event_type or ""),
        message_id=str(event.message_id or ""),
        description=str(event.description or ""),
        mta_response=str(event.mta_response or ""),
    )
