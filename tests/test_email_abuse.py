"""The email channel's public endpoints refuse what they must, and change nothing when they do:
the ESPs' tracking webhooks without their signature or basic-auth secret, and unsubscribe
links that were forged, altered or point at no email."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from dnc.models import DncEntry
from messaging.emails import unsubscribe_token
from messaging.models import MessageEvent, OutboundMessage
from messaging.urls import TRACKING_WEBHOOKS
from tests.factories import OutboundMessageFactory

pytestmark = pytest.mark.django_db

WEBHOOKS = sorted(pattern.name for pattern in TRACKING_WEBHOOKS)


@pytest.fixture(autouse=True)
def _secrets(settings):
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": "pcsms:webhook-secret",
        "MAILGUN_WEBHOOK_SIGNING_KEY": "signing-key",
        "POSTAL_WEBHOOK_KEY": "not-a-key",
    }


def test_every_esp_tracking_webhook_is_served():
    assert "mailgun_tracking_webhook" in WEBHOOKS
    assert "sendgrid_tracking_webhook" in WEBHOOKS
    assert not [name for name in WEBHOOKS if "inbound" in name]


def test_the_webhook_of_an_esp_not_set_up_answers_404(settings):
    settings.ANYMAIL = {}
    url = reverse("messaging:anymail:mailgun_tracking_webhook")
    assert Client().post(url, "{}", content_type="application/json").status_code == 404


@pytest.mark.parametrize("name", WEBHOOKS)
def test_a_tracking_webhook_without_its_secret_is_refused(name, bu):
    message = OutboundMessageFactory(business_unit=bu, carrier_sid="<m1@mail.example.com>")
    url = reverse(f"messaging:anymail:{name}")
    payload = '{"event-data": {"event": "failed", "message": {"headers": {"message-id": "m1"}}}}'
    response = Client().post(url, payload, content_type="application/json")
    # 400/403: the signature or secret does not verify; 404: that ESP is not set up here.
    assert response.status_code in (400, 403, 404), (name, response.status_code)
    message.refresh_from_db()
    assert message.status == "queued"
    assert not MessageEvent.objects.filter(message=message).exists()
    assert not DncEntry.objects.exists()


def test_a_forged_or_altered_unsubscribe_link_changes_nothing(bu):
    message = OutboundMessageFactory(business_unit=bu, to="ada@example.com")
    client = Client()
    for token in ("forged", unsubscribe_token(message.id)[:-2] + "xx", unsubscribe_token(10**9)):
        url = reverse("messaging:email-unsubscribe", kwargs={"token": token})
        response = client.post(url, {"List-Unsubscribe": "One-Click"})
        assert response.status_code == 404
        assert "not valid" in response.content.decode()
    # A real token of a text (not an email) is no unsubscribe link either.
    url = reverse("messaging:email-unsubscribe", kwargs={"token": unsubscribe_token(message.id)})
    assert client.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert not DncEntry.objects.exists()
    assert OutboundMessage.objects.get(pk=message.pk).status == "queued"
