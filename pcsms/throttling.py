"""The page a locked-out login sees (django-axes, configured in ``pcsms/settings.py``).

django-axes counts failed admin logins per user name and address; at ``AXES_FAILURE_LIMIT`` it
refuses that pair, even with the right password, until ``AXES_COOLOFF_MINUTES`` have passed
without another try or an administrator lifts the lockout (``manage.py axes_reset``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def lockout_response(
    request: HttpRequest, original_response=None, credentials: dict | None = None
) -> HttpResponse:
    """429 with a page that says how long the lockout lasts and who can lift it."""
    context = {
        **admin.site.each_context(request),
        "title": "Account locked",
        "username": (credentials or {}).get("username", ""),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": settings.AXES_COOLOFF_MINUTES,
    }
    response = TemplateResponse(request, "axes/lockout.html", context, status=429)
    # AxesMiddleware returns this after the view has run: nothing else will render it.
    return response.render()
