"""The skills' send-time guards, registered with the sender (``messaging.hooks.SEND_GUARDS``).

Checked at the moment of sending, not only when the text was planned: the skill is still
running, the record has not expired or been finalized, it still passes the skill's filter (a
CRM may have changed it since), the number is on none of the skill's scrubbed DNC groups, the
recipient's state rules and the BU's blackouts (as they are now) allow it, and it does not go
over a frequency cap across the BU's skills. A text a rule withdraws is kept in the hold ledger
with the rule's name.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.utils import timezone

from dnc.selectors import numbers_in_groups
from messaging.hooks import HOLD
from messaging.models import OutboundMessage, WithdrawReason
from pcsms.db import execute_prepared
from skills.caps import free_at, handed_over, lock_numbers
from skills.filters import RecordFilter, custom_field_types
from skills.holds import records_hold
from skills.models import Attempt, Destination, Record, RuleHold, Skill
from skills.queries import active_list_ids
from skills.windows import Hold, WindowPolicy


def _attempt_rows(message_ids: list[int]) -> list[tuple]:
    """(message id, skill id, skill state, record expiry, record final, skill's filter on,
    record id, skill's last change, record's state, record's zone, number's zone) of the
    messages' attempts. On PostgreSQL one prepared
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
                "record__state",
                "record__time_zone",
                "destination__time_zone",
            )
        )
    attempt, skill, record = Attempt._meta, Skill._meta, Record._meta
    destination = Destination._meta
    return execute_prepared(
        "SELECT a.message_id, a.skill_id, s.state, r.expires_on, r.is_final, "  # noqa: S608
        "s.filter_active, a.record_id, s.updated_at, r.state, r.time_zone, d.time_zone "
        f"FROM {attempt.db_table} a "
        f"JOIN {skill.db_table} s ON s.id = a.skill_id "
        f"JOIN {record.db_table} r ON r.id = a.record_id "
        f"JOIN {destination.db_table} d ON d.id = a.destination_id "
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


RULES_TTL = dt.timedelta(seconds=5)  # state rules and blackouts are read again this often
_policies: dict[int, tuple[dt.datetime, dt.datetime, WindowPolicy]] = {}


def _policy(skill_id: int, changed: dt.datetime, now: dt.datetime) -> WindowPolicy:
    """The skill's window policy, built at most every RULES_TTL per process and again whenever
    the skill was saved: a blackout a compliance owner declares holds within seconds."""
    cached = _policies.get(skill_id)
    if (
        cached is not None
        and cached[0] == changed
        and dt.timedelta(0) <= now - cached[1] < RULES_TTL
    ):
        return cached[2]
    if len(_policies) > 1000:
        _policies.clear()
    skill = Skill.objects.select_related("business_unit").get(pk=skill_id)
    policy = WindowPolicy.for_skill(skill, now)
    _policies[skill_id] = (changed, now, policy)
    return policy


def _rules_guard(messages, rows, verdicts: dict[int, str], now: dt.datetime) -> None:
    """The recipient's state rules, the blackouts and the frequency caps, as they are now."""
    of = {m.id: m for m in messages}
    holds: dict[int, list[RuleHold]] = {}
    capped: dict[int, tuple] = {}  # message -> (policy's BU, cap)
    for message_id, skill_id, *_, record_id, changed, state, record_zone, number_zone in rows:
        if message_id in verdicts:
            continue
        message = of[message_id]
        policy = _policy(skill_id, changed, now)
        verdict = policy.check(
            zone_name=number_zone or record_zone, now=now, state=state, phone_number=message.to
        )
        held = verdict.held if not verdict.is_open(now) else None
        if held is not None:
            # The planner's own window (the zone's hours, the cadence's) travels with the text
            # and messaging's guard holds it; this is what a state rule or blackout says now.
            verdicts[message_id] = WithdrawReason.STATE_RULE
            until = verdict.opens_at if verdict.allowed else None
        elif verdict.caps:
            capped[message_id] = (skill_id, record_id, verdict, policy)
        if held is not None:
            holds.setdefault(record_id, []).append(
                _hold(message, skill_id, record_id, held, now, until)
            )
    if capped:
        _cap_guard(of, capped, verdicts, holds, now)
    if holds:
        records_hold(holds, now=now, recheck=RECHECK)


def _cap_guard(of, capped, verdicts, holds, now) -> None:
    """Caps across the BU's skills: the texts already handed over in 24 hours, and those of
    this batch before it, under a lock per number (see skills.caps)."""
    purchases = _last_purchases({record_id for _s, record_id, _v, _p in capped.values()})
    by_bu: dict[int, set[str]] = {}
    for message_id in capped:
        by_bu.setdefault(of[message_id].business_unit_id, set()).add(of[message_id].to)
    sent: dict[tuple[int, str], list[dt.datetime]] = {}
    for bu_id, numbers in by_bu.items():
        lock_numbers(bu_id, numbers)
        for number, times in handed_over(business_unit_id=bu_id, numbers=numbers, now=now).items():
            sent[(bu_id, number)] = times
    for message_id, (skill_id, record_id, verdict, policy) in sorted(capped.items()):
        message = of[message_id]
        field = policy.business_unit.last_purchase_field
        cap = verdict.cap_for(purchases.get(record_id, {}).get(field), now.date())
        if cap is None:
            continue
        times = sent.setdefault((message.business_unit_id, message.to), [])
        until = free_at(times, cap.limit)
        if until is None:
            times.append(now)
            continue
        verdicts[message_id] = WithdrawReason.FREQUENCY_CAP
        held = Hold(RuleHold.Kind.CAP, cap.rule, cap.source)
        holds.setdefault(record_id, []).append(
            _hold(message, skill_id, record_id, held, now, until)
        )


def _last_purchases(record_ids: set[int]) -> dict[int, dict[str, dt.date]]:
    """Per record, its custom fields that hold a date (the BU names which is the purchase)."""
    out: dict[int, dict[str, dt.date]] = {}
    for record_id, custom in Record.objects.filter(pk__in=record_ids).values_list("id", "custom"):
        for name, value in (custom or {}).items():
            try:
                out.setdefault(record_id, {})[name] = dt.date.fromisoformat(str(value)[:10])
            except ValueError:
                continue
    return out


def _hold(message, skill_id, record_id, held: Hold, now, until) -> RuleHold:
    return RuleHold(
        business_unit_id=message.business_unit_id,
        skill_id=skill_id,
        record_id=record_id,
        message_id=message.id,
        phone_number=message.to,
        kind=held.kind,
        rule=held.rule[:200],
        source=held.source[:300],
        held_at=now,
        held_until=until,
    )


RECHECK = dt.timedelta(minutes=10)  # as the planner's HOLD_RECHECK


def skill_guard(messages: list[OutboundMessage], now: dt.datetime) -> dict[int, str]:
    verdicts: dict[int, str] = {}
    by_skill: dict[int, list[int]] = {}
    filtered: dict[int, dict[int, int]] = {}  # skill with a filter -> {message: its record}
    changed_at: dict[int, dt.datetime] = {}
    today = timezone.localdate()
    rows = _attempt_rows([m.id for m in messages])
    for (
        message_id,
        skill_id,
        state,
        expires_on,
        is_final,
        filter_on,
        record_id,
        changed,
        *_,
    ) in rows:
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
    _rules_guard(messages, rows, verdicts, now)
    return verdicts
