"""``manage.py import_list``: import a CSV/TXT/XLSX file into a calling list, in this process."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from django.core.files import File
from django.core.management.base import CommandError
from django.db import transaction

from pcsms.commands import (
    JsonCommand,
    ProgressBar,
    find_named,
    one_named,
    only_business_unit,
    progress_stream,
    write_json,
)
from pcsms.models import BusinessUnit
from pcsms.rows import FileError, detect_format
from pcsms.timezones import normalise_zone_name
from skills.importing.fields import SYSTEM_BY_NAME, infer_type
from skills.importing.mapping import MappingError, build_plan
from skills.importing.service import upload_job_preview
from skills.models import CallingList, Skill, UploadJob
from skills.selectors import upload_job_result
from skills.services import upload_job_import

EXIT_FILE_ERROR = 2


class Command(JsonCommand):
    help = (
        "Import a calling list file (CSV comma-separated, TXT tab-separated, or XLSX first sheet; "
        "UTF-8, a header row first) into a calling list of a business unit; the list is created "
        "if it does not exist. Columns are matched to fields by their names (ExternalId/ID, "
        "PhoneNumber/Phone, SMSPhoneNumber/SMS, FirstName/FName, Zip/Postal, TimeZone/TZ, ...); "
        "other columns become custom fields with a type guessed from their values. Bad rows are "
        "reported and skipped; a bad file imports nothing. Exit status: 0 when the file was "
        "processed (even with bad rows), 2 for a file-level error (message on stderr), 1 for "
        "wrong arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The file: .csv, .txt or .xlsx.")
        parser.add_argument(
            "--business-unit",
            help="Business unit name; needed only when the list's name (or, for a new list, "
            "the --skill's) does not tell, and there are several business units.",
        )
        parser.add_argument(
            "--list", dest="list_name", required=True, help="Calling list name (created if new)."
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=FIELD",
            help="Map a column to a system field (e.g. Mobile=SMSPhoneNumber) or a custom field "
            "(Visit=AppointmentDate, or Visit=AppointmentDate:date to set its type: string, "
            "integer, decimal, date, boolean, phone). COLUMN= (empty) ignores the column. "
            "Repeat for several columns; the rest are matched by name.",
        )
        zone = parser.add_mutually_exclusive_group()
        zone.add_argument(
            "--default-time-zone",
            metavar="ZONE",
            help="Zone for records whose zone the TimeZone column, Zip and numbers do not give.",
        )
        zone.add_argument(
            "--reject-no-time-zone",
            action="store_true",
            help="Reject records whose zone cannot be found (the default).",
        )
        parser.add_argument(
            "--expires",
            metavar="YYYY-MM-DD",
            help="Batch expiration (an ExpirationDate column wins).",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Update records whose external ID is already in the list (default: append, and "
            "such rows are errors).",
        )
        parser.add_argument(
            "--skill", metavar="NAME", help="Start this skill when the import is done."
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=min(os.cpu_count() or 1, 4),
            help="Processes that read rows (default: the number of cores, at most 4).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object with counts and error rows."
        )

    def handle(self, *args, **options):
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        bu = self._business_unit(options)
        skill = None
        if options["skill"]:
            skill = Skill.objects.filter(business_unit=bu, name=options["skill"]).first()
            if skill is None:
                raise CommandError(f"No skill named {options['skill']!r} in {bu}.")
        zone = options["default_time_zone"]
        if zone:
            known = normalise_zone_name(zone) or (
                zone if bu.custom_time_zones.filter(name=zone).exists() else None
            )
            if known is None:
                raise CommandError(
                    f"{zone!r} is not a time zone (IANA name or a custom zone of {bu})."
                )
            zone = known
        expires = None
        if options["expires"]:
            try:
                expires = dt.date.fromisoformat(options["expires"])
            except ValueError:
                raise CommandError("--expires takes a date as YYYY-MM-DD.") from None
        overrides = {}
        for item in options["map"]:
            column, sep, target = item.partition("=")
            if not sep or not column.strip():
                raise CommandError(f"--map takes COLUMN=FIELD, not {item!r}.")
            field, _, field_type = target.strip().partition(":")
            overrides[column.strip()] = {"field": field.strip(), "type": field_type.strip() or None}

        try:
            file_format = detect_format(path.name)
        except FileError as exc:
            return self._file_error(str(exc), options)
        with transaction.atomic():
            calling_list, _ = CallingList.objects.get_or_create(
                business_unit=bu, name=options["list_name"]
            )
            job = UploadJob(
                calling_list=calling_list,
                original_name=path.name,
                file_format=file_format,
                no_zone_policy=UploadJob.NoZonePolicy.DEFAULT
                if zone
                else UploadJob.NoZonePolicy.REJECT,
                default_time_zone=zone or "",
                expires_on=expires,
                mode=UploadJob.Mode.REPLACE if options["replace"] else UploadJob.Mode.APPEND,
                start_skill=skill,
                status=UploadJob.Status.PENDING,
            )
            with path.open("rb") as handle:
                job.file.save(path.name, File(handle), save=False)
            job.save()
        try:
            preview = upload_job_preview(job=job)
            mapping = dict(preview.mapping)
            lower = {c.lower(): c for c in preview.columns}
            for column, spec in overrides.items():
                key = lower.get(column.lower())
                if key is None:
                    raise MappingError(
                        f"--map names a column the file does not have: {column!r} (columns: "
                        f"{', '.join(preview.columns)})."
                    )
                field_type = spec["type"]
                if not field_type:
                    # The type guessed for the column, unless the guess was a system field's.
                    proposed = mapping.get(key, {})
                    if proposed.get("field") in SYSTEM_BY_NAME:
                        index = preview.columns.index(key)
                        field_type = infer_type(key, [r[index] for r in preview.sample])
                    else:
                        field_type = proposed.get("type")
                mapping[key] = {"field": spec["field"], "type": field_type or "string"}
            existing = dict(calling_list.custom_fields.values_list("name", "field_type"))
            build_plan(preview.header, mapping, existing_types=existing)
        except FileError as exc:
            self._fail_job(job, str(exc))
            return self._file_error(str(exc), options)
        job.mapping = mapping
        job.status = UploadJob.Status.QUEUED
        job.save(update_fields=["mapping", "status"])

        # The service reports rows as they are read and saved; the bar only draws them.
        stream = progress_stream(self, options)
        bar = ProgressBar(stream) if stream else None
        try:
            job = upload_job_import(
                job_id=job.pk, workers=options["workers"], progress=bar.update if bar else None
            )
        finally:
            if bar:
                bar.close()
        if job.status != UploadJob.Status.COMPLETED:
            return self._file_error(job.message or f"The import ended {job.status}.", options, job)
        self._report(job, options)

    def _business_unit(self, options) -> BusinessUnit:
        """``--business-unit``, else the one the list is in, else (a new list) the --skill's,
        else the only one."""
        name = options["list_name"]
        _, bu = find_named(
            CallingList.objects.all(), name, options["business_unit"], plural="calling lists"
        )
        if bu is not None:
            return bu
        if options["skill"]:
            skill = one_named(Skill.objects.all(), options["skill"], None, noun="skill")
            return skill.business_unit
        return only_business_unit(f"Calling list {name!r} is new")

    def _fail_job(self, job: UploadJob, message: str) -> None:
        UploadJob.objects.filter(pk=job.pk).update(status=UploadJob.Status.FAILED, message=message)

    def _file_error(self, message: str, options, job=None):
        if options["json"]:
            write_json(
                self, {"status": "failed", "error": message, "upload_job": job.pk if job else None}
            )
        self.stderr.write(f"import_list: {message}")
        sys.exit(EXIT_FILE_ERROR)

    def _report(self, job: UploadJob, options) -> None:
        result = upload_job_result(job)
        entries = result["errors"] + result["warnings"]
        entries.sort(key=lambda e: e["row"])
        if options["json"]:
            write_json(self, result)
            return
        self.stdout.write(
            f"Imported {job.original_name} into list {job.calling_list.name!r}: "
            f"{job.rows_processed:,} rows processed, {job.rows_valid:,} valid, "
            f"{job.rows_invalid:,} invalid, {job.rows_flagged:,} with warnings "
            f"(upload job {job.pk})."
        )
        if job.message:
            self.stdout.write(job.message)
        shown = entries[:20]
        for e in shown:
            self.stdout.write(f"  row {e['row']}: {e['outcome']}: {e['reason']} [{e['values']}]")
        if len(entries) > len(shown):
            self.stdout.write(
                f"  ... and {len(entries) - len(shown):,} more in the error report "
                f"({job.error_report.name}); --json prints them all."
            )
