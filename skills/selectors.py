"""Reads for skills and calling lists (HackSoft style: writes live in services.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.core.cache import cache
from django.db.models import Count, Exists, OuterRef, QuerySet, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from messaging.models import Channel, MessageStatus, OutboundMessage, TransportCode
from messaging.pacing import priority_fraction
from pcsms.models import BusinessUnit
from skills.filters import RecordFilter, custom_field_types
from skills.importing.report import HEADER as REPORT_HEADER
from skills.models import (
    Campaign,
    CustomField,
    Destination,
    FilterCondition,
    FinalReason,
    Record,
    RecordTally,
    Skill,
    SkillForecast,
    UploadJob,
)
from skills.queries import active_list_ids, channel_q
from skills.windows import WindowPolicy


def custom_field_names(business_unit: BusinessUnit) -> list[str]:
    """Custom field names of the BU's calling lists: merge fields for its templates."""
    return list(
        CustomField.objects.filter(calling_list__business_unit=business_unit)
        .values_list("name", flat=True)
        .distinct()
    )


# --- Relative priorities ----------------------------------------------------------------------


@dataclass
class PriorityRow:
    skill: Skill
    code: TransportCode
    # The skill's part of its code's pace while every running skill of the code has texts
    # ready: now if it runs, else if it were started (the planner and the sender split a code
    # in proportion to priority; a skill alone on its code gets all of it).
    share: Fraction

    @property
    def running(self) -> bool:
        return self.skill.state == Skill.State.RUNNING

    @property
    def percent(self) -> int:
        return math.floor(100 * self.share + Fraction(1, 2))  # half up, as the page's script

    @property
    def rate(self) -> Decimal:
        """Texts (or segments) per second the share is worth."""
        share = Decimal(self.share.numerator) / Decimal(self.share.denominator)
        return (self.code.messages_per_second * share).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass
class PriorityGroup:
    business_unit: BusinessUnit
    rows: list[PriorityRow]


def skill_priority_table(skills: QuerySet[Skill]) -> list[PriorityGroup]:
    """The relative-priorities page: ``skills`` by business unit, then transport code."""
    skills = skills.select_related("business_unit", "registration__transport_code").order_by(
        "business_unit__name", "registration__transport_code__number", "-priority", "name"
    )
    running: dict[int, dict[int, int]] = {}  # code id -> {running skill id: priority}
    for skill in skills:
        if skill.state == Skill.State.RUNNING:
            code_id = skill.registration.transport_code_id
            running.setdefault(code_id, {})[skill.id] = skill.priority
    groups: list[PriorityGroup] = []
    for skill in skills:
        code = skill.registration.transport_code
        # This skill's part now if it runs, else if it were started beside the running ones.
        sharing = {**running.get(code.id, {}), skill.id: skill.priority}
        row = PriorityRow(skill, code, priority_fraction(skill.priority, sharing.values()))
        if not groups or groups[-1].business_unit.id != skill.business_unit_id:
            groups.append(PriorityGroup(skill.business_unit, []))
        groups[-1].rows.append(row)
    return groups


# --- Filter preview ---------------------------------------------------------------------------

PREVIEW_SCAN_LIMIT = 200_000  # records checked in Python at most (see skill_filter_preview)


@dataclass
class FilterPreview:
    matching: int
    total: int  # the open records of the skill's active lists
    approximate: bool  # only the first PREVIEW_SCAN_LIMIT candidates were checked
    problems: list[str]

    @property
    def text(self) -> str:
        about = "about " if self.approximate else ""
        return f"{about}{self.matching:,} of {self.total:,} open records match the filter."


