"""The commit of a staged import (replace mode, and every import on SQLite), and its end.

The rows were normalised into the temporary table of this connection (:class:`Stage`). In one
transaction: the set-wide checks in SQL (an ID repeated in the file, an ID already in the list),
one ``INSERT ... SELECT`` for the records (an upsert in replace mode), one for the destinations,
then :func:`finish` (which the streaming import ends with too): the list's custom fields, the error
report and the job's final counts.
"""

# The SQL here is built from identifiers the code owns (model tables, "import_stage_<job id>");
# every value goes in as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from django.core.files import File
from django.db import connection, transaction
from django.utils import timezone

from messaging.templating import RECORD_SYSTEM_FIELDS
from skills.importing import normalise
from skills.importing.mapping import ColumnPlan
from skills.importing.reading import Cancelled, Counts
from skills.importing.report import EntrySpool, write_report
from skills.models import Attempt, CallingList, CustomField, Destination, Record, UploadJob


class Stage:
    """The temporary table of one import, on this connection only (dropped when done)."""

    def __init__(self, job_id: int, slots: int):
        self.name = f"import_stage_{job_id}"
        self.columns = normalise.stage_columns(slots)
        self.slots = slots
        self.postgres = connection.vendor == "postgresql"

    def create(self) -> None:
        types = {"boolean": "boolean" if self.postgres else "integer"}
        if self.postgres:
            with connection.cursor() as cursor:
                # Temporary tables live in the session's own buffers (8 MB by default, then
                # disk); the joins of the commit hash a million rows (4 MB of work_mem spills).
                # Both only take effect for this connection; temp_buffers only before its first
                # temporary table.
                cursor.execute("SET temp_buffers = '512MB'")
                cursor.execute("SET work_mem = '128MB'")
        cols = ", ".join(f"{n} {types.get(t, t)}" for n, t in self.columns)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.name} ({cols})")

    def write(self, payload) -> None:
        if not payload:
            return
        names = ", ".join(n for n, _ in self.columns)
        with connection.cursor() as cursor:
            if self.postgres:
                with cursor.copy(f"COPY {self.name} ({names}) FROM STDIN") as copy:
                    copy.write(payload)
            else:
                marks = ", ".join(["%s"] * len(self.columns))
                cursor.executemany(f"INSERT INTO {self.name} ({names}) VALUES ({marks})", payload)

    def drop(self) -> None:
        with contextlib.suppress(Exception), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")


# The Record columns a normalised row carries, in the stage's order (normalise.STAGE_COLUMNS,
# between the row number and the custom fields).
_STAGE_NAMES = [name for name, _ in normalise.STAGE_COLUMNS]
RECORD_COLUMNS = _STAGE_NAMES[1 : _STAGE_NAMES.index("custom")]
# System field -> Record attribute, for the fields a replace import updates when they are
# mapped (the external ID is the key; the time zone is always set, with its source).
RECORD_FIELDS = {
    name: attribute
    for name, attribute in RECORD_SYSTEM_FIELDS.items()
    if attribute and name not in ("ExternalId", "TimeZone")
}


