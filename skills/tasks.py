"""Background tasks of the skills app (django-q2). Thin: they take ids and call one service.

django-q2 stores these functions' dotted paths (``skills.tasks.<name>``) in its Schedule rows
(migrations 0004 and 0012), its Task rows and the broker's queue, and ``pcsms.queue`` queues them
by path. Renaming or moving one needs a data migration like 0013.
"""

from __future__ import annotations

import datetime as dt

from skills.models import Skill
from skills.planner import plan_skill
from skills.planner import plan_tick as run_plan_tick
from skills.services import skill_end_of_list_notify, skill_forecast_keep, upload_job_import
from skills.xs import xs_deliver as deliver


def plan_tick() -> dict:
    """Schedules, sweeps and one pass of every running skill (every minute, "pcsms: planner")."""
    tick = run_plan_tick()
    return {"planned": tick.planned, "skills": len(tick.skills), "seconds": round(tick.seconds, 3)}


def plan_skill_task(skill_id: int) -> dict:
    """One pass of a skill that has just started, so its first texts do not wait for the tick."""
    skill = Skill.objects.select_related("business_unit").filter(pk=skill_id).first()
    if skill is None or skill.state != Skill.State.RUNNING:
        return {"planned": 0}
    result = plan_skill(skill=skill)
    return {"planned": result.planned, "state": result.state, "error": result.error}


def forecast_skill_task(skill_id: int, started_at: str) -> dict:
    """The forecast of a skill as it started, kept for its dashboard."""
    skill = Skill.objects.filter(pk=skill_id).first()
    if skill is None:
        return {"forecast": None}
    kept = skill_forecast_keep(skill=skill, now=dt.datetime.fromisoformat(started_at))
    return {"forecast": kept.pk, "finishes_at": kept.data["finishes_at"]}


def import_upload_job(job_id: int) -> None:
    """Runs an upload job in this process (a django-q2 worker may not start processes of its
    own): one reader thread, the database writing meanwhile. A file that outlasts the task's
    time limit ends "failed", saying so; ``manage.py import_list`` has no limit."""
    upload_job_import(job_id=job_id, workers=1)


def notify_end_of_list(skill_id: int) -> None:
    skill_end_of_list_notify(skill_id=skill_id)


def xs_deliver() -> None:
    """The XS webhooks' due events, sent (the schedule runs this every minute)."""
    deliver()
