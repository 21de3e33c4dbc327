"""States' legal holiday calendars, from the ``holidays`` library, with each state's
observed-day rule (docs/spec.md section 9).

No model is imported here: the migration that fills the calendars calls it too.
"""

from __future__ import annotations

import datetime as dt

SATURDAY, SUNDAY = 5, 6
# ObservedRule's values (skills.models): how far a weekend holiday moves to its observed day.
SHIFTS = {
    "sat_fri_sun_mon": {SATURDAY: -1, SUNDAY: 1},
    "sun_mon": {SUNDAY: 1},
    "none": {},
}


def holiday_calendar(code: str, years: list[int], observed_rule: str) -> dict[dt.date, str]:
    """A state's legal holidays of ``years``, each on its own day and, by the state's
    observed-day rule, on the weekday it is observed (Alabama: a Saturday holiday on the
    Friday before, a Sunday one on the Monday after; Mississippi: Sundays only, Miss. Code
    3-3-7). Raises NotImplementedError for a code that is not a US state."""
    import holidays  # a large package, needed only here

    # A year's first holiday may be observed on the last day of the year before.
    wanted = set(years)
    asked = sorted(wanted | {y + 1 for y in wanted})
    calendar = holidays.US(subdiv=code, years=asked, observed=False)
    days = {day: str(name)[:200] for day, name in calendar.items()}
    shifts = SHIFTS.get(observed_rule, {})
    for day, name in sorted(days.items()):
        shift = shifts.get(day.weekday())
        if shift:
            days.setdefault(day + dt.timedelta(days=shift), f"{name} (observed)"[:200])
    return {day: name for day, name in sorted(days.items()) if day.year in wanted}
