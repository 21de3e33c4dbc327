"""Seeding the whole demo in one transaction: the business unit, then its logins, DNC data,
codes and registrations, calling list, templates and campaign, and last the two stopped skills
that tie them together (texts, and emails to the same list's addresses), with their parameter
pages filled from the defaults.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from messaging.models import Channel
from pcsms.models import BusinessUnit
from skills.demo.accounts import _seed_users
from skills.demo.calling_list import _seed_list
from skills.demo.compliance import _seed_dnc
from skills.demo.constants import (
    ALLOWED_ZONES,
    BU_NAME,
    CAMPAIGN_NAME,
    EMAIL_SKILL_NAME,
    POSTAL_ADDRESS,
    SKILL_NAME,
)
from skills.demo.people import generate_records
from skills.demo.report import SeedReport, _ensure, _validate
from skills.demo.sending import (
    _seed_email_sending,
    _seed_email_template,
    _seed_sending,
    _seed_templates,
)
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
            "postal_address": POSTAL_ADDRESS,
        },
    )
    detail = ""
    if not bu.postal_address.strip():
        # A unit seeded before the demo sent email: an email skill needs the address to start.
        bu.postal_address = POSTAL_ADDRESS
        _validate(bu)
        bu.save(update_fields=["postal_address"])
        report.count("businessunit.postal_address")
        detail = " (postal address added)"
    report.part(f'Business unit "{BU_NAME}"', created, detail)

    admin, operator = _seed_users(report, bu, reset_password)
    group = _seed_dnc(report, bu, records, rng, taken, admin, today)
    registration = _seed_sending(report, bu, today)
    email_registration = _seed_email_sending(report, bu, today)
    # Before the templates: their validation knows {AppointmentDate} from the list's fields.
    calling_list = _seed_list(report, bu, records, today)
    appointment, _payment = _seed_templates(report, bu)
    email_template = _seed_email_template(report, bu)
    campaign, created = _ensure(
        report,
        Campaign,
        {"business_unit": bu, "name": CAMPAIGN_NAME},
        {"description": "Appointment and billing reminders for the spring season."},
    )
    report.part(f'Campaign "{CAMPAIGN_NAME}"', created)

    for name, channel, skill_registration, template, extra, detail in (
        (SKILL_NAME, Channel.SMS, registration, appointment, {}, ""),
        (
            EMAIL_SKILL_NAME,
            Channel.EMAIL,
            email_registration,
            email_template,
            # SMTP tells only that the relay took the email: no delivery receipt comes back.
            {"receipt_mode": Skill.ReceiptMode.SENT},
            ", emails the list's addresses",
        ),
    ):
        _seed_skill(
            report,
            bu,
            name,
            {
                "campaign": campaign,
                "registration": skill_registration,
                "template": template,
                "channel": channel,
                "priority": 5,
                "state": Skill.State.STOPPED,
                **extra,
            },
            (calling_list, group),
            detail,
        )
    return report


def _seed_skill(report, bu, name, defaults, list_and_group, detail) -> Skill:
    calling_list, group = list_and_group
    skill, created = _ensure(report, Skill, {"business_unit": bu, "name": name}, defaults)
    # add() skips rows already linked, so a re-seed writes nothing here.
    for relation_name, target in (
        ("calling_lists", calling_list),
        ("scrubbed_dnc_groups", group),
        ("contributing_dnc_groups", group),
    ):
        relation = getattr(skill, relation_name)
        if not relation.filter(pk=target.pk).exists():
            relation.add(target)
            report.count(f"skill.{relation_name}")
    # Fills only the parameter pages that are still empty.
    skill_apply_defaults(skill=skill)
    report.part(f'Skill "{name}"', created, f" (stopped, ready to start{detail})")
    return skill
