"""``manage.py import_dnc``: import a CSV/TXT/XLSX file of numbers into a DNC group."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from dnc.importing import FileError, dnc_import
from dnc.models import DncGroup
from pcsms.commands import (
    JsonCommand,
    ProgressBar,
    find_named,
    only_business_unit,
    progress_stream,
    write_json,
)


class Command(JsonCommand):
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
            "--business-unit",
            help="Name of the business unit owning the group; needed only when groups of "
            "several business units have that name (or, with --create-group, when there are "
            "several business units).",
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
        group = self._group(options)
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        try:
            stream = progress_stream(self, options)
            bar = ProgressBar(stream) if stream else None
            try:
                result = dnc_import(
                    group=group,
                    path=path,
                    file_name=path.name,
                    progress=bar.update if bar else None,
                )
            finally:
                if bar:
                    bar.close()
        except FileError as exc:
            if options["json"]:
                write_json(self, {"file": path.name, "error": str(exc)})
            raise CommandError(f"{path.name}: {exc} Nothing was imported.") from exc
        if options["errors"] and result.report:
            Path(options["errors"]).write_bytes(result.report)
        if options["json"]:
            data = result.as_dict()
            data.update(group=group.name, business_unit=group.business_unit.name)
            data["error_report"] = options["errors"] if result.report else None
            write_json(self, data)
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

    def _group(self, options) -> DncGroup:
        """The group named (its business unit is read for the phone region); with
        --create-group, a new one in --business-unit or the only business unit."""
        name, unit = options["group"], options["business_unit"]
        group, bu = find_named(DncGroup.objects.all(), name, unit, plural="DNC groups")
        if group is not None:
            return group
        if not options["create_group"]:
            where = f" in business unit {bu.name!r}" if bu else ""
            raise CommandError(f"No DNC group {name!r}{where} (add --create-group to create it).")
        bu = bu or only_business_unit(f"No DNC group {name!r} yet")
        return DncGroup.objects.create(business_unit=bu, name=name)