def skill_filter_preview(
    *, skill: Skill, conditions: list[FilterCondition], scan_limit: int = PREVIEW_SCAN_LIMIT
) -> FilterPreview:
    """How many open records of the skill's lists ``conditions`` (saved or not) let through.

    The planner's own filter (RecordFilter) does the work, so the count is what the skill
    would text. Conditions on custom numbers and yes/no values are checked in Python, record
    by record, as the planner does: past ``scan_limit`` candidates the count is extrapolated.
    """
    list_ids = active_list_ids(skill)
    records = Record.objects.filter(calling_list_id__in=list_ids, is_final=False)
    total = records.count()
    record_filter = RecordFilter(
        conditions,
        custom_types=custom_field_types(list_ids),
        phone_region=skill.business_unit.phone_region,
    )
    candidates = record_filter.apply(records)
    if not record_filter.checks:
        return FilterPreview(candidates.count(), total, False, record_filter.problems)
    matching = 0
    rows = candidates.order_by("pk").iterator(chunk_size=2000)
    for scanned, record in enumerate(rows, start=1):
        matching += record_filter.passes(record)
        if scanned >= scan_limit:
            share = matching / scanned
            return FilterPreview(
                round(share * candidates.count()), total, True, record_filter.problems
            )
    return FilterPreview(matching, total, False, record_filter.problems)


# --- A skill's progress -----------------------------------------------------------------------


@dataclass
class SkillProgress:
    records: int  # of the skill's active calling lists
    open: int
    finalized: list[tuple[str, int]]  # (reason, records), in FinalReason's order, none empty
    texts: list[tuple[str, int]]  # (status, texts the skill planned), in MessageStatus' order


def list_tallies(list_ids: list[int]) -> list[tuple[bool, str, int, str, int]]:
    """Records of the lists by (final, final reason, attempts, record's zone): the sums of the
    tallies the database keeps (RecordTally), so the cost is that of the few states, not of the
    records."""
    rows = (
        RecordTally.objects.filter(calling_list_id__in=list_ids)
        .values_list("is_final", "final_reason", "attempts", "time_zone")
        .annotate(n=Sum("records"))
        .order_by()
    )
    return [(bool(f), reason, attempts, zone, n) for f, reason, attempts, zone, n in rows if n]


