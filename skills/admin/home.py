"""The admin's home page (the index): skills.home's figures for the user's business units,
each linked to where it is handled. Registered on the site by skills/admin/__init__.py."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.cache import cache
from django.urls import NoReverseMatch, reverse

from pcsms.models import BusinessUnit, bu_ids_for
from skills.home import AlertKind, home

HOME_CACHE_SECONDS = 15  # the page's figures, shared by the users of the same business units
CHART_WIDTH = 480  # the texts-per-hour chart's viewBox width


def _url(name: str, *args, query: dict | None = None) -> str:
    url = reverse(f"admin:{name}", args=args)
    return f"{url}?{urlencode(query)}" if query else url


ALERT_PAGE = {
    AlertKind.SKILL_BLOCKED: ("skills.view_skill", lambda pk: _url("skills_skill_change", pk)),
    AlertKind.NO_SENDER: (
        "messaging.view_senderprocess",
        lambda pk: _url("messaging_senderprocess_changelist"),
    ),
    AlertKind.CARRIER_FAILING: (
        "messaging.view_outboundmessage",
        lambda pk: _url(
            "messaging_outboundmessage_changelist", query={"transport_code__id__exact": pk}
        ),
    ),
    AlertKind.UNPROVISIONED: (
        "messaging.view_smsregistration",
        lambda pk: _url("messaging_smsregistration_change", pk),
    ),
}


def _figures(ids: list[int]) -> dict:
    """The page's figures as plain values (cached): the same for every user of these BUs."""
    page = home(ids)
    peak = max((n for _h, n in page.per_hour), default=0) or 1
    width = CHART_WIDTH / max(len(page.per_hour), 1)
    return {
        "skills": [
            {
                "name": line.skill.name,
                "business_unit": line.skill.business_unit.name,
                "state": line.skill.get_state_display(),
                "running": line.skill.state == line.skill.State.RUNNING,
                "records": line.records,
                "finalized": line.finalized,
                "percent": line.percent,
                "dashboard": _url("skills_skill_dashboard", line.skill.pk),
                "change": _url("skills_skill_change", line.skill.pk),
            }
            for line in page.skills
        ],
        "has_skills": page.has_skills,
        "texts_today": page.texts_today,
        "zone": str(page.zone),
        "per_hour": [
            {
                "label": f"{hour:%H}:00",
                "count": n,
                "x": round(i * width, 2),
                "width": round(width * 0.8, 2),
                "height": round(100 * n / peak, 2),
                "y": round(100 - 100 * n / peak, 2),
            }
            for i, (hour, n) in enumerate(page.per_hour)
        ],
        "peak": peak if page.texts_today else 0,
        "chart_width": CHART_WIDTH,
        "opt_outs_today": page.opt_outs_today,
        "to_review": page.to_review,
        "imports": [
            {
                "name": job.original_name or str(job),
                "calling_list": job.calling_list.name,
                "status": job.get_status_display(),
                "processed": job.rows_processed,
                "total": job.rows_total,
                "percent": round(100 * job.rows_processed / job.rows_total)
                if job.rows_total
                else 0,
                "url": _url("skills_uploadjob_change", job.pk),
            }
            for job in page.imports
        ],
        "alerts": [
            {"kind": a.kind, "text": a.text, "business_unit": a.business_unit, "id": a.object_id}
            for a in page.alerts
        ],
    }


def _setup_url() -> str | None:
    try:
        return _url("skills_skill_setup")
    except NoReverseMatch:
        return None


def home_context(request) -> dict:
    """The index's extra context: ``home``, what this user may see of the figures."""
    user = request.user
    ids = bu_ids_for(user)
    ids = sorted(
        BusinessUnit.objects.values_list("id", flat=True)
        if ids is None
        else ids.values_list("business_unit_id", flat=True)
    )
    if not ids:
        return {}
    key = "pcsms:home:" + ",".join(map(str, ids))
    figures = cache.get(key)
    if figures is None:
        figures = _figures(ids)
        cache.set(key, figures, HOME_CACHE_SECONDS)
    may = user.has_perm
    alerts = []
    for alert in figures["alerts"]:
        permission, page = ALERT_PAGE[alert["kind"]]
        if may(permission):
            alerts.append({**alert, "url": page(alert["id"])})
    shown = {
        "alerts": alerts,
        "several_bus": len(ids) > 1,
        "setup_url": _setup_url() if may("skills.add_skill") else None,
    }
    if may("skills.view_skill"):
        shown["skills"] = figures["skills"]
        shown["has_skills"] = figures["has_skills"]
    if may("messaging.view_outboundmessage"):
        shown.update(
            texts_today=figures["texts_today"],
            per_hour=figures["per_hour"],
            peak=figures["peak"],
            chart_width=figures["chart_width"],
            zone=figures["zone"],
            texts_url=_url("messaging_outboundmessage_changelist"),
        )
    if may("dnc.view_dncentry"):
        shown["opt_outs_today"] = figures["opt_outs_today"]
        shown["opt_outs_url"] = _url("dnc_dncentry_changelist")
    if may("messaging.view_inboundmessage"):
        shown["to_review"] = figures["to_review"]
        shown["review_url"] = _url(
            "messaging_inboundmessage_changelist", query={"review__exact": "pending"}
        )
    if may("skills.view_uploadjob"):
        shown["imports"] = figures["imports"]
    return {"home": shown}
