"""The import service: an upload job's file -> records and destinations of its calling list.

How a job runs (``upload_job_run``), in one of two ways:

**Append on PostgreSQL (streaming, ``_run_streaming``).** One transaction from the first row to
the last. The file is read in chunks of rows; reader processes (or, in the background task, a
reader thread) normalise each chunk (typed values, E.164 phones, zones; see ``normalise`` and
``fastrow``) into COPY rows for the list's own tables while this process copies the previous
chunk in (``StreamWriter``: ids from the sequence, an ID seen before left out and reported,
``COPY`` into the records and destinations). Progress and cancel requests travel on a second
connection (``ProgressLine``); a cancel, a failure or a crash rolls the whole transaction back.

**Replace mode, and SQLite (staged, ``_commit``).**

1. **Read and stage.** Each normalised chunk is written to a temporary table of this database
   connection (``COPY`` on PostgreSQL, ``executemany`` on SQLite). Nothing of the calling list
   changes in this phase, so progress is committed as it goes (rows done / total, visible in
   the admin) and a cancel request, checked between chunks, just drops the temporary table.
2. **Commit in one transaction.** Set-wide checks in SQL (an ID repeated in the file, an ID
   already in the list), the list's custom fields, one ``INSERT ... SELECT`` for the records
   (``ON CONFLICT ... DO UPDATE`` in replace mode), one for the destinations, the error report and
   the job's final counts and status: all or nothing. A failure or a crash at any point leaves
   the list as it was.

A file-level problem (unreadable, wrong type, no phone column mapped, ...) raises
:class:`FileError` before anything is staged; the job fails with that one message.
"""

# The SQL here is built from identifiers the code owns (model tables, "import_stage_<job id>");
# every value goes in as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import logging
import multiprocessing
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings as django_settings
from django.core.files import File
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from skills.importing import normalise
from skills.importing.copytext import copy_escape
from skills.importing.fields import as_text
from skills.importing.mapping import (
    ColumnPlan,
    MappingError,
    build_plan,
    column_names,
    propose_mapping,
    remember_mapping,
)
from skills.importing.readers import FileError, Table, detect_format, open_table
from skills.importing.report import EntrySpool, write_report
from skills.models import (
    Attempt,
    CallingList,
    CustomField,
    Destination,
    Record,
    UploadJob,
)

logger = logging.getLogger(__name__)

CHUNK_ROWS = 4000
PROGRESS_SECONDS = 0.5
Progress = Callable[[int, int, str], None]  # (rows done, rows total, phase)

__all__ = [
    "Cancelled",
    "FileError",
    "MappingError",
    "Preview",
    "upload_job_preview",
    "upload_job_run",
]


class Cancelled(Exception):
    pass


# --- Preview (the mapping page) -------------------------------------------------------------------


@dataclass
class Preview:
    file_format: str
    header: list[str]
    columns: list[str]  # unique display names, the mapping's keys
    sample: list[list[str]]  # the first rows, as text
    mapping: dict
    total: int

    @property
    def total_text(self) -> str:
        return f"{self.total:,}"


@contextlib.contextmanager
def local_path(field_file, name: str = "") -> Iterator[Path]:
    """A path on disk for a stored file (copied out of storages that have none)."""
    try:
        path = field_file.path
    # Storages without local files (S3, in-memory) raise NotImplementedError for .path.
    except (NotImplementedError, AttributeError):
        path = None
    if path and os.path.exists(path):
        yield Path(path)
        return
    suffix = Path(name or field_file.name or "").suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        field_file.open("rb")
        try:
            shutil.copyfileobj(field_file, tmp)
        finally:
            field_file.close()
        tmp.flush()
        yield Path(tmp.name)


def _existing_types(calling_list: CallingList) -> dict[str, str]:
    return dict(calling_list.custom_fields.values_list("name", "field_type"))


