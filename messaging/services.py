"""Writes for messaging: carrier status updates and inbound texts.

Every carrier answer goes through here, whether it comes from a real carrier's callback, the
simulator or the sender itself, so that all of them obey the same rules: callbacks may arrive late,
twice or out of order, and a final status is never turned back.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messaging.models import (
    InboundMessage,
    MessageEvent,
    MessageStatus,
    OutboundMessage,
    TransportCode,
)

logger = logging.getLogger(__name__)

# How far along the lifecycle each carrier status is; an update may only move forward.
# undelivered/failed after delivered would be a carrier contradiction: delivered wins.
_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.UNKNOWN: 1,
    MessageStatus.SENT: 2,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.DELIVERED: 4,
    MessageStatus.WITHDRAWN: 5,
}
# Twilio's status words -> ours. "queued"/"accepted"/"sending" at the carrier all mean it holds
# the message, which for us is "sent" (handed over).
CARRIER_STATUS_MAP = {
    "accepted": MessageStatus.SENT,
    "scheduled": MessageStatus.SENT,
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}

# Called after a status update with (message, new_status, error_code): how ``skills`` learns of
# receipts and ``dnc`` of "unsubscribed" errors without messaging importing them.
STATUS_LISTENERS: list = []


def message_record_status(
    *,
    carrier_sid: str,
    carrier_status: str,
    error_code: str = "",
    error_text: str = "",
    message_id: int | None = None,
    at: dt.datetime | None = None,
) -> OutboundMessage | None:
    """Apply a carrier status report to the message with that carrier id.

    Every report is kept as an event, even one that changes nothing (a duplicate or a late
    ``sent`` after ``delivered``). An unknown carrier id is logged and ignored: the caller answers
    the carrier with success so it stops retrying. Returns the message, or ``None`` if unknown.

    ``message_id`` (our id, carried in the status callback URL) finds a message whose carrier id
    is not recorded yet: a fast carrier can call back before the sender has stored its answer.
    """
    at = at or timezone.now()
    new_status = CARRIER_STATUS_MAP.get((carrier_status or "").lower())
    with transaction.atomic():
        locked = OutboundMessage.objects.select_for_update()
        message = locked.filter(carrier_sid=carrier_sid).first()
        if message is None and message_id is not None:
            message = (
                locked.filter(id=message_id)
                .filter(Q(carrier_sid__isnull=True) | Q(carrier_sid=carrier_sid))
                .first()
            )
            if message is not None:
                message.carrier_sid = carrier_sid
        if message is None:
            logger.warning(
                "Status %r for unknown carrier id %s ignored", carrier_status, carrier_sid
            )
            return None
        changed = new_status is not None and _RANK[new_status] > _RANK[message.status]
        MessageEvent.objects.create(
            message=message,
            kind=MessageEvent.Kind.CALLBACK,
            status=carrier_status[:20],
            error_code=error_code[:10],
            detail=(error_text or ("applied" if changed else "no change"))[:500],
        )
        if not changed:
            return message
        message.status = new_status
        message.carrier_status = carrier_status[:20]
        if error_code:
            message.error_code = error_code[:10]
            message.error_text = error_text[:500]
        if new_status == MessageStatus.SENT and message.sent_at is None:
            message.sent_at = at
        if new_status == MessageStatus.DELIVERED:
            message.delivered_at = at
        if new_status in (
            MessageStatus.DELIVERED,
            MessageStatus.UNDELIVERED,
            MessageStatus.FAILED,
        ):
            message.finished_at = at
        message.save(
            update_fields=[
                "carrier_sid",
                "status",
                "carrier_status",
                "error_code",
                "error_text",
                "sent_at",
                "delivered_at",
                "finished_at",
                "updated_at",
            ]
        )
        for listener in STATUS_LISTENERS:
            listener(message=message, status=new_status, error_code=message.error_code)
    return message


INBOUND_HANDLERS: list = []


def inbound_receive(
    *,
    carrier_sid: str,
    from_number: str,
    to_number: str,
    body: str,
    received_at: dt.datetime | None = None,
) -> InboundMessage | None:
    """Store a text sent to one of our numbers, once per carrier id, then let handlers act.

    Handlers (keyword classification, opt-out) are registered in ``INBOUND_HANDLERS`` and run
    only for the first delivery of a carrier id, so a replayed webhook does nothing twice.
    Returns ``None`` when the number is not one of ours.
    """
    code = (
        TransportCode.objects.filter(number=to_number)
        .select_related("business_unit")  # the BU owns the inbound message
        .first()
    )
    if code is None:
        logger.warning("Inbound %s to unknown number %s ignored", carrier_sid, to_number)
        return None
    with transaction.atomic():
        message, created = InboundMessage.objects.get_or_create(
            carrier_sid=carrier_sid,
            defaults={
                "business_unit": code.business_unit,
                "registration": code.registrations.filter(is_active=True).first(),
                "from_number": from_number,
                "to_number": to_number,
                "body": body,
                "received_at": received_at or timezone.now(),
            },
        )
        if created:
            for handler in INBOUND_HANDLERS:
                handler(inbound=message)
    return message
