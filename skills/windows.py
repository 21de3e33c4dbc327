"""When a recipient may be texted: the allowed windows in the recipient's local time.

A text may go to a number only inside every one of these, in the number's own time zone:

- the zone is known (a record whose zone is unknown is never texted), is one of the business
  unit's allowed zones, and is active in the skill's time zone bounding;
- the bounding's range for the zone: its override, else its preset, else 08:00-21:00 (TCPA);
- the stricter-state presets (``SendingWindowPreset``) that apply to the recipient, by the
  record's state (code or name) and, for presets with area codes (FL, OK), by the number's area
  code; each day the latest start and earliest end win (a preset may keep other hours on
  Saturdays or Sundays, and holds only from its ``effective_from`` day), ``no_sundays`` closes
  Sundays, ``no_holidays`` the preset's holiday dates, and the smallest ``max_per_24h`` is the
  cap the planner enforces;
- the cadence row's weekday or weekend range, if it has one;
- with the schedule switched on, the skill's schedule days in the business unit's zone.

Everything is computed as UTC intervals, one per local day, so daylight-saving changes and
custom zones ("UTC-05:00, DST like America/New_York") need no special cases. A
:class:`WindowPolicy` is built once per planning pass and remembers its answers per
(zone, presets, cadence row): a pass over a million records asks only a handful of questions.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

from pcsms import timezones
from skills.models import (
    TCPA_END,
    TCPA_START,
    Blackout,
    CadenceStep,
    RuleHold,
    ScheduleDay,
    SendingWindowPreset,
    Skill,
    StateRuleOverride,
    TimeZoneBound,
    Weekday,
    state_names,
)

UTC = dt.UTC
# How many local days ahead to look for the next window (a week covers any weekday pattern).
LOOKAHEAD_DAYS = 8


class Blocked:
    """Why a number is never texted under the current settings (not just "not now")."""

    UNKNOWN_ZONE = "unknown_zone"
    ZONE_NOT_ALLOWED = "zone_not_allowed"
    ZONE_INACTIVE = "zone_inactive"
    NO_WINDOW = "no_window"  # no allowed hour in the coming week (e.g. every day closed)


@dataclass(frozen=True, slots=True)
class Hold:
    """The rule that holds a text back: words a compliance owner reads, and its source."""

    kind: str  # a RuleHold.Kind
    rule: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class Cap:
    """A frequency cap that applies to a recipient (see :meth:`WindowVerdict.cap_for`)."""

    limit: int
    rule: str
    source: str = ""
    owner: object = None  # the preset or override, which knows its exemptions


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    """The answer for one number at one moment.

    ``allowed`` False means never under the current settings (``reason`` says why). Otherwise
    ``opens_at``/``closes_at`` (aware, UTC) are the current window, or the next one when it is
    closed now; ``caps`` are the frequency caps on texts to the number per 24 hours. When a
    state rule or a blackout is what keeps the window closed now, ``held`` names it.
    """

    allowed: bool
    reason: str = ""
    opens_at: dt.datetime | None = None
    closes_at: dt.datetime | None = None
    caps: tuple[Cap, ...] = ()
    presets: tuple[str, ...] = ()
    held: Hold | None = None

    def cap_for(self, last_purchase_on: dt.date | None, today: dt.date) -> Cap | None:
        """The strictest cap that holds for a record (Oregon's lapses after a purchase)."""
        caps = [
            c
            for c in self.caps
            if c.owner is None or not c.owner.cap_exempt(last_purchase_on, today)
        ]
        return min(caps, key=lambda c: c.limit) if caps else None

    @property
    def max_per_24h(self) -> int | None:
        """The strictest cap, exemptions aside."""
        return min(c.limit for c in self.caps) if self.caps else None

    def is_open(self, now: dt.datetime) -> bool:
        return self.allowed and self.opens_at <= now < self.closes_at

    def opens_within(self, now: dt.datetime, seconds: float) -> bool:
        """Open now, or opening within ``seconds``."""
        return self.allowed and self.opens_at <= now + dt.timedelta(seconds=seconds)


def area_code(phone_number: str) -> str:
    """The NANP area code of an E.164 number (``+1312...`` -> ``312``), else ``""``."""
    if phone_number.startswith("+1") and len(phone_number) >= 5:
        return phone_number[2:5]
    return ""


# The state of every US area code, from phonenumbers' geocoder (scripts/build_npa_states.py).
NPA_STATES_FILE = Path(__file__).resolve().parent / "data" / "npa_states.txt"


@functools.cache
def _npa_states() -> dict[str, str]:
    rows = NPA_STATES_FILE.read_text(encoding="utf-8").splitlines()
    return dict(line.split("\t") for line in rows if line and not line.startswith("#"))


def area_code_state(phone_number: str) -> str:
    """The state code of a number's area code (``+1512...`` -> ``TX``), else ``""``."""
    return _npa_states().get(area_code(phone_number), "")


def state_code(state: str) -> str:
    """A record's state as a code: ``"Texas"``, ``"tx"`` -> ``"TX"``; ``""`` if not a state."""
    return state_names().get((state or "").strip().lower(), "")


def _subtract(a: list[tuple], b: list[tuple]) -> list[tuple]:
    """The parts of sorted half-open intervals ``a`` outside every interval of ``b``."""
    out = []
    for start, end in a:
        for b_start, b_end in b:
            if b_end <= start or b_start >= end:
                continue
            if b_start > start:
                out.append((start, b_start))
            start = max(start, b_end)
            if start >= end:
                break
        if start < end:
            out.append((start, end))
    return out


def _intersect(a: list[tuple], b: list[tuple]) -> list[tuple]:
    """Intersection of two sorted lists of half-open [start, end) intervals."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _at(day: dt.date, time: dt.time, zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, time, tzinfo=zone).astimezone(UTC)


def local_intervals(
    zone: dt.tzinfo,
    now: dt.datetime,
    hours_for_day,
    days: int = LOOKAHEAD_DAYS,
) -> list[tuple[dt.datetime, dt.datetime]]:
    """UTC intervals of the local days from yesterday on; ``hours_for_day(date)`` gives that
    day's (start, end) local times, or None when the day is closed."""
    today = now.astimezone(zone).date()
    intervals = []
    for offset in range(-1, days):
        day = today + dt.timedelta(days=offset)
        hours = hours_for_day(day)
        if hours is None:
            continue
        start, end = hours
        if start < end:
            intervals.append((_at(day, start, zone), _at(day, end, zone)))
    return intervals


class WindowPolicy:
    """The allowed windows of one skill, loaded once and asked many times in a pass."""

    def __init__(
        self,
        *,
        skill: Skill,
        bounds: list[TimeZoneBound],
        presets: list[SendingWindowPreset],
        schedule_days: list[ScheduleDay] | None = None,
        overrides: list[StateRuleOverride] = (),
        blackouts: list[Blackout] = (),
    ) -> None:
        self.skill = skill
        self.business_unit = skill.business_unit
        self.allowed_zones = {
            z.strip().lower() for z in (self.business_unit.allowed_time_zones or [])
        }
        self.bounds = {b.time_zone.strip().lower(): b for b in bounds}
        self.bound_caps = any(b.preset is not None and b.preset.max_per_24h for b in bounds)
        self.presets_by_state: dict[str, list[SendingWindowPreset]] = {}
        self.presets_by_area: dict[str, list[SendingWindowPreset]] = {}
        for preset in presets:
            for key in {preset.code.strip().upper(), preset.name.strip().upper()}:
                self.presets_by_state.setdefault(key, []).append(preset)
            for code in preset.area_codes or []:
                self.presets_by_area.setdefault(str(code).strip(), []).append(preset)
        self.overrides = {o.preset_id: o for o in overrides}
        self.blackouts = sorted(blackouts, key=lambda b: b.starts_at)
        bu_cap = self.business_unit.max_texts_per_24h
        self.bu_cap = (
            Cap(bu_cap, f"{self.business_unit.name}: {_cap_words(bu_cap)}") if bu_cap else None
        )
        self.schedule_days = (
            {d.weekday: d for d in schedule_days} if schedule_days is not None else None
        )
        self._zones: dict[str, dt.tzinfo | None] = {}
        self._cache: dict[tuple, tuple[dt.datetime, WindowVerdict]] = {}
        self._schedule_cache: dict[dt.datetime, list[tuple]] = {}

    @classmethod
    def for_skill(cls, skill: Skill, now: dt.datetime | None = None) -> WindowPolicy:
        """The skill's policy as the rules are now (``now``: the pass's clock, for which
        blackouts are over)."""
        # window() reads the bound's preset, and hours_on its holidays.
        bounds = list(
            skill.time_zone_bounds.select_related("preset").prefetch_related("preset__holidays")
        )
        presets = list(SendingWindowPreset.objects.prefetch_related("holidays"))
        by_id = {p.pk: p for p in presets}
        overrides = list(StateRuleOverride.objects.filter(business_unit_id=skill.business_unit_id))
        for override in overrides:  # the preset with its holidays, loaded above
            override.preset = by_id.get(override.preset_id, override.preset)
        blackouts = list(
            Blackout.objects.filter(business_unit_id=skill.business_unit_id).exclude(
                ends_at__lte=now or dt.datetime.now(UTC)
            )
        )
        schedule = list(skill.schedule_days.all()) if skill.schedule_enabled else None
        return cls(
            skill=skill,
            bounds=bounds,
            presets=presets,
            schedule_days=schedule,
            overrides=overrides,
            blackouts=blackouts,
        )

    # --- Zones ----------------------------------------------------------------------------

    def zone(self, name: str) -> dt.tzinfo | None:
        key = (name or "").strip()
        if key not in self._zones:
            self._zones[key] = timezones.resolve_zone(key, self.business_unit) if key else None
        return self._zones[key]

    def _zone_allowed(self, name: str) -> bool:
        key = name.strip().lower()
        if key in self.allowed_zones:
            return True
        iana = timezones.normalise_zone_name(name)
        return iana is not None and iana.lower() in self.allowed_zones

    def _bound(self, name: str) -> TimeZoneBound | None:
        bound = self.bounds.get(name.strip().lower())
        if bound is None:
            iana = timezones.normalise_zone_name(name)
            bound = self.bounds.get(iana.lower()) if iana else None
        return bound

    def open_zones(self, now: dt.datetime, within_seconds: float) -> list[str]:
        """The BU's allowed zones (as named, and as IANA names) whose window is open now or
        opens within ``within_seconds`` before presets and cadence ranges narrow it: the
        planner asks the database only for numbers in these zones."""
        names = set()
        for zone_name in self.business_unit.allowed_time_zones or []:
            if self.check(zone_name=zone_name, now=now).opens_within(now, within_seconds):
                names.add(zone_name)
                iana = timezones.normalise_zone_name(zone_name)
                if iana:
                    names.add(iana)
        return sorted(names)

    def textable_zones(self) -> list[str]:
        """The zones the skill may ever text, whatever the hour: the BU's allowed zones whose
        time-zone bounding row (if any) is active, as named and as IANA names. A record with
        no open number in these can never be texted by this skill."""
        names = set()
        for zone_name in self.business_unit.allowed_time_zones or []:
            bound = self._bound(zone_name)
            if bound is not None and not bound.is_active:
                continue
            names.add(zone_name)
            iana = timezones.normalise_zone_name(zone_name)
            if iana:
                names.add(iana)
        return sorted(names)

    def recipient_state(self, *, state: str = "", phone_number: str = "") -> str:
        """The recipient's state: the record's, else the number's area code's."""
        return state_code(state) or area_code_state(phone_number or "")

    def presets_for(self, *, state: str = "", phone_number: str = "") -> tuple:
        """The presets that apply to a recipient: by the record's state (else the area code's
        state), and by the area code for presets that presume residents from it (FL, OK)."""
        home = (state or "").strip().upper() or area_code_state(phone_number or "")
        found = {p.pk: p for p in self.presets_by_state.get(home, [])}
        if not found and home:
            for preset in self.presets_by_state.get(state_code(home), []):
                found[preset.pk] = preset
        for preset in self.presets_by_area.get(area_code(phone_number or ""), []):
            found[preset.pk] = preset
        return tuple(found[k] for k in sorted(found))

    def may_cap(self, *, state: str = "", phone_number: str = "") -> bool:
        """Whether a frequency cap may apply to this recipient at all: the planner counts the
        texts of only these numbers."""
        if self.bu_cap is not None or self.bound_caps:
            return True
        for preset in self.presets_for(state=state, phone_number=phone_number):
            override = self.overrides.get(preset.pk)
            if preset.max_per_24h or (override is not None and override.max_per_24h):
                return True
        return False

    def blackouts_for(self, states: set[str]) -> tuple[Blackout, ...]:
        return tuple(b for b in self.blackouts if not b.states or states & set(b.states))

    # --- The question -----------------------------------------------------------------------

    def check(
        self,
        *,
        zone_name: str,
        now: dt.datetime,
        state: str = "",
        phone_number: str = "",
        step: CadenceStep | None = None,
    ) -> WindowVerdict:
        """May this number be texted, and when: see :class:`WindowVerdict`."""
        presets = self.presets_for(state=state, phone_number=phone_number)
        states = {p.code for p in presets}
        home = self.recipient_state(state=state, phone_number=phone_number)
        if home:
            states.add(home)
        blackouts = self.blackouts_for(states)
        key = (
            (zone_name or "").strip(),
            tuple(p.pk for p in presets),
            tuple(b.pk for b in blackouts),
            step.pk if step else None,
        )
        cached = self._cache.get(key)
        # An answer holds from when it was worked out until its window closes (or opens).
        if cached is not None and cached[0] <= now and now < _valid_until(*cached):
            return cached[1]
        verdict = self._check(key[0], presets, blackouts, step, now)
        self._cache[key] = (now, verdict)
        return verdict

    def _check(self, zone_name, presets, blackouts, step, now) -> WindowVerdict:
        if not zone_name:
            return WindowVerdict(False, Blocked.UNKNOWN_ZONE)
        zone = self.zone(zone_name)
        if zone is None:
            return WindowVerdict(False, Blocked.UNKNOWN_ZONE)
        if not self._zone_allowed(zone_name):
            return WindowVerdict(False, Blocked.ZONE_NOT_ALLOWED)
        bound = self._bound(zone_name)
        if bound is not None and not bound.is_active:
            return WindowVerdict(False, Blocked.ZONE_INACTIVE)
        start, end = bound.window() if bound is not None else (TCPA_START, TCPA_END)
        # The bound's preset gives its hours when the bound sets none of its own, day by day
        # (a Sunday of its own); its other rules apply either way.
        bound_preset = bound.preset if bound is not None else None
        own_hours = bound is not None and (bound.start_time or bound.end_time)
        # The recipient's state rules, each followed by the BU's stricter version of it: always
        # applied, the stricter wins.
        rules = []
        for preset in presets:
            rules.append((preset, preset.code))
            override = self.overrides.get(preset.pk)
            if override is not None:
                rules.append((override, f"{preset.code} ({self.business_unit.name})"))
        if bound_preset is not None and bound_preset not in presets:
            presets = (*presets, bound_preset)
        today = now.astimezone(zone).date()
        capped = list(rules)
        if bound_preset is not None and all(r is not bound_preset for r, _ in rules):
            capped.append((bound_preset, bound_preset.code))
        caps = [
            Cap(r.max_per_24h, f"{label}: {_cap_words(r.max_per_24h)}", r.source, r)
            for r, label in capped
            if r.max_per_24h and r.applies_on(today)
        ]
        if self.bu_cap is not None:
            caps.append(self.bu_cap)

        def hours(day: dt.date, probe: dt.time | None = None):
            """The day's local hours (None: closed), and the state rule that keeps ``probe``
            (a local time of that day) outside them, if one does."""
            s, e = start, end
            held = None

            def apply(rule_hours, words, rule, label):
                nonlocal s, e, held
                if rule_hours is None:
                    kind = RuleHold.Kind.CLOSED_DAY
                    s = e = None
                else:
                    kind = RuleHold.Kind.HOURS
                    s, e = max(s, rule_hours[0]), min(e, rule_hours[1])
                if held is None and probe is not None and (s is None or not s <= probe < e):
                    held = Hold(kind, f"{label}: {words}", rule.source)
                return s is not None

            if bound_preset is not None and bound_preset.applies_on(day):
                preset_hours, words = bound_preset.rule_on(day)
                if preset_hours is None:
                    apply(None, words, bound_preset, bound_preset.code)
                    return None, held
                if not own_hours:
                    s, e = preset_hours
            for rule, label in rules:
                if not rule.applies_on(day):
                    continue
                rule_hours, words = rule.rule_on(day)
                if not apply(rule_hours, words, rule, label):
                    return None, held
            if step is not None:
                weekend = day.weekday() >= Weekday.SATURDAY
                prefix = "weekend" if weekend else "weekday"
                rs, re_ = getattr(step, f"{prefix}_start"), getattr(step, f"{prefix}_end")
                if rs is not None and re_ is not None:
                    s, e = max(s, rs), min(e, re_)
            return ((s, e) if s < e else None), held

        intervals = local_intervals(zone, now, lambda day: hours(day)[0])
        if self.schedule_days is not None:
            intervals = _intersect(intervals, self._schedule(now))
        if blackouts:
            intervals = _subtract(intervals, [_span(b) for b in blackouts])
        held = self._held(zone, now, hours, blackouts)
        codes = tuple(p.code for p in presets)
        for opens_at, closes_at in intervals:
            if closes_at > now:
                return WindowVerdict(
                    True,
                    opens_at=opens_at,
                    closes_at=closes_at,
                    caps=tuple(caps),
                    presets=codes,
                    held=held if opens_at > now else None,
                )
        return WindowVerdict(False, Blocked.NO_WINDOW, presets=codes, held=held)

    @staticmethod
    def _held(zone, now, hours, blackouts) -> Hold | None:
        """The state rule or blackout that keeps ``now`` outside the window, if one does."""
        for blackout in blackouts:
            blackout_start, blackout_end = _span(blackout)
            if blackout_start <= now < blackout_end:
                return Hold(RuleHold.Kind.BLACKOUT, blackout.label, blackout.source)
        local = now.astimezone(zone)
        return hours(local.date(), probe=local.time().replace(tzinfo=None))[1]

    def _schedule(self, now: dt.datetime) -> list[tuple]:
        """The skill's schedule as UTC intervals (days in the BU's zone)."""
        cached = self._schedule_cache.get(now)
        if cached is not None:
            return cached
        zone = schedule_zone(self.business_unit)

        def hours(day: dt.date):
            row = self.schedule_days.get(day.weekday())
            if row is None or not row.is_active:
                return None
            return row.start_time, row.end_time

        intervals = local_intervals(zone, now, hours)
        self._schedule_cache = {now: intervals}
        return intervals


FOREVER = dt.datetime.max.replace(tzinfo=UTC)


def _cap_words(limit: int) -> str:
    return f"at most {limit} text{'' if limit == 1 else 's'} to a number in 24 hours"


def _span(blackout: Blackout) -> tuple[dt.datetime, dt.datetime]:
    return blackout.starts_at, blackout.ends_at or FOREVER


def _valid_until(since: dt.datetime, verdict: WindowVerdict) -> dt.datetime:
    """Until when a verdict worked out at ``since`` still holds: its window's end, or its start
    while it names what holds it closed (after that, the window is open). "No hour in the
    coming week" holds only as far as that week reached (a long blackout ends)."""
    if not verdict.allowed:
        if verdict.reason == Blocked.NO_WINDOW:
            return since + dt.timedelta(days=LOOKAHEAD_DAYS - 1)
        return FOREVER
    if verdict.held is not None:
        return verdict.opens_at
    return verdict.closes_at


def schedule_zone(business_unit) -> dt.tzinfo:
    """The zone a skill's schedule is read in: the BU's default zone (UTC if unresolvable)."""
    return timezones.resolve_zone(business_unit.default_time_zone, business_unit) or UTC


def schedule_window(skill: Skill, now: dt.datetime, days: list[ScheduleDay] | None = None):
    """The schedule window (UTC start, end) that contains ``now``, or None when outside.

    Only today's row counts (in the BU's zone): a day that is missing or inactive means the
    skill does not run that day.
    """
    zone = schedule_zone(skill.business_unit)
    local = now.astimezone(zone)
    rows = days if days is not None else list(skill.schedule_days.all())
    row = next((d for d in rows if d.weekday == local.weekday()), None)
    if row is None or not row.is_active:
        return None
    start = _at(local.date(), row.start_time, zone)
    end = _at(local.date(), row.end_time, zone)
    return (start, end) if start <= now < end else None
