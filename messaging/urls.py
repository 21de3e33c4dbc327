"""The carrier callback URLs (``messaging.views``; the sender gives Twilio the status one), the
email unsubscribe link and the ESPs' tracking webhooks."""

from anymail import urls as anymail_urls
from django.urls import URLPattern, include, path

from messaging import email_views, views
from messaging.emails import UNSUBSCRIBE_PATH
from messaging.outbox import STATUS_CALLBACK_PATH

app_name = "messaging"

TRACKING_WEBHOOKS = [
    URLPattern(pattern.pattern, email_views.esp_webhook(pattern.callback), name=pattern.name)
    for pattern in anymail_urls.urlpatterns
    if (pattern.name or "").endswith("_tracking_webhook")
]

urlpatterns = [
    path(STATUS_CALLBACK_PATH.lstrip("/"), views.twilio_status, name="twilio-status"),
    path("sms/twilio/inbound/", views.twilio_inbound, name="twilio-inbound"),
    path(
        f"{UNSUBSCRIBE_PATH.lstrip('/')}<str:token>/",
        email_views.unsubscribe,
        name="email-unsubscribe",
    ),
    # The ESPs' signed tracking webhooks (anymail verifies them, then sends its tracking
    # signal, which messaging.email_services.on_tracking receives): /anymail/<esp>/tracking/.
    # Its inbound-mail webhooks are left out: pcsms reads no replies to its email.
    path("anymail/", include((TRACKING_WEBHOOKS, "anymail"))),
]
