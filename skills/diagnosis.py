"""Why a skill's texts are not going out now, and why a record has not been texted.

The planner (skills/planner.py) acts on these facts one record at a time and says nothing; this
module says them in words, with counts, for the skill page, the dashboard, ``manage.py skill
status`` and a record's page (docs/why-not-sending.md lists every reason). The skill's counts
come from the record tallies and the held-record index, so they cost the same beside a million
records as beside a thousand; a record's reasons are those of each of its numbers, asked of
the same window policy the planner asks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import NamedTuple

from django.db.models import Count, Max
from django.utils import timezone

from dnc.selectors import numbers_in_groups, opted_out_numbers
from messaging.models import MessageStatus, OutboundMessage, SenderLease
from pcsms import timezones
from skills.cadence import Cadence
from skills.filters import RecordFilter, custom_field_types
from skills.models import CallingList, FinalReason, Record, Skill, Weekday, channel_problems
from skills.queries import active_list_ids, not_expired_q, pending_q
from skills.selectors import SEND_LAG_BOUND, channel_unreachable, list_tallies
from skills.windows import Blocked, WindowPolicy, schedule_zone

UTC = dt.UTC
RECENT = dt.timedelta(minutes=15)  # "sending now": texts handed to the carrier this recently


class Kind:
    """What a reason is about; the pages link each kind to where it is handled."""

    STOPPED = "stopped"
    PAUSED = "paused"
    COMPLETED = "completed"
    TEMPLATE = "template"
    REGISTRATION = "registration"
    NO_CODE = "no_code"
    NO_LIST = "no_list"
    NO_RECORDS = "no_records"
    ALL_FINAL = "all_final"
    SCHEDULE = "schedule"
    OUTSIDE_WINDOW = "outside_window"
    UNKNOWN_ZONE = "unknown_zone"
    ZONE_NOT_ALLOWED = "zone_not_allowed"
    ZONE_INACTIVE = "zone_inactive"
    NO_WINDOW = "no_window"
    HELD = "held"  # a state rule, a blackout or a frequency cap (skills.models.RuleHold)
    EXHAUSTED = "exhausted"
    DNC = "dnc"
    OPTED_OUT = "opted_out"
    NO_SENDER = "no_sender"
    # Facts, not holds:
    IN_WINDOW = "in_window"
    NO_ADDRESS = "no_address"
    POSTAL_ADDRESS = "postal_address"
    QUEUED = "queued"
    SENDING = "sending"
    # A record's own:
    FINAL = "final"
    EXPIRED = "expired"
    FILTERED = "filtered"
    RETRY = "retry"
    PENDING = "pending"
    NOT_IN_CADENCE = "not_in_cadence"
    NUMBER_FINAL = "number_final"
    READY = "ready"


# Kinds that stop the whole skill, whatever its records.
SKILL_WIDE = {
    Kind.STOPPED,
    Kind.PAUSED,
    Kind.COMPLETED,
    Kind.TEMPLATE,
    Kind.REGISTRATION,
    Kind.NO_CODE,
    Kind.NO_LIST,
    Kind.NO_RECORDS,
    Kind.ALL_FINAL,
    Kind.NO_SENDER,
    Kind.POSTAL_ADDRESS,
}
FACTS = {Kind.IN_WINDOW, Kind.QUEUED, Kind.SENDING, Kind.READY}


class _Never(NamedTuple):
    """What the window policy's "never under these settings" verdict means, in words: for the
    skill's records (then the zones they are in) and for one number of a record ({zone})."""

    kind: str
    records: str
    number: str


