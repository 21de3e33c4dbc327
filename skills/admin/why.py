"""The "Why is nothing sending?" panel: skills.diagnosis's reasons, each linked to the page
where it is handled (the skill page, the dashboard and a record's page show it)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse
from django.utils.html import format_html, format_html_join

from skills.diagnosis import Kind, Reason, RecordWhy, SkillWhy, skill_why
from skills.models import Skill


def _admin(name: str, *args, query: dict | None = None) -> str:
    url = reverse(f"admin:{name}", args=args)
    return f"{url}?{urlencode(query)}" if query else url


def reason_url(reason: Reason, skill: Skill) -> str | None:
    """The page where what the reason names is fixed or looked at."""
    registration = skill.registration
    skill_page = _admin("skills_skill_change", skill.pk)
    by_kind = {
        Kind.STOPPED: _admin("skills_skill_changelist", query={"id": skill.pk}),
        Kind.PAUSED: _admin("skills_skill_changelist", query={"id": skill.pk}),
        Kind.COMPLETED: _admin("skills_skill_dashboard", skill.pk),
        Kind.TEMPLATE: _admin("messaging_messagetemplate_change", skill.template_id),
        Kind.REGISTRATION: _admin("messaging_smsregistration_change", registration.pk),
        Kind.NO_CODE: _admin("messaging_transportcode_change", registration.transport_code_id),
        Kind.NO_LIST: skill_page,
        Kind.NO_RECORDS: _admin("skills_uploadjob_changelist"),
        Kind.ALL_FINAL: _admin("skills_skill_dashboard", skill.pk),
        Kind.SCHEDULE: skill_page,
        Kind.OUTSIDE_WINDOW: _admin("skills_skill_forecast", skill.pk),
        Kind.UNKNOWN_ZONE: _admin(
            "skills_record_changelist", query={"time_zone_source__exact": "", "is_final__exact": 0}
        ),
        Kind.ZONE_NOT_ALLOWED: _admin("pcsms_businessunit_change", skill.business_unit_id),
        Kind.ZONE_INACTIVE: skill_page,
        Kind.NO_WINDOW: _admin("skills_skill_forecast", skill.pk),
        Kind.HELD: _admin("skills_rulehold_changelist", query={"skill__id__exact": skill.pk}),
        Kind.EXHAUSTED: skill_page,
        Kind.DNC: _admin("dnc_dncentry_changelist"),
        Kind.OPTED_OUT: _admin("dnc_dncentry_changelist"),
        Kind.NO_SENDER: _admin("messaging_senderprocess_changelist"),
        Kind.POSTAL_ADDRESS: _admin("pcsms_businessunit_change", skill.business_unit_id),
        Kind.NO_ADDRESS: _admin("skills_uploadjob_changelist"),
        Kind.QUEUED: _admin(
            "messaging_outboundmessage_changelist",
            query={"status__exact": "queued", "attempt__skill__id__exact": skill.pk},
        ),
    }
    return by_kind.get(reason.kind)


def why_panel(why: SkillWhy) -> dict:
    """The skill page's panel (templates/admin/skills/why_panel.html)."""
    return {
        "headline": why.headline,
        "sending": why.sending,
        "items": [
            {"text": _sentence(r.text), "url": reason_url(r, why.skill), "holds": r.holds}
            for r in why.reasons
        ],
    }


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def record_why_html(found: list[RecordWhy]) -> str:
    """A record's page: per skill of its list, why it has not been texted now."""
    if not found:
        return "No skill texts this record's list."
    parts = []
    for entry in found:
        items = format_html_join(
            "", "<li>{}</li>", ((_sentence(r.text),) for r in entry.reasons)
        ) or format_html("<li>{}</li>", "Nothing holds it: the skill texts it at its next pass.")
        parts.append(
            format_html(
                '<div class="why-record"><b><a href="{}">{}</a></b> ({})<ul>{}</ul></div>',
                _admin("skills_skill_change", entry.skill.pk),
                entry.skill.name,
                entry.skill.get_state_display().lower(),
                items,
            )
        )
    return format_html_join("", "{}", ((p,) for p in parts))


def dashboard_why(skill: Skill) -> dict:
    """The skill dashboard's panel, as its polled data carries it: ``why_headline``,
    ``why_sending`` and the ``why`` items [{text, count, url, holds}]
    (static/skills/dashboard.js renders them as templates/admin/skills/why_panel.html does)."""
    why = skill_why(skill)
    return {
        "why_headline": why.headline,
        "why_sending": why.sending,
        "why": [
            {
                "text": _sentence(r.text),
                "count": r.count,
                "url": reason_url(r, skill),
                "holds": r.holds,
            }
            for r in why.reasons
        ],
    }
