"""The skills' send-time guards, registered with the sender (``messaging.sender.SEND_GUARDS``).

Checked at the moment of sending, not only when the text was planned: the skill is still
running, the record has not expired or been finalized, and the number is on none of the
skill's scrubbed DNC groups.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.utils import timezone

from dnc.selectors import numbers_in_groups
from messaging.models import OutboundMessage, WithdrawReason
from messaging.sender import HOLD
from pcsms.db import execute_prepared
from skills.models import Attempt, Record, Skill


def _attempt_rows(message_ids: list[int]) -> list[tuple]:
    """(message id, skill id, skill state, record expiry, record final) of the messages'
    attempts. On PostgreSQL one prepared statement with the ids as an array: the sender runs
    this for every slot of up to 50 texts, and building the ORM query and having psycopg parse
    its 50 placeholders cost more CPU than the lookup."""
    if connection.vendor != "postgresql":
        return list(
            Attempt.objects.filter(message_id__in=message_ids)
            .order_by()
            .values_list(
                "message_id", "skill_id", "skill__state", "record__expires_on", "record__is_final"
            )
        )
    attempt, skill, record = Attempt._meta, Skill._meta, Record._meta
    return execute_prepared(
        f"SELECT a.message_id, a.skill_id, s.state, r.expires_on, r.is_final "  # noqa: S608
        f"FROM {attempt.db_table} a JOIN {skill.db_table} s ON s.id = a.skill_id "
        f"JOIN {record.db_table} r ON r.id = a.record_id "
        "WHERE a.message_id = ANY(%s::bigint[])",
        [message_ids],
    )


def skill_guard(messages: list[OutboundMessage], now: dt.datetime) -> dict[int, str]:
    verdicts: dict[int, str] = {}
    by_skill: dict[int, list[int]] = {}
    today = timezone.localdate()
    for message_id, skill_id, state, expires_on, is_final in _attempt_rows(
        [m.id for m in messages]
    ):
        if state == Skill.State.PAUSED:
            verdicts[message_id] = HOLD
        elif state != Skill.State.RUNNING:
            verdicts[message_id] = WithdrawReason.SKILL_STOPPED
        elif expires_on is not None and expires_on < today:
            verdicts[message_id] = WithdrawReason.EXPIRED
        elif is_final:
            verdicts[message_id] = WithdrawReason.SKILL_STOPPED
        else:
            by_skill.setdefault(skill_id, []).append(message_id)
    to_of = {m.id: m.to for m in messages}
    for skill_id, message_ids in by_skill.items():
        groups = Skill.scrubbed_dnc_groups.through.objects.filter(skill_id=skill_id).values_list(
            "dncgroup_id", flat=True
        )
        blocked = numbers_in_groups(group_ids=groups, numbers={to_of[i] for i in message_ids})
        for message_id in message_ids:
            if to_of[message_id] in blocked:
                verdicts[message_id] = WithdrawReason.DNC
    return verdicts
