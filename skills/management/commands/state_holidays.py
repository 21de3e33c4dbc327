"""``manage.py state_holidays``: fill the no-holiday presets' holiday dates for coming years."""

from __future__ import annotations

from django.utils import timezone

from pcsms.commands import JsonCommand, write_json
from skills.services import preset_holidays_fill


class Command(JsonCommand):
    help = (
        "Add the legal holidays of every sending-window preset that closes on holidays (or of "
        "--state), on the days they are observed, for this year and the next ones. Run it once "
        "a year; dates already there are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--years", type=int, default=3, help="This year and the next ones (default 3)."
        )
        parser.add_argument("--state", action="append", help="A preset code, e.g. AL (repeat).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, years=3, state=None, **options):
        first = timezone.localdate().year
        added = preset_holidays_fill(years=list(range(first, first + years)), codes=state)
        if options["json"]:
            write_json(self, {"years": [first, first + years - 1], "added": added})
            return
        for code, n in added.items():
            self.stdout.write(f"{code}: {n} holiday dates added")
        if not added:
            self.stdout.write("No preset closes on holidays (or none matched --state).")
