"""The import service: an upload job's file -> records and destinations of its calling list.

How a job runs (``upload_job_run``), in one of two ways (the file is read by ``reading``):

**Append on PostgreSQL (streaming, ``run_streaming``).** One transaction from the first row to
the last. The file is read in chunks of rows; reader processes (or, in the background task, a
reader thread) normalise each chunk (typed values, E.164 phones, zones; see ``normalise`` and
``fastrow``) into COPY rows for the list's own tables while this process copies the previous
chunk in (``StreamWriter``: ids from the sequence, an ID seen before left out and reported,
``COPY`` into the records and destinations). Progress and cancel requests travel on a second
connection (``ProgressLine``); a cancel, a failure or a crash rolls the whole transaction back.

**Replace mode, and SQLite (staged, ``commit.commit_stage``).**

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

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings as django_settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from pcsms.rows import FileError, detect_format, open_table
from skills.importing.commit import Stage, commit_stage
from skills.importing.fields import as_text
from skills.importing.mapping import (
    MappingError,
    build_plan,
    column_names,
    propose_mapping,
    remember_mapping,
)
from skills.importing.reading import (
    Cancelled,
    Counts,
    Progress,
    check_read,
    read_rows,
    reader_settings,
    report_progress,
)
from skills.importing.report import EntrySpool
from skills.importing.streaming import run_streaming
from skills.models import CallingList, Destination, Record, UploadJob

logger = logging.getLogger(__name__)

__all__ = [
    "Cancelled",
    "FileError",
    "MappingError",
    "Preview",
    "upload_job_preview",
    "upload_job_run",
]


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


# --- Running a job --------------------------------------------------------------------------------


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
    if job.status == UploadJob.Status.COMPLETED and counts.valid >= ANALYZE_AFTER_ROWS:
        t0 = time.monotonic()
        _analyze()
        counts.timings["analyze"] = time.monotonic() - t0
    job.counts = counts  # for the command and the bench: fast/slow phones, timings
    return job


# PostgreSQL plans the planner's and the dashboards' queries from its statistics of the tables,
# which autovacuum renews only a while after a large insert. Until then a list just imported
# looks empty to it, and every list's queries may take the wrong plan (bench/planner.py: a
# 1,000-record list's dashboard took 775 ms next to a fresh 1,000,000-record one, 20 ms after).
ANALYZE_AFTER_ROWS = 10_000


def _analyze() -> None:
    """Renews the statistics of the tables an import fills (a sample: well under a second)."""
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(model._meta.db_table for model in (Record, Destination))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")  # noqa: S608 - the models' own table names


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
            settings = reader_settings(job, plan, table, direct=streaming)
            UploadJob.objects.filter(pk=job.pk).update(rows_total=table.total)
            if streaming:
                run_streaming(job, plan, table, settings, counts, workers, progress, spool1, spool2)
            else:
                stage = Stage(job.pk, sum(p.is_destination for p in plan))
                stage.create()
                write = lambda chunk: stage.write(chunk.payload)  # noqa: E731
                read_rows(job, table, settings, counts, workers, progress, write, spool1)
                check_read(counts)
                report_progress(job, counts, counts.processed)
                if progress:
                    progress(counts.processed, counts.processed, "saving")
                t0 = time.monotonic()
                commit_stage(job, plan, stage, counts, spool1, spool2)
                counts.timings["commit"] = time.monotonic() - t0
                counts.timings["commit_wait"] = time.monotonic() - counts.timings.pop("_end")
        finally:
            table.close()
            if stage is not None:
                stage.drop()
            spool1.close()
            spool2.close()
