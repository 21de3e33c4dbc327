"""When a skill will finish: a forecast from its records and every rule that paces them.

docs/spec.md section 16 says what the forecast shows; docs/forecast.md how it is worked out.
In short, the open records are counted by what decides when they may be texted (the zone and
state of the number the cadence texts first, and its area code: the state rules, holidays,
blackouts and caps come from :class:`skills.windows.WindowPolicy`, the very rules the planner
applies), then the code's pace is played forward in steps of ``STEP``:

- the transport code's pace (in segments when it counts them, by the template merged with a
  sample of the records) is shared by priority between the skills running on the code, as the
  planner shares it; a skill with nothing to send leaves its share to the others;
- only groups whose window is open take texts; within a skill the due records are taken in
  proportion to each group's waiting count (the sort order is blind to zones);
- each text ends as the business unit's texts of the last 30 days ended (delivered, retried
  later, or final: bad number, opted out): a retried record is due again ``min_retry_minutes``
  after its receipt, at the planner's next tick, and no sooner than a frequency cap allows;
  without history every text is taken as delivered, and the forecast says so;
- the skill completes at the planner's first tick after the last expected receipt.

The forecast is an expectation: counts are fractions, and the finish is the expected moment
of the last record (a tail of a few retried records is a matter of chance: see ``done_at``).
It reads and never writes; :func:`skills.services.skill_forecast_keep` keeps the forecast
made at the start, which the dashboard compares with what happened.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import (
    Avg,
    BooleanField,
    Case,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, NullIf, Substr, TruncMinute
from django.utils import timezone

from messaging import templating
from messaging.models import MessageStatus, OutboundMessage
from messaging.pacing import priority_shares
from messaging.segments import analyse
from messaging.selectors import template_record_values
from skills.cadence import Cadence
from skills.models import Attempt, Destination, OutcomeClass, Record, Skill
from skills.queries import active_list_ids, not_expired_q, pending_q
from skills.selectors import forecast_texts_by
from skills.windows import LOOKAHEAD_DAYS, UTC, Blocked, WindowPolicy, schedule_zone

STEP = dt.timedelta(seconds=10)  # the forecast's clock while texts go
HORIZON = dt.timedelta(days=60)  # a skill not done by then is "not within 60 days"
HISTORY = dt.timedelta(days=30)  # the texts whose outcomes are expected again
MIN_HISTORY = 200  # fewer texts than this say too little: every text is taken as delivered
SAMPLE = 200  # records merged to learn the segments of a text
PROGRESS_POINTS = 2_000  # points of the texts-sent curve kept with a forecast
# Fewer records than this left to text: nothing more is played (their finish still counts).
DONE = 0.001
TICK = dt.timedelta(minutes=1)  # the planner's schedule (skills/migrations/0004)
# How far ahead the planner queues a code's work (skills.planner.PLAN_AHEAD_SECONDS): a text is
# planned up to this long before it goes, and its retry time counts from then.
PLAN_AHEAD = dt.timedelta(seconds=180)
PLANNER_TASK = "skills.tasks.plan_tick"


# --- What the forecast says ---------------------------------------------------------------------


@dataclass
class ForecastDay:
    day: dt.date  # in the business unit's zone
    texts: int
    finished: int  # records done that day (delivered, or final otherwise)
    first_text: dt.datetime | None
    last_text: dt.datetime | None


@dataclass
class Forecast:
    skill: str
    made_at: dt.datetime
    starts_at: dt.datetime
    finishes_at: dt.datetime | None  # None: not within HORIZON
    records: int  # open records it may still text
    never_textable: int  # open records no window will ever open for (left open)
    texts: int
    per_hour: list[tuple[dt.datetime, int]]  # UTC hour -> texts, every hour from the start
    days: list[ForecastDay]
    # (moment, texts sent by then), at most PROGRESS_POINTS: what the dashboard compares with.
    progress: list[tuple[dt.datetime, int]] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    zone_name: str = "UTC"

    @property
    def duration(self) -> dt.timedelta | None:
        return self.finishes_at - self.starts_at if self.finishes_at else None

    def texts_by(self, moment: dt.datetime) -> int:
        """How many texts the forecast expects sent by ``moment``: the dashboard's yardstick."""
        return forecast_texts_by(self.progress, moment)

    def as_json(self) -> dict:
        def iso(value):
            return value.isoformat() if value else None

        return {
            "skill": self.skill,
            "made_at": iso(self.made_at),
            "starts_at": iso(self.starts_at),
            "finishes_at": iso(self.finishes_at),
            "duration_seconds": self.duration.total_seconds() if self.duration else None,
            "records": self.records,
            "never_textable": self.never_textable,
            "texts": self.texts,
            "zone": self.zone_name,
            "per_hour": [[iso(h), n] for h, n in self.per_hour],
            "progress": [[iso(m), n] for m, n in self.progress],
            "days": [
                {
                    "day": d.day.isoformat(),
                    "texts": d.texts,
                    "finished": d.finished,
                    "first_text": iso(d.first_text),
                    "last_text": iso(d.last_text),
                }
                for d in self.days
            ],
            "assumptions": self.assumptions,
        }


