"""Background tasks of the skills app (django-q2). Thin: they take ids and call one service."""

from __future__ import annotations

from django.db import transaction
from django_q.tasks import async_task

from skills.models import UploadJob


def import_upload_job(job_id: int) -> None:
    """Runs an upload job in this process (a django-q2 worker may not start processes of its
    own): one reader thread, the database writing meanwhile. A file that outlasts the task's
    time limit ends "failed", saying so; ``manage.py import_list`` has no limit."""
    from skills.importing.service import upload_job_run

    upload_job_run(job_id=job_id, workers=1)


def upload_job_enqueue(*, job: UploadJob) -> None:
    """Queues a job's import once the transaction that queued it has committed.

    With the Redis broker a task sent inside the transaction could run before the job's
    QUEUED status is visible, and find nothing to do.
    """
    transaction.on_commit(
        lambda: async_task(
            "skills.tasks.import_upload_job",
            job.pk,
            task_name=f"import upload job {job.pk}",
            group="imports",
        )
    )


def notify_end_of_list(skill_id: int) -> None:
    from skills.services import skill_end_of_list_notify

    skill_end_of_list_notify(skill_id=skill_id)


def end_of_list_enqueue(*, skill_id: int) -> None:
    """The end-of-list e-mail, sent by a worker once the completion is committed (a slow mail
    server must not hold the planner's pass)."""
    transaction.on_commit(
        lambda: async_task(
            "skills.tasks.notify_end_of_list",
            skill_id,
            task_name=f"end-of-list e-mail of skill {skill_id}",
            group="notifications",
        )
    )


def xs_deliver() -> None:
    """The XS webhooks' due events, sent (the schedule runs this every minute)."""
    from skills.xs import xs_deliver as deliver

    deliver()
