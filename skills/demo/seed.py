"""Seeding the whole demo in one transaction: the business unit, then its logins, DNC data,
codes and registration, calling list, templates and campaign, and last the stopped skill that
ties them together, with its parameter pages filled from the defaults.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from pcsms.models import BusinessUnit
from skills.demo.accounts import _seed_users
from skills.demo.calling_list import _seed_list
from skills.demo.compliance import _seed_dnc
from skills.demo.constants import ALLOWED_ZONES, BU_NAME, CAMPAIGN_NAME, SKILL_NAME
from skills.demo.people import generate_records
from skills.demo.report import SeedReport, _ensure
from skills.demo.sending import _seed_sending, _seed_templates
from skills.models import Campaign, Skill
from skills.services import skill_apply_defaults


@transaction.atomic
def seed_demo(*, reset_password: bool = False, today: dt.date | None = None) -> SeedReport:
    """Create whatever part of the demo is missing, and say what was there already."""
    today = today or timezone.localdate()
    report = SeedReport()
    records, rng, taken = generate_records()

    bu, created = _ensure(
        report,
        BusinessUnit,
        {"name": BU_NAME},
        {
            "default_time_zone": "America/New_York",
            "allowed_time_zones": list(ALLOWED_ZONES),
            "business_name": "Demo Health Clinic",
            "support_contact": "support@example.com / 1-800-555-0199",
        },
    )
    report.part(f'Business unit "{BU_NAME}"', created)

    admin, operator = _seed_users(report, bu, reset_password)
    group = _seed_dnc(report, bu, records, rng, taken, admin, today)
    registration = _seed_sending(report, bu, today)
    # Before the templates: their validation knows {AppointmentDate} from the list's fields.
    calling_list = _seed_list(report, bu, records, today)
    appointment, _payment = _seed_templates(report, bu)
    campaign, created = _ensure(
        report,
        Campaign,
        {"business_unit": bu, "name": CAMPAIGN_NAME},
        {"description": "Appointment and billing reminders for the spring season."},
    )
    report.part(f'Campaign "{CAMPAIGN_NAME}"', created)

    skill, created = _ensure(
        report,
        Skill,
        {"business_unit": bu, "name": SKILL_NAME},
        {
            "campaign": campaign,
            "registration": registration,
            "template": appointment,
            "priority": 5,
            "state": Skill.State.STOPPED,
        },
    )
    # add() skips rows already linked, so a re-seed writes nothing here.
    for name, target in (
        ("calling_lists", calling_list),
        ("scrubbed_dnc_groups", group),
        ("contributing_dnc_groups", group),
    ):
        relation = getattr(skill, name)
        if not relation.filter(pk=target.pk).exists():
            relation.add(target)
            report.count(f"skill.{name}")
    # Fills only the parameter pages that are still empty.
    skill_apply_defaults(skill=skill)
    report.part(f'Skill "{SKILL_NAME}"', created, " (stopped, ready to start)")
    return report