def fetch(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _execute(sql: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _delete_rows(stage: Stage, row_numbers: list[int]) -> None:
    if stage.postgres:  # one pass over the stage, whatever the number of rows
        if row_numbers:
            _execute(f"DELETE FROM {stage.name} WHERE row_no = ANY(%s)", [row_numbers])
        return
    for start in range(0, len(row_numbers), 500):
        part = row_numbers[start : start + 500]
        marks = ", ".join(["%s"] * len(part))
        _execute(f"DELETE FROM {stage.name} WHERE row_no IN ({marks})", part)


def _repeated_ids(
    job: UploadJob, stage: Stage, counts: Counts, spool: list[tuple[int, str, str, str]]
) -> None:
    """An ID repeated in the file: append keeps the first row, replace the last."""
    replace = job.mode == UploadJob.Mode.REPLACE
    rows = fetch(
        f"SELECT s.row_no, s.external_id, s.flagged, g.first, g.last FROM {stage.name} s "
        "JOIN (SELECT external_id, MIN(row_no) AS first, MAX(row_no) AS last "
        f"FROM {stage.name} GROUP BY external_id HAVING COUNT(*) > 1) g "
        "ON g.external_id = s.external_id"
    )
    drop: list[int] = []
    for row_no, ext, flagged, first, last in rows:
        kept = last if replace else first
        if row_no == kept:
            continue
        drop.append(row_no)
        if replace:
            spool.append(
                (
                    row_no,
                    normalise.WARNING,
                    f"ExternalId {ext!r} appears again on row {kept}, whose values "
                    "replaced this row's.",
                    f"ExternalId={ext!r}",
                )
            )
            if not flagged:
                counts.flagged += 1
        else:
            spool.append(normalise.repeated_id_entry(row_no, ext, kept))
            count_rejected(counts, flagged)
    _delete_rows(stage, drop)


IN_LIST = "is already in the list (choose Replace to update records that are already there)."


def reject_id(
    spool: list[tuple[int, str, str, str]],
    counts: Counts,
    row_no: int,
    ext: str,
    flagged: bool,
    why: str,
) -> None:
    """A row counted valid when read turns out to be an error row because of its ID."""
    spool.append((row_no, normalise.REJECTED, f"ExternalId {ext!r} {why}", f"ExternalId={ext!r}"))
    count_rejected(counts, flagged)


def count_rejected(counts: Counts, flagged: bool) -> None:
    """A row counted valid (and maybe flagged) when read is an error row after all."""
    counts.valid -= 1
    counts.invalid += 1
    counts.flagged -= bool(flagged)


def _ids_in_list(
    job: UploadJob,
    stage: Stage,
    counts: Counts,
    spool: list[tuple[int, str, str, str]],
) -> None:
    """Append mode: an ID the list already has is an error row."""
    record_table = Record._meta.db_table
    in_list = f"external_id IN (SELECT external_id FROM {record_table} WHERE calling_list_id = %s)"
    params = [job.calling_list_id]
    rows = fetch(f"SELECT row_no, external_id, flagged FROM {stage.name} WHERE {in_list}", params)
    if not rows:
        return
    for row_no, ext, flagged in rows:
        reject_id(spool, counts, row_no, ext, flagged, IN_LIST)
    _execute(f"DELETE FROM {stage.name} WHERE {in_list}", params)


def _save_custom_fields(job: UploadJob, plan: list[ColumnPlan]) -> None:
    existing = {f.name: f for f in job.calling_list.custom_fields.all()}
    position = max((f.position for f in existing.values()), default=-1) + 1
    for p in plan:
        if not p.custom:
            continue
        current = existing.get(p.field)
        if current is None:
            CustomField.objects.create(
                calling_list=job.calling_list,
                name=p.field,
                field_type=p.field_type,
                position=position,
            )
            position += 1
        elif current.field_type != p.field_type:
            current.field_type = p.field_type
            current.save(update_fields=["field_type"])


def _records_sql(
    job: UploadJob, plan: list[ColumnPlan], stage: Stage, now, source: str = ""
) -> tuple[str, list]:
    """INSERT ... SELECT of the staged records (an upsert in replace mode)."""
    record_table = Record._meta.db_table
    postgres = stage.postgres
    custom = "s.custom::jsonb" if postgres else "s.custom"
    columns = ["calling_list_id", "upload_job_id", *RECORD_COLUMNS, "custom"]
    columns += ["is_final", "final_reason", "attempts", "created_at", "updated_at"]
    select = ["%s", "%s", *[f"s.{c}" for c in RECORD_COLUMNS], custom]
    select += ["false", "''", "0", "%s", "%s"]
    when = connection.ops.adapt_datetimefield_value(now)
    # "WHERE true" lets SQLite tell the SELECT's end from the ON CONFLICT clause.
    sql = (
        f"INSERT INTO {record_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(select)} FROM {source or stage.name} s WHERE true"
    )
    if job.mode == UploadJob.Mode.REPLACE:
        mapped = {p.field for p in plan if not p.custom}
        updates = ["upload_job_id", "time_zone", "time_zone_source", "updated_at"]
        updates += [attr for name, attr in RECORD_FIELDS.items() if name in mapped]
        if job.expires_on and "expires_on" not in updates:
            updates.append("expires_on")
        sets = [f"{c} = excluded.{c}" for c in updates]
        if any(p.custom and not p.is_destination for p in plan):
            merged = (
                f"{record_table}.custom || excluded.custom"
                if postgres
                else f"json_patch({record_table}.custom, excluded.custom)"
            )
            sets.append(f"custom = {merged}")
        sql += f" ON CONFLICT (calling_list_id, external_id) DO UPDATE SET {', '.join(sets)}"
    return sql, [job.calling_list_id, job.pk, when, when]


def _destinations_sql(
    job: UploadJob, stage: Stage, records: str, source: str = ""
) -> tuple[str, list]:
    """INSERT ... SELECT of the staged numbers; ``records`` names rows with (id, external_id)."""
    dest_table = Destination._meta.db_table
    columns = "record_id, position, source_field, phone_number, time_zone, is_final, "
    columns += "final_reason, attempts"
    join = f"FROM {source or stage.name} s JOIN {records} r ON r.external_id = s.external_id"
    params: list = []
    if records == Record._meta.db_table:
        join += " AND r.calling_list_id = %s"
        params = [job.calling_list_id]
    if stage.postgres:
        slots = ", ".join(f"({i}, s.s{i}, s.p{i}, s.z{i})" for i in range(stage.slots))
        select = (
            "SELECT r.id, d.position, d.source, d.phone, d.zone, false, '', 0 "
            f"{join} CROSS JOIN LATERAL (VALUES {slots}) AS d(position, source, phone, zone) "
            "WHERE d.phone IS NOT NULL"
        )
    else:
        parts = [
            f"SELECT r.id, {i}, s.s{i}, s.p{i}, s.z{i}, false, '', 0 {join} "
            f"WHERE s.p{i} IS NOT NULL"
            for i in range(stage.slots)
        ]
        params = params * stage.slots
        select = f"SELECT * FROM ({' UNION ALL '.join(parts)}) WHERE true"
    sql = f"INSERT INTO {dest_table} ({columns}) {select}"
    if job.mode == UploadJob.Mode.REPLACE:
        same = f"{dest_table}.phone_number = excluded.phone_number"
        sql += (
            " ON CONFLICT (record_id, position) DO UPDATE SET "
            "source_field = excluded.source_field, time_zone = excluded.time_zone, "
            f"is_final = CASE WHEN {same} THEN {dest_table}.is_final ELSE false END, "
            f"final_reason = CASE WHEN {same} THEN {dest_table}.final_reason ELSE '' END, "
            f"attempts = CASE WHEN {same} THEN {dest_table}.attempts ELSE 0 END, "
            "phone_number = excluded.phone_number"
        )
    return sql, params


def _retire_old_destinations(job: UploadJob, stage: Stage) -> None:
    """Replace mode: numbers a record no longer has go (kept, finalized, if ever texted)."""
    record_table, dest_table = Record._meta.db_table, Destination._meta.db_table
    attempt_table = Attempt._meta.db_table
    gone = (
        f"SELECT d.id FROM {dest_table} d JOIN {record_table} r ON r.id = d.record_id "
        f"JOIN {stage.name} s ON s.external_id = r.external_id "
        "WHERE r.calling_list_id = %s AND d.position >= s.n_phones AND "
    )
    texted = f"EXISTS (SELECT 1 FROM {attempt_table} a WHERE a.destination_id = d.id)"
    _execute(f"DELETE FROM {dest_table} WHERE id IN ({gone} NOT {texted})", [job.calling_list_id])
    _execute(
        f"UPDATE {dest_table} SET is_final = true, final_reason = %s "
        f"WHERE is_final = false AND id IN ({gone} {texted})",
        [f"Removed by upload {job.pk}", job.calling_list_id],
    )


def _insert_all(job, plan, stage: Stage, now, timings: dict[str, float]) -> None:
    """Records, then their destinations.

    PostgreSQL does both in one statement: the records' INSERT ... RETURNING feeds the
    destinations, so the new records are not read back from the table (measured on a million
    rows: that join re-read them from disk). SQLite has no INSERT in a WITH clause: two
    statements there.
    """
    t0 = time.monotonic()
    records_sql, records_params = _records_sql(job, plan, stage, now)
    if stage.postgres:
        dest_sql, dest_params = _destinations_sql(job, stage, "ins")
        _execute(
            f"WITH ins AS ({records_sql} RETURNING id, external_id) {dest_sql}",
            records_params + dest_params,
        )
        timings["records"] = time.monotonic() - t0
    else:
        _execute(records_sql, records_params)
        t1 = time.monotonic()
        dest_sql, dest_params = _destinations_sql(job, stage, Record._meta.db_table)
        _execute(dest_sql, dest_params)
        timings["records"], timings["destinations"] = t1 - t0, time.monotonic() - t1
    if job.mode == UploadJob.Mode.REPLACE:
        _retire_old_destinations(job, stage)


def commit_stage(
    job: UploadJob,
    plan: list[ColumnPlan],
    stage: Stage,
    counts: Counts,
    spool1: EntrySpool,
    spool2: EntrySpool,
) -> None:
    now = timezone.now()
    with transaction.atomic():
        # Two imports into one list take turns here (SQLite serialises writers anyway).
        CallingList.objects.select_for_update().filter(pk=job.calling_list_id).first()
        if UploadJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
            raise Cancelled()
        timings, t0 = counts.timings, time.monotonic()
        _execute(f"ANALYZE {stage.name}")  # temporary tables get no statistics otherwise
        entries: list[tuple[int, str, str, str]] = []
        _repeated_ids(job, stage, counts, entries)
        if job.mode == UploadJob.Mode.APPEND and job.calling_list.records.exists():
            _ids_in_list(job, stage, counts, entries)
        entries.sort()
        spool2.extend(entries)
        timings["checks"], t0 = time.monotonic() - t0, time.monotonic()
        if counts.valid:
            _insert_all(job, plan, stage, now, timings)
            t0 = time.monotonic()
        finish(job, plan, counts, spool1, spool2, now)
        timings["report"] = time.monotonic() - t0
        timings["_end"] = time.monotonic()  # the rest of "commit" is COMMIT itself


def finish(
    job: UploadJob,
    plan: list[ColumnPlan],
    counts: Counts,
    spool1: EntrySpool,
    spool2: EntrySpool,
    now,
) -> None:
    """The list's custom fields, the error report and the job's final counts."""
    _save_custom_fields(job, plan)
    report = write_report(spool1, spool2)
    if report is not None:
        with report:
            stem = Path(job.original_name or job.file.name).stem[:60]
            job.error_report.save(f"{stem}-errors-{job.pk}.csv", File(report), save=False)
    completed = UploadJob.objects.filter(pk=job.pk).update(
        status=UploadJob.Status.COMPLETED,
        rows_total=counts.processed,
        rows_processed=counts.processed,
        rows_valid=counts.valid,
        rows_invalid=counts.invalid,
        rows_flagged=counts.flagged,
        error_report=job.error_report.name or "",
        finished_at=timezone.now(),
        message="",
    )
    if not completed:
        # The job was deleted while it ran (no database constraint would notice: see
        # Record.calling_list): its records must not stay behind, pointing at nothing.
        raise Cancelled()
    CallingList.objects.filter(pk=job.calling_list_id).update(updated_at=now)