# --- What it starts from ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """How a text is expected to end, as shares of texts, and how long its receipt takes."""

    delivered: float = 1.0
    retried: float = 0.0  # transient: the record is texted again later
    final: float = 0.0  # bad number, opted out, blocked: the record is done
    receipt: dt.timedelta = dt.timedelta(0)
    texts: int = 0  # how many texts of the history these come from

    def describe(self) -> str:
        if not self.texts:
            return (
                f"fewer than {MIN_HISTORY} texts with an outcome in the last 30 days: every "
                "text is taken as delivered"
            )
        return (
            f"texts end as the business unit's last {self.texts:,} did (30 days): "
            f"{self.delivered:.1%} delivered, {self.retried:.1%} retried later, {self.final:.1%} "
            f"final otherwise; receipts after {self.receipt.total_seconds():.0f} s on average"
        )


def expected_outcomes(business_unit_id: int, now: dt.datetime) -> Outcomes:
    """The outcomes of the business unit's texts of the last 30 days (see :class:`Outcomes`)."""
    since = now - HISTORY
    counts = dict(
        Attempt.objects.filter(
            skill__business_unit_id=business_unit_id, created_at__gte=since, created_at__lte=now
        )
        .exclude(outcome="")
        .values_list("outcome")
        .annotate(n=Count("id"))
        .values_list("outcome", "n")
    )
    total = sum(counts.values())
    if total < MIN_HISTORY:
        return Outcomes()
    receipt = OutboundMessage.objects.filter(
        business_unit_id=business_unit_id,
        sent_at__gte=since,
        sent_at__lte=now,
        finished_at__isnull=False,
        status__in=[MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED],
    ).aggregate(
        wait=Avg(ExpressionWrapper(F("finished_at") - F("sent_at"), output_field=DurationField()))
    )["wait"]
    retried = counts.get(OutcomeClass.TRANSIENT, 0) / total
    delivered = counts.get(OutcomeClass.DELIVERED, 0) / total
    return Outcomes(
        delivered=delivered,
        retried=retried,
        final=max(0.0, 1.0 - delivered - retried),
        receipt=max(receipt or dt.timedelta(0), dt.timedelta(0)),
        texts=total,
    )


def planner_ticks(now: dt.datetime) -> tuple[dt.datetime, dt.timedelta]:
    """The planner's next run and its period, from its django-q2 schedule (else each minute)."""
    from django_q.models import Schedule  # the worker's app, read like any model

    schedule = Schedule.objects.filter(func=PLANNER_TASK).first()
    period = dt.timedelta(minutes=schedule.minutes or 1) if schedule else TICK
    if schedule is None or schedule.next_run is None:
        return now + period, period
    # The schedule's phase, carried to ``now`` (a forecast may start at another time).
    return now + (schedule.next_run - now) % period, period


