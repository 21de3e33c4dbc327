"""django-q2 tasks for sending. Thin: they run the dispatcher for a while and return counts.

The scheduler wakes only about every 30 s, so pacing never depends on it: a task holds each
code it leases and paces it to the millisecond; the schedule only makes sure some task is
running. Runs overlap by design (a run lasts longer than the schedule's interval) so that no
gap opens between them; the leases make the overlap harmless.
"""

from __future__ import annotations

import gc

from messaging.sender import Dispatcher
from messaging.services import message_receipts_check
from pcsms.queue import enqueue_on_commit

RUN_SECONDS = 110.0  # > the schedule's 60 s, < Q_CLUSTER timeout (300 s)


def run_senders(max_seconds: float = RUN_SECONDS) -> dict[str, int]:
    # What the worker process holds by now (Django, the SDK, the backend) lives as long as the
    # process: out of the collector's full passes, which otherwise stall a sending loop for
    # 60-135 ms every few seconds (docs/performance.md). As `manage.py dispatch` does at start.
    gc.collect()
    gc.freeze()
    stats = Dispatcher(until_idle=True, max_seconds=max_seconds, idle_exit=10.0).run()
    return {"sent": stats.sent, "failed": stats.failed, "withdrawn": stats.withdrawn}


def check_receipts() -> dict[str, int]:
    """Look up sent texts whose receipt is late (scheduled each minute)."""
    return dict(message_receipts_check())


def kick_senders() -> None:
    """Start a sender run now (after the current transaction commits), e.g. when a skill starts.

    The one public kick: skills call it when they queue texts.
    """
    enqueue_on_commit("messaging.tasks.run_senders", task_name="run_senders", group="sender")