def skill_progress(skill: Skill, tallies: list | None = None) -> SkillProgress:
    """Records of the skill's lists by outcome, and the skill's texts by status."""
    reasons = dict(FinalReason.choices)
    finals: dict[str, int] = {}
    records = open_records = 0
    if tallies is None:
        tallies = list_tallies(active_list_ids(skill))
    for is_final, reason, _attempts, _zone, n in tallies:
        records += n
        if is_final:
            finals[reason] = finals.get(reason, 0) + n
        else:
            open_records += n
    # Through the attempts (indexed by skill): a skill's texts, on whichever code they went.
    statuses = dict(
        OutboundMessage.objects.filter(attempt__skill=skill)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return SkillProgress(
        records=records,
        open=open_records,
        finalized=[(reasons[r], finals[r]) for r in reasons if finals.get(r)]
        + [(r or "unknown", n) for r, n in finals.items() if r not in reasons],
        texts=[(label, statuses[s]) for s, label in MessageStatus.choices if statuses.get(s)],
    )


# --- Dashboards -------------------------------------------------------------------------------

THROUGHPUT_MINUTES = 60  # the chart: texts sent per minute over the last hour
RATE_MINUTES = 15  # the rate behind the ETA
# A text is sent within this long of being planned (the planner keeps minutes of work queued
# and re-plans what waits longer than the skill's stale minutes): bounds the index scan.
SEND_LAG_BOUND = dt.timedelta(hours=6)
OUTCOME_BUCKET_MINUTES = 10  # the outcomes chart: records finalized per 10 minutes ...
OUTCOMES_SETTLED = dt.timedelta(minutes=2)  # see _outcomes_over_time
OUTCOME_BUCKETS = 24  # ... over the last 4 hours (the clock's 10 minutes, the last one now's)
WAITING_STEP_MINUTES = 5  # the time-left chart's points over the last hour
FORECAST_CURVE_POINTS = 120  # of the start's forecast on the time-left chart, at most


@dataclass
class Dashboard:
    title: str
    states: list[str]  # of the skill, or of the campaign's skills
    progress: SkillProgress
    waiting: int  # open records that may still be texted (attempts left)
    per_minute: list[int]  # texts sent in each of the last THROUGHPUT_MINUTES minutes
    opted_out: int
    now: dt.datetime
    forecast: ForecastCheck | None = None  # a skill's: its start's forecast beside the facts
    outcomes_over_time: OutcomesOverTime | None = None
    # The start's forecast as records left: (minutes from now, records), see _forecast_curve.
    forecast_curve: list[tuple[float, int]] = field(default_factory=list)
    running_since: dt.datetime | None = None  # the (latest) start of the running skill(s)

    @property
    def rate_minutes(self) -> int:
        """The minutes the rate is taken over: the last RATE_MINUTES, or the minutes since the
        start when it is more recent (else the first minutes' texts, spread over 15, would
        promise a finish many times later than the pace gives)."""
        if self.running_since is None:
            return RATE_MINUTES
        running = math.ceil((self.now - self.running_since).total_seconds() / 60)
        return max(1, min(RATE_MINUTES, running))

    @property
    def rate(self) -> float:
        """Texts per minute over the last ``rate_minutes`` minutes."""
        return sum(self.per_minute[-self.rate_minutes :]) / self.rate_minutes

    @property
    def eta_minutes(self) -> int | None:
        """Minutes until every waiting record has had a text at the current rate."""
        if not self.waiting:
            return 0
        return math.ceil(self.waiting / self.rate) if self.rate else None

    @property
    def finalized(self) -> int:
        return sum(n for _reason, n in self.progress.finalized)

    def as_json(self) -> dict:
        return {
            "title": self.title,
            "states": self.states,
            "records": self.progress.records,
            "open": self.progress.open,
            "finalized": self.finalized,
            "percent_done": round(100 * self.finalized / self.progress.records)
            if self.progress.records
            else 0,
            "outcomes": self.progress.finalized,
            "texts": self.progress.texts,
            "waiting": self.waiting,
            "per_minute": self.per_minute,
            "rate": round(self.rate, 1),
            "rate_minutes": self.rate_minutes,
            "eta_minutes": self.eta_minutes,
            "eta_text": eta_text(self.eta_minutes),
            "opted_out": self.opted_out,
            "at": timezone.localtime(self.now).strftime("%H:%M:%S"),
            "forecast": self.forecast.as_json() if self.forecast else None,
            "per_minute_labels": [
                timezone.localtime(
                    self.now - dt.timedelta(minutes=THROUGHPUT_MINUTES - 1 - i)
                ).strftime("%H:%M")
                for i in range(THROUGHPUT_MINUTES)
            ],
            "outcomes_over_time": self.outcomes_over_time.as_json()
            if self.outcomes_over_time
            else None,
            "waiting_curve": self.waiting_curve(),
        }

    def waiting_curve(self) -> dict:
        """The time-left chart: records waiting over the last hour, the line to zero at the
        current rate, and the start's forecast; x in minutes from now.

        Nothing keeps how many records waited an hour ago, so the history is reckoned back
        as the ETA reckons forward: one text a waiting record, so the records waiting then are
        those waiting now and the texts sent since (it overstates the fall by the retries).
        """
        history = []
        for minutes_ago in range(THROUGHPUT_MINUTES, -1, -WAITING_STEP_MINUTES):
            since = sum(self.per_minute[THROUGHPUT_MINUTES - minutes_ago :])
            history.append([-minutes_ago, self.waiting + since])
        eta = self.eta_minutes
        projection = [[0, self.waiting], [eta, 0]] if self.waiting and eta else []
        return {
            "history": history,
            "projection": projection,
            "forecast": [[x, n] for x, n in self.forecast_curve],
        }


def eta_text(minutes: int | None) -> str:
    """``minutes`` as a person reads a time left: "-", "done", "45 min", "3 h 20 min",
    "4 d 22 h"."""
    if minutes is None:
        return "-"
    if minutes == 0:
        return "done"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days:,} d {hours} h" if hours else f"{days:,} d"


