"""The demo's do-not-contact data: the business unit's default DNC group and five entries in it,
two blocking numbers of the list, one whose entry has expired and no longer blocks, and two from
an imported suppression file that are not on the list.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from dnc.models import DncEntry, DncGroup
from skills.demo.constants import DNC_GROUP_NAME, LONG_CODE
from skills.demo.people import _phone
from skills.demo.report import _ensure


def _seed_dnc(report, bu, records, rng, taken, admin, today) -> DncGroup:
    group = bu.dnc_groups.filter(is_default=True).first()
    created = False
    if group is None:
        group, created = _ensure(
            report,
            DncGroup,
            {"business_unit": bu, "name": DNC_GROUP_NAME},
            {"is_default": True, "description": "STOP replies and compliance entries."},
        )
    report.part(f'DNC group "{group.name}"', created)

    by_id = {r.external_id: r for r in records}
    now = timezone.now()
    # Three numbers of the list (two blocked, one whose entry has expired and no longer
    # blocks) and two from an imported suppression file that are not on the list.
    imported = [_phone(rng, code, taken).e164 for code in ("415", "646")]
    entries = [
        (
            by_id["DEMO-0007"].phones[0].e164,
            DncEntry.Source.MANUAL,
            "Patient asked at the front desk not to receive text messages.",
            None,
            45,
        ),
        (
            by_id["DEMO-0042"].phones[0].e164,
            DncEntry.Source.STOP_REPLY,
            f'Inbound "STOP" to {LONG_CODE} during an earlier campaign.',
            None,
            10,
        ),
        (
            by_id["DEMO-0099"].phones[0].e164,
            DncEntry.Source.MANUAL,
            "Temporary hold during a billing dispute (resolved; the entry has expired).",
            today - dt.timedelta(days=20),
            120,
        ),
        (
            imported[0],
            DncEntry.Source.FILE_IMPORT,
            "Imported from clinic-suppression-list.csv",
            None,
            90,
        ),
        (
            imported[1],
            DncEntry.Source.FILE_IMPORT,
            "Imported from clinic-suppression-list.csv",
            today + dt.timedelta(days=365),
            90,
        ),
    ]
    added = 0
    for number, source, evidence, expires_on, days_ago in entries:
        _entry, new = _ensure(
            report,
            DncEntry,
            {"group": group, "phone_number": number},
            {
                "source": source,
                "evidence": evidence,
                "expires_on": expires_on,
                "collected_at": now - dt.timedelta(days=days_ago),
                "added_by": admin if source == DncEntry.Source.MANUAL else None,
            },
        )
        added += new
    report.part(
        f'DNC entries in "{group.name}"',
        bool(added),
        f" ({added} added, {group.entries.count()} in the group)",
    )
    return group