def upload_job_preview(*, job: UploadJob, rows: int = 5) -> Preview:
    """Header, first rows and the proposed mapping of a job's file; raises FileError."""
    file_format = job.file_format or detect_format(job.original_name or job.file.name)
    with local_path(job.file, job.original_name) as path:
        table = open_table(path, file_format)
        try:
            sample = []
            for _, cells in table.rows:
                if any(as_text(c) for c in cells):
                    sample.append(cells)
                if len(sample) >= max(rows, 50):
                    break
        finally:
            table.close()
    region = job.calling_list.business_unit.phone_region
    mapping = propose_mapping(table.header, sample, _existing_types(job.calling_list), region)
    previous = (
        UploadJob.objects.filter(calling_list=job.calling_list, status=UploadJob.Status.COMPLETED)
        .exclude(pk=job.pk)
        .order_by("-finished_at")
        .values_list("mapping", flat=True)
        .first()
    )
    if previous:
        mapping = remember_mapping(mapping, previous)
    width = len(table.header)
    return Preview(
        file_format=file_format,
        header=table.header,
        columns=column_names(table.header),
        sample=[[as_text(c) for c in (list(r) + [""] * width)[:width]] for r in sample[:rows]],
        mapping=mapping,
        total=table.total,
    )


# --- Staging --------------------------------------------------------------------------------------


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


# --- Running a job --------------------------------------------------------------------------------


@dataclass
class Counts:
    processed: int = 0
    valid: int = 0
    invalid: int = 0
    flagged: int = 0
    formula_errors: int = 0
    fast: int = 0
    slow: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, chunk: normalise.Chunk) -> None:
        self.processed += chunk.rows
        self.valid += chunk.valid
        self.invalid += chunk.invalid
        self.flagged += chunk.flagged
        self.formula_errors += chunk.formula_errors
        self.fast += chunk.fast
        self.slow += chunk.slow


def _claim(job_id: int) -> bool:
    """Takes a queued job (or one whose worker died: running for longer than a task may)."""
    now = timezone.now()
    limit = int(django_settings.Q_CLUSTER.get("timeout") or 300) + 60
    UploadJob.objects.filter(
        pk=job_id, status=UploadJob.Status.QUEUED, cancel_requested=True
    ).update(status=UploadJob.Status.CANCELLED, finished_at=now, message="Cancelled before it ran.")
    return bool(
        UploadJob.objects.filter(pk=job_id, cancel_requested=False)
        .filter(
            Q(status=UploadJob.Status.QUEUED)
            | Q(status=UploadJob.Status.RUNNING, started_at__lt=now - dt.timedelta(seconds=limit))
        )
        .update(
            status=UploadJob.Status.RUNNING,
            started_at=now,
            finished_at=None,
            rows_processed=0,
            rows_valid=0,
            rows_invalid=0,
            rows_flagged=0,
            message="",
        )
    )


def _reader_settings(
    job: UploadJob, plan: list[ColumnPlan], table: Table, *, direct: bool = False
) -> normalise.Settings:
    """What the readers need; ``direct``: rows for the list's own tables (StreamWriter)."""
    bu = job.calling_list.business_unit
    use_default = job.no_zone_policy == UploadJob.NoZonePolicy.DEFAULT
    return normalise.Settings(
        plan=plan,
        region=bu.phone_region or "US",
        custom_zones=list(bu.custom_time_zones.values_list("name", flat=True)),
        allowed_zones=list(bu.allowed_time_zones or []),
        business_unit=bu.name,
        default_zone=job.default_time_zone if use_default else "",
        batch_expires=job.expires_on,
        today=timezone.localdate(),
        output="direct" if direct else "copy" if connection.vendor == "postgresql" else "rows",
        formulas_without_value=table.formulas_without_value,
        record_constants=(f"{job.calling_list_id}\t{job.pk}", "f\t\t0"),
    )


