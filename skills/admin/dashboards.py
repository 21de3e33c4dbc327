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


def dashboard_data(key: str, build, obj) -> dict:
    """A dashboard's figures, computed at most once per poll interval for all its viewers.

    On a list of a million records they take seconds of database work (measured: 1.7-7.9 s,
    most of it counting the records still waiting): the interval grows to ten times the time
    they took, and the page's script waits that long before it asks again.
    """
    cache_key = f"pcsms:dashboard:{key}"
    data = cache.get(cache_key)
    if data is None:
        started = time.monotonic()
        data = build(obj).as_json()
        took = time.monotonic() - started
        data["next_seconds"] = max(DASHBOARD_POLL_SECONDS, math.ceil(10 * took))
        cache.set(cache_key, data, data["next_seconds"] - 1)
    return data


def dashboard_page(model_admin, request, obj, dashboard, kind: str):
    """The live dashboard of a skill or a campaign (static/skills/dashboard.js polls its data)."""
    opts = model_admin.opts
    prefix = f"admin:{opts.app_label}_{opts.model_name}"
    data = dashboard.as_json()
    data["next_seconds"] = DASHBOARD_POLL_SECONDS
    peak = max(dashboard.per_minute) or 1
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": f"Dashboard: {obj}",
        "object": obj,
        "kind": kind,
        "dashboard": dashboard,
        "data": data,
        "bars": [
            {
                "x": 10 * i,
                "y": 100 - round(100 * n / peak),
                "height": round(100 * n / peak),
                "count": n,
            }
            for i, n in enumerate(dashboard.per_minute)
        ],
        "peak": peak,
        "data_url": reverse(f"{prefix}_dashboard_data", args=[obj.pk]),
        "change_url": reverse(f"{prefix}_change", args=[obj.pk]),
    }
    return TemplateResponse(request, "admin/skills/dashboard.html", context)
