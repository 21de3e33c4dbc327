"""django-q2 keeps task functions' dotted paths in its rows: they must keep naming a real function.

A worker finds a task's function with ``pydoc.locate(path)`` (django_q/worker.py) and fails the
task when that finds nothing, so a schedule whose function moved stops running without a word.
"""

from __future__ import annotations

import importlib
import pydoc

import pytest
from django.apps import apps
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task
from django_q.signing import SignedPackage

from tests.factories import SkillFactory

migration = importlib.import_module("skills.migrations.0013_task_paths")

pytestmark = pytest.mark.django_db


def test_every_schedule_the_migrations_create_names_a_function_a_worker_can_find():
    schedules = list(Schedule.objects.values_list("name", "func"))
    assert {name for name, _func in schedules} >= {"pcsms: planner", "pcsms: xs webhooks"}
    for name, func in schedules:
        assert callable(pydoc.locate(func)), f"schedule {name!r} names {func!r}: not found"


def test_rows_naming_the_planner_tasks_old_module_are_rewritten_and_then_run():
    """The state of a database upgraded from a release where the planner's tasks lived in
    ``skills.planner_tasks``: its schedule, a failed task waiting to be resubmitted, and a task
    still in the database broker's queue."""
    Schedule.objects.filter(name="pcsms: planner").update(func="skills.planner_tasks.plan_tick")
    now = timezone.now()
    Task.objects.create(
        id="a" * 32,
        name="plan_skill_7",
        func="skills.planner_tasks.plan_skill_task",
        args=None,
        started=now,
        stopped=now,
        success=False,
    )
    skill = SkillFactory()  # stopped: its pass plans nothing, but the function must run
    OrmQ.objects.create(
        key="pcsms",
        lock=now,
        payload=SignedPackage.dumps(
            {
                "id": "b" * 32,
                "name": "plan",
                "func": "skills.planner_tasks.plan_skill_task",
                "args": (skill.pk,),
                "kwargs": {},
            }
        ),
    )
    assert pydoc.locate("skills.planner_tasks.plan_tick") is None  # the old module is gone

    migration.forward(apps, None)

    schedule = Schedule.objects.get(name="pcsms: planner")
    assert schedule.func == "skills.tasks.plan_tick"
    tick = pydoc.locate(schedule.func)()
    assert (tick["planned"], tick["skills"]) == (0, 0)
    failed = Task.objects.get(id="a" * 32)
    assert failed.func == "skills.tasks.plan_skill_task"
    queued = OrmQ.objects.get().task
    assert queued["func"] == "skills.tasks.plan_skill_task"
    assert pydoc.locate(queued["func"])(*queued["args"]) == {"planned": 0}


def test_the_rewrite_leaves_other_rows_alone_and_can_be_undone():
    other = Schedule.objects.get(name="pcsms: xs webhooks").func
    OrmQ.objects.create(key="pcsms", lock=timezone.now(), payload="not a signed package")

    migration.forward(apps, None)
    migration.backward(apps, None)

    assert Schedule.objects.get(name="pcsms: planner").func == "skills.planner_tasks.plan_tick"
    assert Schedule.objects.get(name="pcsms: xs webhooks").func == other
    assert OrmQ.objects.get().payload == "not a signed package"
