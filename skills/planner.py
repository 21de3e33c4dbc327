"""The planner: what to send to whom, and when (the rules: docs/spec.md section 8).

One pass for one running skill::

    budget  the transport code's pace x PLAN_AHEAD_SECONDS, minus what any skill already has
            queued on the code, shared between the code's running skills by priority
    select  due records of the skill's active lists in the skill's sort order, at most a few
            times the budget per pass, read in batches (never a whole list). SQL checks state,
            expiry, feed, attempts, retry time, "no text of this skill still pending", "a
            number of the cadence in a zone whose window is open" and the filter conditions
            it can express; Python the rest, on one bounded batch at a time
    choose  the number by the cadence (order, attempts per number, rest, record and attempt
            mode); scrub it against DNC now; the recipient's local window (skills.windows)
    merge   the template compiled once per pass; segments; over the skill's maximum -> the
            record is finalized ``too_long`` and reported
    write   Attempt + OutboundMessage rows in bulk, record and number counters; then the
            senders are kicked

The outbox stays small (a few minutes of work per code) so that pauses, STOPs, priority and
filter changes take effect quickly. The sender checks everything again at the moment of
sending; the planner's checks only avoid queueing texts that could not go.

No double planning: a record with a text of the skill still queued, in flight, of unknown
outcome or awaiting its receipt is not selected, and each batch is written under the skill's
row lock after checking that again (so two passes running at once cannot both plan a
record). Every message carries ``skill:<id>:record:<id>:<pass time>`` as its idempotency key,
so even a replay of the same pass cannot queue a second text.

Every function takes ``now`` so that tests (and replays) choose the clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import (
    Count,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    prefetch_related_objects,
)
from django.utils import timezone

from dnc.selectors import numbers_in_groups, opted_out_numbers
from messaging import templating
from messaging.models import (
    EMAIL_SUBJECT_MAX,
    Channel,
    MessageEvent,
    MessageStatus,
    OutboundMessage,
    TransportCode,
)
from messaging.pacing import priority_shares
from messaging.segments import analyse
from messaging.selectors import sent_today, template_record_values
from messaging.tasks import kick_senders
from skills.cadence import Cadence
from skills.caps import free_at, planned_or_sent
from skills.filters import RecordFilter, custom_field_types, sort_order
from skills.holds import records_hold
from skills.models import (
    Attempt,
    Destination,
    FinalReason,
    Record,
    RuleHold,
    Skill,
)
from skills.outcomes import finalize_records
from skills.queries import active_list_ids, not_expired_q, pending_q, with_open_number_q
from skills.services import (
    apply_schedules,
    record_tallies_compact,
    skill_complete_if_finished,
)
from skills.sweeps import sweep_skill
from skills.windows import Hold, WindowPolicy, WindowVerdict
from skills.xs import xs_refill_check

logger = logging.getLogger(__name__)

PLAN_AHEAD_SECONDS = 180  # the outbox holds at most this much of a code's work
BATCH_SIZE = 1_000  # records read and decided at a time
MIN_SCAN = 2_000  # a pass looks at up to max(MIN_SCAN, SCAN_FACTOR x budget) records...
SCAN_FACTOR = 4
MAX_SCAN = 50_000  # ... and never more, so one pass is bounded whatever the list size
TOO_LONG_REPORTED = 100  # external ids of too-long records kept in a result
RECENT_LOOKBACK = dt.timedelta(hours=24)  # attempts read per record: presets' 24 h caps
# A held record is looked at again at most this long after, should its rule change meanwhile.
HOLD_RECHECK = dt.timedelta(minutes=10)


# --- Results -----------------------------------------------------------------------------------


@dataclass
class PlanResult:
    """What one pass did, for logs, ``manage.py plan --json`` and tests."""

    skill_id: int
    skill: str
    business_unit: str
    state: str = ""
    limit: int = 0  # the budget, in the code's units (segments when it counts them)
    planned: int = 0
    cost: int = 0
    scanned: int = 0
    stale_withdrawn: int = 0
    finalized: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    too_long: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    zones_open: list[str] = field(default_factory=list)
    completed: bool = False
    error: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "skill_id": self.skill_id,
            "skill": self.skill,
            "business_unit": self.business_unit,
            "state": self.state,
            "limit": self.limit,
            "planned": self.planned,
            "cost": self.cost,
            "scanned": self.scanned,
            "stale_withdrawn": self.stale_withdrawn,
            "finalized": dict(self.finalized),
            "skipped": dict(self.skipped),
            "too_long": list(self.too_long),
            "warnings": list(self.warnings),
            "zones_open": list(self.zones_open),
            "completed": self.completed,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def code_budget(code: TransportCode) -> int:
    """What may still be queued on the code: PLAN_AHEAD_SECONDS of its pace minus the queue, and
    no more than its daily limit has left."""
    queued = OutboundMessage.objects.filter(
        transport_code=code, status=MessageStatus.QUEUED
    ).aggregate(n=Count("id"), segments=Sum("segments"))
    used = (queued["segments"] or 0) if code.counts_segments else queued["n"]
    budget = math.floor(float(code.messages_per_second) * PLAN_AHEAD_SECONDS - used)
    if code.messages_per_day is not None:  # no more queued than the day has left to send
        left_today = code.messages_per_day - sent_today(code.id, timezone.now())
        budget = min(budget, left_today - queued["n"])
    return max(0, budget)


def skill_share(skill: Skill, code: TransportCode) -> int:
    priorities = dict(
        Skill.objects.filter(
            state=Skill.State.RUNNING, registration__transport_code=code
        ).values_list("id", "priority")
    )
    priorities.setdefault(skill.id, skill.priority)
    return priority_shares(code_budget(code), priorities)[skill.id]


# --- One pass ----------------------------------------------------------------------------------


@dataclass
class _Planned:
    record: Record
    destination: Destination
    verdict: WindowVerdict
    body: str
    encoding: str
    segments: int
    subject: str = ""
    html_body: str = ""


class _Pass:
    """The state of one planning pass of one skill (see the module docstring)."""

    def __init__(self, skill: Skill, now: dt.datetime, limit: int, result: PlanResult) -> None:
        self.skill = skill
        self.now = now
        self.limit = limit
        self.result = result
        self.bu = skill.business_unit
        self.code = skill.registration.transport_code
        self.list_ids = active_list_ids(skill)
        self.policy = WindowPolicy.for_skill(skill, now)
        self.cadence = Cadence.for_skill(skill)
        template = skill.template
        self.email = skill.channel == Channel.EMAIL
        self.parts = templating.MessageParts(template.body, template.subject, template.html_body)
        self.scrub_groups = list(skill.scrubbed_dnc_groups.values_list("id", flat=True))
        self.filter = None
        if skill.filter_active:
            self.filter = RecordFilter(
                skill.filter_conditions.all(),
                custom_types=custom_field_types(self.list_ids),
                phone_region=self.bu.phone_region,
            )
            result.warnings.extend(self.filter.problems)
        self.order = sort_order(skill.sort_criteria.all(), result.warnings)
        self.max_scan = min(MAX_SCAN, max(MIN_SCAN, SCAN_FACTOR * limit))
        self.stopped = False  # paused or stopped during the pass
        self.sent_to: dict[str, list[dt.datetime]] = {}  # a batch's numbers: texts of 24 h
        self.holds: list[RuleHold] = []  # a batch's texts held back by a rule
        self.open_zones: list[str] = []
        self.lookback = max(
            RECENT_LOOKBACK,
            dt.timedelta(minutes=skill.restricted_window_minutes or 0),
            dt.timedelta(minutes=max((s.rest_minutes for s in self.cadence.steps), default=0)),
        )

    def eligible(self) -> QuerySet:
        skill, now = self.skill, self.now
        records = Record.objects.filter(
            calling_list_id__in=self.list_ids,
            is_final=False,
            attempts__lt=skill.max_attempts,
        )
        if skill.feed == Skill.Feed.FRESH:
            records = records.filter(attempts=0)
        elif skill.feed == Skill.Feed.NON_FRESH:
            records = records.filter(attempts__gt=0)
        retry_after = now - dt.timedelta(minutes=skill.min_retry_minutes)
        records = records.filter(
            Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lte=retry_after),
            not_expired_q(skill, now),
        )
        pending = Attempt.objects.filter(pending_q(skill, now), skill=skill, record=OuterRef("pk"))
        records = records.filter(~Exists(pending))
        # A record a rule holds back is looked at again when the rule lets it go.
        records = records.filter(Q(held_until__isnull=True) | Q(held_until__lte=now))
        # Only records with an open number in a zone whose window is open (or about to be):
        # at night nothing is read, and numbers that are never texted (unknown zone, zone not
        # allowed) do not fill every pass's scan.
        records = records.filter(with_open_number_q(self.open_zones, self.cadence))
        if self.filter is not None:
            records = self.filter.apply(records)
        return records

    def batches(self) -> Iterable[list[Record]]:
        """The due records in the skill's order, a batch at a time.

        One query fetches the ids of up to ``max_scan`` due records in order (the database
        sorts once per pass, or walks an index for the default order); the records are then
        read a batch at a time, so memory and time are bounded whatever the list size.
        """
        ids = list(
            self.eligible().order_by(*self.order).values_list("id", flat=True)[: self.max_scan]
        )
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start : start + BATCH_SIZE]
            by_id = Record.objects.in_bulk(chunk)
            records = [by_id[i] for i in chunk if i in by_id]
            self.result.scanned += len(records)
            yield records

    def run(self) -> None:
        if not self.list_ids:
            self.result.skipped["no_active_list"] += 1
            return
        self.open_zones = self.policy.open_zones(self.now, PLAN_AHEAD_SECONDS)
        self.result.zones_open = list(self.open_zones)
        if not self.open_zones:
            return  # every allowed zone is outside its window
        for records in self.batches():
            self.plan_batch(records)
            if self.result.cost >= self.limit or self.stopped:
                return

    # --- one batch ---

    def plan_batch(self, records: list[Record]) -> None:
        # Read fresh: a receipt or a STOP may have finalized some since the ids were chosen.
        records = [r for r in records if not r.is_final]
        if self.filter is not None and self.filter.checks:
            kept = [r for r in records if self.filter.passes(r)]
            self.result.skipped["filtered"] += len(records) - len(kept)
            records = kept
        if not records:
            return
        # Ordered by the record's id, not Destination's default ordering (which joins the
        # record, its list and its BU to sort by their names).
        prefetch_related_objects(
            records,
            Prefetch("destinations", Destination.objects.order_by("record_id", "position")),
        )
        numbers = {d.phone_number for r in records for d in r.destinations.all()}
        opted = opted_out_numbers(
            business_unit_id=self.bu.id,
            numbers=numbers,
            stop_group_id=self.skill.registration.stop_dnc_group_id,
        )
        blocked = opted | numbers_in_groups(group_ids=self.scrub_groups, numbers=numbers)
        recent = self.recent_attempts([r.id for r in records])
        capped = {
            d.phone_number
            for r in records
            for d in r.destinations.all()
            if self.policy.may_cap(state=r.state, phone_number=d.phone_number)
        }
        self.sent_to = (
            planned_or_sent(business_unit_id=self.bu.id, numbers=capped, now=self.now)
            if capped
            else {}
        )
        self.holds = []

        planned: list[_Planned] = []
        finals: dict[str, list[Record]] = {}
        held: dict[int, list[RuleHold]] = {}
        cost = 0
        for record in records:
            if self.result.cost + cost >= self.limit:
                break
            holds_before = len(self.holds)
            outcome = self.decide(record, blocked, opted, recent.get(record.id, []))
            if isinstance(outcome, _Planned):
                planned.append(outcome)
                cost += self.cost(outcome)
            elif outcome.startswith("final:"):
                finals.setdefault(outcome[6:], []).append(record)
            else:
                self.result.skipped[outcome] += 1
                if len(self.holds) > holds_before:
                    held[record.id] = self.holds[holds_before:]
        self.write(planned, finals)
        if held:
            records_hold(held, now=self.now, recheck=HOLD_RECHECK)

    def cost(self, planned: _Planned) -> int:
        return planned.segments if self.code.counts_segments else 1

    def recent_attempts(self, record_ids: list[int]) -> dict[int, list[tuple]]:
        """Per record, its texts of the lookback that were not withdrawn, newest first:
        (skill id, destination id, time)."""
        rows = list(
            Attempt.objects.filter(
                record_id__in=record_ids, created_at__gte=self.now - self.lookback
            )
            .order_by("-created_at", "-id")
            .values_list("record_id", "skill_id", "destination_id", "created_at", "message_id")
        )
        # Two indexed reads rather than a join the database may answer by scanning messages.
        withdrawn = set(
            OutboundMessage.objects.filter(
                id__in=[r[4] for r in rows if r[4] is not None],
                status=MessageStatus.WITHDRAWN,
            ).values_list("id", flat=True)
        )
        recent: dict[int, list[tuple]] = {}
        for record_id, skill_id, destination_id, created_at, message_id in rows:
            if message_id not in withdrawn:
                recent.setdefault(record_id, []).append((skill_id, destination_id, created_at))
        return recent

    def decide(self, record: Record, blocked: set, opted: set, recent: list) -> _Planned | str:
        """A text to plan, ``"final:<reason>"``, or the reason the record waits."""
        skill, now = self.skill, self.now
        if skill.restricted_window_count:
            since = now - dt.timedelta(minutes=skill.restricted_window_minutes)
            if sum(1 for a in recent if a[2] >= since) >= skill.restricted_window_count:
                return "restricted_window"
        destinations = list(record.destinations.all())
        numbers = self.cadence.numbers(destinations)
        if not numbers:
            if destinations and all(d.is_final for d in destinations):
                return "final:" + FinalReason.BAD_NUMBERS
            return "no_number"  # none of its numbers is in the cadence
        open_numbers = [(s, d) for s, d in numbers if not d.is_final]
        if not open_numbers:
            # Another channel's destination still open: its skill may yet reach the record.
            if all(d.is_final for d in destinations):
                return "final:" + FinalReason.BAD_NUMBERS
            return "no_number"
        allowed = [(s, d) for s, d in open_numbers if d.phone_number not in blocked]
        if not allowed:
            if any(d.phone_number in opted for _s, d in open_numbers):
                return "final:" + FinalReason.OPTED_OUT
            return "final:" + FinalReason.DNC
        candidates = self.cadence.candidates(allowed)
        if not candidates:
            if self.cadence.candidates(open_numbers):
                return "dnc_number"  # only blocked numbers have attempts left: wait
            if skill.finalize_when_exhausted:
                return "final:" + FinalReason.EXHAUSTED
            return "exhausted"
        mine = [a for a in recent if a[0] == skill.id]
        last = mine[0] if mine else None
        reason = "no_number"
        for step, destination in candidates:
            if last is not None and last[1] != destination.id:
                previous = self.cadence.step_of(last[1], numbers)
                rest = dt.timedelta(minutes=previous.rest_minutes if previous else 0)
                if now < last[2] + rest:
                    reason = "resting"
                    if self.cadence.sequential:
                        break
                    continue
            verdict = self.policy.check(
                zone_name=destination.time_zone or record.time_zone,
                now=now,
                state=record.state,
                phone_number=destination.phone_number,
                step=step.row,
            )
            if not verdict.allowed:
                reason = verdict.reason  # never texted as things are: try the next number
                if verdict.held is not None:
                    self.hold(record, destination, verdict.held, None)
                continue
            cap = verdict.cap_for(self.last_purchase(record), now.date())
            if not verdict.opens_within(now, PLAN_AHEAD_SECONDS):
                reason = "window_closed"
                if verdict.held is not None:
                    self.hold(record, destination, verdict.held, verdict.opens_at)
            elif cap is not None and (
                until := free_at(self.sent_to.get(destination.phone_number, []), cap.limit)
            ):
                reason = "daily_cap"
                self.hold(record, destination, Hold(RuleHold.Kind.CAP, cap.rule, cap.source), until)
            else:
                planned = self.merge(record, destination, verdict)
                if isinstance(planned, _Planned):  # counted for the rest of the batch
                    self.sent_to.setdefault(destination.phone_number, []).append(now)
                return planned
            if self.cadence.sequential:
                break
        return reason

    def hold(self, record, destination, held: Hold, until: dt.datetime | None) -> None:
        """A rule holds this record's text back: kept in the ledger, and the record is looked
        at again when the rule lets it go (or after HOLD_RECHECK, should the rule change)."""
        self.holds.append(
            RuleHold(
                business_unit_id=self.bu.id,
                skill_id=self.skill.id,
                record_id=record.id,
                phone_number=destination.phone_number,
                kind=held.kind,
                rule=held.rule[:200],
                source=held.source[:300],
                held_at=self.now,
                held_until=until,
            )
        )

    def last_purchase(self, record: Record) -> dt.date | None:
        """The record's last purchase date (Oregon's exemption), if its field holds one."""
        field = self.bu.last_purchase_field
        value = (record.custom or {}).get(field) if field else None
        if not value:
            return None
        try:
            return dt.date.fromisoformat(str(value)[:10])
        except ValueError:
            return None

    def merge(self, record: Record, destination: Destination, verdict) -> _Planned | str:
        merged = self.parts.render(template_record_values(record))
        if self.email:
            # One message whatever its length; the subject is the part a mailbox cuts.
            if not merged.body.strip():
                return "empty_text"
            if len(merged.subject) > EMAIL_SUBJECT_MAX:
                subject = f"a {len(merged.subject)}-character subject"
                return self.too_long(record, subject, EMAIL_SUBJECT_MAX)
            return _Planned(
                record, destination, verdict, merged.body, "UTF-8", 1, merged.subject,
                merged.html_body,
            )  # fmt: skip
        info = analyse(merged.body)
        if info.segments == 0:
            return "empty_text"
        if info.segments > self.skill.max_segments:
            return self.too_long(record, f"{info.segments} segments", self.skill.max_segments)
        return _Planned(record, destination, verdict, merged.body, info.encoding, info.segments)

    def too_long(self, record: Record, what: str, maximum: int) -> str:
        """The record merges to more than may go: finalized ``too_long`` and reported."""
        if len(self.result.too_long) < TOO_LONG_REPORTED:
            self.result.too_long.append(record.external_id)
        logger.warning(
            "Skill %s: record %s merges to %s (maximum %s); finalized too_long",
            self.skill.id,
            record.external_id,
            what,
            maximum,
        )
        return "final:" + FinalReason.TOO_LONG

    def write(self, planned: list[_Planned], finals: dict[str, list[Record]]) -> None:
        """One batch's rows, in one transaction that holds the skill's row lock.

        The lock (PostgreSQL; SQLite lets one writer in at a time and fails a transaction
        that read what another then changed) and the re-check of pending texts inside it
        mean two passes of one skill running at once can never queue two texts for a
        record; the key guards against a replay of the very same pass.
        """
        with transaction.atomic():
            state = (
                Skill.objects.select_for_update(of=("self",))
                .filter(pk=self.skill.pk)
                .values_list("state", flat=True)
                .first()
            )
            if state != Skill.State.RUNNING:
                self.result.state = state or ""
                self.stopped = True
                return
            self._write(planned, finals)

    def _write(self, planned: list[_Planned], finals: dict[str, list[Record]]) -> None:
        now, skill = self.now, self.skill
        stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        # Another pass of this skill may have planned some of these records since this one read
        # them (passes overlap on several workers). Its text is pending: the record must be
        # neither texted again nor finalized. A record read before that pass's write but its
        # numbers after it looked "attempts used up"; finalizing it withdrew the pending text
        # at send time and the person was never texted (bench/journey.py, 3,000 of 100,000).
        decided = [p.record.id for p in planned] + [r.id for rs in finals.values() for r in rs]
        pending = set(
            Attempt.objects.filter(
                pending_q(skill, now), skill=skill, record_id__in=decided
            ).values_list("record_id", flat=True)
        )
        for reason, records in finals.items():
            ids = [r.id for r in records if r.id not in pending]
            self.result.skipped["already_planned"] += len(records) - len(ids)
            self.result.finalized[reason] += finalize_records(ids, reason, skill=skill)
        if not planned:
            return
        if pending:  # another pass planned them meanwhile
            self.result.skipped["already_planned"] += len(pending)
            planned = [p for p in planned if p.record.id not in pending]
        keys = {p.record.id: f"skill:{skill.id}:record:{p.record.id}:{stamp}" for p in planned}
        taken = set(
            OutboundMessage.objects.filter(idempotency_key__in=keys.values()).values_list(
                "idempotency_key", flat=True
            )
        )
        if taken:  # this very pass ran before (a replay, or a text withdrawn and given back)
            self.result.skipped["already_planned"] += len(taken)
            planned = [p for p in planned if keys[p.record.id] not in taken]
        if not planned:
            return
        source = f"skill:{skill.id}"
        messages = OutboundMessage.objects.bulk_create(
            OutboundMessage(
                business_unit_id=skill.business_unit_id,
                registration_id=skill.registration_id,
                transport_code_id=self.code.id,
                to=p.destination.phone_number,
                subject=p.subject,
                body=p.body,
                html_body=p.html_body,
                encoding=p.encoding,
                segments=p.segments,
                idempotency_key=keys[p.record.id],
                source=source,
                priority=skill.priority,
                not_before=p.verdict.opens_at,
                window_ends_at=p.verdict.closes_at,
            )
            for p in planned
        )
        attempts = Attempt.objects.bulk_create(
            Attempt(skill=skill, record=p.record, destination=p.destination, message=message)
            for p, message in zip(planned, messages, strict=True)
        )
        # The planner's clock, which the retry, rest and stale rules read (auto_now_add
        # stamped the wall clock).
        Attempt.objects.filter(id__in=[a.id for a in attempts]).update(created_at=now)
        MessageEvent.objects.bulk_create(
            MessageEvent(
                message=message,
                kind=MessageEvent.Kind.TRANSITION,
                status=MessageStatus.QUEUED,
                detail=(
                    f"planned by skill {skill.name}; allowed window "
                    f"{p.verdict.opens_at:%Y-%m-%d %H:%M} to {p.verdict.closes_at:%Y-%m-%d %H:%M}"
                    " UTC" + (f" ({', '.join(p.verdict.presets)})" if p.verdict.presets else "")
                )[:500],
            )
            for p, message in zip(planned, messages, strict=True)
        )
        Record.objects.filter(id__in=[p.record.id for p in planned]).update(
            attempts=F("attempts") + 1,
            last_attempt_at=now,
            held_until=None,
            held_by="",
            updated_at=timezone.now(),
        )
        Destination.objects.filter(id__in=[p.destination.id for p in planned]).update(
            attempts=F("attempts") + 1
        )
        self.result.planned += len(planned)
        self.result.cost += sum(self.cost(p) for p in planned)


# --- Entry points ------------------------------------------------------------------------------


def plan_skill(
    *,
    skill: Skill,
    now: dt.datetime | None = None,
    limit: int | None = None,
    sweep: bool = True,
    complete: bool = True,
    kick: bool = True,
) -> PlanResult:
    """One planning pass of a running skill; see the module docstring.

    ``limit`` is the budget in the code's units (segments when the code counts them); by
    default the skill's priority share of what the code may still queue.
    """
    now = now or timezone.now()
    started = time.monotonic()
    result = PlanResult(skill.id, skill.name, skill.business_unit.name, state=skill.state)
    if sweep:
        result.stale_withdrawn, finalized = sweep_skill(skill=skill, now=now)
        result.finalized.update(finalized)
    # Each batch is written in its own transaction (see _Pass.write), so the senders see
    # texts as they are planned and a long pass never holds SQLite's writer lock for long.
    current = (
        Skill.objects.select_related("business_unit", "registration__transport_code", "template")
        .filter(pk=skill.pk)
        .first()
    )
    if current is None or current.state != Skill.State.RUNNING:
        result.state = current.state if current else ""
    elif not current.registration.is_active or not current.registration.transport_code.can_send:
        result.skipped["code_unavailable"] += 1
    else:
        code = current.registration.transport_code
        result.limit = skill_share(current, code) if limit is None else limit
        if result.limit > 0:
            _Pass(current, now, result.limit, result).run()
    if complete and result.state == Skill.State.RUNNING:
        result.completed = skill_complete_if_finished(skill=skill, now=now)
        if result.completed:
            result.state = Skill.State.COMPLETED
        elif skill.xs_webhook_url:
            skill.state = result.state
            xs_refill_check(skill=skill, now=now)  # fewer waiting than the threshold: ask
    result.seconds = time.monotonic() - started
    if result.planned or result.finalized or result.stale_withdrawn:
        logger.info(
            "Skill %s: planned %s texts (%s units of %s), finalized %s, stale %s",
            skill.id,
            result.planned,
            result.cost,
            result.limit,
            dict(result.finalized),
            result.stale_withdrawn,
        )
    if kick and result.planned:
        kick_senders()
    return result


def _merge(into: PlanResult, more: PlanResult) -> None:
    for name in ("limit", "planned", "cost", "scanned", "stale_withdrawn", "seconds"):
        setattr(into, name, getattr(into, name) + getattr(more, name))
    into.finalized.update(more.finalized)
    into.skipped.update(more.skipped)
    into.too_long.extend(more.too_long)
    into.warnings.extend(w for w in more.warnings if w not in into.warnings)
    into.zones_open = more.zones_open or into.zones_open
    into.completed = into.completed or more.completed
    into.state = more.state or into.state
    into.error = into.error or more.error


def _plan_safely(skill: Skill, now: dt.datetime, limit: int) -> PlanResult:
    """One skill's pass; an error is logged and reported, never passed on to the others."""
    try:
        return plan_skill(skill=skill, now=now, limit=limit, sweep=False, kick=False)
    except Exception as error:
        logger.exception("Planning skill %s (%s) failed", skill.id, skill.name)
        result = PlanResult(skill.id, skill.name, skill.business_unit.name, state=skill.state)
        result.error = f"{type(error).__name__}: {error}"[:500]
        return result


