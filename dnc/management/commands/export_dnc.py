"""``manage.py export_dnc``: write a DNC group's entries as CSV."""

from __future__ import annotations

from django.core.management.base import CommandError

from dnc.importing import export_csv_lines
from dnc.models import DncGroup
from pcsms.commands import JsonCommand, one_named, write_json


class Command(JsonCommand):
    help = (
        "Export a DNC group as CSV (UTF-8 with BOM): phone number (E.164), expire date, source, "
        "date collected, group. The file imports back with import_dnc."
    )

    def add_arguments(self, parser):
        parser.add_argument("--group", required=True, help="Name of the DNC group.")
        parser.add_argument(
            "--business-unit",
            help="Name of the business unit owning the group; needed only when groups of "
            "several business units have that name.",
        )
        parser.add_argument(
            "-o", "--output", metavar="FILE", help="Write to FILE (default: stdout)."
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="With --output: print one JSON object saying what was written (the CSV itself "
            "goes to the file).",
        )

    def handle(self, *args, **options):
        if options["json"] and not options["output"]:
            # The CSV is the output; JSON beside it on stdout would spoil both.
            raise CommandError("--json summarises the file written: give --output FILE too.")
        group = one_named(
            DncGroup.objects.all(),
            options["group"],
            options["business_unit"],
            noun="DNC group",
            plural="DNC groups",
        )
        lines = export_csv_lines(DncGroup.objects.filter(pk=group.pk))
        if options["output"]:
            written = 0
            with open(options["output"], "w", encoding="utf-8", newline="") as handle:
                for line in lines:
                    handle.write(line)
                    written += 1
            # Less the byte-order mark and the header.
            entries = written - 2
            if options["json"]:
                write_json(
                    self,
                    {
                        "group": group.name,
                        "business_unit": group.business_unit.name,
                        "entries": entries,
                        "output": options["output"],
                    },
                )
            else:
                self.stderr.write(f"{entries} entries written to {options['output']}.")
            return
        next(lines)  # no byte-order mark on a terminal or in a pipe
        for line in lines:
            self.stdout.write(line, ending="")