@dataclass
class _Group:
    """Records whose first number shares zone, state and area code: one window for all.

    ``pool`` holds the records due now by ((texts so far, texts they may get), when they were
    sent: for the caps, the minute they fell due); ``future`` the records due later, as a heap
    of (due, seq, (texts so far, texts they may get), sent, count)."""

    zone: str
    state: str
    phone: str
    pool: dict[tuple, float] = field(default_factory=dict)
    future: list[tuple] = field(default_factory=list)
    waiting: float = 0.0
    valid_until: dt.datetime = dt.datetime.min.replace(tzinfo=UTC)
    open: bool = False
    opened_at: dt.datetime | None = None  # when the open window opened
    next_open: dt.datetime | None = None
    cap: int | None = None

    def add(self, due: dt.datetime, attempts: tuple[int, int], sent: tuple, count: float) -> None:
        heapq.heappush(self.future, (due, next(_SEQ), attempts, sent, count))
        self.waiting += count

    def ripen(self, now: dt.datetime) -> float:
        """Moves the records due by ``now`` to the pool; returns how many are due."""
        while self.future and self.future[0][0] <= now:
            due, _seq, attempts, sent, count = heapq.heappop(self.future)
            key = (attempts, sent, due.replace(second=0, microsecond=0))
            self.pool[key] = self.pool.get(key, 0.0) + count
        return sum(self.pool.values())


_SEQ = itertools.count()


@dataclass
class _SkillRun:
    skill: Skill
    policy: WindowPolicy
    step_row: object
    groups: list[_Group]
    cost: float  # the code's units per text
    max_attempts: int
    retry: dt.timedelta
    records: int
    never: int


def _first_number(skill: Skill, cadence: Cadence):
    """A subquery per record over its first open number in cadence order."""
    numbers = Destination.objects.filter(record=OuterRef("pk"), is_final=False)
    order = ["position"]
    if cadence.steps:
        fields = [s.row.phone_field.strip() for s in cadence.steps]
        columns = Q()
        for name in fields:
            columns |= Q(source_field__iexact=name)
        numbers = numbers.filter(columns)
        rank = Case(
            *[When(source_field__iexact=name, then=Value(i)) for i, name in enumerate(fields)],
            default=Value(len(fields)),
            output_field=IntegerField(),
        )
        numbers = numbers.annotate(rank=rank)
        order = ["rank", "position"]
    return numbers.order_by(*order)


def _texts_a_record_may_get(skill: Skill, cadence: Cadence):
    """Per record, how many texts the cadence gives it in all: each open number of a cadence
    column gets that column's attempts (any number one text without a cadence); in repeat mode
    the skill's maximum attempts alone bound it."""
    if cadence.repeat:
        return Value(skill.max_attempts, output_field=IntegerField())

    def numbers(column: str | None):
        rows = Destination.objects.filter(record=OuterRef("pk"), is_final=False)
        if column is not None:
            rows = rows.filter(source_field__iexact=column)
        counted = rows.order_by().values("record").annotate(c=Count("id")).values("c")[:1]
        return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))

    if not cadence.steps:
        return numbers(None)
    total = None
    for step in cadence.steps:
        term = numbers(step.row.phone_field.strip()) * Value(step.attempts)
        total = term if total is None else total + term
    return ExpressionWrapper(total, output_field=IntegerField())


