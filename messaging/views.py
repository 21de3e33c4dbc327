"""The carrier callback URLs: Twilio's status callback and its inbound-message webhook.

Both accept only requests signed with ``X-Twilio-Signature`` (HMAC-SHA1 of the URL Twilio
requested plus the sorted POST parameters, keyed with the account's auth token):

* the token is the one of **the account that sent the message** (the registration's carrier
  account, see :func:`messaging.backends.twilio.credentials_for`): for a status callback, the
  message found by ``MessageSid`` (or by our id, ``?m=`` in the StatusCallback URL); for an
  inbound text, the registration of the number it was sent to. Only when the message or number
  is unknown does the ``AccountSid`` parameter pick a configured account;
* the URL is the one Twilio requested. Behind a proxy Django sees another scheme or host, so two
  are tried: ``PUBLIC_BASE_URL`` + the path and query Django received (what we gave Twilio), and
  Django's own ``build_absolute_uri()`` (right when the proxy passes Host and
  ``X-Forwarded-Proto`` and ``BEHIND_TLS_PROXY`` is on).

Unsigned or wrongly signed requests get 403 and change nothing. So does a request whose form
cannot be read, refused before its signature is checked: not the urlencoded form Twilio posts
(415), a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413) or more than
``DATA_UPLOAD_MAX_NUMBER_FIELDS`` parameters (400). Everything else is answered 200 with TwiML
(even an unknown message or number, logged, so the carrier stops retrying); replays are harmless
because ``message_record_status`` only moves forward and ``inbound_receive`` acts once per
carrier id.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import operator
import os
import re
from collections.abc import Iterable
from functools import reduce

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    ImproperlyConfigured,
    RequestDataTooBig,
    TooManyFieldsSent,
)
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from messaging.backends.twilio import credentials_for, validate_signature
from messaging.models import OutboundMessage, SmsRegistration
from messaging.services import inbound_receive, message_record_status

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
_ACCOUNT_ENV_RE = re.compile(r"^TWILIO_([A-Z0-9_]+)_ACCOUNT_SID$")


# --- signatures --------------------------------------------------------------------------------


def _candidate_urls(request: HttpRequest):
    """PUBLIC_BASE_URL + path and query first, then Django's own absolute URL (lazily)."""
    tried = set()
    base = (getattr(settings, "PUBLIC_BASE_URL", "") or "").rstrip("/")
    if base:
        tried.add(base + request.get_full_path())
        yield base + request.get_full_path()
    with contextlib.suppress(DisallowedHost):  # a Host outside ALLOWED_HOSTS
        url = request.build_absolute_uri()
        if url not in tried:
            yield url


def request_urls(request: HttpRequest) -> list[str]:
    """The URLs Twilio may have signed for this request (see the module docstring)."""
    return list(_candidate_urls(request))


def _auth_token(account: str) -> str:
    try:
        return credentials_for(account).auth_token
    except ImproperlyConfigured as exc:
        logger.error("Cannot check a Twilio signature: %s", exc)
        return ""


def single_token() -> str:
    """The auth token when the environment holds credentials of one Twilio account only.

    Then that account sent every message we can have sent (a registration naming an account
    without credentials cannot send at all), so its token is the one to check and the message
    need not be looked up first. ``""`` when several accounts are configured.
    """
    pairs = set()
    if settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN:
        pairs.add((settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN))
    for variable in os.environ:
        if not (variable.startswith("TWILIO_") and variable.endswith("_ACCOUNT_SID")):
            continue
        match = _ACCOUNT_ENV_RE.match(variable)
        value = os.environ[variable]
        token = os.environ.get(f"TWILIO_{match.group(1)}_AUTH_TOKEN", "") if match else ""
        if value and token:
            pairs.add((value, token))
    return next(iter(pairs))[1] if len(pairs) == 1 else ""


def configured_accounts() -> list[str]:
    """Every carrier account name that may have credentials: default, the registrations', and
    any ``TWILIO_<NAME>_ACCOUNT_SID`` in the environment."""
    names = ["default"]
    names += SmsRegistration.objects.values_list("carrier_account", flat=True).distinct()
    for variable in os.environ:
        match = _ACCOUNT_ENV_RE.match(variable)
        if match:
            names.append(match.group(1).lower())
    return list(dict.fromkeys(n for n in names if n))


def accounts_with_sid(account_sid: str) -> list[str]:
    """The configured accounts whose Account SID is ``account_sid`` (for unknown messages)."""
    if not account_sid:
        return []
    found = []
    for name in configured_accounts():
        try:
            credentials = credentials_for(name)
        except ImproperlyConfigured:
            continue
        if credentials.account_sid == account_sid:
            found.append(name)
    return found