def _read_chunks(
    table: Table, settings: normalise.Settings, workers: int
) -> Iterator[normalise.Chunk]:
    """Normalised chunks in file order, read while the caller writes the ones before.

    With workers > 1 a process pool reads them, with a bounded queue; a thread cuts the file
    into batches and hands them out, so that work too overlaps the caller's database writes
    (it would wait for them otherwise: ~0.25 CPU-s per 100,000 XLSX rows, on the path that
    decides how long an import takes).
    """
    if workers <= 1:
        reader = normalise.RowReader(settings)
        yield from _in_thread(reader.read_batch(batch) for batch in table.batches(CHUNK_ROWS))
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=normalise.init_worker,
        initargs=(settings,),
    ) as pool:
        futures = (pool.submit(normalise.read_chunk, batch) for batch in table.batches(CHUNK_ROWS))
        # The thread hands out batches (at most workers * 2 ahead); this one waits for each
        # result in order.
        for future in _in_thread(futures, depth=workers * 2):
            yield future.result()


def _in_thread(items: Iterator, depth: int = 2) -> Iterator:
    """``items``, produced in a thread ``depth`` ahead of the caller.

    The reader thread of the background task (whose worker process may not start processes
    of its own: the database round trips release the GIL, so reading and writing still
    overlap), or the thread that cuts a file for the reader processes.
    """
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(item) -> bool:
        # Never a plain put: a caller that stopped early (cancel, error) no longer takes any.
        while not stop.is_set():
            try:
                results.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except BaseException as exc:  # handed to the caller, raised there
            offer(exc)

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while (item := results.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def upload_job_run(
    *, job_id: int, workers: int = 1, progress: Progress | None = None
) -> UploadJob | None:
    """Runs a queued upload job to its end: completed, failed or cancelled.

    Returns the job, or None when it was not queued (another worker has it, or it ended).
    Never raises for a bad file or bad rows: the job records what happened.
    """
    if not _claim(job_id):
        return None
    job = UploadJob.objects.select_related("calling_list__business_unit").get(pk=job_id)
    counts = Counts()
    started = time.monotonic()
    try:
        _run(job, counts, workers, progress)
    except (FileError, Cancelled) as exc:
        cancelled = isinstance(exc, Cancelled)
        UploadJob.objects.filter(pk=job.pk).update(
            status=UploadJob.Status.CANCELLED if cancelled else UploadJob.Status.FAILED,
            message=(
                f"Cancelled after {counts.processed:,} rows: nothing was imported."
                if cancelled
                else str(exc)
            ),
            rows_processed=0,
            rows_valid=0,
            rows_invalid=0,
            rows_flagged=0,
            finished_at=timezone.now(),
        )
    except Exception as exc:
        logger.exception("Upload job %s failed", job.pk)
        UploadJob.objects.filter(pk=job.pk).update(
            status=UploadJob.Status.FAILED,
            message=f"The import failed and nothing was imported: {type(exc).__name__}: {exc}",
            rows_processed=0,
            rows_valid=0,
            rows_invalid=0,
            rows_flagged=0,
            finished_at=timezone.now(),
        )
    except BaseException:
        # The background task's time limit (django-q2 raises SystemExit in the task), or the
        # process being stopped: the transaction is gone, and the job must not stay "running".
        limit = django_settings.Q_CLUSTER.get("timeout")
        _mark_stopped(
            job.pk,
            f"The import was stopped after {time.monotonic() - started:,.0f} s (the background "
            f"task's time limit is {limit} s) and nothing was imported. Import a file this "
            "large with `manage.py import_list`, which has no time limit, or split it.",
        )
        raise
    try:
        job.refresh_from_db()
    except UploadJob.DoesNotExist:  # deleted while it ran; nothing was imported
        return None
    counts.timings["total"] = time.monotonic() - started
    job.counts = counts  # for the command and the bench: fast/slow phones, timings
    return job


def _mark_stopped(job_id: int, message: str) -> None:
    """Marks a job failed after an interruption, on a fresh connection if need be."""
    for _ in range(2):
        try:
            UploadJob.objects.filter(pk=job_id).update(
                status=UploadJob.Status.FAILED,
                message=message,
                rows_processed=0,
                rows_valid=0,
                rows_invalid=0,
                rows_flagged=0,
                finished_at=timezone.now(),
            )
            return
        except Exception:  # the interruption left the connection mid-query: start a new one
            logger.warning("Upload job %s: reconnecting to record that it stopped", job_id)
            connection.close()


def _run(job: UploadJob, counts: Counts, workers: int, progress: Progress | None) -> None:
    file_format = job.file_format or detect_format(job.original_name or job.file.name)
    if file_format != job.file_format:
        UploadJob.objects.filter(pk=job.pk).update(file_format=file_format)
    with local_path(job.file, job.original_name) as path:
        table = open_table(path, file_format)
        stage = None
        spool1, spool2 = EntrySpool(), EntrySpool()
        try:
            plan = build_plan(
                table.header, job.mapping, existing_types=_existing_types(job.calling_list)
            )
            streaming = connection.vendor == "postgresql" and job.mode == UploadJob.Mode.APPEND
            settings = _reader_settings(job, plan, table, direct=streaming)
            UploadJob.objects.filter(pk=job.pk).update(rows_total=table.total)
            if streaming:
                _run_streaming(
                    job, plan, table, settings, counts, workers, progress, spool1, spool2
                )
            else:
                stage = Stage(job.pk, sum(p.is_phone for p in plan))
                stage.create()
                write = lambda chunk: stage.write(chunk.payload)  # noqa: E731
                _read(job, table, settings, counts, workers, progress, write, spool1)
                _check_read(counts)
                _report_progress(job, counts, counts.processed)
                if progress:
                    progress(counts.processed, counts.processed, "saving")
                t0 = time.monotonic()
                _commit(job, plan, stage, counts, spool1, spool2)
                counts.timings["commit"] = time.monotonic() - t0
                counts.timings["commit_wait"] = time.monotonic() - counts.timings.pop("_end")
        finally:
            table.close()
            if stage is not None:
                stage.drop()
            spool1.close()
            spool2.close()


def _read(
    job: UploadJob,
    table: Table,
    settings: normalise.Settings,
    counts: Counts,
    workers: int,
    progress: Progress | None,
    write: Callable[[normalise.Chunk], None],
    spool: EntrySpool,
    report: Callable[[Counts, int], None] | None = None,
) -> None:
    """Reads the whole file, handing each normalised chunk to ``write`` in file order."""
    report = report or (lambda c, total: _report_progress(job, c, total))
    total = table.total
    t0 = time.monotonic()
    last = 0.0
    writing = 0.0
    # Closed on the way out, error or cancel included: its thread and processes stop before
    # the file is closed and the transaction rolled back. The collector waits meanwhile: the
    # chunks are lists of strings, freed by reference counting, and its passes over them (and
    # the worker's whole heap) are time the database writes wait for (see normalise's readers).
    with contextlib.ExitStack() as stack:
        if gc.isenabled():
            gc.disable()
            stack.callback(gc.enable)
        chunks = stack.enter_context(contextlib.closing(_read_chunks(table, settings, workers)))
        for chunk in chunks:
            w0 = time.monotonic()
            write(chunk)
            writing += time.monotonic() - w0
            spool.extend(chunk.entries)
            counts.add(chunk)
            total = max(total, counts.processed)
            now = time.monotonic()
            if now - last >= PROGRESS_SECONDS:
                last = now
                report(counts, total)
                if progress:
                    progress(counts.processed, total, "reading")
    counts.timings["read"] = time.monotonic() - t0
    counts.timings["stage_writes"] = writing


def _check_read(counts: Counts) -> None:
    """File-level problems only known once every row was read."""
    if counts.processed == 0:
        raise FileError("The file has a header row but no data rows.")
    if counts.valid == 0 and counts.formula_errors == counts.processed:
        raise FileError(
            "Every row has formulas without saved results (the file was written by a "
            "program that did not calculate them). Open it in Excel and save it, or "
            "paste the values, then upload it again."
        )


def _report_progress(job: UploadJob, counts: Counts, total: int) -> None:
    UploadJob.objects.filter(pk=job.pk).update(
        rows_total=total,
        rows_processed=counts.processed,
        rows_valid=counts.valid,
        rows_invalid=counts.invalid,
        rows_flagged=counts.flagged,
    )
    if UploadJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise Cancelled()


# --- Streaming: append imports on PostgreSQL --------------------------------------------------


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
            _report_progress(self.job, counts, total)
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
            f"{', '.join(RECORD_COLUMNS)}, custom, is_final, final_reason, attempts) FROM STDIN"
        )
        self.numbers_sql = (
            f"COPY {Destination._meta.db_table} (record_id, position, source_field, "
            "phone_number, time_zone, is_final, final_reason, attempts) FROM STDIN"
        )
        [(self.sequence,)] = _fetch(
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
                _count_rejected(self.counts, flagged)
                continue
            self.in_list[ext] = row_no
            _reject_id(self.entries, self.counts, row_no, ext, flagged, IN_LIST)

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
                _count_rejected(self.counts, flagged)
        self.keys.close()
        return sorted(self.entries)

    def close(self) -> None:
        self.keys.close()


def _run_streaming(
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
            _read(
                job, table, settings, counts, workers, progress, writer.write, spool1, line.report
            )
            _check_read(counts)
            line.report(counts, counts.processed)
            if progress:
                progress(counts.processed, counts.processed, "saving")
            timings, t0 = counts.timings, time.monotonic()
            spool2.extend(writer.finish())
            timings["checks"], t0 = time.monotonic() - t0, time.monotonic()
            _finish(job, plan, counts, spool1, spool2, now)
            timings["report"] = time.monotonic() - t0
            t0 = time.monotonic()
        timings["commit_wait"] = time.monotonic() - t0
    finally:
        if writer is not None:
            writer.close()
        line.close()


# --- The commit -----------------------------------------------------------------------------------

RECORD_FIELDS = {
    "FirstName": "first_name",
    "LastName": "last_name",
    "Address": "address",
    "City": "city",
    "State": "state",
    "Zip": "zip_code",
    "Priority": "priority",
    "Score": "score",
    "Customer1": "customer1",
    "Customer2": "customer2",
    "ExpirationDate": "expires_on",
}
RECORD_COLUMNS = [
    "external_id",
    "first_name",
    "last_name",
    "address",
    "city",
    "state",
    "zip_code",
    "time_zone",
    "time_zone_source",
    "priority",
    "score",
    "customer1",
    "customer2",
    "expires_on",
]


def _fetch(sql: str, params=()) -> list[tuple]:
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
    rows = _fetch(
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
            _count_rejected(counts, flagged)
    _delete_rows(stage, drop)


IN_LIST = "is already in the list (choose Replace to update records that are already there)."


def _reject_id(
    spool: list[tuple[int, str, str, str]],
    counts: Counts,
    row_no: int,
    ext: str,
    flagged: bool,
    why: str,
) -> None:
    """A row counted valid when read turns out to be an error row because of its ID."""
    spool.append((row_no, normalise.REJECTED, f"ExternalId {ext!r} {why}", f"ExternalId={ext!r}"))
    _count_rejected(counts, flagged)


def _count_rejected(counts: Counts, flagged: bool) -> None:
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
    rows = _fetch(f"SELECT row_no, external_id, flagged FROM {stage.name} WHERE {in_list}", params)
    if not rows:
        return
    for row_no, ext, flagged in rows:
        _reject_id(spool, counts, row_no, ext, flagged, IN_LIST)
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
        if any(p.custom and not p.is_phone for p in plan):
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


def _commit(
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
        _finish(job, plan, counts, spool1, spool2, now)
        timings["report"] = time.monotonic() - t0
        timings["_end"] = time.monotonic()  # the rest of "commit" is COMMIT itself


def _finish(
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