_NEVER = {
    Blocked.UNKNOWN_ZONE: _Never(
        Kind.UNKNOWN_ZONE,
        "no known time zone (fix the zone or the number)",
        "has no known time zone",
    ),
    Blocked.ZONE_NOT_ALLOWED: _Never(
        Kind.ZONE_NOT_ALLOWED,
        "in a zone the business unit does not allow",
        "is in {zone}, which the business unit does not allow",
    ),
    Blocked.ZONE_INACTIVE: _Never(
        Kind.ZONE_INACTIVE,
        "in a zone the skill's time-zone bounds switch off",
        "is in {zone}, which the skill's time-zone bounds switch off",
    ),
    Blocked.NO_WINDOW: _Never(
        Kind.NO_WINDOW,
        "no allowed hour in the coming week",
        "has no allowed hour in the coming week in {zone}",
    ),
}


def _never(reason: str) -> _Never:
    """A verdict's words; one this module does not know yet reads as its own code."""
    return _NEVER.get(reason) or _Never(Kind.NO_WINDOW, reason, reason)


@dataclass(frozen=True)
class Reason:
    kind: str
    text: str
    count: int | None = None  # records (or texts) it concerns, when it is a count

    @property
    def holds(self) -> bool:
        """It keeps texts back (rather than being a fact such as texts queued)."""
        return self.kind not in FACTS

    def as_json(self) -> dict:
        return {"kind": self.kind, "text": self.text, "count": self.count}


@dataclass
class SkillWhy:
    """What holds a skill's texts now: skill-wide reasons first, then by records."""

    skill: Skill
    now: dt.datetime
    reasons: list[Reason] = field(default_factory=list)
    next_window: dt.datetime | None = None  # the earliest opening for records that wait
    next_zone: str = ""
    sent_recently: int = 0
    in_window: int = 0  # open records with attempts left whose zone's window is open now

    @property
    def stopped_by(self) -> Reason | None:
        return next((r for r in self.reasons if r.kind in SKILL_WIDE), None)

    @property
    def sending(self) -> bool:
        return self.stopped_by is None and (self.sent_recently > 0 or self.in_window > 0)

    @property
    def headline(self) -> str:
        wide = self.stopped_by
        if wide is not None:
            return f"Nothing is sending: {wide.text}"
        if self.sent_recently:
            return (
                f"Sending: {self.sent_recently:,} {self.skill.sent_noun} in the last "
                f"{int(RECENT.total_seconds() // 60)} minutes."
            )
        if self.in_window:
            return (
                f"{_are(self.in_window)} inside their window: the planner "
                f"{'emails' if self.skill.sent_noun == 'emails' else 'texts'} them at its next "
                "pass."
            )
        if self.next_window is not None:
            return (
                "Nothing is sending now: no waiting record is inside its window. The next "
                f"window opens {window_words(self.next_window, self.next_zone, self.skill)}."
            )
        holds = [r for r in self.reasons if r.holds]
        if holds:
            return f"Nothing is sending: {holds[0].text}"
        return "Nothing is waiting to be sent."

    def as_json(self) -> dict:
        return {
            "sending": self.sending,
            "headline": self.headline,
            "reasons": [r.as_json() for r in self.reasons],
            "next_window_utc": self.next_window.isoformat() if self.next_window else None,
        }


def _n(n: int, noun: str = "record") -> str:
    """ "1 record", "2,000 records"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _are(n: int, noun: str = "record") -> str:
    """ "1 record is", "3 records are"."""
    return f"{_n(n, noun)} {'is' if n == 1 else 'are'}"


def window_words(moment: dt.datetime, zone_name: str, skill: Skill) -> str:
    """``moment`` as local time in ``zone_name`` and as UTC: "Mon 07 Dec 08:00 EST in
    America/New_York (13:00 UTC)"."""
    zone = timezones.resolve_zone(zone_name, skill.business_unit) if zone_name else None
    utc = moment.astimezone(UTC)
    if zone is None:
        return f"{utc:%a %d %b %H:%M} UTC"
    local = moment.astimezone(zone)
    utc_part = f"{utc:%H:%M} UTC" if utc.date() == local.date() else f"{utc:%a %d %b %H:%M} UTC"
    return f"{local:%a %d %b %H:%M} {local.tzname()} in {zone_name} ({utc_part})"