def _signature(url: str, form, token: str) -> str:
    """Twilio's signature of ``url`` + ``form`` (as the SDK's ``compute_signature``)."""
    data = url + "".join(
        name + value for name in sorted(form) for value in sorted(set(form.getlist(name)))
    )
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def is_signed(request: HttpRequest, accounts: Iterable[str] = (), token: str = "") -> bool:
    """True if the request carries a valid signature by one of ``accounts`` (or ``token``)."""
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return False
    tokens = [token] if token else [_auth_token(account) for account in accounts]
    tokens = [t for t in tokens if t]
    # The public URL first: behind a proxy it is the one Twilio signed. Each URL as it stands
    # first (one HMAC: what a correct set-up always matches), then the SDK's check, which also
    # tries the URL with and without its port (Twilio signs either).
    urls = []
    for url in _candidate_urls(request) if signature.isascii() else ():
        urls.append(url)
        for t in tokens:
            if hmac.compare_digest(_signature(url, request.POST, t), signature):
                return True
    for url in urls or _candidate_urls(request):
        if any(validate_signature(url, request.POST, signature, t) for t in tokens):
            return True
    return False


def _forbidden(request: HttpRequest, what: str) -> HttpResponse:
    logger.warning(
        "Rejected %s: missing or invalid %s (URLs tried: %s)",
        what,
        SIGNATURE_HEADER,
        ", ".join(request_urls(request)),
    )
    return HttpResponseForbidden(
        f"Invalid or missing {SIGNATURE_HEADER}.", content_type="text/plain"
    )


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


def _unreadable(request: HttpRequest, what: str) -> HttpResponse | None:
    """The answer to a request whose form cannot be read, or ``None`` when it can.

    Read here once, so that the limits give a plain answer (not Django's generic 400 page, with an
    error logged for each) and nothing below meets a half-read request.
    """
    # Twilio posts a urlencoded form. A multipart body's files are not bound by
    # DATA_UPLOAD_MAX_MEMORY_SIZE: parsing one would stream it, of any size, to disk unsigned.
    if request.content_type != "application/x-www-form-urlencoded":
        logger.warning("Refused %s: Content-Type %r", what, request.content_type)
        return _plain(415, "Send the parameters as application/x-www-form-urlencoded.")
    try:
        request.GET, request.POST  # noqa: B018 (parsed for their limits)
    except RequestDataTooBig:
        logger.warning("Refused %s: body over DATA_UPLOAD_MAX_MEMORY_SIZE", what)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return _plain(413, f"The body is too large: larger than {limit:,} bytes.")
    except TooManyFieldsSent:
        logger.warning("Refused %s: over DATA_UPLOAD_MAX_NUMBER_FIELDS parameters", what)
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return _plain(400, f"Too many parameters: more than {limit:,}.")
    return None


def twiml(message: str = "") -> HttpResponse:
    """A TwiML answer: ``<Response/>``, or one ``<Message>`` replying to the sender."""
    inner = f"<Message>{escape(message)}</Message>" if message else ""
    return HttpResponse(
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>',
        content_type="text/xml; charset=utf-8",
    )


def _our_id(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) <= 18 else None


# --- views -------------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    """Twilio's StatusCallback: one carrier status report for one outbound message."""
    if refused := _unreadable(request, "status callback"):
        return refused
    form = request.POST
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    message_id = _our_id(request.GET.get("m"))
    token = single_token()
    if token:
        signed = is_signed(request, token=token)
    else:
        # The account that sent it: by carrier id, else (a callback faster than the sender's
        # bookkeeping) by our id.
        lookups = [Q(carrier_sid=sid)] if sid else []
        if message_id is not None:
            lookups.append(Q(pk=message_id))
        found = {}
        if lookups:
            rows = OutboundMessage.objects.filter(reduce(operator.or_, lookups)).order_by()
            found = dict(rows.values_list("carrier_sid", "registration__carrier_account")[:2])
        account = found.get(sid) or next(iter(found.values()), None)
        accounts = [account] if account else accounts_with_sid(form.get("AccountSid", ""))
        signed = is_signed(request, accounts)
    if not signed:
        return _forbidden(request, f"status callback for {sid or '(no MessageSid)'}")
    if not sid or not status:
        return HttpResponseBadRequest("MessageSid and MessageStatus are required.")
    message_record_status(
        carrier_sid=sid,
        carrier_status=status,
        error_code=form.get("ErrorCode", "") or "",
        error_text=form.get("ErrorMessage", "") or "",
        message_id=message_id,
    )
    return twiml()


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """Twilio's incoming-message webhook: a text sent to one of our numbers.

    Stored once per carrier id and classified (``messaging.services.inbound_classify``); the
    reply it prepares (opt-out or opt-in confirmation, HELP) is the TwiML ``<Message>``.
    """
    if refused := _unreadable(request, "inbound text"):
        return refused
    form = request.POST
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    to_number = form.get("To", "")
    token = single_token()
    account = None
    if not token and to_number:
        account = (
            SmsRegistration.objects.filter(transport_code__number=to_number)
            .order_by("-is_active", "id")  # the registration inbound_receive picks: active first
            .values_list("carrier_account", flat=True)
            .first()
        )
    accounts = [account] if account else accounts_with_sid(form.get("AccountSid", ""))
    if not is_signed(request, accounts, token):
        return _forbidden(request, f"inbound text {sid or '(no MessageSid)'}")
    if not sid or not to_number or not form.get("From"):
        return HttpResponseBadRequest("MessageSid, From and To are required.")
    inbound = inbound_receive(
        carrier_sid=sid,
        from_number=form.get("From", ""),
        to_number=to_number,
        body=form.get("Body", ""),
        opt_out_type=form.get("OptOutType", ""),
    )
    return twiml(getattr(inbound, "reply_text", "") if inbound is not None else "")
