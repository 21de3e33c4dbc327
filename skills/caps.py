"""Frequency caps across every skill of a business unit (docs/spec.md section 9).

A cap counts the texts to one number in the last 24 hours from any skill of the BU (Florida's
"even from different numbers"). The planner counts what is queued or sent, by the planner's
clock, so it does not plan a text the cap would stop; the send-time guard counts what was
handed to the carrier, under a lock per number, so two workers can never both send the one
text too many.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Q

from messaging.models import MessageStatus, OutboundMessage

DAY = dt.timedelta(hours=24)


def planned_or_sent(
    *, business_unit_id: int, numbers: set[str], now: dt.datetime
) -> dict[str, list[dt.datetime]]:
    """Per number, the times of its texts of the last 24 hours that were not withdrawn, by the
    planner's clock (a skill's text is stamped with its attempt's time). A text exactly 24
    hours old no longer counts: :func:`free_at` says a number is free from that moment."""
    # In UTC: an aware time's own arithmetic is on its wall clock, and 24 hours across a DST
    # change are 23 or 25 on the wall.
    since = now.astimezone(dt.UTC) - DAY
    rows = (
        OutboundMessage.objects.filter(business_unit_id=business_unit_id, to__in=numbers)
        .exclude(status=MessageStatus.WITHDRAWN)
        .filter(Q(attempt__created_at__gt=since) | Q(attempt__isnull=True, created_at__gt=since))
        .values_list("to", "attempt__created_at", "created_at")
    )
    times: dict[str, list[dt.datetime]] = {}
    for to, planned_at, created_at in rows:
        times.setdefault(to, []).append(planned_at or created_at)
    return times


def handed_over(
    *, business_unit_id: int, numbers: set[str], now: dt.datetime
) -> dict[str, list[dt.datetime]]:
    """Per number, when each of its texts of the last 24 hours was handed to the carrier."""
    rows = (
        OutboundMessage.objects.filter(
            business_unit_id=business_unit_id,
            to__in=numbers,
            claimed_at__gt=now.astimezone(dt.UTC) - DAY,
        )
        .exclude(status__in=[MessageStatus.QUEUED, MessageStatus.WITHDRAWN])
        .values_list("to", "claimed_at")
    )
    times: dict[str, list[dt.datetime]] = {}
    for to, claimed_at in rows:
        times.setdefault(to, []).append(claimed_at)
    return times


def lock_numbers(business_unit_id: int, numbers: set[str]) -> None:
    """Hold, until the transaction ends, a lock per number of the BU: the guard of every
    sender counts and marks a capped number's texts one at a time (PostgreSQL; SQLite lets
    one writer in at a time anyway)."""
    if connection.vendor != "postgresql" or not numbers:
        return
    keys = sorted(f"pcsms-cap:{business_unit_id}:{number}" for number in numbers)
    with connection.cursor() as cursor:
        # In order, so two senders locking overlapping numbers cannot deadlock.
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
            "FROM (SELECT k FROM unnest(%s::text[]) AS k ORDER BY k) AS keys",
            [keys],
        )


def free_at(times: list[dt.datetime], limit: int) -> dt.datetime | None:
    """When the number may have another text under a cap of ``limit``: None if it may now."""
    if len(times) < limit:
        return None
    ordered = sorted(times)
    return ordered[len(ordered) - limit] + DAY
