"""Reading an upload's file: normalised chunks of rows in file order, and the job's progress.

The file is cut into chunks of ``CHUNK_ROWS`` rows; one reader (a thread, in the background
task) or a pool of reader processes (``manage.py import_list --workers``) normalises each chunk
(see ``normalise`` and ``fastrow``) while the caller writes the one before. ``read_rows`` hands
the chunks on in order, keeps the counts and, every ``PROGRESS_SECONDS``, records the progress
and raises :class:`Cancelled` when the admin asked to cancel.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone

from pcsms.rows import FileError, Table
from skills.importing import normalise
from skills.importing.mapping import ColumnPlan
from skills.importing.report import EntrySpool
from skills.models import UploadJob

CHUNK_ROWS = 4000
PROGRESS_SECONDS = 0.5
Progress = Callable[[int, int, str], None]  # (rows done, rows total, phase)


class Cancelled(Exception):
    """The import was cancelled, or its job deleted, while it ran: nothing of it stays."""


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


def reader_settings(
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


def read_rows(
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
    report = report or (lambda c, total: report_progress(job, c, total))
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


def check_read(counts: Counts) -> None:
    """File-level problems only known once every row was read."""
    if counts.processed == 0:
        raise FileError("The file has a header row but no data rows.")
    if counts.valid == 0 and counts.formula_errors == counts.processed:
        raise FileError(
            "Every row has formulas without saved results (the file was written by a "
            "program that did not calculate them). Open it in Excel and save it, or "
            "paste the values, then upload it again."
        )


def report_progress(job: UploadJob, counts: Counts, total: int) -> None:
    UploadJob.objects.filter(pk=job.pk).update(
        rows_total=total,
        rows_processed=counts.processed,
        rows_valid=counts.valid,
        rows_invalid=counts.invalid,
        rows_flagged=counts.flagged,
    )
    if UploadJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise Cancelled()