def _local(moment: dt.datetime, skill: Skill) -> str:
    return f"{moment.astimezone(schedule_zone(skill.business_unit)):%a %d %b %H:%M}"


def start_problems(skill: Skill, template=None) -> list[Reason]:
    """What keeps the skill from starting (and a running one from sending): its template,
    registration, code and lists. ``template``: the template as the caller read it (a start
    reads it locked)."""
    template = template if template is not None else skill.template
    registration = skill.registration
    code = registration.transport_code
    problems = []
    if not template.is_active:
        problems.append(Reason(Kind.TEMPLATE, f'its template "{template}" is not active'))
    mismatch = channel_problems(skill)
    if "template" in mismatch:
        problems.append(Reason(Kind.TEMPLATE, f"its template: {mismatch['template']}"))
    if "registration" in mismatch:
        problems.append(Reason(Kind.REGISTRATION, f"its registration: {mismatch['registration']}"))
    if "channel" in mismatch:
        problems.append(Reason(Kind.POSTAL_ADDRESS, mismatch["channel"]))
    if not registration.is_active:
        problems.append(
            Reason(Kind.REGISTRATION, f'its sending registration "{registration}" is not active')
        )
    if not code.can_send:
        problems.append(
            Reason(
                Kind.NO_CODE,
                f"its transport code {code.number} is "
                f"{code.get_provisioning_status_display().lower()}, not provisioned",
            )
        )
    if not skill.calling_lists.filter(status=CallingList.Status.ACTIVE).exists():
        problems.append(Reason(Kind.NO_LIST, "it has no active calling list"))
    return problems


def _state_reasons(skill: Skill) -> list[Reason]:
    since = f" since {_local(skill.state_changed_at, skill)}" if skill.state_changed_at else ""
    if skill.state == Skill.State.STOPPED:
        return [Reason(Kind.STOPPED, f"the skill is stopped{since}: start it to send.")]
    if skill.state == Skill.State.PAUSED:
        why = f" {skill.paused_reason}" if skill.paused_reason else " Resume it to send."
        return [Reason(Kind.PAUSED, f"the skill is paused{since}.{why}")]
    if skill.state == Skill.State.COMPLETED:
        return [
            Reason(
                Kind.COMPLETED,
                f"the skill completed{since}: every record is final or has had its attempts.",
            )
        ]
    return []


def _schedule_reason(skill: Skill, now: dt.datetime) -> Reason | None:
    """The skill's own schedule (in the BU's zone) when it has no hours now."""
    if not skill.schedule_enabled:
        return None
    zone = schedule_zone(skill.business_unit)
    local = now.astimezone(zone)
    days = {d.weekday: d for d in skill.schedule_days.all()}
    today = days.get(local.weekday())
    names = dict(Weekday.choices)
    if today is None or not today.is_active:
        on = [names[w] for w in sorted(days) if days[w].is_active]
        return Reason(
            Kind.SCHEDULE,
            f"the skill's schedule has no hours on {names[local.weekday()]}s "
            f"(it texts on {', '.join(on) or 'no day'}).",
        )
    start = local.replace(
        hour=today.start_time.hour, minute=today.start_time.minute, second=0, microsecond=0
    )
    end = local.replace(
        hour=today.end_time.hour, minute=today.end_time.minute, second=0, microsecond=0
    )
    if start <= local < end:
        return None
    return Reason(
        Kind.SCHEDULE,
        f"the skill's schedule today is {today.start_time:%H:%M}-{today.end_time:%H:%M} "
        f"({zone}); it is {local:%H:%M} there.",
    )


def _no_sender(skill: Skill, now: dt.datetime, queued: int) -> Reason | None:
    """Texts wait in the queue and no sender holds the code: no worker sends them."""
    code = skill.registration.transport_code
    if not queued or not code.can_send:
        return None
    if SenderLease.objects.filter(transport_code=code, expires_at__gt=now).exists():
        return None
    return Reason(
        Kind.NO_SENDER,
        f"no sender is sending for code {code.number}: {_n(queued, skill.sent_noun[:-1])} "
        "waiting in its queue. "
        "Start the worker (manage.py qcluster) or look at Workers → Sender processes.",
        queued,
    )