def _groups(skill: Skill, policy: WindowPolicy, cadence: Cadence, now: dt.datetime):
    """The skill's open records, counted by their first number's zone, state and area code,
    attempts so far and the minute they are due; and how many no window will ever open for."""
    list_ids = active_list_ids(skill)
    records = Record.objects.filter(
        calling_list_id__in=list_ids, is_final=False, attempts__lt=skill.max_attempts
    ).filter(not_expired_q(skill, now))
    if skill.feed == Skill.Feed.NON_FRESH:
        records = records.filter(attempts__gt=0)
    elif skill.feed == Skill.Feed.FRESH:
        records = records.filter(attempts=0)
    first = _first_number(skill, cadence)
    rows = (
        records.annotate(
            texts=_texts_a_record_may_get(skill, cadence),
            number_zone=Subquery(first.values("time_zone")[:1]),
            number=Subquery(
                first.annotate(text=Cast("phone_number", CharField(max_length=128))).values("text")[
                    :1
                ]
            ),
            pending=ExpressionWrapper(
                Q(
                    pk__in=Attempt.objects.filter(pending_q(skill, now), skill=skill).values(
                        "record_id"
                    )
                ),
                output_field=BooleanField(),
            ),
        )
        .annotate(
            zone=Coalesce(NullIf("number_zone", Value("")), "time_zone"),
            area=Substr("number", 1, 5),
            last=TruncMinute("last_attempt_at"),
            held=TruncMinute("held_until"),
        )
        .values("zone", "state", "area", "attempts", "last", "held", "pending", "texts")
        .annotate(n=Count("id"))
        .order_by()
    )
    retry = dt.timedelta(minutes=skill.min_retry_minutes)
    groups: dict[tuple, _Group] = {}
    never = 0
    for row in rows:
        if row["pending"]:  # a text on its way: its receipt decides, not the forecast
            continue
        zone, state, area = row["zone"] or "", row["state"] or "", row["area"] or ""
        phone = area + "5550100" if area.startswith("+1") else area  # a number of its area
        verdict = policy.check(zone_name=zone, now=now, state=state, phone_number=phone)
        # Never: no number, or a zone no window opens for; a week without an hour (a long
        # blackout) is only a wait.
        if not area or (not verdict.allowed and verdict.reason != Blocked.NO_WINDOW):
            never += row["n"]
            continue
        due = now
        if row["last"] is not None and row["attempts"]:
            due = max(due, row["last"] + retry)
        if row["held"] is not None:
            due = max(due, row["held"])
        limit = min(skill.max_attempts, row["texts"] or 0)
        if row["attempts"] >= limit:  # its numbers have had every text the cadence gives
            continue
        key = (zone.strip(), state.strip().upper(), area)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(zone=zone, state=state, phone=phone)
        group.add(due, (row["attempts"], limit), (), float(row["n"]))
    return list(groups.values()), never


def _cost(skill: Skill, list_ids: list[int]) -> float:
    """The code's units per text: 1, or the average segments of the template merged with a
    sample of the records when the code counts segments."""
    code = skill.registration.transport_code
    if not code.counts_segments:
        return 1.0
    compiled = templating.parse(skill.template.body)
    sample = list(
        Record.objects.filter(calling_list_id__in=list_ids, is_final=False)
        .prefetch_related("destinations")
        .order_by("id")[:SAMPLE]
    )
    if not sample:
        return float(max(1, analyse(skill.template.body).segments))
    segments = [analyse(compiled.render(template_record_values(r))).segments for r in sample]
    return max(1.0, sum(segments) / len(segments))


# --- The play forward ---------------------------------------------------------------------------


