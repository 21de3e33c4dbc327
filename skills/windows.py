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
from dataclasses import dataclass

from pcsms import timezones
from skills.models import (
    TCPA_END,
    TCPA_START,
    CadenceStep,
    ScheduleDay,
    SendingWindowPreset,
    Skill,
    TimeZoneBound,
    Weekday,
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
class WindowVerdict:
    """The answer for one number at one moment.

    ``allowed`` False means never under the current settings (``reason`` says why). Otherwise
    ``opens_at``/``closes_at`` (aware, UTC) are the current window, or the next one when it is
    closed now; ``max_per_24h`` is the presets' cap on texts per person per 24 hours.
    """

    allowed: bool
    reason: str = ""
    opens_at: dt.datetime | None = None
    closes_at: dt.datetime | None = None
    max_per_24h: int | None = None
    presets: tuple[str, ...] = ()

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
    ) -> None:
        self.skill = skill
        self.business_unit = skill.business_unit
        self.allowed_zones = {
            z.strip().lower() for z in (self.business_unit.allowed_time_zones or [])
        }
        self.bounds = {b.time_zone.strip().lower(): b for b in bounds}
        self.presets_by_state: dict[str, list[SendingWindowPreset]] = {}
        self.presets_by_area: dict[str, list[SendingWindowPreset]] = {}
        for preset in presets:
            for key in {preset.code.strip().upper(), preset.name.strip().upper()}:
                self.presets_by_state.setdefault(key, []).append(preset)
            for code in preset.area_codes or []:
                self.presets_by_area.setdefault(str(code).strip(), []).append(preset)
        self.schedule_days = (
            {d.weekday: d for d in schedule_days} if schedule_days is not None else None
        )
        self._zones: dict[str, dt.tzinfo | None] = {}
        self._cache: dict[tuple, tuple[dt.datetime, WindowVerdict]] = {}
        self._schedule_cache: dict[dt.datetime, list[tuple]] = {}

    @classmethod
    def for_skill(cls, skill: Skill) -> WindowPolicy:
        # window() reads the bound's preset, and hours_on its holidays.
        bounds = list(
            skill.time_zone_bounds.select_related("preset").prefetch_related("preset__holidays")
        )
        presets = list(SendingWindowPreset.objects.prefetch_related("holidays"))
        schedule = list(skill.schedule_days.all()) if skill.schedule_enabled else None
        return cls(skill=skill, bounds=bounds, presets=presets, schedule_days=schedule)

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

    def presets_for(self, *, state: str = "", phone_number: str = "") -> tuple:
        """The presets that apply to a recipient: by the record's state and the area code."""
        found = {p.pk: p for p in self.presets_by_state.get((state or "").strip().upper(), [])}
        for preset in self.presets_by_area.get(area_code(phone_number or ""), []):
            found[preset.pk] = preset
        return tuple(found[k] for k in sorted(found))

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
        key = ((zone_name or "").strip(), tuple(p.pk for p in presets), step.pk if step else None)
        cached = self._cache.get(key)
        # An answer holds from when it was worked out until its window closes.
        if (
            cached is not None
            and cached[0] <= now
            and (not cached[1].allowed or now < cached[1].closes_at)
        ):
            return cached[1]
        verdict = self._check(key[0], presets, step, now)
        self._cache[key] = (now, verdict)
        return verdict

    def _check(self, zone_name, presets, step, now) -> WindowVerdict:
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
        rules = list(presets)  # the recipient's state rules: always, the stricter wins
        if bound_preset is not None and bound_preset not in presets:
            presets = (*presets, bound_preset)
        today = now.astimezone(zone).date()
        caps = [p.max_per_24h for p in presets if p.max_per_24h and p.applies_on(today)]

        def hours(day: dt.date):
            s, e = start, end
            if bound_preset is not None and bound_preset.applies_on(day):
                preset_hours = bound_preset.hours_on(day)
                if preset_hours is None:
                    return None
                if not own_hours:
                    s, e = preset_hours
            for preset in rules:
                if not preset.applies_on(day):
                    continue
                preset_hours = preset.hours_on(day)
                if preset_hours is None:
                    return None
                s, e = max(s, preset_hours[0]), min(e, preset_hours[1])
            if step is not None:
                weekend = day.weekday() >= Weekday.SATURDAY
                prefix = "weekend" if weekend else "weekday"
                rs, re_ = getattr(step, f"{prefix}_start"), getattr(step, f"{prefix}_end")
                if rs is not None and re_ is not None:
                    s, e = max(s, rs), min(e, re_)
            return (s, e) if s < e else None

        intervals = local_intervals(zone, now, hours)
        if self.schedule_days is not None:
            intervals = _intersect(intervals, self._schedule(now))
        for opens_at, closes_at in intervals:
            if closes_at > now:
                return WindowVerdict(
                    True,
                    opens_at=opens_at,
                    closes_at=closes_at,
                    max_per_24h=min(caps) if caps else None,
                    presets=tuple(p.code for p in presets),
                )
        return WindowVerdict(False, Blocked.NO_WINDOW)

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
