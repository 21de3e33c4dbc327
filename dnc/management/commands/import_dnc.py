"""``manage.py import_dnc``: import a CSV/TXT/XLSX file of numbers into a DNC group."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from dnc.importing import FileError, dnc_import
from dnc.models import DncGroup
from pcsms.models import BusinessUnit


class Command(BaseCommand):
    help = (
        "Import phone numbers (and optional expire dates) into a DNC group from a .csv, .txt "
        "(tab-separated) or .xlsx file. Columns are found by header (phone / phone number / "
        "number / mobile ...; expire date / expires / expiry ...); a file without a header is "
        "read as phone, expire date. Numbers are read in the business unit's phone region and "
        "stored E.164. Bad rows are skipped and reported (row, reason, values); a bad file "
        "changes nothing and exits with status 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The file to import.")
        parser.add_argument("--group", required=True, help="Name of the DNC group.")
        parser.add_argument(
            "--business-unit", required=True, help="Name of the business unit owning the group."
        )
        parser.add_argument(
            "--create-group",
            action="store_true",
            help="Create the group (active, not default) if the business unit has none by that "
            "name.",
        )
        parser.add_argument(
            "--errors",
            metavar="FILE",
            help="Write the error report (CSV: row, outcome, reason, values) to FILE.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        path = Path(options["path"])
        group = (
            DncGroup.objects.filter(
                business_unit__name=options["business_unit"], name=options["group"]
            )
            .select_related("business_unit")
            .first()
        )  # the BU's phone region is read
        if group is None:
            if not options["create_group"]:
                raise CommandError(
                    f"No DNC group {options['group']!r} in business unit "
                    f"{options['business_unit']!r} (add --create-group to create it)."
                )
            bu = BusinessUnit.objects.filter(name=options["business_unit"]).first()
            if bu is None:
                raise CommandError(f"No business unit {options['business_unit']!r}.")
            group = DncGroup.objects.create(business_unit=bu, name=options["group"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        try:
            result = dnc_import(group=group, path=path, file_name=path.name)
        except FileError as exc:
            if options["json"]:
                self.stdout.write(json.dumps({"file": path.name, "error": str(exc)}))
            raise CommandError(f"{path.name}: {exc} Nothing was imported.") from exc
        if options["errors"] and result.report:
            Path(options["errors"]).write_bytes(result.report)
        if options["json"]:
            data = result.as_dict()
            data.update(group=group.name, business_unit=group.business_unit.name)
            data["error_report"] = options["errors"] if result.report else None
            self.stdout.write(json.dumps(data))
            return
        self.stdout.write(
            f"{result.file_name} -> {group.business_unit.name} / {group.name}: {result.rows} "
            f"rows, {result.added} added, {result.updated} updated, {result.unchanged} already "
            f"there, {result.repeated} repeated, {result.invalid} rejected."
        )
        for row, reason, values in result.errors:
            self.stderr.write(f"  row {row}: {reason} ({values})")
        if result.invalid > len(result.errors):
            hint = f" in {options['errors']}" if options["errors"] else " (use --errors FILE)"
            self.stderr.write(f"  ... {result.invalid - len(result.errors)} more{hint}")
