"""Queueing background tasks (django-q2) by dotted path, once the caller's transaction commits.

By path, not by function object: the module that queues a task never imports the module that
runs it, so a service may queue the task that calls it back without an import cycle. After the
commit: with the Redis broker a task queued inside a transaction could run before the rows it
needs are visible, and find nothing to do.

A path named here is stored in the broker and in django-q2's Schedule and Task rows: when a task
function moves, a data migration rewrites those rows (see skills/migrations/0013).
"""

from __future__ import annotations

from django.db import transaction
from django_q.tasks import async_task


def enqueue_on_commit(func_path: str, *args, task_name: str, group: str) -> None:
    """Queue ``func_path(*args)`` for a worker when the current transaction commits (at once
    outside one)."""
    transaction.on_commit(lambda: async_task(func_path, *args, task_name=task_name, group=group))