def skill_why(
    skill: Skill, now: dt.datetime | None = None, tallies: list | None = None
) -> SkillWhy:
    """What holds the skill's texts now, with counts (see the module docstring)."""
    now = now or timezone.now()
    why = SkillWhy(skill=skill, now=now)
    reasons = why.reasons
    reasons += _state_reasons(skill)
    reasons += start_problems(skill)
    list_ids = active_list_ids(skill)
    if tallies is None:
        tallies = list_tallies(list_ids)
    records = sum(n for *_rest, n in tallies)
    finals: dict[str, int] = {}
    waiting: dict[str, int] = {}
    exhausted = 0
    for is_final, reason, attempts, zone, n in tallies:
        if is_final:
            finals[reason] = finals.get(reason, 0) + n
        elif attempts >= skill.max_attempts:
            exhausted += n
        else:
            waiting[zone or ""] = waiting.get(zone or "", 0) + n
    unreachable = channel_unreachable(skill, list_ids)
    for zone, n in unreachable.items():
        waiting[zone] = waiting.get(zone, 0) - n
    waiting = {zone: n for zone, n in waiting.items() if n > 0}
    if unreachable:
        n = sum(unreachable.values())
        reasons.append(
            Reason(
                Kind.NO_ADDRESS,
                f"{_n(n, 'open record')} {'has' if n == 1 else 'have'} no email address the "
                "skill may use: it never emails them (a text skill on the list may reach them).",
                n,
            )
        )
    if list_ids and not records:
        reasons.append(Reason(Kind.NO_RECORDS, "its calling lists have no records.", 0))
    elif records and not waiting and not exhausted:
        reasons.append(
            Reason(
                Kind.ALL_FINAL,
                f"all {_n(records)} final." if records > 1 else "its one record is final.",
                records,
            )
        )
    queued = OutboundMessage.objects.filter(
        transport_code_id=skill.registration.transport_code_id,
        status=MessageStatus.QUEUED,
        source=f"skill:{skill.pk}",
    ).count()
    if skill.state == Skill.State.RUNNING and (reason := _no_sender(skill, now, queued)):
        reasons.append(reason)
    if (reason := _schedule_reason(skill, now)) is not None:
        reasons.append(reason)
    reasons += _zone_reasons(why, waiting)
    reasons += _held_reasons(skill, list_ids, now)
    if exhausted:
        reasons.append(
            Reason(
                Kind.EXHAUSTED,
                f"{_n(exhausted, 'open record')} {'has' if exhausted == 1 else 'have'} had all "
                f"{skill.max_attempts} attempts.",
                exhausted,
            )
        )
    if finals.get(FinalReason.OPTED_OUT):
        n = finals[FinalReason.OPTED_OUT]
        reasons.append(Reason(Kind.OPTED_OUT, f"{_are(n)} final: opted out.", n))
    if finals.get(FinalReason.DNC):
        n = finals[FinalReason.DNC]
        reasons.append(Reason(Kind.DNC, f"{_are(n)} final: on a DNC group.", n))
    if queued:
        reasons.append(
            Reason(
                Kind.QUEUED, f"{_are(queued, skill.sent_noun[:-1])} queued for the sender.", queued
            )
        )
    why.sent_recently = OutboundMessage.objects.filter(
        attempt__skill=skill,
        attempt__created_at__gte=now - RECENT - SEND_LAG_BOUND,
        sent_at__gt=now - RECENT,
        sent_at__lte=now,
    ).count()
    return why