@dataclass
class TickResult:
    schedule: list[dict] = field(default_factory=list)
    skills: list[PlanResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def planned(self) -> int:
        return sum(r.planned for r in self.skills)

    def as_dict(self) -> dict:
        return {
            "schedule": self.schedule,
            "skills": [r.as_dict() for r in self.skills],
            "planned": self.planned,
            "seconds": round(self.seconds, 3),
        }


def plan_tick(
    *, now: dt.datetime | None = None, skills: Iterable[Skill] | None = None, kick: bool = True
) -> TickResult:
    """Apply schedules, sweep, then plan every running skill (or just ``skills``).

    Each transport code's budget is split between its running skills by priority; what a
    skill leaves unused goes, in a second round, to the skills that used all of theirs, so
    a low-priority skill alone on a code still gets the whole code. Each skill is planned in
    its own transaction, and one skill's error never stops the others.
    """
    now = now or timezone.now()
    started = time.monotonic()
    tick = TickResult(schedule=apply_schedules(now=now) if skills is None else [])
    if skills is None:
        record_tallies_compact()
    running = Skill.objects.filter(state=Skill.State.RUNNING).select_related(
        "business_unit", "registration__transport_code"
    )
    if skills is not None:
        running = running.filter(pk__in=[s.pk for s in skills])
    running = list(running)
    results: dict[int, PlanResult] = {}
    for skill in running:
        result = results[skill.id] = PlanResult(skill.id, skill.name, skill.business_unit.name)
        try:
            result.stale_withdrawn, finalized = sweep_skill(skill=skill, now=now)
            result.finalized.update(finalized)
        except Exception as error:
            logger.exception("Sweeping skill %s (%s) failed", skill.id, skill.name)
            result.error = f"{type(error).__name__}: {error}"[:500]

    by_code: dict[int, list[Skill]] = {}
    for skill in running:
        by_code.setdefault(skill.registration.transport_code_id, []).append(skill)
    for code_skills in by_code.values():
        code = code_skills[0].registration.transport_code
        budget = code_budget(code)
        shares = priority_shares(budget, {s.id: s.priority for s in code_skills})
        hungry, used = [], 0
        for skill in sorted(code_skills, key=lambda s: (-s.priority, s.id)):
            result = _plan_safely(skill, now, shares[skill.id])
            _merge(results[skill.id], result)
            used += result.cost
            if result.limit and result.cost >= result.limit and not result.completed:
                hungry.append(skill)
        leftover = budget - used
        if leftover > 0 and hungry:
            extra = priority_shares(leftover, {s.id: s.priority for s in hungry})
            for skill in hungry:
                _merge(results[skill.id], _plan_safely(skill, now, extra[skill.id]))
    tick.skills = [results[s.id] for s in running]
    tick.seconds = time.monotonic() - started
    if kick and tick.planned:
        kick_senders()
    return tick
