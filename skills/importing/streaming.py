"""Append imports on PostgreSQL: one transaction from the first row to the last.

While the readers normalise chunk after chunk, :class:`StreamWriter` copies the chunk before
straight into the list's own tables (ids from the sequence, an ID seen before left out and
reported); :class:`ProgressLine` carries progress and cancel requests on a second connection.
A cancel, a failure or a crash rolls the whole transaction back.
"""

# The SQL here is built from identifiers the code owns (model tables, sequence names);
# every value goes in as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import itertools
import tempfile
import time

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from pcsms.rows import Table
from skills.importing import commit, normalise
from skills.importing.copytext import copy_escape
from skills.importing.mapping import ColumnPlan
from skills.importing.reading import (
    Cancelled,
    Counts,
    Progress,
    check_read,
    read_rows,
    report_progress,
)
from skills.importing.report import EntrySpool
from skills.models import CallingList, Destination, Record, UploadJob


class ProgressLine:
    """Progress and cancel requests while the import's own transaction is open.

    The admin must see the counts move and the Cancel button must work while the records go
    in, so they travel on a second connection that commits each update. Inside a caller's
    transaction (tests; a command run in ``atomic``) the job row may not be committed yet, so
    they go through the import's own connection instead.
    """

    def __init__(self, job: UploadJob):
        self.job = job
        self.side = None
        if not connection.in_atomic_block:
            self.side = connections.create_connection(DEFAULT_DB_ALIAS)

    def report(self, counts: Counts, total: int) -> None:
        if self.side is None:
            report_progress(self.job, counts, total)
            return
        table = UploadJob._meta.db_table
        values = [total, counts.processed, counts.valid, counts.invalid, counts.flagged]
        with self.side.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET rows_total = %s, rows_processed = %s, rows_valid = %s, "
                "rows_invalid = %s, rows_flagged = %s WHERE id = %s RETURNING cancel_requested",
                [*values, self.job.pk],
            )
            row = cursor.fetchone()
        if row is None or row[0]:
            raise Cancelled()

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
            self.side = None