def _per_minute(skills: list[Skill], now: dt.datetime) -> list[int]:
    start = now - dt.timedelta(minutes=THROUGHPUT_MINUTES)
    counts = [0] * THROUGHPUT_MINUTES
    sent = OutboundMessage.objects.filter(
        attempt__skill__in=skills,
        attempt__created_at__gte=start - SEND_LAG_BOUND,
        sent_at__gt=start,
        sent_at__lte=now,
    ).values_list("sent_at", flat=True)
    for when in sent.iterator(chunk_size=5000):
        minute = int((when - start).total_seconds() // 60)
        counts[min(max(minute, 0), THROUGHPUT_MINUTES - 1)] += 1
    return counts


@dataclass
class OutcomesOverTime:
    """Records finalized in each OUTCOME_BUCKET_MINUTES of the clock, by outcome."""

    starts: list[dt.datetime]  # each bucket's start; the last bucket ends now
    counts: dict[str, list[int]]  # final reason -> records in each bucket, FinalReason order

    def as_json(self) -> dict:
        labels = dict(FinalReason.choices)
        return {
            "bucket_minutes": OUTCOME_BUCKET_MINUTES,
            "labels": [timezone.localtime(start).strftime("%H:%M") for start in self.starts],
            "series": [
                {"reason": reason, "label": labels.get(reason, reason or "unknown"), "counts": n}
                for reason, n in self.counts.items()
            ],
        }


def _outcomes_over_time(list_ids: list[int], now: dt.datetime) -> OutcomesOverTime:
    """Records of the lists finalized in each bucket of the last few hours, by reason; a list
    named twice (two skills of a campaign share it) counts twice, as the outcomes table does.

    A record keeps no finalized time of its own, but every write that finalizes one stamps
    ``updated_at`` (skills.outcomes and its receipt SQL, the planner, the sweeps, dnc_hooks),
    and a final record is rarely written again (an edit in the admin, a replace-mode upload
    of the same IDs: they count when they happened). So the records are counted by it: every
    outcome, the DNC and opt-outs found before a text and the expiries too, as the table has
    them. Reached through the skills' attempts of the window instead, the cost would grow
    with the pace and still miss those (measured beside 1,000,000 records, 2 texts a second:
    0.3-0.45 s). The partial index record_final_updated_idx finds them by range.

    At a high pace the window holds hundreds of thousands of records (300,000 in 4 hours:
    0.3 s to count, docs/performance.md). The buckets before the current one are past: they
    are counted once and kept until they leave the chart, and each refresh counts the current
    bucket's records only. A final record written again later counts in its new bucket too
    until its old one leaves the chart.
    """
    zone = timezone.get_current_timezone()
    local = timezone.localtime(now, zone)
    floor = local.replace(
        minute=local.minute - local.minute % OUTCOME_BUCKET_MINUTES, second=0, microsecond=0
    ).astimezone(dt.UTC)
    step = dt.timedelta(minutes=OUTCOME_BUCKET_MINUTES)
    first = floor - (OUTCOME_BUCKETS - 1) * step
    starts = [first + i * step for i in range(OUTCOME_BUCKETS)]
    times = {list_id: list_ids.count(list_id) for list_id in set(list_ids)}
    key = f"pcsms:outcomes:{','.join(map(str, sorted(list_ids)))}:{zone}:{first:%Y%m%d%H%M}"
    past = cache.get(key)
    found: dict[str, list[int]] = {}
    for list_id, reason, minute, n in _finalized(times, first if past is None else floor, now):
        bucket = min(int((minute - first) // step), OUTCOME_BUCKETS - 1)
        found.setdefault(reason, [0] * OUTCOME_BUCKETS)[bucket] += n * times[list_id]
    if past is None:
        # Kept once the bucket before is settled: a transaction that finalized records just
        # before the bucket turned may commit a little after it (a receipt batch, a sweep's
        # chunk); until then every refresh counts the whole chart.
        if now - floor >= OUTCOMES_SETTLED:
            past = {r: counts[:-1] + [0] for r, counts in found.items()}
            cache.set(key, past, OUTCOME_BUCKET_MINUTES * 60)  # until the next bucket opens
    else:
        for reason, counts in past.items():
            mine = found.setdefault(reason, [0] * OUTCOME_BUCKETS)
            found[reason] = [a + b for a, b in zip(mine, counts, strict=True)]
    order = [r for r in FinalReason.values if r in found] + sorted(
        r for r in found if r not in FinalReason.values
    )
    return OutcomesOverTime(starts=starts, counts={r: found[r] for r in order})


def _finalized(times: dict[int, int], start: dt.datetime, end: dt.datetime):
    """(list id, final reason, minute, records) of the lists' records finalized in the range.
    COUNT(*): the partial index holds the list, the time and the reason, so PostgreSQL
    counts from it alone (a count of ids reads the table too)."""
    return (
        Record.objects.filter(
            calling_list_id__in=times,
            is_final=True,
            updated_at__gte=start,
            updated_at__lte=end,
        )
        .annotate(minute=TruncMinute("updated_at", tzinfo=dt.UTC))
        .values_list("calling_list_id", "final_reason", "minute")
        .annotate(n=Count("*"))
        .order_by()
    )


# How long an email skill's count of the records it cannot reach is kept: it reads the lists'
# open records (the tallies do not know a record's channels), and it changes only by imports.
UNREACHABLE_SECONDS = 60


def channel_unreachable(skill: Skill, list_ids: list[int] | None = None) -> dict[str, int]:
    """An email skill's open records with attempts left and no open address, by record zone:
    they wait for no email (an SMS skill on the same list may text them). Empty for an SMS
    skill, whose lists' records carry the numbers the import requires of them."""
    if skill.channel != Channel.EMAIL:
        return {}
    key = f"pcsms:unreachable:{skill.pk}:{skill.max_attempts}"
    found = cache.get(key)
    if found is None:
        addresses = Destination.objects.filter(
            channel_q(Channel.EMAIL), record=OuterRef("pk"), is_final=False
        )
        rows = (
            Record.objects.filter(
                calling_list_id__in=active_list_ids(skill) if list_ids is None else list_ids,
                is_final=False,
                attempts__lt=skill.max_attempts,
            )
            .filter(~Exists(addresses))
            .values_list("time_zone")
            .annotate(n=Count("*"))
            .order_by()
        )
        found = {zone or "": n for zone, n in rows}
        cache.set(key, found, UNREACHABLE_SECONDS)
    return found


def skill_waiting(skill: Skill, tallies: list | None = None) -> int:
    """Open records the skill can still text: attempts left, and the record's zone one the skill
    may text (the planner texts each number in its own zone, which for a number of another
    area than its record's can differ).

    From the tallies, so a dashboard costs the same beside a million records as beside a
    thousand (bench/planner.py); the planner itself still checks each record's numbers.
    """
    if tallies is None:
        tallies = list_tallies(active_list_ids(skill))
    zones = set(WindowPolicy.for_skill(skill).textable_zones())
    unreachable = channel_unreachable(skill)
    return sum(
        n
        for is_final, _reason, attempts, zone, n in tallies
        if not is_final and attempts < skill.max_attempts and zone in zones
    ) - sum(n for zone, n in unreachable.items() if zone in zones)


def forecast_texts_by(progress: list, moment: dt.datetime) -> int:
    """How many texts a forecast expects sent by ``moment``, from its curve of (moment, texts
    sent by then) points (datetimes or ISO text), straight between two points."""
    before = (None, 0)
    for point, total in progress:
        when = dt.datetime.fromisoformat(point) if isinstance(point, str) else point
        if when > moment:
            start, sent = before
            if start is None:
                return 0
            return round(sent + (total - sent) * ((moment - start) / (when - start)))
        before = (when, total)
    return before[1]


@dataclass
class ForecastCheck:
    """The forecast made at the skill's start beside what has happened since."""

    made_at: dt.datetime
    starts_at: dt.datetime
    finishes_at: dt.datetime | None
    expected: int  # texts the forecast expected sent by now
    sent: int  # texts sent since the start
    completed_at: dt.datetime | None  # when the skill completed, if it has
    noun: str = "texts"  # what the skill sends (Skill.sent_noun)

    @property
    def off_by(self) -> dt.timedelta | None:
        """How much later (positive) or earlier the skill completed than forecast."""
        if self.completed_at is None or self.finishes_at is None:
            return None
        return self.completed_at - self.finishes_at

    def as_json(self) -> dict:
        def local(value):
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else None

        off = self.off_by
        duration = (self.finishes_at - self.starts_at) if self.finishes_at else None
        data = {
            "made_at": local(self.made_at),
            "finishes_at": local(self.finishes_at) or "not within 60 days",
            "expected": self.expected,
            "sent": self.sent,
            "ahead_percent": round(100 * (self.sent - self.expected) / self.expected)
            if self.expected
            else None,
            "completed_at": local(self.completed_at),
            "off_minutes": round(off.total_seconds() / 60) if off is not None else None,
            "off_percent": round(100 * off / duration) if off is not None and duration else None,
        }
        words = [f"Forecast at the start ({data['made_at']}): finishes {data['finishes_at']}."]
        if self.completed_at is not None:
            done = f"Completed {data['completed_at']}"
            if data["off_minutes"] is not None:
                side = "before" if data["off_minutes"] < 0 else "after"
                done += f", {abs(data['off_minutes'])} min {side} the forecast"
                if data["off_percent"] is not None:
                    done += f" ({abs(data['off_percent'])}% of its time)"
            words.append(done + ".")
        sent = f"{self.sent:,} {self.noun} sent against {self.expected:,} expected by now"
        if data["ahead_percent"] is not None:
            sent += f" ({data['ahead_percent']:+d}%)"
        words.append(sent + ".")
        data["summary"] = " ".join(words)
        return data


def skill_forecast_check(skill: Skill, now: dt.datetime) -> ForecastCheck | None:
    """The forecast kept at the skill's last start, if it ran since, beside the facts."""
    if skill.state not in (Skill.State.RUNNING, Skill.State.COMPLETED):
        return None
    if skill.state_changed_at is None:  # set to running by hand, not started
        return None
    forecasts = skill.forecasts.order_by("-starts_at")
    if skill.state == Skill.State.COMPLETED:  # the start before the completion
        forecasts = forecasts.filter(starts_at__lte=skill.state_changed_at)
    else:  # this run's: made as it started
        forecasts = forecasts.filter(
            starts_at__gte=skill.state_changed_at - dt.timedelta(minutes=1)
        )
    forecast = forecasts.first()
    if forecast is None:
        return None
    until = skill.state_changed_at if skill.state == Skill.State.COMPLETED else now
    sent = OutboundMessage.objects.filter(
        attempt__skill=skill, sent_at__gte=forecast.starts_at, sent_at__lte=until
    ).count()
    return ForecastCheck(
        made_at=forecast.made_at,
        starts_at=forecast.starts_at,
        finishes_at=forecast.finishes_at,
        expected=forecast_texts_by(forecast.data.get("progress", []), until),
        sent=sent,
        completed_at=skill.state_changed_at if skill.state == Skill.State.COMPLETED else None,
        noun=skill.sent_noun,
    )


def skill_dashboard(skill: Skill, now: dt.datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    list_ids = active_list_ids(skill)
    tallies = list_tallies(list_ids)
    progress = skill_progress(skill, tallies)
    check = skill_forecast_check(skill, now)
    return Dashboard(
        title=skill.name,
        states=[skill.get_state_display()],
        progress=progress,
        waiting=skill_waiting(skill, tallies),
        per_minute=_per_minute([skill], now),
        opted_out=dict(progress.finalized).get(FinalReason.OPTED_OUT.label, 0),
        now=now,
        forecast=check,
        outcomes_over_time=_outcomes_over_time(list_ids, now),
        forecast_curve=_forecast_curve(skill, check, now),
        running_since=skill.state_changed_at if skill.state == Skill.State.RUNNING else None,
    )


def _forecast_curve(
    skill: Skill, check: ForecastCheck | None, now: dt.datetime
) -> list[tuple[float, int]]:
    """The start's forecast on the time-left chart: (minutes from now, records left), from an
    hour ago (or the start) to its finish.

    The forecast's curve counts texts sent; its records left at a moment are taken as its
    records in proportion to the texts still to send (retries spread evenly), so it reaches
    zero when the forecast finishes, as the waiting records do at the ETA.
    """
    if check is None:
        return []
    kept = (
        SkillForecast.objects.filter(skill=skill, made_at=check.made_at, starts_at=check.starts_at)
        .only("records", "texts", "data")
        .first()
    )
    progress = kept.data.get("progress", []) if kept else []
    if not progress or not kept.texts:
        return []
    since = max(now - dt.timedelta(minutes=THROUGHPUT_MINUTES), check.starts_at)
    points = [(since, forecast_texts_by(progress, since))]
    for point, sent in progress:
        when = dt.datetime.fromisoformat(point) if isinstance(point, str) else point
        if when > since:
            points.append((when, sent))
    every = max(1, math.ceil(len(points) / FORECAST_CURVE_POINTS))
    kept_points = points[::every]
    if kept_points[-1] != points[-1]:
        kept_points.append(points[-1])
    return [
        (
            round((when - now).total_seconds() / 60, 1),
            max(0, round(kept.records * (1 - sent / kept.texts))),
        )
        for when, sent in kept_points
    ]


def campaign_dashboard(campaign: Campaign, now: dt.datetime | None = None) -> Dashboard:
    """The campaign's skills together (a list two skills share counts once per skill)."""
    now = now or timezone.now()
    skills = list(campaign.skills.select_related("business_unit").order_by("name"))
    parts = [skill_progress(skill) for skill in skills]
    finalized: dict[str, int] = {}
    texts: dict[str, int] = {}
    for part in parts:
        for reason, n in part.finalized:
            finalized[reason] = finalized.get(reason, 0) + n
        for status, n in part.texts:
            texts[status] = texts.get(status, 0) + n
    progress = SkillProgress(
        records=sum(p.records for p in parts),
        open=sum(p.open for p in parts),
        finalized=list(finalized.items()),
        texts=[(label, texts[label]) for _s, label in MessageStatus.choices if texts.get(label)],
    )
    return Dashboard(
        title=campaign.name,
        states=[f"{s.name}: {s.get_state_display()}" for s in skills],
        progress=progress,
        waiting=sum(skill_waiting(skill) for skill in skills),
        per_minute=_per_minute(skills, now) if skills else [0] * THROUGHPUT_MINUTES,
        opted_out=finalized.get(FinalReason.OPTED_OUT.label, 0),
        now=now,
        outcomes_over_time=_outcomes_over_time(
            [list_id for skill in skills for list_id in active_list_ids(skill)], now
        ),
        running_since=max(
            (
                s.state_changed_at
                for s in skills
                if s.state == Skill.State.RUNNING and s.state_changed_at
            ),
            default=None,
        ),
    )


# --- Upload jobs ------------------------------------------------------------------------------


def upload_job_report_entries(job: UploadJob) -> list[dict]:
    """The rows of the job's error report: {row, outcome, reason, values}, in row order."""
    if not job.error_report:
        return []
    with job.error_report.open("rb") as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        rows = list(csv.reader(text))
    entries = [dict(zip(REPORT_HEADER, r, strict=False)) for r in rows[1:]]
    for entry in entries:
        entry["row"] = int(entry["row"])
    return entries


def upload_job_result(job: UploadJob) -> dict:
    """A finished job as the import command's --json and the CRM endpoint answer it."""
    entries = upload_job_report_entries(job)
    return {
        "status": job.status,
        "upload_job": job.pk,
        "calling_list": job.calling_list.name,
        "processed": job.rows_processed,
        "valid": job.rows_valid,
        "invalid": job.rows_invalid,
        "flagged": job.rows_flagged,
        "message": job.message,
        "errors": [e for e in entries if e["outcome"] == "rejected"],
        "warnings": [e for e in entries if e["outcome"] != "rejected"],
    }
