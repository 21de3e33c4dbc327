"""A scheduled skill starts and stops itself (services.apply_schedules, run by the tick)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from messaging.models import MessageStatus, OutboundMessage, WithdrawReason
from skills.models import ScheduleDay, Skill
from skills.planner import plan_tick
from skills.services import apply_schedules
from tests.test_planner import add_record, make_skill

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")  # the BU's default zone
MONDAY_NOON = dt.datetime(2026, 6, 15, 12, 0, tzinfo=NEW_YORK)
MONDAY_NIGHT = dt.datetime(2026, 6, 15, 21, 30, tzinfo=NEW_YORK)
SUNDAY_NOON = dt.datetime(2026, 6, 21, 12, 0, tzinfo=NEW_YORK)


@pytest.fixture
def scheduled(bu):
    """Stopped, scheduled Monday-Saturday 08:00-21:00 (the defaults), Sunday off."""
    skill = make_skill(bu, state=Skill.State.STOPPED, schedule_enabled=True)
    add_record(skill, zone="America/New_York")
    return skill


def state(skill) -> str:
    skill.refresh_from_db()
    return skill.state


def test_starts_inside_its_window_and_plans_in_the_same_tick(scheduled):
    tick = plan_tick(now=MONDAY_NOON, kick=False)
    assert tick.schedule == [
        {"skill_id": scheduled.id, "skill": scheduled.name, "action": "started"}
    ]
    assert state(scheduled) == Skill.State.RUNNING
    assert tick.planned == 1


def test_stops_outside_its_window_withdrawing_the_queue(scheduled):
    plan_tick(now=MONDAY_NOON, kick=False)
    changes = apply_schedules(now=MONDAY_NIGHT)
    assert changes[0]["action"] == "stopped" and changes[0]["withdrawn"] == 1
    assert state(scheduled) == Skill.State.STOPPED
    message = OutboundMessage.objects.get()
    assert (message.status, message.withdraw_reason) == (
        MessageStatus.WITHDRAWN,
        WithdrawReason.SKILL_STOPPED,
    )


def test_an_inactive_or_removed_day_means_no_running_that_day(scheduled):
    assert apply_schedules(now=SUNDAY_NOON) == []
    assert state(scheduled) == Skill.State.STOPPED
    ScheduleDay.objects.filter(skill=scheduled, weekday=0).delete()
    assert apply_schedules(now=MONDAY_NOON) == []
    assert state(scheduled) == Skill.State.STOPPED


def test_the_window_is_read_in_the_business_units_zone(scheduled, bu):
    bu.default_time_zone = "America/Los_Angeles"
    bu.save()
    early = dt.datetime(2026, 6, 15, 10, 0, tzinfo=NEW_YORK)  # 07:00 in Los Angeles
    assert apply_schedules(now=early) == []
    assert apply_schedules(now=early + dt.timedelta(hours=1))[0]["action"] == "started"


def test_schedule_off_leaves_the_skill_under_manual_control(scheduled):
    Skill.objects.filter(pk=scheduled.pk).update(schedule_enabled=False, state=Skill.State.RUNNING)
    assert apply_schedules(now=MONDAY_NIGHT) == []
    assert state(scheduled) == Skill.State.RUNNING
    Skill.objects.filter(pk=scheduled.pk).update(state=Skill.State.STOPPED)
    assert apply_schedules(now=MONDAY_NOON) == []
    assert state(scheduled) == Skill.State.STOPPED


def test_a_paused_skill_is_left_paused(scheduled):
    Skill.objects.filter(pk=scheduled.pk).update(state=Skill.State.PAUSED)
    assert apply_schedules(now=MONDAY_NIGHT) == []
    assert apply_schedules(now=MONDAY_NOON) == []
    assert state(scheduled) == Skill.State.PAUSED


def test_a_skill_that_cannot_start_is_reported_not_raised(scheduled):
    scheduled.template.is_active = False
    scheduled.template.save()
    changes = apply_schedules(now=MONDAY_NOON)
    assert changes[0]["action"] == "error"
    assert "not active" in changes[0]["error"]
    assert state(scheduled) == Skill.State.STOPPED
