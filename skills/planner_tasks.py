"""django-q2 tasks for planning. Thin: they take ids, call the planner, return counts.

``plan_tick`` runs every minute from the "pcsms: planner" schedule (migration 0004); a skill
that starts also gets a pass of its own at once (:func:`enqueue_plan`), so its first texts do
not wait for the next tick.
"""

from __future__ import annotations

from django.db import transaction

from skills.models import Skill
from skills.planner import plan_skill
from skills.planner import plan_tick as run_plan_tick


def plan_tick() -> dict:
    """Schedules, sweeps and one pass of every running skill."""
    tick = run_plan_tick()
    return {"planned": tick.planned, "skills": len(tick.skills), "seconds": round(tick.seconds, 3)}


def plan_skill_task(skill_id: int) -> dict:
    skill = Skill.objects.select_related("business_unit").filter(pk=skill_id).first()
    if skill is None or skill.state != Skill.State.RUNNING:
        return {"planned": 0}
    result = plan_skill(skill=skill)
    return {"planned": result.planned, "state": result.state, "error": result.error}


def enqueue_plan(*, skill_id: int) -> None:
    """Plan the skill once, after the current transaction commits (the skill is running by
    then; with the Redis broker a task queued inside a transaction could run before it)."""
    from django_q.tasks import async_task

    transaction.on_commit(
        lambda: async_task(
            "skills.planner_tasks.plan_skill_task",
            skill_id,
            task_name=f"plan_skill_{skill_id}",
            group="planner",
        )
    )
