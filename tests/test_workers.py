"""The background work done by real django-q2 clusters, on each broker: the database (the
default) and Redis (``REDIS_URL``, for several worker hosts).

Each test queues work the way the product does (``enqueue_on_commit``, a schedule row) and starts
``manage.py qcluster`` on the production settings; it passes when the cluster has done the work.
Redis is ``PCSMS_TEST_REDIS_URL`` (default: database 15 of the local server, emptied first). Under
CI (``CI`` set) a Redis that does not answer fails the test instead of skipping it.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
import redis
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule, Task

from messaging.models import MessageStatus, OutboundMessage
from skills.importing.service import upload_job_preview
from skills.models import Record, UploadJob
from skills.services import skill_apply_defaults, upload_job_enqueue
from tests.factories import CallingListFactory, MessageTemplateFactory, SkillFactory
from tests.processes import process_env, qcluster, wait_for
from tests.test_planner_e2e import noon_zone

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(params=["database", "redis"])
def broker_env(request, monkeypatch) -> dict[str, str]:
    """The cluster's environment for the broker under test; this process queues to it too."""
    # The test settings run tasks inline; here they go to the broker, as in production.
    monkeypatch.setattr(Conf, "SYNC", False)
    if request.param == "database":
        monkeypatch.setattr(Conf, "ORM", "default")
        yield {}
        return
    url = os.environ.get("PCSMS_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis at {url} (CI starts one)")
    client.flushdb()
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)
    yield {"REDIS_URL": url}
    client.flushdb()
    client.close()


@pytest.fixture
def media(settings, tmp_path):
    """Uploads on disk, where the cluster's processes read them."""
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    return tmp_path


def test_an_upload_naming_a_skill_is_imported_planned_and_texted_by_the_workers(
    bu, broker_env, media
):
    zone = noon_zone(timezone.now())  # the allowed hours are open whenever the test runs
    bu.allowed_time_zones = [zone]
    bu.save()
    template = MessageTemplateFactory(business_unit=bu, body="Hi {FirstName}. Reply STOP to end.")
    skill = SkillFactory(business_unit=bu, template=template)
    skill_apply_defaults(skill=skill)
    calling_list = CallingListFactory(business_unit=bu)
    skill.calling_lists.add(calling_list)
    # Toll-free numbers have no zone of their own: each takes its record's (the TimeZone column).
    rows = [("W1", "+18005550101", "Ada"), ("W2", "+18885550102", "Grace")]
    rows.append(("W3", "+18775550103", "Alan"))
    text = "ID,SMS,FirstName,TimeZone\n" + "".join(f"{i},{p},{n},{zone}\n" for i, p, n in rows)
    job = UploadJob(calling_list=calling_list, original_name="list.csv", start_skill=skill)
    job.file.save("list.csv", ContentFile(text.encode()), save=False)
    job.save()
    job.mapping = upload_job_preview(job=job).mapping
    job.status = UploadJob.Status.QUEUED
    job.save()
    with transaction.atomic():
        upload_job_enqueue(job=job)  # what the admin's Import button does

    env = process_env(
        **broker_env,
        MEDIA_ROOT=str(media),
        Q_WORKERS="2",  # the sender's run holds one worker while the other plans
        SIMULATOR_UNDELIVERED_RATE="0",
        SIMULATOR_FAILED_RATE="0",
        SIMULATOR_STOP_RATE="0",
    )
    with qcluster(env) as cluster:
        done = (MessageStatus.SENT, MessageStatus.DELIVERED)
        wait_for(
            lambda: OutboundMessage.objects.filter(status__in=done).count() == len(rows),
            120,
            cluster,
            describe=lambda: _state(job),
        )

    job.refresh_from_db()
    assert job.status == UploadJob.Status.COMPLETED and job.rows_valid == len(rows)
    assert Record.objects.filter(calling_list=calling_list).count() == len(rows)
    skill.refresh_from_db()
    assert skill.state in (skill.State.RUNNING, skill.State.COMPLETED)
    bodies = sorted(OutboundMessage.objects.values_list("body", flat=True))
    assert bodies == [f"Hi {name}. Reply STOP to end." for name in ("Ada", "Alan", "Grace")]
    task = Task.objects.get(func="skills.tasks.import_upload_job")
    assert task.success and task.args == (job.pk,)


def _state(job: UploadJob) -> str:
    job.refresh_from_db()
    tasks = list(Task.objects.values_list("func", "success", "result"))
    texts = list(OutboundMessage.objects.values_list("status", "withdraw_reason"))
    return f"job {job.status} {job.message!r}; tasks {tasks}; texts {texts}"


def test_a_schedule_row_runs_its_task_on_the_broker(bu, broker_env):
    # The cluster looks at its schedules about every 30 s: the first look finds this one due.
    Schedule.objects.all().delete()  # the sender's run would outlast the test
    schedule = Schedule.objects.create(
        name="pcsms: planner",
        func="skills.tasks.plan_tick",
        schedule_type=Schedule.MINUTES,
        minutes=1,
        repeats=-1,
        next_run=timezone.now() - dt.timedelta(seconds=1),
    )
    with qcluster(process_env(**broker_env)) as cluster:
        task = wait_for(
            lambda: Task.objects.filter(func="skills.tasks.plan_tick").first(), 75, cluster
        )

    assert task.success, task.result
    assert task.result["planned"] == 0  # nothing is running: a tick with nothing to do
    schedule.refresh_from_db()
    assert schedule.next_run > timezone.now()  # the next run is a minute on
