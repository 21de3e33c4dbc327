"""The planner's tasks moved from ``skills.planner_tasks`` into ``skills.tasks``.

django-q2 keeps a task's dotted path in three places, and each must name the new one or the task
stops working after the upgrade: the Schedule rows (the "pcsms: planner" schedule of 0004), the
Task rows (a failed task is resubmitted by its path) and the tasks still waiting in the database
broker's queue (OrmQ, a signed package holding the path). A Redis queue cannot be rewritten by a
migration: let it drain before upgrading (docs/architecture.md, "Background tasks").
"""

from django.db import migrations
from django_q.signing import SignedPackage

MOVED = {
    "skills.planner_tasks.plan_tick": "skills.tasks.plan_tick",
    "skills.planner_tasks.plan_skill_task": "skills.tasks.plan_skill_task",
}


def rewrite(apps, moves: dict[str, str]) -> None:
    for model in ("Schedule", "Task"):
        manager = apps.get_model("django_q", model).objects
        for old, new in moves.items():
            manager.filter(func=old).update(func=new)
    for queued in apps.get_model("django_q", "OrmQ").objects.all():
        try:
            task = SignedPackage.loads(queued.payload)
        except Exception:  # noqa: S112 (signed with another key or by another version: not ours)
            continue
        new = moves.get(task.get("func")) if isinstance(task.get("func"), str) else None
        if new:
            task["func"] = new
            queued.payload = SignedPackage.dumps(task)
            queued.save(update_fields=["payload"])


def forward(apps, schema_editor):
    rewrite(apps, MOVED)


def backward(apps, schema_editor):
    rewrite(apps, {new: old for old, new in MOVED.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("skills", "0012_xs_schedule"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forward, backward)]
