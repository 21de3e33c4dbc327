"""The skills' send-time guards, registered with the sender (``messaging.hooks.SEND_GUARDS``).

Checked at the moment of sending, not only when the text was planned: the skill is still
running, the record has not expired or been finalized, it still passes the skill's filter (a
CRM may have changed it since), and the number is on none of the skill's scrubbed DNC groups.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.utils import timezone

from dnc.selectors import numbers_in_groups
from messaging.hooks import HOLD
from messaging.models import OutboundMessage, WithdrawReason
from pcsms.db import execute_prepared
from skills.filters import RecordFilter, custom_field_types
from skills.models import Attempt, Record, Skill
from skills.queries import active_list_ids


def _attempt_rows(message_ids: list[int]) -> list[tuple]:
    """(message id, skill id, skill state, record expiry, record final, skill's filter on,
    record id, skill's last change) of the messages' attempts. On PostgreSQL one prepared
    statement with the ids as an array: the sender runs this for every slot of up to 50
    texts, and building the ORM query and having psycopg parse its 50 placeholders cost more
    CPU than the lookup."""
    if connection.vendor != "postgresql":
        return list(
            Attempt.objects.filter(message_id__in=message_ids)
            .order_by()
            .values_list(
                "message_id",
                "skill_id",
                "skill__state",
                "record__expires_on",
                "record__is_final",
                "skill__filter_active",
                "record_id",
                "skill__updated_at",
            )
        )
    attempt, skill, record = Attempt._meta, Skill._meta, Record._meta
    return execute_prepared(
        "SELECT a.message_id, a.skill_id, s.state, r.expires_on, r.is_final, "  # noqa: S608
        f"s.filter_active, a.record_id, s.updated_at FROM {attempt.db_table} a "
        f"JOIN {skill.db_table} s ON s.id = a.skill_id "
        f"JOIN {record.db_table} r ON r.id = a.record_id "
        "WHERE a.message_id = ANY(%s::bigint[])",
        [message_ids],
    )


FILTER_TTL = dt.timedelta(seconds=5)  # a filter's conditions are read again this often
_filters: dict[tuple[int, dt.datetime], tuple[dt.datetime, object]] = {}


def _record_filter(skill_id: int, changed: dt.datetime, now: dt.datetime):
    """The skill's filter, built at most every FILTER_TTL per process and again whenever the
    skill was saved (a slot goes out every fraction of a second; the conditions change rarely,
    the records' values are read each time)."""
    cached = _filters.get((skill_id, changed))
    if cached is not None and now - cached[0] < FILTER_TTL:
        return cached[1]
    if len(_filters) > 1000:
        _filters.clear()
    skill = Skill.objects.select_related("business_unit").get(pk=skill_id)
    built = RecordFilter(
        list(skill.filter_conditions.all()),
        custom_types=custom_field_types(active_list_ids(skill)),
        phone_region=skill.business_unit.phone_region,
    )
    _filters[(skill_id, changed)] = (now, built)
    return built


def _failing_filter(
    skill_id: int, changed: dt.datetime, record_ids: set[int], now: dt.datetime
) -> set[int]:
    """Of ``record_ids``, those that no longer pass the skill's filter."""
    record_filter = _record_filter(skill_id, changed, now)
    candidates = record_filter.apply(Record.objects.filter(pk__in=record_ids))
    passing = {r.pk for r in candidates if record_filter.passes(r)}
    return record_ids - passing


def skill_guard(messages: list[OutboundMessage], now: dt.datetime) -> dict[int, str]:
    verdicts: dict[int, str] = {}
    by_skill: dict[int, list[int]] = {}
    filtered: dict[int, dict[int, int]] = {}  # skill with a filter -> {message: its record}
    changed_at: dict[int, dt.datetime] = {}
    today = timezone.localdate()
    rows = _attempt_rows([m.id for m in messages])
    for message_id, skill_id, state, expires_on, is_final, filter_on, record_id, changed in rows:
        if filter_on:
            filtered.setdefault(skill_id, {})[message_id] = record_id
            changed_at[skill_id] = changed
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
    for skill_id, records_of in filtered.items():
        waiting = {m: r for m, r in records_of.items() if m not in verdicts}
        if not waiting:
            continue
        failing = _failing_filter(skill_id, changed_at[skill_id], set(waiting.values()), now)
        for message_id, record_id in waiting.items():
            if record_id in failing:
                verdicts[message_id] = WithdrawReason.FILTERED
                by_skill[skill_id].remove(message_id)
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
