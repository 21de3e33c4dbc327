"""WSGI entry point (gunicorn, uWSGI).

The carrier's webhooks (``/sms/twilio/...``: a status callback or two for every text sent) skip
the middleware, which is there for people using the admin: sessions, authentication, messages,
CSRF (the webhooks are exempt), clickjacking and security headers. They are checked by their
signature instead (``messaging.views``). ``/healthz`` (``pcsms.views``) skips it too, for load
balancers that check a server by its address over plain HTTP. Everything else, and the request
signals that look after database connections, is Django's usual handler.
"""

import os

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pcsms.settings")

WEBHOOK_PREFIX = "/sms/twilio/"
HEALTH_PATH = "/healthz"


class WebhookHandler(WSGIHandler):
    """Django's WSGI handler with no middleware: URL resolution, the view, the signals."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response)


django_application = get_wsgi_application()
webhook_application = WebhookHandler()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith(WEBHOOK_PREFIX) or path == HEALTH_PATH:
        return webhook_application(environ, start_response)
    return django_application(environ, start_response)
