"""Writes for skills and calling lists (HackSoft style: keyword-only, typed, <entity>_<action>)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from skills.models import (
    DEFAULT_CPA_RULES,
    CadenceStep,
    CpaRule,
    ScheduleDay,
    Skill,
    SortCriterion,
    TimeZoneBound,
    Weekday,
)

DEFAULT_CADENCE = [("SMSPhoneNumber", 1), ("PhoneNumber", 1)]


@transaction.atomic
def skill_apply_defaults(*, skill: Skill) -> None:
    """Give a new skill the default rows of its list-like parameter pages.

    Only pages that are still empty are filled, so calling it again never overwrites what an
    administrator changed. Defaults: the CPA rules of COMPLIANCE.md, SMS number then main number,
    Monday-Saturday 08:00-21:00, every allowed zone of the BU active at the TCPA window, and
    records taken oldest first.
    """
    if not skill.cpa_rules.exists():
        CpaRule.objects.bulk_create(
            CpaRule(skill=skill, match=match, outcome=outcome, description=description)
            for match, outcome, description in DEFAULT_CPA_RULES
        )
    if not skill.cadence_steps.exists():
        CadenceStep.objects.bulk_create(
            CadenceStep(skill=skill, position=i, phone_field=field, attempts=attempts)
            for i, (field, attempts) in enumerate(DEFAULT_CADENCE)
        )
    if not skill.schedule_days.exists():
        ScheduleDay.objects.bulk_create(
            ScheduleDay(
                skill=skill,
                weekday=day.value,
                is_active=day != Weekday.SUNDAY,
                start_time=dt.time(8, 0),
                end_time=dt.time(21, 0),
            )
            for day in Weekday
        )
    if not skill.time_zone_bounds.exists():
        TimeZoneBound.objects.bulk_create(
            TimeZoneBound(skill=skill, time_zone=zone, is_active=True)
            for zone in skill.business_unit.allowed_time_zones
        )
    if not skill.sort_criteria.exists():
        SortCriterion.objects.create(skill=skill, position=0, field="created_at")
