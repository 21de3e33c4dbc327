"""The hardened admin: login throttling, the deployment check, idle sessions, CSRF on every
form, the upload size limit (docs/security.md, "The admin site")."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.resolvers import RegexPattern

from dnc.models import DncEntry
from messaging.backends.twilio import compute_signature
from messaging.models import MessageStatus
from messaging.urls import TRACKING_WEBHOOKS
from pcsms.files import MB
from skills.models import UploadJob
from tests.factories import (
    CallingListFactory,
    DncGroupFactory,
    OutboundMessageFactory,
    SmsRegistrationFactory,
    TransportCodeFactory,
)

ROOT = Path(__file__).resolve().parent.parent
LOGIN = "/admin/login/"

# --- Login throttling (django-axes) ------------------------------------------------------------


def _log_in(client, username: str, password: str):
    return client.post(
        f"{LOGIN}?next=/admin/", {"username": username, "password": password, "next": "/admin/"}
    )


def test_repeated_wrong_passwords_lock_the_login_until_an_administrator_resets_it(
    client, staff_member, superuser
):
    limit = settings.AXES_FAILURE_LIMIT
    assert limit >= 2
    for _ in range(limit - 1):
        refused = _log_in(client, "operator", "wrong")
        assert refused.status_code == 200  # the login form again, with its error
        assert "Please enter the correct username and password" in refused.content.decode()

    locked = _log_in(client, "operator", "wrong")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Account locked" in page and f"{limit} failed logins" in page
    assert f"for {settings.AXES_COOLOFF_MINUTES} minutes" in page
    assert "Contact a pcsms administrator" in page

    # Even the right password is refused now, and no session is opened.
    assert _log_in(client, "operator", "pw").status_code == 429
    assert client.get("/admin/").status_code == 302
    # Another user behind the same address is not locked out.
    assert _log_in(Client(), "root", "pw").status_code == 302

    # A superuser sees the lockout in the admin; staff users do not see the logs at all.
    admin_client = Client()
    admin_client.force_login(superuser)
    changelist = admin_client.get(reverse("admin:axes_accessattempt_changelist"))
    assert changelist.status_code == 200
    assert "operator" in changelist.content.decode()
    attempt = AccessAttempt.objects.get(username="operator")
    assert (attempt.ip_address, attempt.failures_since_start) == ("127.0.0.1", limit + 1)
    staff_client = Client()
    staff_client.force_login(staff_member)
    for name in ("accessattempt", "accesslog", "accessfailurelog"):
        assert staff_client.get(reverse(f"admin:axes_{name}_changelist")).status_code == 403

    call_command("axes_reset", verbosity=0)
    assert not AccessAttempt.objects.exists()
    welcome = _log_in(client, "operator", "pw")
    assert welcome.status_code == 302 and welcome["Location"] == "/admin/"


def test_a_good_login_forgets_earlier_typos(client, staff_member):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _log_in(client, "operator", "wrong")
    assert _log_in(client, "operator", "pw").status_code == 302
    client.logout()
    assert _log_in(client, "operator", "wrong").status_code == 200  # not locked by one more


def test_the_lockout_is_per_username_and_address(client, staff_member):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _log_in(client, "operator", "wrong")
    assert _log_in(client, "operator", "pw").status_code == 429
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert _log_in(elsewhere, "operator", "pw").status_code == 302

    call_command("axes_reset_username", "operator", verbosity=0)
    assert _log_in(client, "operator", "pw").status_code == 302


# --- The deployment check ----------------------------------------------------------------------


def _check_deploy(**env: str) -> subprocess.CompletedProcess:
    drop = {"DEBUG", "SECRET_KEY", "BEHIND_TLS_PROXY", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE"}
    clean = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SECURE_")}
    clean.update(env, DJANGO_SETTINGS_MODULE="pcsms.settings")
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "sms.example.com",
}


def test_deploy_check_behind_the_tls_proxy_reports_nothing():
    result = _check_deploy(**PRODUCTION, BEHIND_TLS_PROXY="true")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "System check identified no issues" in output


def test_deploy_check_without_the_proxy_setting_names_what_is_missing():
    result = _check_deploy(**PRODUCTION)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "WARNINGS" in output
    for check in ("W004", "W008", "W012", "W016"):  # HSTS, https redirect, secure cookies
        assert f"security.{check}" in output


@pytest.fixture
def behind_tls_proxy(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["sms.example.com"]


def test_behind_the_proxy_plain_http_is_redirected_to_https(client, behind_tls_proxy):
    response = client.get("/admin/login/", headers={"Host": "sms.example.com"})
    assert response.status_code == 301
    assert response["Location"] == "https://sms.example.com/admin/login/"


def test_behind_the_proxy_a_signed_carrier_callback_is_not_redirected(
    client, behind_tls_proxy, settings, bu
):
    settings.TWILIO_ACCOUNT_SID = "AC" + "a" * 32
    settings.TWILIO_AUTH_TOKEN = token = "test-auth-token"
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    code = TransportCodeFactory(business_unit=bu, number="+14155550100")
    registration = SmsRegistrationFactory(business_unit=bu, transport_code=code)
    message = OutboundMessageFactory(
        business_unit=bu,
        registration=registration,
        to="+13125550123",
        status=MessageStatus.SENT,
        carrier_sid="SM" + "1f" * 16,
    )
    params = {
        "MessageSid": message.carrier_sid,
        "MessageStatus": "delivered",
        "AccountSid": settings.TWILIO_ACCOUNT_SID,
        "From": "+14155550100",
        "To": "+13125550123",
    }
    path = reverse("messaging:twilio-status")
    response = client.post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={
            "X-Twilio-Signature": compute_signature(
                "https://sms.example.com" + path, params, token
            ),
            "X-Forwarded-Proto": "https",
            "Host": "sms.example.com",
        },
    )
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


# --- Idle sessions -----------------------------------------------------------------------------


def test_an_admin_session_ends_after_the_idle_time_not_while_in_use(client, superuser):
    assert settings.SESSION_SAVE_EVERY_REQUEST
    idle = dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    minute = dt.timedelta(minutes=1)
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), tick=False) as clock:
        client.force_login(superuser)
        # Three requests, each just inside the idle time: together well past it.
        for _ in range(3):
            clock.shift(idle - minute)
            assert client.get("/admin/").status_code == 200
        clock.shift(idle + minute)
        response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


# --- CSRF on every form ------------------------------------------------------------------------

# The only views that accept a POST without Django's CSRF token: servers call them, not
# browsers, and each authenticates its caller itself (docs/security.md, "The public endpoints").
CSRF_EXEMPT = {
    ("messaging", "twilio-status"),
    ("messaging", "twilio-inbound"),
    ("messaging", "email-unsubscribe"),  # its signed link; RFC 8058's one-click POST
    (None, "xs_records"),
} | {
    # The ESPs' tracking webhooks, each verified by anymail (tests/test_email_channel.py).
    ("anymail", pattern.name)
    for pattern in TRACKING_WEBHOOKS
}

_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<\w+>([^()]*)\)")


def _route(pattern) -> str:
    """A path the pattern matches: every parameter filled with a plausible value."""
    text = str(pattern)
    if isinstance(pattern, RegexPattern):
        text = text.removeprefix("^").removesuffix("$")
        return _REGEX_GROUP.sub(
            lambda m: m.group(1).split("|")[0] if "|" in m.group(1) else "1", text
        )
    return _ROUTE_PARAM.sub(lambda m: "1", text)


def _views(resolver=None, prefix="/", namespace=None):
    """(path, pattern, namespace) for every view of the whole URL configuration."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(
                pattern, prefix + _route(pattern.pattern), pattern.namespace or namespace
            )
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + _route(pattern.pattern), pattern, namespace


