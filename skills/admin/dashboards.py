"""The skill and campaign dashboards: pages that poll a cached JSON snapshot."""

from __future__ import annotations

import math
import time

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
)
from django.template.response import TemplateResponse
from django.urls import reverse

from messaging.models import Channel


def viewable(model_admin, request, pk):
    """The object of a custom admin page: one of the user's business units (else 404), which
    the user may view (else 403)."""
    obj = model_admin.get_object(request, str(pk))  # scoped to the user's business units
    if obj is None:
        raise Http404("Not found in your business units.")
    if not model_admin.has_view_permission(request, obj):
        raise PermissionDenied
    return obj


DASHBOARD_POLL_SECONDS = 5


def sent_noun(obj) -> str:
    """What a dashboard counts: a skill's texts or emails; a campaign's "messages" when its
    skills send both."""
    if hasattr(obj, "channel"):
        return "emails" if obj.channel == Channel.EMAIL else "texts"
    channels = set(obj.skills.values_list("channel", flat=True))
    if channels == {Channel.EMAIL}:
        return "emails"
    return "messages" if Channel.EMAIL in channels else "texts"


def dashboard_data(key: str, build, obj, extra=None) -> dict:
    """A dashboard's figures, computed at most once per poll interval for all its viewers.

    On a list of a million records they take seconds of database work (measured: 1.7-7.9 s,
    most of it counting the records still waiting): the interval grows to ten times the time
    they took, and the page's script waits that long before it asks again.
       ``extra(obj)`` adds keys of the page's own (the skill's "why" panel) to the figures.
    """
    cache_key = f"pcsms:dashboard:{key}"
    data = cache.get(cache_key)
    if data is None:
        started = time.monotonic()
        data = build(obj).as_json()
        if extra is not None:
            data.update(extra(obj))
        took = time.monotonic() - started
        data["next_seconds"] = max(DASHBOARD_POLL_SECONDS, math.ceil(10 * took))
        cache.set(cache_key, data, data["next_seconds"] - 1)
    return data


def dashboard_page(model_admin, request, obj, dashboard, kind: str, extra=None):
    """The live dashboard of a skill or a campaign (static/skills/dashboard.js polls its data)."""
    opts = model_admin.opts
    prefix = f"admin:{opts.app_label}_{opts.model_name}"
    data = dashboard.as_json()
    if extra is not None:
        data.update(extra(obj))
    data["next_seconds"] = DASHBOARD_POLL_SECONDS
    peak = max(dashboard.per_minute) or 1
    outcomes = data["outcomes_over_time"] or {"labels": [], "series": []}
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": f"Dashboard: {obj}",
        "object": obj,
        "kind": kind,
        "dashboard": dashboard,
        "data": data,
        "noun": sent_noun(obj),
        # The skill page's "why" panel (extra=skills.admin.why.dashboard_why).
        "why": {
            "headline": data["why_headline"],
            "sending": data["why_sending"],
            "items": data["why"],
        }
        if "why" in data
        else None,
        # The charts' figures as tables too: read without JavaScript (static/skills/dashboard.js
        # draws the charts from the same JSON, and keeps the tables up to date).
        "per_minute_rows": list(zip(data["per_minute_labels"], dashboard.per_minute, strict=True)),
        "outcome_columns": [series["label"] for series in outcomes["series"]],
        "outcome_rows": [
            (label, [series["counts"][i] for series in outcomes["series"]])
            for i, label in enumerate(outcomes["labels"])
        ],
        "waiting_rows": data["waiting_curve"]["history"],
        "peak": peak,
        "data_url": reverse(f"{prefix}_dashboard_data", args=[obj.pk]),
        "change_url": reverse(f"{prefix}_change", args=[obj.pk]),
    }
    return TemplateResponse(request, "admin/skills/dashboard.html", context)


CHART_WIDTH = 600  # the forecast chart's viewBox width; its bars share it


def forecast_chart(forecast, zone) -> dict:
    """The bars of a forecast's texts per hour, for an SVG 100 high: one bar an hour, the
    day's first hour marked with its date (in ``zone``)."""
    hours = forecast.per_hour
    if not hours:
        return {"bars": [], "peak": 0, "width": 0, "labels": []}
    peak = max(n for _h, n in hours) or 1
    width = CHART_WIDTH / len(hours)
    bars, labels = [], []
    for i, (hour, n) in enumerate(hours):
        local = hour.astimezone(zone)
        height = round(100 * n / peak, 2)
        bars.append(
            {
                "x": round(i * width, 2),
                "y": round(100 - height, 2),
                "width": max(round(width * 0.8, 2), 0.5),
                "height": height,
                "count": n,
                "label": f"{local:%a %d %b %H:00}",
            }
        )
        if i == 0 or local.hour == 0:
            labels.append({"x": round(i * width, 2), "text": f"{local:%a %d %b}"})
    return {"bars": bars, "peak": peak, "width": CHART_WIDTH, "labels": labels[:14]}
