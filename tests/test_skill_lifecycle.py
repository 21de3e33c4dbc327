"""Starting, pausing and stopping a skill: from the admin, the command line and the services."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from messaging.models import MessageStatus, WithdrawReason
from messaging.template_services import template_deactivate
from skills.importing.service import upload_job_preview
from skills.models import Skill, UploadJob
from skills.services import (
    SkillStateError,
    skill_pause,
    skill_start,
    skill_stop,
    upload_job_import,
)
from tests.factories import AttemptFactory, CallingListFactory, SkillFactory


@pytest.fixture
def skill(bu):
    skill = SkillFactory(business_unit=bu, name="Flu shots")
    skill.calling_lists.add(CallingListFactory(business_unit=bu))
    return skill


def test_start_needs_an_active_template(skill):
    skill.template.is_active = False
    skill.template.save()
    with pytest.raises(SkillStateError, match=f'template "{skill.template}" is not active'):
        skill_start(skill=skill)
    skill.refresh_from_db()
    assert skill.state == Skill.State.STOPPED


def test_start_needs_a_provisioned_code_and_a_list(skill):
    code = skill.registration.transport_code
    code.provisioning_status = code.Provisioning.REQUESTED
    code.save()
    skill.calling_lists.clear()
    with pytest.raises(SkillStateError) as error:
        skill_start(skill=skill)
    assert "not provisioned" in error.value.message
    assert "no active calling list" in error.value.message


def test_running_skill_keeps_its_template_active(skill, staff_member):
    skill_start(skill=skill)
    with pytest.raises(Exception, match="Flu shots"):
        template_deactivate(template=skill.template, user=staff_member)
    skill.template.refresh_from_db()
    assert skill.template.is_active


def test_pause_keeps_the_queue_and_stop_withdraws_it(skill):
    skill_start(skill=skill)
    attempt = AttemptFactory(skill=skill, message__registration=skill.registration)
    skill_pause(skill=skill)
    attempt.message.refresh_from_db()
    assert attempt.message.status == MessageStatus.QUEUED
    skill, withdrawn = skill_stop(skill=skill)
    attempt.message.refresh_from_db()
    assert withdrawn == 1
    assert attempt.message.status == MessageStatus.WITHDRAWN
    assert attempt.message.withdraw_reason == WithdrawReason.SKILL_STOPPED
    assert skill.state == Skill.State.STOPPED


def test_pause_only_a_running_skill(skill):
    with pytest.raises(SkillStateError, match="not running"):
        skill_pause(skill=skill)


def test_admin_actions(client, staff_member, skill):
    client.force_login(staff_member)
    url = reverse("admin:skills_skill_changelist")
    response = client.post(
        url, {"action": "start_skills", "_selected_action": [skill.pk]}, follow=True
    )
    assert 'Skill "Flu shots" started.' in [str(m) for m in response.context["messages"]]
    skill.refresh_from_db()
    assert skill.state == Skill.State.RUNNING
    skill.template.is_active = False
    skill.template.save()
    client.post(url, {"action": "stop_skills", "_selected_action": [skill.pk]})
    response = client.post(
        url, {"action": "start_skills", "_selected_action": [skill.pk]}, follow=True
    )
    assert "cannot start" in " ".join(str(m) for m in response.context["messages"])
    skill.refresh_from_db()
    assert skill.state == Skill.State.STOPPED


def test_skill_command(skill, bu):
    out = StringIO()
    call_command("skill", "start", "Flu shots", "--business-unit", bu.name, "--json", stdout=out)
    assert json.loads(out.getvalue())["state"] == "running"
    out = StringIO()
    call_command("skill", "status", "Flu shots", "--business-unit", bu.name, stdout=out)
    assert "running" in out.getvalue()
    with pytest.raises(CommandError, match="No skill 'Nope' in business unit 'Acme'."):
        call_command("skill", "stop", "Nope", "--business-unit", bu.name)


def test_the_skill_command_needs_the_business_unit_only_when_the_name_is_shared(
    skill, bu, other_bu
):
    out = StringIO()
    call_command("skill", "status", "Flu shots", "--json", stdout=out)  # one of that name
    assert json.loads(out.getvalue())["business_unit"] == bu.name
    with pytest.raises(CommandError, match="No skill 'Nope'."):
        call_command("skill", "status", "Nope")

    SkillFactory(business_unit=other_bu, name="Flu shots")
    with pytest.raises(CommandError) as refused:
        call_command("skill", "status", "Flu shots")
    assert str(refused.value) == (
        "Skills named 'Flu shots' are in several business units ('Acme', 'Globex'): "
        "give --business-unit."
    )
    out = StringIO()
    call_command("skill", "status", "Flu shots", "--business-unit", "Globex", "--json", stdout=out)
    assert json.loads(out.getvalue())["business_unit"] == "Globex"


def _import_for(skill, *, start: bool):
    """An upload job for the skill's list, queued with its proposed mapping, run by the task."""
    job = UploadJob(
        calling_list=skill.calling_lists.get(),
        original_name="list.csv",
        start_skill=skill if start else None,
    )
    job.file.save("list.csv", ContentFile(b"ID,PhoneNumber\nA1,3125550123\n"), save=False)
    job.save()
    job.mapping = upload_job_preview(job=job).mapping
    job.status = UploadJob.Status.QUEUED
    job.save()
    return upload_job_import(job_id=job.pk)


def test_an_import_that_names_the_skill_starts_it_when_it_completes(skill):
    job = _import_for(skill, start=True)
    skill.refresh_from_db()
    assert (job.status, job.rows_valid, skill.state) == ("completed", 1, Skill.State.RUNNING)


def test_a_skill_that_cannot_start_leaves_the_import_standing_and_the_job_says_why(skill):
    skill.template.is_active = False
    skill.template.save()
    job = _import_for(skill, start=True)
    skill.refresh_from_db()
    job.refresh_from_db()
    assert (job.status, job.rows_valid, skill.state) == ("completed", 1, Skill.State.STOPPED)
    assert job.message.startswith("The records were imported, but the skill did not start")
    assert f'template "{skill.template}" is not active' in job.message
