"""The recipient's side of an email: the unsubscribe link (docs/email.md).

``/email/unsubscribe/<token>/``, the token the message's signed id (messaging/emails.py):

* POST unsubscribes at once, answering 200 with a short page. It is both RFC 8058's one-click
  request (``List-Unsubscribe=One-Click`` in the body, from the mailbox provider, no cookies,
  no CSRF token: the signature is what proves the link) and the confirmation page's button.
* GET shows that page and changes nothing: mail scanners and link previews fetch every link
  of a message, and a GET that unsubscribed would unsubscribe people who never asked.

A token that does not verify, or names no email, gets 404 with a page that says so and
changes nothing. Repeating the POST is harmless: the address is unsubscribed once.

The ESPs' tracking webhooks are anymail's own views (they verify the ESP's signature and the
basic-auth ``ANYMAIL_WEBHOOK_SECRET``), each wrapped by :func:`esp_webhook`.
"""

from __future__ import annotations

import functools

from anymail.exceptions import AnymailConfigurationError, AnymailImproperlyInstalled
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from messaging.email_services import email_messages, email_unsubscribe
from messaging.emails import unsubscribe_message_id

ONE_CLICK = "List-Unsubscribe=One-Click"


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    message_id = unsubscribe_message_id(token)
    message = None
    if message_id is not None:
        found = email_messages().select_related("business_unit", "registration")
        message = found.filter(id=message_id).first()
    if message is None:
        return render(request, "messaging/unsubscribe.html", {"invalid": True}, status=404)
    bu = message.business_unit
    context = {
        "address": message.to,
        "sender": bu.business_name or bu.name,
        "postal_address": " ".join(bu.postal_address.split()),
    }
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        opt_out = email_unsubscribe(message=message, how="one-click" if one_click else "page")
        context.update(done=True, already=opt_out.already_opted_out)
    return render(request, "messaging/unsubscribe.html", context)


def esp_webhook(view):
    """An anymail webhook view that answers 404 while its ESP is not set up (no signing key, or
    its package not installed) instead of failing with a server error: only the ESPs a site
    configured receive events."""

    @functools.wraps(view)  # keeps csrf_exempt: the ESP's signature is the proof
    def webhook(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except (AnymailConfigurationError, AnymailImproperlyInstalled):
            raise Http404("This email provider's webhook is not configured.") from None

    return webhook
