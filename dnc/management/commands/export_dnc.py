"""``manage.py export_dnc``: write a DNC group's entries as CSV."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from dnc.importing import export_csv_lines
from dnc.models import DncGroup


class Command(BaseCommand):
    help = (
        "Export a DNC group as CSV (UTF-8 with BOM): phone number (E.164), expire date, source, "
        "date collected, group. The file imports back with import_dnc."
    )

    def add_arguments(self, parser):
        parser.add_argument("--group", required=True, help="Name of the DNC group.")
        parser.add_argument(
            "--business-unit", required=True, help="Name of the business unit owning the group."
        )
        parser.add_argument(
            "-o", "--output", metavar="FILE", help="Write to FILE (default: stdout)."
        )

    def handle(self, *args, **options):
        groups = DncGroup.objects.filter(
            business_unit__name=options["business_unit"], name=options["group"]
        )
        if not groups.exists():
            raise CommandError(
                f"No DNC group {options['group']!r} in business unit {options['business_unit']!r}."
            )
        lines = export_csv_lines(groups)
        if options["output"]:
            written = 0
            with open(options["output"], "w", encoding="utf-8", newline="") as handle:
                for line in lines:
                    handle.write(line)
                    written += 1
            # Less the byte-order mark and the header.
            self.stderr.write(f"{written - 2} entries written to {options['output']}.")
            return
        next(lines)  # no byte-order mark on a terminal or in a pipe
        for line in lines:
            self.stdout.write(line, ending="")