class StreamWriter:
    """Writes each chunk into the list's tables as soon as it is read, in one transaction.

    Reading (worker processes) and writing (PostgreSQL) then overlap instead of following
    each other. The readers make COPY rows for the records and numbers themselves
    (``normalise.Direct``); this writer draws their record ids from the table's sequence and
    copies them straight into the tables: no temporary table and no ``INSERT ... SELECT`` in
    between, which was ~40% of PostgreSQL's work per row (measured, docs/performance.md).

    COPY has no ``ON CONFLICT``, so an ID seen before must be left out first, and reported.
    An ID repeated within a chunk the reader has left out already. Every ID of the import
    marks a bit of a small filter; an ID whose bit is set already (a repeat from an earlier
    chunk, or rarely another ID that shares the bit) is looked up in the list, where the rows
    written so far are visible; when the list had records before, every ID is looked up. A
    repeat's report names the row that has the ID: the rows written are kept in a spool file
    (row, ID) that is searched at the end, only for those IDs, so a file without repeats
    across chunks costs nothing more. Append mode only: in replace mode the last row of an
    ID wins, which is only known once the whole file was read.
    """

    FILTER_BITS = 1 << 26  # 8 MB; ~1.5% of a million new IDs share a bit with another

    def __init__(self, job: UploadJob, counts: Counts, *, had_records: bool):
        self.counts = counts
        self.timings = counts.timings
        self.job_id = job.pk
        self.list_id = job.calling_list_id
        self.look_up_all = had_records
        self.filter = bytearray(0 if had_records else self.FILTER_BITS // 8)
        self.records_sql = (
            f"COPY {Record._meta.db_table} (id, calling_list_id, upload_job_id, "
            # created_at and updated_at: the database's default, the transaction's time.
            f"{', '.join(commit.RECORD_COLUMNS)}, custom, is_final, final_reason, attempts) "
            "FROM STDIN"
        )
        self.numbers_sql = (
            f"COPY {Destination._meta.db_table} (record_id, position, source_field, "
            "phone_number, time_zone, is_final, final_reason, attempts) FROM STDIN"
        )
        [(self.sequence,)] = commit.fetch(
            "SELECT pg_get_serial_sequence(%s, 'id')", [Record._meta.db_table]
        )
        self.keys = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self.entries: list[tuple[int, str, str, str]] = []  # rejected when written
        self.repeats: list[tuple[int, str, bool]] = []  # (row, ID, flagged): row found last
        self.in_list: dict[str, int] = {}  # ID of another upload -> the row rejected for it

    def write(self, chunk: normalise.Chunk) -> None:
        rows: normalise.Direct = chunk.payload
        if not rows.external_ids:
            return
        t0 = time.monotonic()
        self.keys.write(rows.keys)
        with connection.cursor() as cursor:
            known = self._known(cursor, rows.external_ids)
            t1 = time.monotonic()
            records, owners, numbers = rows.record_rows, rows.number_owner, rows.number_rows
            if known:
                self._reject(rows, known)
                keep = [ext not in known for ext in rows.external_ids]
                records = [r for r, k in zip(records, keep, strict=True) if k]
                pairs = [(o, n) for o, n in zip(owners, numbers, strict=True) if keep[o]]
                # Owners count kept records only.
                renumber = list(itertools.accumulate(keep, initial=0))
                owners = [renumber[o] for o, _ in pairs]
                numbers = [n for _, n in pairs]
            if records:
                # The ids as one text: a row (and a Python int) per id cost twice the time.
                cursor.execute(
                    "SELECT string_agg(nextval(%s)::text, ',') FROM generate_series(1, %s)",
                    [self.sequence, len(records)],
                )
                ids = cursor.fetchone()[0].split(",")
                with cursor.copy(self.records_sql) as copy:
                    copy.write("".join([f"{i}{r}" for i, r in zip(ids, records, strict=True)]))
                if numbers:
                    with cursor.copy(self.numbers_sql) as copy:
                        copy.write(
                            "".join([f"{ids[o]}{n}" for o, n in zip(owners, numbers, strict=True)])
                        )
        self.timings["ids_seen"] = self.timings.get("ids_seen", 0.0) + t1 - t0
        self.timings["records"] = self.timings.get("records", 0.0) + time.monotonic() - t1

    def _known(self, cursor, external_ids: list[str]) -> dict[str, bool]:
        """The IDs of this chunk the list has already: ID -> whether this import wrote it."""
        if self.look_up_all:
            asked = external_ids
        else:
            asked = []
            bits, mask = self.filter, self.FILTER_BITS - 1
            for ext in external_ids:
                h = hash(ext) & mask
                byte, bit = h >> 3, 1 << (h & 7)
                if bits[byte] & bit:
                    asked.append(ext)
                else:
                    bits[byte] |= bit
        if not asked:
            return {}
        cursor.execute(
            f"SELECT external_id, upload_job_id = %s FROM {Record._meta.db_table} "
            "WHERE calling_list_id = %s AND external_id = ANY(%s)",
            [self.job_id, self.list_id, asked],
        )
        return {ext: bool(mine) for ext, mine in cursor.fetchall()}

    def _reject(self, rows: normalise.Direct, known: dict[str, bool]) -> None:
        """The rows of IDs the list has already become error rows."""
        keys = rows.keys.split("\n")  # a line per record, in order (COPY text: no line breaks)
        for ext, key in zip(rows.external_ids, keys, strict=False):
            mine = known.get(ext)
            if mine is None:
                continue
            row_no, flagged = int(key[: key.find("\t")]), key[-1] == "t"
            if mine:  # an earlier row of this file has it: which one is looked up at the end
                self.repeats.append((row_no, ext, flagged))
                continue
            kept = self.in_list.get(ext)
            if kept is not None:
                self.entries.append(normalise.repeated_id_entry(row_no, ext, kept))
                commit.count_rejected(self.counts, flagged)
                continue
            self.in_list[ext] = row_no
            commit.reject_id(self.entries, self.counts, row_no, ext, flagged, commit.IN_LIST)

    def finish(self) -> list[tuple[int, str, str, str]]:
        """The report's entries of the rows left out, in row order."""
        if self.repeats:
            # The first row written with each repeated ID: one pass over the rows written.
            wanted = {copy_escape(ext): ext for _, ext, _ in self.repeats}
            first: dict[str, int] = {}
            self.keys.seek(0)
            for line in self.keys:
                row_text, ext_text, _ = line.split("\t", 2)
                ext = wanted.get(ext_text)
                if ext is not None and ext not in first:
                    first[ext] = int(row_text)
                    if len(first) == len(wanted):
                        break
            for row_no, ext, flagged in self.repeats:
                self.entries.append(normalise.repeated_id_entry(row_no, ext, first[ext]))
                commit.count_rejected(self.counts, flagged)
        self.keys.close()
        return sorted(self.entries)

    def close(self) -> None:
        self.keys.close()


def run_streaming(
    job: UploadJob,
    plan: list[ColumnPlan],
    table: Table,
    settings: normalise.Settings,
    counts: Counts,
    workers: int,
    progress: Progress | None,
    spool1: EntrySpool,
    spool2: EntrySpool,
) -> None:
    line = ProgressLine(job)
    writer = None
    try:
        with transaction.atomic():
            now = timezone.now()
            # Two imports into one list take turns. NO KEY UPDATE: the list's row stays
            # referencable (a new upload for it does not wait for this one to end).
            CallingList.objects.select_for_update(no_key=True).filter(
                pk=job.calling_list_id
            ).first()
            had_records = job.calling_list.records.exists()
            writer = StreamWriter(job, counts, had_records=had_records)
            read_rows(
                job, table, settings, counts, workers, progress, writer.write, spool1, line.report
            )
            check_read(counts)
            line.report(counts, counts.processed)
            if progress:
                progress(counts.processed, counts.processed, "saving")
            timings, t0 = counts.timings, time.monotonic()
            spool2.extend(writer.finish())
            timings["checks"], t0 = time.monotonic() - t0, time.monotonic()
            commit.finish(job, plan, counts, spool1, spool2, now)
            timings["report"] = time.monotonic() - t0
            t0 = time.monotonic()
        timings["commit_wait"] = time.monotonic() - t0
    finally:
        if writer is not None:
            writer.close()
        line.close()
