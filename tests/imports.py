"""What the import tests share: a job made from a file, run as the admin's Import button runs it,
and its records, numbers and error report read back."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from django.core.files.base import ContentFile

from pcsms.rows import FileError
from skills.importing.service import upload_job_preview, upload_job_run
from skills.models import Record, UploadJob

FIXTURES = Path(__file__).parent / "fixtures" / "import"


def make_job(calling_list, name: str, data: bytes | str | None = None, **options) -> UploadJob:
    if data is None:
        data = (FIXTURES / name).read_bytes()
    if isinstance(data, str):
        data = data.encode("utf-8")
    job = UploadJob(calling_list=calling_list, original_name=name, **options)
    job.file.save(name, ContentFile(data), save=False)
    job.save()
    return job


def queued_job(calling_list, name: str, data: str) -> UploadJob:
    """A job with its proposed mapping, queued: what the admin's Import button leaves."""
    job = make_job(calling_list, name, data)
    job.mapping = upload_job_preview(job=job).mapping
    job.status = UploadJob.Status.QUEUED
    job.save()
    return job


def run_import(
    calling_list,
    name: str,
    data: bytes | str | None = None,
    *,
    mapping: dict | None = None,
    changes: dict | None = None,
    workers: int = 1,
    **options,
) -> UploadJob:
    """Upload, take the proposed mapping (with ``changes``), run: what the admin page does."""
    job = make_job(calling_list, name, data, **options)
    if mapping is None:
        try:
            mapping = upload_job_preview(job=job).mapping
        except FileError:
            mapping = {}
    mapping = {**mapping, **(changes or {})}
    job.mapping = mapping
    job.status = UploadJob.Status.QUEUED
    job.save()
    result = upload_job_run(job_id=job.pk, workers=workers)
    assert result is not None
    return result


def report(job: UploadJob) -> list[dict[str, str]]:
    if not job.error_report:
        return []
    with job.error_report.open("rb") as handle:
        text = handle.read().decode("utf-8")
    assert text.startswith("\ufeff"), "Excel needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(text[1:])))


def records(calling_list) -> dict[str, Record]:
    return {r.external_id: r for r in Record.objects.filter(calling_list=calling_list)}


def numbers(record: Record) -> list[tuple[int, str, str, str]]:
    return [
        (d.position, d.source_field, d.phone_number, d.time_zone)
        for d in record.destinations.order_by("position")
    ]