def _zone_reasons(why: SkillWhy, waiting: dict[str, int]) -> list[Reason]:
    """The records that wait, by their zone's window now (the planner's own verdicts)."""
    skill, now = why.skill, why.now
    policy = WindowPolicy.for_skill(skill, now)
    blocked: dict[str, list[tuple[str, int]]] = {}
    closed: list[tuple[dt.datetime, str, int, str]] = []
    for zone_name, n in sorted(waiting.items()):
        verdict = policy.check(zone_name=zone_name, now=now)
        if not verdict.allowed:
            blocked.setdefault(verdict.reason, []).append((zone_name, n))
        elif verdict.is_open(now):
            why.in_window += n
        else:
            held = f" ({verdict.held.rule})" if verdict.held is not None else ""
            closed.append((verdict.opens_at, zone_name, n, held))
    reasons = []
    if why.in_window and skill.state == Skill.State.RUNNING:
        reasons.append(
            Reason(
                Kind.IN_WINDOW,
                f"{_are(why.in_window, 'waiting record')} inside their window now.",
                why.in_window,
            )
        )
    for opens_at, zone_name, n, held in sorted(closed):
        reasons.append(
            Reason(
                Kind.OUTSIDE_WINDOW,
                f"{_are(n)} outside the window in {zone_name}{held}: it opens "
                f"{window_words(opens_at, zone_name, skill)}.",
                n,
            )
        )
    if closed:
        why.next_window, why.next_zone = min(closed)[:2]
    for reason, zones in blocked.items():
        n = sum(k for _z, k in zones)
        named = ", ".join(z for z, _k in zones if z)
        never = _never(reason)
        reasons.append(
            Reason(never.kind, f"{_n(n)}: {never.records}" + (f": {named}." if named else "."), n)
        )
    return reasons


def _held_reasons(skill: Skill, list_ids: list[int], now: dt.datetime) -> list[Reason]:
    """Open records a state rule, a blackout or a frequency cap holds now, by rule."""
    if not list_ids:
        return []
    rows = (
        Record.objects.filter(
            calling_list_id__in=list_ids,
            is_final=False,
            held_until__isnull=False,
            held_until__gt=now,
        )
        .values("held_by")
        .annotate(n=Count("id"), until=Max("held_until"))
        .order_by("-n", "held_by")
    )
    return [
        Reason(
            Kind.HELD,
            f"{_are(row['n'])} held by {row['held_by'] or 'a rule'} "
            f"until {_local(row['until'], skill)} at the latest.",
            row["n"],
        )
        for row in rows
    ]


# --- One record -------------------------------------------------------------------------------


@dataclass
class RecordWhy:
    skill: Skill
    reasons: list[Reason]


def record_why(record: Record, now: dt.datetime | None = None) -> list[RecordWhy]:
    """Why each skill texting the record's list has not texted it now (or that it may)."""
    now = now or timezone.now()
    skills = (
        Skill.objects.filter(calling_lists=record.calling_list_id)
        .select_related("business_unit", "registration__transport_code", "template")
        .order_by("name")
    )
    return [RecordWhy(skill, _record_reasons(skill, record, now)) for skill in skills]