class _Play:
    def __init__(self, runs, *, pace, outcomes, start, ticks, period, subject, step) -> None:
        self.runs = runs
        self.pace = pace  # units per second
        self.outcomes = outcomes
        self.start = start
        self.first_tick, self.period = ticks, period
        self.subject = subject  # the run forecast
        self.step = step
        self.per_hour: dict[dt.datetime, float] = defaultdict(float)
        self.texts_at: list[tuple[dt.datetime, float]] = []  # the subject's texts by step
        self.finishes: list[tuple[dt.datetime, float]] = []  # the subject's records done

    def pass_at(self, moment: dt.datetime) -> dt.datetime:
        """The planner's first pass at or after ``moment``: the start's own, then the ticks."""
        return self.start if moment <= self.start else self.next_tick(moment)

    def next_tick(self, moment: dt.datetime) -> dt.datetime:
        if moment <= self.first_tick:
            return self.first_tick
        periods = math.ceil((moment - self.first_tick) / self.period)
        return self.first_tick + periods * self.period

    def refresh(self, run: _SkillRun, group: _Group, now: dt.datetime) -> None:
        """The group's window at ``now``, worked out again only when it may have changed."""
        if now < group.valid_until:
            return
        verdict = run.policy.check(
            zone_name=group.zone,
            now=now,
            state=group.state,
            phone_number=group.phone,
            step=run.step_row,
        )
        cap = verdict.cap_for(None, now.date()) if verdict.allowed else None
        group.cap = cap.limit if cap else None
        if not verdict.allowed:  # no hour this week (a long blackout): asked again in a week
            group.open, group.next_open = False, None
            group.valid_until = now + dt.timedelta(days=LOOKAHEAD_DAYS - 1)
        elif verdict.is_open(now):
            group.open, group.next_open, group.valid_until = True, now, verdict.closes_at
            group.opened_at = verdict.opens_at
        else:
            group.open, group.next_open = False, verdict.opens_at
            group.valid_until = verdict.opens_at

    @staticmethod
    def remaining(run: _SkillRun) -> float:
        return sum(g.waiting for g in run.groups)

    def due(self, run: _SkillRun, now: dt.datetime) -> float:
        """The run's records that may be texted at ``now``; notes when the next may."""
        total = 0.0
        for group in run.groups:
            if group.waiting < DONE / 100:
                continue
            self.refresh(run, group, now)
            ready = group.ripen(now)
            if group.open:
                total += ready
                if group.future:
                    self.wake = min(self.wake, group.future[0][0])
            elif group.next_open is not None:
                self.wake = min(self.wake, group.next_open)
            self.wake = min(self.wake, group.valid_until)
        return total

    def run(self) -> dt.datetime | None:
        now = self.start
        end = self.start + HORIZON
        units = self.pace * self.step.total_seconds()
        while now < end:
            if self.remaining(self.subject) < DONE:
                return now
            self.wake = end
            ready = {id(r): self.due(r, now) for r in self.runs if self.remaining(r) >= DONE}
            ready = {k: v for k, v in ready.items() if v > 0}
            if not ready:  # nothing may go now: on to the next moment something can
                now = max(self.wake, now + dt.timedelta(seconds=1))
                continue
            runs = [r for r in self.runs if id(r) in ready]
            shares = priority_shares(10_000, {id(r): r.skill.priority for r in runs})
            spare = 0.0
            for run in runs:
                budget = units * shares[id(run)] / sum(shares.values())
                spare += budget - self.send(run, now, budget, ready[id(run)])
            for run in runs:  # a skill short of due records leaves its share to the others
                if spare <= 1e-9:
                    break
                spare -= self.send(run, now, spare, sum(g.ripen(now) for g in run.groups if g.open))
            now += self.step
        return None

    def send(self, run: _SkillRun, now: dt.datetime, budget: float, ready: float) -> float:
        """Texts of ``run`` at ``now`` for up to ``budget`` units; returns the units used."""
        texts = min(budget / run.cost, ready)
        if texts <= 1e-9:
            return 0.0
        share = texts / ready
        receipt = self.outcomes.receipt
        for group in run.groups:
            if not group.open or not group.pool:
                continue
            pool, group.pool = group.pool, {}
            for ((attempts, limit), sent, due), count in pool.items():
                n = count * share
                if count - n > 1e-9:
                    group.pool[((attempts, limit), sent, due)] = count - n
                group.waiting -= n
                self.count(run, now, n)
                again = 0.0 if attempts + 1 >= limit else n * self.outcomes.retried
                # A step's texts are all gone by its end.
                self.finish(run, now + self.step + receipt, n - again)
                if again > 1e-9:
                    # The retry time counts from when the text was planned: at the first pass
                    # the record was due and its window open within the planner's lead, and
                    # at most the lead before it went (the outbox holds that much).
                    eligible = max(due, (group.opened_at or due) - PLAN_AHEAD)
                    planned = max(self.pass_at(eligible), now - PLAN_AHEAD)
                    due_again = self.next_tick(max(now + self.step + receipt, planned + run.retry))
                    # Sent times to the minute, so that records retried together stay together.
                    minute = now.replace(second=0, microsecond=0)
                    history = (*sent, minute) if group.cap else ()
                    if group.cap and len(history) >= group.cap:
                        due_again = max(
                            due_again,
                            self.next_tick(history[-group.cap] + dt.timedelta(days=1)),
                        )
                    group.add(due_again, (attempts + 1, limit), history[-8:], again)
        return texts * run.cost

    def count(self, run: _SkillRun, now: dt.datetime, n: float) -> None:
        if run is self.subject:
            self.per_hour[now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)] += n
            self.texts_at.append((now, n))

    def finish(self, run: _SkillRun, moment: dt.datetime, n: float) -> None:
        if run is self.subject and n > 0:
            self.finishes.append((moment, n))

    def done_at(self) -> dt.datetime | None:
        """When the subject's last record is expected done.

        The records done after a moment T are many independent chances, so the chance that
        none is left after T is exp(-lambda(T)), lambda(T) being how many are expected done after
        T; the expected last moment is the first one plus the integral of 1 - exp(-lambda)."""
        if not self.finishes:
            return None
        events = sorted(self.finishes)
        after = sum(n for _m, n in events)
        expected = events[0][0]
        for (moment, n), (following, _n) in itertools.pairwise(events):
            after -= n
            expected += (following - moment) * (1 - math.exp(-max(after, 0.0)))
        return expected


