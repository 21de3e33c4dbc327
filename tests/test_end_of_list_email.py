"""The end-of-list notification: an e-mail to the skill's address when its list is done."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail

from messaging.models import MessageStatus, OutboundMessage
from skills.models import Record
from skills.planner import plan_skill
from tests.test_planner import NOW, add_record, make_skill


@pytest.fixture
def skill(bu):
    made = make_skill(bu, name="Flu shots", end_of_list_email="lead@example.com")
    for external_id in ("R1", "R2", "R3"):
        add_record(made, external_id=external_id)
    return made


def _finish(skill, captured):
    """Text every record, deliver two, opt the third out, and let the planner see it."""
    plan_skill(skill=skill, now=NOW)
    OutboundMessage.objects.update(status=MessageStatus.DELIVERED)
    Record.objects.filter(external_id__in=["R1", "R2"]).update(
        is_final=True, final_reason="delivered"
    )
    Record.objects.filter(external_id="R3").update(is_final=True, final_reason="opted_out")
    with captured(execute=True):
        return plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=5))


def test_the_address_is_told_when_the_list_is_done(skill, django_capture_on_commit_callbacks):
    assert _finish(skill, django_capture_on_commit_callbacks).completed

    [email] = mail.outbox
    assert email.to == ["lead@example.com"]
    assert email.subject == 'pcsms: skill "Flu shots" has finished its list'
    body = email.body
    assert 'Skill "Flu shots" of Acme has finished its list' in body
    assert "Records: 3" in body
    assert "  Delivered: 2" in body and "  Opted out: 1" in body
    assert "Texts this skill sent: 3" in body and "  Delivered: 3" in body
    assert f"/admin/skills/skill/{skill.pk}/change/" in body


def test_only_once_however_often_the_planner_looks_again(skill, django_capture_on_commit_callbacks):
    _finish(skill, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=10))

    assert len(mail.outbox) == 1


def test_no_address_no_e_mail(skill, django_capture_on_commit_callbacks):
    skill.end_of_list_email = ""
    skill.save()

    assert _finish(skill, django_capture_on_commit_callbacks).completed
    assert mail.outbox == []


def test_records_no_number_of_which_may_be_texted_do_not_keep_the_skill_running(
    skill, django_capture_on_commit_callbacks
):
    # One more record whose only number is in a zone the business unit does not allow.
    add_record(skill, external_id="R4", zone="Pacific/Guam")

    assert _finish(skill, django_capture_on_commit_callbacks).completed
    assert Record.objects.get(external_id="R4").is_final is False  # left open, not finalized
    [email] = mail.outbox
    assert "Records: 4 (1 not finalized: every attempt used, or no number in a zone" in email.body


def test_a_zone_the_skill_bounds_off_is_not_waited_for(skill, django_capture_on_commit_callbacks):
    from skills.models import TimeZoneBound

    add_record(skill, external_id="R4", zone="America/Denver")
    TimeZoneBound.objects.update_or_create(
        skill=skill, time_zone="America/Denver", defaults={"is_active": False}
    )

    assert _finish(skill, django_capture_on_commit_callbacks).completed
