"""Sender leases: at most one sender per transport code at a time, across every process and host.

See :class:`messaging.models.SenderLease` for why a new holder cannot break the code's pace.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messaging.models import SenderLease

LEASE_SECONDS = 6.0  # a dead holder's code is picked up after at most this long
RELEASE_QUIET = 1.1  # > the pacer's window


def lease_acquire(code_id: int, holder: str, ttl: float = LEASE_SECONDS) -> bool:
    """Take the code's lease if it is free, expired or already ours. Atomic on both databases."""
    now = timezone.now()
    expires = now + dt.timedelta(seconds=ttl)
    taken = (
        SenderLease.objects.filter(transport_code_id=code_id)
        .filter(Q(expires_at__lt=now) | Q(holder=holder))
        .update(holder=holder, expires_at=expires, acquired_at=now, renewed_at=now)
    )
    if taken:
        return True
    if SenderLease.objects.filter(transport_code_id=code_id).exists():
        return False
    try:
        with transaction.atomic():
            SenderLease.objects.create(
                transport_code_id=code_id,
                holder=holder,
                expires_at=expires,
                acquired_at=now,
                renewed_at=now,
            )
    except Exception:  # another sender created it first (IntegrityError) - it won
        return False
    return True


def lease_renew(code_id: int, holder: str, ttl: float = LEASE_SECONDS) -> dt.datetime | None:
    """Extend our lease; ``None`` if it is no longer ours (then stop sending at once)."""
    now = timezone.now()
    expires = now + dt.timedelta(seconds=ttl)
    renewed = SenderLease.objects.filter(
        transport_code_id=code_id, holder=holder, expires_at__gt=now
    ).update(expires_at=expires, renewed_at=now)
    return expires if renewed else None


def lease_release(code_id: int, holder: str) -> None:
    """Give the lease up. The next holder may start only after our last pacing window has
    passed: it knows nothing of what we sent in the last second."""
    SenderLease.objects.filter(transport_code_id=code_id, holder=holder).update(
        holder="",
        expires_at=timezone.now()
        + dt.timedelta(seconds=float(getattr(settings, "SENDER_RELEASE_QUIET", RELEASE_QUIET))),
    )