def _run_for(skill: Skill, now: dt.datetime) -> _SkillRun:
    policy = WindowPolicy.for_skill(skill, now)
    cadence = Cadence.for_skill(skill)
    groups, never = _groups(skill, policy, cadence, now)
    first_step = cadence.steps[0].row if cadence.steps else None
    return _SkillRun(
        skill=skill,
        policy=policy,
        step_row=first_step,
        groups=groups,
        cost=_cost(skill, active_list_ids(skill)),
        max_attempts=skill.max_attempts,
        retry=dt.timedelta(minutes=skill.min_retry_minutes),
        records=round(sum(g.waiting for g in groups)),
        never=never,
    )


def skill_forecast(skill: Skill, *, now: dt.datetime | None = None) -> Forecast:
    """When ``skill`` will finish if it runs from ``now`` (started now if it is not running),
    with the other skills running on its code taking their priority shares."""
    now = now or timezone.now()
    skill = Skill.objects.select_related(
        "business_unit", "registration__transport_code", "template"
    ).get(pk=skill.pk)
    code = skill.registration.transport_code
    others = list(
        Skill.objects.filter(state=Skill.State.RUNNING, registration__transport_code=code)
        .exclude(pk=skill.pk)
        .select_related("business_unit", "registration__transport_code", "template")
    )
    subject = _run_for(skill, now)
    runs = [subject, *(_run_for(other, now) for other in others)]
    # Outcomes as texts end these days, whenever the forecast starts.
    outcomes = expected_outcomes(skill.business_unit_id, timezone.now())
    first_tick, period = planner_ticks(now)
    pace = float(code.messages_per_second)
    # Steps of 10 s, longer for a long run so that a forecast takes a moment whatever its size.
    units = sum(r.records * r.cost for r in runs)
    step = max(STEP, dt.timedelta(seconds=math.ceil(units / max(pace, 0.01) / 5_000)))
    play = _Play(
        runs,
        pace=pace,
        outcomes=outcomes,
        start=now,
        ticks=first_tick,
        period=period,
        subject=subject,
        step=step,
    )
    done = play.run()
    finishes_at = None
    if done is not None:  # completed by the planner's first pass after the last receipt
        finishes_at = play.next_tick(max(play.done_at() or now, now))
    zone = schedule_zone(skill.business_unit)
    forecast = Forecast(
        skill=skill.name,
        made_at=timezone.now(),
        starts_at=now,
        finishes_at=finishes_at,
        records=subject.records,
        never_textable=subject.never,
        texts=round(sum(play.per_hour.values())),
        per_hour=_hours(play, now, finishes_at),
        days=_days(play, zone),
        progress=_progress(play),
        zone_name=str(zone),
    )
    forecast.assumptions = _assumptions(skill, subject, others, outcomes, pace, period)
    return forecast


