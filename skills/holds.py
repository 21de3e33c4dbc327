"""The ledger of texts a rule held back (``RuleHold``), written by the planner and by the
send-time guard, and each held record's mark: which rule, and when to look at it again.
"""

from __future__ import annotations

import datetime as dt

from skills.models import Record, RuleHold


def records_hold(
    held: dict[int, list[RuleHold]], *, now: dt.datetime, recheck: dt.timedelta
) -> None:
    """Keep the holds the planner met (once per hold: it meets them at every pass), and mark
    each record with its rule and when to look again: when the first of its holds lifts, and
    at most ``recheck`` from now (should the rule change meanwhile)."""
    RuleHold.objects.bulk_create([h for hs in held.values() for h in hs], ignore_conflicts=True)
    by_mark: dict[tuple, list[int]] = {}
    for record_id, holds in held.items():
        ends = [h.held_until for h in holds if h.held_until is not None]
        until = min([now.astimezone(dt.UTC) + recheck, *ends])
        by_mark.setdefault((until, holds[0].rule), []).append(record_id)
    for (until, rule), ids in by_mark.items():
        Record.objects.filter(id__in=ids).update(held_until=until, held_by=rule)
