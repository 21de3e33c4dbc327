"""What a filter change does to a skill's queued texts (docs/spec.md section 7, page 6)."""

from __future__ import annotations

import pytest

from messaging.models import MessageStatus, OutboundMessage, WithdrawReason
from skills.models import FilterCondition, Skill
from skills.planner import plan_skill
from skills.services import skill_filter_changed
from tests.test_planner import NOW, add_record, make_skill


@pytest.fixture
def skill(bu):
    """Three records texted with no filter; then the filter becomes State = IL."""
    made = make_skill(bu)
    for external_id, state in (("A", "IL"), ("B", "TX"), ("C", "il")):
        add_record(made, external_id=external_id, state=state)
    plan_skill(skill=made, now=NOW)
    assert OutboundMessage.objects.filter(status=MessageStatus.QUEUED).count() == 3
    FilterCondition.objects.create(skill=made, field="State", operator="eq", value="IL")
    made.filter_active = True
    made.save()
    return made


def _queued() -> list[str]:
    return sorted(
        OutboundMessage.objects.filter(status=MessageStatus.QUEUED).values_list(
            "attempt__record__external_id", flat=True
        )
    )


def _withdrawn() -> list[str]:
    return sorted(
        OutboundMessage.objects.filter(
            status=MessageStatus.WITHDRAWN, withdraw_reason=WithdrawReason.FILTERED
        ).values_list("attempt__record__external_id", flat=True)
    )


def test_leave_keeps_every_queued_text(skill):
    skill.filter_change_action = Skill.FilterChange.NOTHING

    assert skill_filter_changed(skill=skill) == 0
    assert _queued() == ["A", "B", "C"]


def test_withdraw_takes_every_queued_text_back(skill):
    skill.filter_change_action = Skill.FilterChange.FLUSH

    assert skill_filter_changed(skill=skill) == 3
    assert (_queued(), _withdrawn()) == ([], ["A", "B", "C"])


def test_pause_until_re_planned_withdraws_only_what_no_longer_passes(skill):
    skill.filter_change_action = Skill.FilterChange.PAUSE

    assert skill_filter_changed(skill=skill) == 1
    assert (_queued(), _withdrawn()) == (["A", "C"], ["B"])


def test_pause_with_the_filter_switched_off_keeps_everything(skill):
    skill.filter_change_action = Skill.FilterChange.PAUSE
    skill.filter_active = False

    assert skill_filter_changed(skill=skill) == 0
    assert _queued() == ["A", "B", "C"]


def test_a_withdrawn_record_is_planned_again_if_it_passes(skill):
    skill.filter_change_action = Skill.FilterChange.FLUSH
    skill.save()
    skill_filter_changed(skill=skill)

    # The next pass: the records that pass the new filter are texted again, the other is not.
    plan_skill(skill=skill, now=NOW.replace(minute=5))

    assert _queued() == ["A", "C"]
