"""The skills' send-time guards, registered with the sender (``messaging.sender.SEND_GUARDS``).

Checked at the moment of sending, not only when the text was planned: the skill is still
running, the record has not expired or been finalized, and the number is on none of the
skill's scrubbed DNC groups.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from dnc.selectors import numbers_in_groups
from messaging.models import OutboundMessage, WithdrawReason
from messaging.sender import HOLD
from skills.models import Attempt, Skill


def skill_guard(messages: list[OutboundMessage], now: dt.datetime) -> dict[int, str]:
    attempts = list(
        Attempt.objects.filter(message_id__in=[m.id for m in messages]).select_related(
            "skill",
            "record",  # state and expiry are read for every message
        )
    )
    verdicts: dict[int, str] = {}
    by_skill: dict[int, list[Attempt]] = {}
    today = timezone.localdate()
    for attempt in attempts:
        state = attempt.skill.state
        if state == Skill.State.PAUSED:
            verdicts[attempt.message_id] = HOLD
        elif state != Skill.State.RUNNING:
            verdicts[attempt.message_id] = WithdrawReason.SKILL_STOPPED
        elif attempt.record.expires_on is not None and attempt.record.expires_on < today:
            verdicts[attempt.message_id] = WithdrawReason.EXPIRED
        elif attempt.record.is_final:
            verdicts[attempt.message_id] = WithdrawReason.SKILL_STOPPED
        else:
            by_skill.setdefault(attempt.skill_id, []).append(attempt)
    to_of = {m.id: m.to for m in messages}
    for skill_id, skill_attempts in by_skill.items():
        groups = Skill.scrubbed_dnc_groups.through.objects.filter(skill_id=skill_id).values_list(
            "dncgroup_id", flat=True
        )
        blocked = numbers_in_groups(
            group_ids=groups, numbers={to_of[a.message_id] for a in skill_attempts}
        )
        for attempt in skill_attempts:
            if to_of[attempt.message_id] in blocked:
                verdicts[attempt.message_id] = WithdrawReason.DNC
    return verdicts