def _hours(play: _Play, start: dt.datetime, end: dt.datetime | None):
    if not play.per_hour:
        return []
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last = max(play.per_hour)
    if end is not None:
        last = max(last, end.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
    hours, hour = [], first
    while hour <= last:
        hours.append((hour, round(play.per_hour.get(hour, 0.0))))
        hour += dt.timedelta(hours=1)
    return hours


def _progress(play: _Play) -> list[tuple[dt.datetime, int]]:
    """The texts sent by each step's end, thinned to at most PROGRESS_POINTS points."""
    by_step: dict[dt.datetime, float] = defaultdict(float)
    for moment, n in play.texts_at:  # several skills' sends in one step count once
        by_step[moment] += n
    points, total = [], 0.0
    for moment in sorted(by_step):
        if not points or points[-1][0] < moment:  # nothing went since the last point
            points.append((moment, total))
        total += by_step[moment]
        points.append((moment + play.step, total))
    every = max(1, math.ceil(len(points) / PROGRESS_POINTS))
    kept = points[::every]
    if points and kept[-1] != points[-1]:
        kept.append(points[-1])
    return [(moment, round(n)) for moment, n in kept]


def _days(play: _Play, zone) -> list[ForecastDay]:
    texts: dict[dt.date, float] = defaultdict(float)
    first: dict[dt.date, dt.datetime] = {}
    last: dict[dt.date, dt.datetime] = {}
    for moment, n in play.texts_at:
        day = moment.astimezone(zone).date()
        texts[day] += n
        first.setdefault(day, moment)
        last[day] = moment + STEP
    finished: dict[dt.date, float] = defaultdict(float)
    for moment, n in play.finishes:
        finished[moment.astimezone(zone).date()] += n
    return [
        ForecastDay(
            day=day,
            texts=round(texts.get(day, 0.0)),
            finished=round(finished.get(day, 0.0)),
            first_text=first.get(day),
            last_text=last.get(day),
        )
        for day in sorted(set(texts) | set(finished))
    ]


def _assumptions(skill, subject, others, outcomes, pace, period) -> list[str]:
    code = skill.registration.transport_code
    unit = "segment" if code.counts_segments else "text"
    words = [f"{code}: {pace:g} {unit}{'' if pace == 1 else 's'} a second"]
    if code.counts_segments:
        words.append(f"{subject.cost:.2f} segments a text (the template merged with the records)")
    if others:
        names = ", ".join(f"{o.name} (priority {o.priority})" for o in others)
        words.append(f"shared by priority with {names}; this skill has priority {skill.priority}")
    words.append(outcomes.describe())
    words.append(
        f"a retried record is due {skill.min_retry_minutes} min after its receipt, at most "
        f"{skill.max_attempts} texts a record and as many as its cadence gives its numbers; "
        "the planner runs every "
        f"{period.total_seconds() / 60:g} min"
    )
    groups = len(subject.groups)
    words.append(
        f"{subject.records:,} open records in {groups} group{'' if groups == 1 else 's'} of "
        "zone, state and area code, each by its own hours, holidays, blackouts and caps"
    )
    if subject.never:
        words.append(
            f"{subject.never:,} records have no number any window opens for (unknown or shut "
            "zone): they stay open and the skill completes without them"
        )
    return words
