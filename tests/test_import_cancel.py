"""An import cancelled, failed, stopped or deleted while it runs leaves nothing half-imported."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, connections

from skills.importing import commit, reading
from skills.importing.service import upload_job_run
from skills.models import CustomField, Destination, Record, UploadJob
from tests.factories import (
    CallingListFactory,
)
from tests.imports import make_job, queued_job, run_import


@pytest.fixture
def calling_list(bu):
    return CallingListFactory(business_unit=bu, name="Patients")


# --- Cancelled or failed: nothing half-imported ---------------------------------------------


def test_a_cancelled_import_leaves_nothing(calling_list, monkeypatch):
    monkeypatch.setattr(reading, "CHUNK_ROWS", 10)
    monkeypatch.setattr(reading, "PROGRESS_SECONDS", 0)
    rows = "\n".join(f"K{i},312555{i:04d}" for i in range(100))
    job = queued_job(calling_list, "cancel.csv", f"ID,Phone\n{rows}\n")
    seen = []

    def press_cancel(done, total, phase):
        seen.append(done)
        if done >= 30:  # the user presses Cancel while rows are being read
            UploadJob.objects.filter(pk=job.pk).update(cancel_requested=True)

    job = upload_job_run(job_id=job.pk, progress=press_cancel)

    assert job.status == UploadJob.Status.CANCELLED
    assert "nothing was imported" in job.message
    assert seen[0] < 100
    assert not Record.objects.filter(calling_list=calling_list).exists()
    assert not CustomField.objects.filter(calling_list=calling_list).exists()


@pytest.mark.django_db(transaction=True)
def test_the_admin_sees_progress_and_can_cancel_while_rows_are_written(monkeypatch):
    """The admin's requests come on other connections: they must see the counts move and
    their Cancel must stop the import, though the records go in inside one transaction."""
    calling_list = CallingListFactory(name="Progress")
    monkeypatch.setattr(reading, "CHUNK_ROWS", 10)
    monkeypatch.setattr(reading, "PROGRESS_SECONDS", 0)
    rows = "\n".join(f"P{i},312555{i:04d}" for i in range(200))
    job = queued_job(calling_list, "progress.csv", f"ID,Phone\n{rows}\n")
    seen = []

    def admin_request(done, total, phase):
        other = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with other.cursor() as cursor:
                table = UploadJob._meta.db_table
                cursor.execute(
                    f"SELECT status, rows_processed FROM {table} WHERE id = %s",  # noqa: S608
                    [job.pk],
                )
                seen.append(cursor.fetchone())
                if done >= 60:  # the user presses Cancel
                    cursor.execute(
                        f"UPDATE {table} SET cancel_requested = %s WHERE id = %s",  # noqa: S608
                        [True, job.pk],
                    )
        finally:
            other.close()

    job = upload_job_run(job_id=job.pk, progress=admin_request)

    assert job.status == UploadJob.Status.CANCELLED
    assert ("running", 50) in seen  # counts committed while the import ran
    assert not Record.objects.filter(calling_list=calling_list).exists()
    assert not Destination.objects.filter(record__calling_list=calling_list).exists()


@pytest.mark.django_db(transaction=True)
def test_a_job_deleted_while_it_runs_leaves_no_records_behind(monkeypatch):
    calling_list = CallingListFactory(name="Deleted job")
    monkeypatch.setattr(reading, "CHUNK_ROWS", 10)
    monkeypatch.setattr(reading, "PROGRESS_SECONDS", 0)
    rows = "\n".join(f"D{i},312555{i:04d}" for i in range(50))
    job = queued_job(calling_list, "deleted.csv", f"ID,Phone\nD-1,3125559999\n{rows}\n")

    def admin_deletes_the_job(done, total, phase):
        if done >= 30:  # on its own connection, as an admin request would
            other = connections.create_connection(DEFAULT_DB_ALIAS)
            try:
                with other.cursor() as cursor:
                    table = UploadJob._meta.db_table
                    cursor.execute(f"DELETE FROM {table} WHERE id = %s", [job.pk])  # noqa: S608
            finally:
                other.close()

    assert upload_job_run(job_id=job.pk, progress=admin_deletes_the_job) is None
    assert not Record.objects.filter(calling_list=calling_list).exists()


@pytest.mark.parametrize("how", ["page", "bulk action"])
def test_deleting_a_list_deletes_its_records_and_numbers(calling_list, how):
    from skills.models import CallingList

    run_import(calling_list, "gone.csv", "ID,Phone\nG1,3125550101\nG2,3125550102\n")
    list_id = calling_list.pk
    if how == "page":
        calling_list.delete()
    else:
        CallingList.objects.filter(pk=list_id).delete()

    assert not CallingList.objects.filter(pk=list_id).exists()
    assert not Record.objects.filter(calling_list_id=list_id).exists()
    assert not Destination.objects.filter(record__calling_list_id=list_id).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connections[DEFAULT_DB_ALIAS].vendor != "postgresql",
    reason="needs row locks and a database shared by threads (PostgreSQL)",
)
def test_a_list_deleted_while_an_import_writes_into_it_leaves_no_orphan_records(monkeypatch):
    """Records have no database foreign key to their list: the delete must wait for the import
    to commit and then take its records too, neither hanging nor leaving them behind."""
    import threading
    import time

    from skills.models import CallingList

    calling_list = CallingListFactory(name="Deleted list")
    list_id = calling_list.pk
    monkeypatch.setattr(reading, "CHUNK_ROWS", 10)
    monkeypatch.setattr(reading, "PROGRESS_SECONDS", 0)
    rows = "\n".join(f"L{i},312555{i:04d}" for i in range(60))
    job = queued_job(calling_list, "deleted-list.csv", f"ID,Phone\n{rows}\n")
    deleter: list[threading.Thread] = []
    errors: list[BaseException] = []

    def admin_deletes_the_list():
        try:
            # Without the list lock first, the delete and the import wait for each other
            # (the delete holds the job's row, the import's progress writes want it): a
            # deadlock PostgreSQL cannot see, as one side waits in Python. Bounded here.
            with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                cursor.execute("SET lock_timeout = '10s'")
            CallingList.objects.filter(pk=list_id).delete()  # the admin's bulk delete action
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connections.close_all()

    def waiting_sessions() -> int:
        other = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with other.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return cursor.fetchone()[0]
        finally:
            other.close()

    def progress(done, total, phase):
        if done >= 30 and not deleter:  # rows are going in; the user deletes the list
            deleter.append(threading.Thread(target=admin_deletes_the_list))
            deleter[0].start()
            deadline = time.monotonic() + 20
            # Let the import commit only once the delete is waiting for the list's lock.
            while waiting_sessions() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)

    upload_job_run(job_id=job.pk, progress=progress)
    deleter[0].join(30)

    assert not errors
    assert not CallingList.objects.filter(pk=list_id).exists()
    assert not Record.objects.filter(calling_list_id=list_id).exists()
    assert not Destination.objects.filter(record__calling_list_id=list_id).exists()


def test_a_job_cancelled_before_it_runs_never_runs(calling_list):
    job = make_job(calling_list, "basic.csv", status=UploadJob.Status.QUEUED, cancel_requested=True)

    assert upload_job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == UploadJob.Status.CANCELLED
    assert not Record.objects.exists()


def test_a_failure_while_saving_leaves_nothing(calling_list, monkeypatch):
    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(commit, "write_report", broken)  # after the records went in
    job = run_import(calling_list, "custom.csv", "ID,Phone,Extra\nC1,3125550123,x\n")

    assert job.status == UploadJob.Status.FAILED
    assert "disk full" in job.message and "nothing was imported" in job.message
    assert not Record.objects.filter(calling_list=calling_list).exists()
    assert not CustomField.objects.filter(calling_list=calling_list).exists()


def test_a_task_stopped_by_its_time_limit_fails_clearly_and_leaves_nothing(
    calling_list, monkeypatch
):
    from django_q.exceptions import TimeoutException

    def time_is_up(*args):  # django-q2 raises this in the task when its limit strikes
        raise TimeoutException("Task exceeded maximum timeout value (300 seconds)")

    monkeypatch.setattr(commit, "finish", time_is_up)  # after the records went in
    job = queued_job(calling_list, "big.csv", "ID,Phone\nT1,3125550123\n")

    with pytest.raises(SystemExit):
        upload_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == UploadJob.Status.FAILED  # not "running" for ever
    assert "time limit" in job.message and "nothing was imported" in job.message
    assert "manage.py import_list" in job.message
    assert not Record.objects.filter(calling_list=calling_list).exists()
