"""``/healthz``: whether this web process can serve, for a load balancer's health check.

It answers 200 when the database takes a query and the django-q2 broker (the database or Redis)
answers, 503 naming what failed otherwise; the JSON also gives the tasks waiting in the broker.
It reads nothing of any business unit, so it needs no login. ``pcsms.wsgi`` serves it without
the middleware, so that a check addressed to the server's IP (a Host header no ALLOWED_HOSTS
names) or over plain HTTP behind the TLS proxy gets the answer, not a 400 or a redirect.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from django_q.brokers import get_broker

logger = logging.getLogger(__name__)


@require_GET
def healthz(request):
    checks: dict[str, str] = {}
    queued = None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure is the answer, not an error page
        logger.warning("Health check: the database failed: %s", exc)
        checks["database"] = f"failed: {type(exc).__name__}"
    try:
        broker = get_broker()
        broker.ping()
        queued = broker.queue_size()
        checks["broker"] = "ok"
    except Exception as exc:
        logger.warning("Health check: the broker failed: %s", exc)
        checks["broker"] = f"failed: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "failed", **checks, "queued_tasks": queued}
    return JsonResponse(body, status=200 if healthy else 503)
