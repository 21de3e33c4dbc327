"""The carrier callback URLs (``messaging.views``); the sender gives Twilio the status one."""

from django.urls import path

from messaging import views
from messaging.outbox import STATUS_CALLBACK_PATH

app_name = "messaging"

urlpatterns = [
    path(STATUS_CALLBACK_PATH.lstrip("/"), views.twilio_status, name="twilio-status"),
    path("sms/twilio/inbound/", views.twilio_inbound, name="twilio-inbound"),
]