def _record_reasons(skill: Skill, record: Record, now: dt.datetime) -> list[Reason]:
    reasons = _state_reasons(skill) + start_problems(skill)
    if record.calling_list.status != CallingList.Status.ACTIVE:
        reasons.append(Reason(Kind.NO_LIST, "the record's list is not active."))
    if record.is_final:
        reasons.append(
            Reason(Kind.FINAL, f"the record is final: {record.get_final_reason_display().lower()}.")
        )
        return reasons
    if record.attempts >= skill.max_attempts:
        reasons.append(
            Reason(Kind.EXHAUSTED, f"it has had all {skill.max_attempts} attempts of the skill.")
        )
        return reasons
    own = Record.objects.filter(pk=record.pk)
    if not own.filter(not_expired_q(skill, now)).exists():
        reasons.append(
            Reason(Kind.EXPIRED, "it has expired (its own date or the contact expiration).")
        )
        return reasons
    if skill.feed == Skill.Feed.FRESH and record.attempts:
        reasons.append(Reason(Kind.FILTERED, "the skill texts fresh records only."))
    elif skill.feed == Skill.Feed.NON_FRESH and not record.attempts:
        reasons.append(Reason(Kind.FILTERED, "the skill texts non-fresh records only."))
    if skill.filter_active:
        list_ids = [record.calling_list_id]
        record_filter = RecordFilter(
            skill.filter_conditions.all(),
            custom_types=custom_field_types(list_ids),
            phone_region=skill.business_unit.phone_region,
        )
        if not record_filter.apply(own).exists() or not record_filter.passes(record):
            reasons.append(Reason(Kind.FILTERED, "the skill's filter leaves it out."))
    if record.held_until is not None and record.held_until > now:
        reasons.append(
            Reason(
                Kind.HELD,
                f"held by {record.held_by or 'a rule'} until {_local(record.held_until, skill)}.",
            )
        )
    if record.last_attempt_at is not None:
        retry_at = record.last_attempt_at + dt.timedelta(minutes=skill.min_retry_minutes)
        if retry_at > now:
            reasons.append(
                Reason(
                    Kind.RETRY,
                    f"texted {_local(record.last_attempt_at, skill)}; the next text waits until "
                    f"{_local(retry_at, skill)} (the skill's {skill.min_retry_minutes} minutes "
                    "between texts).",
                )
            )
    if skill.attempts.filter(pending_q(skill, now), record=record).exists():
        reasons.append(Reason(Kind.PENDING, "a text to it is queued or waits for its receipt."))
    reasons += _number_reasons(skill, record, now)
    return reasons


def _number_reasons(skill: Skill, record: Record, now: dt.datetime) -> list[Reason]:
    destinations = list(record.destinations.order_by("position"))
    if not destinations:
        return [Reason(Kind.NUMBER_FINAL, "it has no phone number.")]
    cadence = Cadence.for_skill(skill)
    in_cadence = {d.id: step for step, d in cadence.numbers(destinations)}
    numbers = {d.phone_number for d in destinations}
    opted = opted_out_numbers(
        business_unit_id=skill.business_unit_id,
        numbers=numbers,
        stop_group_id=skill.registration.stop_dnc_group_id,
    )
    scrub = list(skill.scrubbed_dnc_groups.values_list("id", flat=True))
    on_dnc = numbers_in_groups(group_ids=scrub, numbers=numbers)
    policy = WindowPolicy.for_skill(skill, now)
    reasons = []
    for destination in destinations:
        number = destination.phone_number
        step = in_cadence.get(destination.id)
        zone_name = destination.time_zone or record.time_zone
        if step is None:
            reasons.append(
                Reason(
                    Kind.NOT_IN_CADENCE,
                    f"{number} ({destination.source_field}) is not in the skill's cadence.",
                )
            )
            continue
        if destination.is_final:
            reasons.append(
                Reason(Kind.NUMBER_FINAL, f"{number} is final: {destination.final_reason}.")
            )
            continue
        if number in opted:
            reasons.append(Reason(Kind.OPTED_OUT, f"{number} opted out."))
            continue
        if number in on_dnc:
            reasons.append(
                Reason(Kind.DNC, f"{number} is on a DNC group the skill scrubs against.")
            )
            continue
        verdict = policy.check(
            zone_name=zone_name,
            now=now,
            state=record.state,
            phone_number=number,
            step=step.row,
        )
        if not verdict.allowed:
            never = _never(verdict.reason)
            reasons.append(Reason(never.kind, f"{number} {never.number.format(zone=zone_name)}."))
        elif not verdict.is_open(now):
            held = f" ({verdict.held.rule})" if verdict.held is not None else ""
            reasons.append(
                Reason(
                    Kind.OUTSIDE_WINDOW,
                    f"{number} is outside its window{held}: it opens "
                    f"{window_words(verdict.opens_at, zone_name, skill)}.",
                )
            )
        else:
            reasons.append(Reason(Kind.READY, f"{number} may be texted now, in {zone_name}."))
    return reasons
