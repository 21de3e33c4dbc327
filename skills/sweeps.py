"""Each tick's housekeeping of a skill, before it is planned: stale texts withdrawn, outcomes no
listener applied, expired and exhausted records finalized.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

from django.db.models import Exists, OuterRef
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage, WithdrawReason
from messaging.outbox import withdraw
from skills.models import Attempt, FinalReason, Record, Skill
from skills.outcomes import attempts_give_back, finalize_records, outcomes_settle
from skills.queries import active_list_ids, expiration_days, pending_q
from skills.selectors import list_tallies

logger = logging.getLogger(__name__)


def sweep_stale(*, skill: Skill, now: dt.datetime) -> int:
    """Withdraw the skill's texts queued longer than its stale minutes; their records go back
    to the list (the withdrawn attempts no longer count)."""
    cutoff = now - dt.timedelta(minutes=skill.stale_minutes)
    ids = list(
        OutboundMessage.objects.filter(
            transport_code_id=skill.registration.transport_code_id,
            status=MessageStatus.QUEUED,
            attempt__skill=skill,
            attempt__created_at__lt=cutoff,
        ).values_list("id", flat=True)
    )
    withdrawn = withdraw(ids, WithdrawReason.STALE)
    if withdrawn:
        attempts_give_back(
            attempt_ids=Attempt.objects.filter(message_id__in=ids).values_list("id", flat=True)
        )
        logger.info("Skill %s: %s stale texts withdrawn and re-planned", skill.id, withdrawn)
    return withdrawn


def sweep_records(*, skill: Skill, now: dt.datetime) -> Counter:
    """Finalize the open records of the skill's lists that expired or used every attempt
    (and have no text that may still reach them).

    A tick finds the few that changed without reading a million that did not
    (bench/planner.py): expiry by a range of a partial index of the open records
    (``record_open_*_idx``), used-up attempts only when the list's tallies count any open record
    with that many (an index for it cost every import more than the tallies do).
    """
    counts: Counter = Counter()
    list_ids = active_list_ids(skill)
    if not list_ids:
        return counts
    pending = Attempt.objects.filter(pending_q(skill, now), record=OuterRef("pk"))
    open_records = Record.objects.filter(calling_list_id__in=list_ids, is_final=False).filter(
        ~Exists(pending)
    )
    stamp = timezone.now()
    created_after = now - dt.timedelta(days=expiration_days(skill))
    sweeps = [
        # The two halves of not_expired_q: the record's own date, else its age.
        (FinalReason.EXPIRED, open_records.filter(expires_on__lt=timezone.localdate(now))),
        (
            FinalReason.EXPIRED,
            open_records.filter(expires_on__isnull=True, created_at__lt=created_after),
        ),
    ]
    if skill.finalize_when_exhausted and any(
        not is_final and attempts >= skill.max_attempts
        for is_final, _reason, attempts, _zone, _n in list_tallies(list_ids)
    ):
        sweeps.append(
            (FinalReason.EXHAUSTED, open_records.filter(attempts__gte=skill.max_attempts))
        )
    for reason, records in sweeps:
        if skill.xs_webhook_url:  # the CRM is told which: the ids first, then the update
            counts[reason] += finalize_records(
                records.values_list("id", flat=True), reason, stamp, skill=skill
            )
        else:
            counts[reason] += records.update(is_final=True, final_reason=reason, updated_at=stamp)
    return +counts


def sweep_skill(*, skill: Skill, now: dt.datetime) -> tuple[int, Counter]:
    """Stale texts, outcomes no listener applied, expired and exhausted records."""
    stale = sweep_stale(skill=skill, now=now) if skill.state == Skill.State.RUNNING else 0
    outcomes_settle(skill=skill, now=now)
    return stale, sweep_records(skill=skill, now=now)
