"""Queries every part of a skill's run shares: which attempts are pending, which lists are active,
which records have expired, which can still be texted.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from messaging.models import Channel, MessageStatus
from skills.cadence import Cadence
from skills.models import CallingList, Destination, Skill
from skills.windows import WindowPolicy

# A text in one of these may still reach the person (see pending_q).
PENDING_STATUSES = (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.UNKNOWN)


def pending_q(skill: Skill, now: dt.datetime, prefix: str = "message__") -> Q:
    """An attempt whose text may still reach the person: queued, in flight, of unknown outcome,
    or sent and still within the receipt wait (in "delivered" receipt mode); or whose text
    settled but whose outcome is not recorded yet (the status listener runs just after the
    status is committed, and the sweep catches up after a crash): until it is, a delivered
    record must not look open."""
    q = Q(**{f"{prefix}status__in": PENDING_STATUSES})
    settled = [MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED]
    if skill.receipt_mode == Skill.ReceiptMode.DELIVERED:
        waiting = now - dt.timedelta(minutes=skill.receipt_wait_minutes)
        q |= Q(**{f"{prefix}status": MessageStatus.SENT}) & (
            Q(**{f"{prefix}sent_at__gt": waiting}) | Q(**{f"{prefix}sent_at__isnull": True})
        )
    else:
        settled.append(MessageStatus.SENT)
    attempt = prefix.removesuffix("message__")
    q |= Q(**{f"{attempt}outcome": "", f"{prefix}status__in": settled})
    return q


def active_list_ids(skill: Skill) -> list[int]:
    return list(
        skill.calling_lists.filter(status=CallingList.Status.ACTIVE).values_list("id", flat=True)
    )


def expiration_days(skill: Skill) -> int:
    return skill.contact_expiration_days or skill.business_unit.default_contact_expiration_days


def not_expired_q(skill: Skill, now: dt.datetime) -> Q:
    """A record's own expiry date, else the skill's (or BU's) contact expiration."""
    today = timezone.localdate(now)
    created_after = now - dt.timedelta(days=expiration_days(skill))
    return Q(expires_on__gte=today) | Q(expires_on__isnull=True, created_at__gte=created_after)


def channel_q(channel: str, prefix: str = "") -> Q:
    """Destinations of ``channel``: an email address has an @, a number starts with +."""
    if channel == Channel.EMAIL:
        return Q(**{f"{prefix}phone_number__contains": "@"})
    return Q(**{f"{prefix}phone_number__startswith": "+"})


def with_open_number_q(zones: list[str], cadence: Cadence) -> Q:
    """Records with an open number of the cadence's columns in one of ``zones`` (a number
    without a zone of its own takes its record's)."""
    numbers = Destination.objects.filter(
        channel_q(cadence.channel), record=OuterRef("pk"), is_final=False
    )
    if cadence.steps:
        columns = Q()
        for step in cadence.steps:
            columns |= Q(source_field__iexact=step.row.phone_field.strip())
        numbers = numbers.filter(columns)
    # One EXISTS, which PostgreSQL runs as a semi-join from the record's own numbers. Two OR'ed
    # ones it plans as a hash of the open numbers of every list in the table: a 1,000-record
    # list then paid for a 1,000,000-record one beside it (bench/planner.py).
    return Q(
        Exists(
            numbers.filter(Q(time_zone__in=zones) | Q(time_zone="", record__time_zone__in=zones))
        )
    )


def textable_records(skill: Skill, records: QuerySet) -> QuerySet:
    """Of ``records``, those the skill could still text some day: attempts left and an open
    number in a zone it may text (not an unknown zone, nor one the BU or the skill's time-zone
    bounding shuts)."""
    zones = WindowPolicy.for_skill(skill).textable_zones()
    return records.filter(attempts__lt=skill.max_attempts).filter(
        with_open_number_q(zones, Cadence.for_skill(skill))
    )