def test_the_only_csrf_exempt_views_are_the_public_endpoints():
    exempt = {
        (namespace, pattern.name)
        for _, pattern, namespace in _views()
        if getattr(pattern.callback, "csrf_exempt", False)
    }
    assert exempt == CSRF_EXEMPT
    for namespace, name in CSRF_EXEMPT:
        kwargs = {"skill_id": 1} if name == "xs_records" else None
        kwargs = {"token": "x"} if name == "email-unsubscribe" else kwargs
        full = "messaging:anymail" if namespace == "anymail" else namespace  # included there
        url = reverse(f"{full}:{name}" if full else name, kwargs=kwargs)
        assert not url.startswith("/admin/"), url
        if namespace == "anymail":
            assert url.startswith("/anymail/") and url.endswith("/tracking/"), url


def test_every_other_view_refuses_a_post_without_the_csrf_token(superuser):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    walked = []
    for path, pattern, namespace in _views():
        if getattr(pattern.callback, "csrf_exempt", False):
            continue
        assert resolve(path).func == pattern.callback, path
        response = client.post(path, {"name": "x"})
        assert response.status_code == 403, path
        assert "CSRF verification failed" in response.content.decode(), path
        walked.append((namespace, pattern.name))
    assert len([w for w in walked if w[0] == "admin"]) > 100  # every model admin's pages
    assert ("admin", "dnc_dncgroup_import") in walked
    assert ("admin", "skills_uploadjob_add") in walked

    # With the token the same kind of POST gets through to the form.
    add_url = reverse("admin:pcsms_businessunit_add")
    client.get(add_url)
    response = client.post(
        add_url, {"name": "", "csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors


# --- Upload size limit -------------------------------------------------------------------------


def _csv(size: int) -> bytes:
    """A calling list of exactly ``size`` bytes: whole rows, then blank lines to fill."""
    header = b"ExternalId,PhoneNumber\n"
    row = b"P-0000001,(312) 555-0123\n"
    body = header + row * ((size - len(header)) // len(row))
    return body + b"\n" * (size - len(body))


def _upload_list(client, calling_list, name: str, data: bytes):
    return client.post(
        reverse("admin:skills_uploadjob_add"),
        {
            "calling_list": calling_list.pk,
            "file": SimpleUploadedFile(name, data, content_type="text/csv"),
            "mode": "append",
            "no_zone_policy": "reject",
            "default_time_zone": "",
            "expires_on": "",
        },
    )


@pytest.fixture
def operator(client, staff_member):
    client.force_login(staff_member)
    return client


def test_a_calling_list_over_the_limit_is_refused_with_both_sizes(operator, bu, settings):
    settings.MAX_UPLOAD_MB = 1
    calling_list = CallingListFactory(business_unit=bu, name="Patients")
    response = _upload_list(operator, calling_list, "list.csv", _csv(MB * 3 // 2))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["file"] == [
        "list.csv is 1.5 MB; the largest file accepted is 1 MB. Split it into smaller files "
        "and upload them one after the other."
    ]
    assert not UploadJob.objects.exists()

    accepted = _upload_list(operator, calling_list, "list.csv", _csv(MB - 100))
    assert accepted.status_code == 302 and UploadJob.objects.count() == 1


def test_a_dnc_file_over_the_limit_is_refused_and_nothing_imported(operator, bu, settings):
    settings.MAX_UPLOAD_MB = 1
    group = DncGroupFactory(business_unit=bu, name="Do not text")
    url = reverse("admin:dnc_dncgroup_import", args=[group.pk])
    data = b"Phone\n" + b"(312) 555-0123\n" * (MB // 15 + 1000)
    response = operator.post(url, {"file": SimpleUploadedFile("dnc.csv", data)})
    assert response.status_code == 200
    (error,) = response.context["form"].errors["file"]
    assert error.startswith("dnc.csv is 1.1 MB; the largest file accepted is 1 MB.")
    assert not DncEntry.objects.exists()


def test_a_20_mb_calling_list_uploads_under_the_default_limits(operator, bu):
    # DATA_UPLOAD_MAX_MEMORY_SIZE counts the form's other fields, not the file.
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < 20 * MB <= settings.MAX_UPLOAD_MB * MB
    calling_list = CallingListFactory(business_unit=bu, name="Patients")
    response = _upload_list(operator, calling_list, "big.csv", _csv(20 * MB))
    assert response.status_code == 302, response.context["adminform"].form.errors
    job = UploadJob.objects.get()
    assert response["Location"] == reverse("admin:skills_uploadjob_mapping", args=[job.pk])
    assert job.file.size >= 20 * MB
