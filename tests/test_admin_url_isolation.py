"""Every admin URL, walked with another business unit's objects and ids, by GET and by POST.

The list of URLs is built from the admin registry and the URL resolver, so a page added later
is covered without editing this file. A staff user of BU "Acme" who holds every model
permission requests each URL with the ids of BU "Globex"'s objects in the path, in the query
string, in a form body and in a JSON body, runs every admin action on Globex's rows and asks
every autocomplete for them. Then:

* no request naming a Globex object in its path answers 200 (a redirect is followed to its end);
* no answer contains "Globex": every Globex row's name-like fields are renamed to include it,
  so a page or JSON answer that shows one of them, or the BU itself, fails;
* no Globex row is changed, created or deleted.

Pages that are left out are listed in ``EXCLUDED`` with the reason. The carrier webhooks and
the CRM endpoint (outside the admin) have their own abuse tests; ``NON_ADMIN_URLS`` names
them so that a new public URL fails here until it is covered too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver

from messaging.urls import TRACKING_WEBHOOKS
from pcsms.admin_base import ReferenceDataAdmin, SuperuserOnlyAdmin, TenantAdmin
from pcsms.models import BusinessUnit, Membership
from tests.test_admin_isolation import _tenant_models, make_in_bu

MARKER = "Globex"
User = get_user_model()

# Admin-site pages not walked, with the reason.
EXCLUDED = {
    "logout": "ends the requesting user's own session; it reads and writes no tenant data",
    None: "the admin's catch-all (any unknown admin URL): answers 404 or the login redirect",
}

# Public URLs outside the admin, and the tests that attack them.
NON_ADMIN_URLS = {
    "twilio-status": "tests/test_webhook_abuse.py",
    "twilio-inbound": "tests/test_webhook_abuse.py",
    "xs_records": "tests/test_xs_abuse.py",
    "healthz": "tests/test_health.py",
    "email-unsubscribe": "tests/test_email_abuse.py",
} | {pattern.name: "tests/test_email_abuse.py" for pattern in TRACKING_WEBHOOKS}

# Fields renamed to carry MARKER on every row of the other BU (only free-text names, so the
# pages that process these rows keep working).
_NAME_FIELDS = {
    "name",
    "username",
    "first_name",
    "last_name",
    "external_id",
    "business_name",
    "body",
    "description",
    "title",
    "label",
}
_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_REFUSED = {400, 403, 404, 405}


def _model_admins():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _label(item) -> str:
    return item[0]._meta.label


def _patterns(model_admin):
    """(route, name) for every URL pattern of a model admin, custom pages included."""
    for pattern in model_admin.get_urls():
        assert isinstance(pattern, URLPattern), f"nested URL include in {model_admin}"
        yield str(pattern.pattern), pattern.name


def _fill(route: str, object_id, extra: dict | None = None) -> str:
    """The route with ``object_id``/``pk`` set to ``object_id`` and any other part filled in."""

    def value(match):
        name = match.group("name")
        if extra and name in extra:
            return str(extra[name])
        if name in ("object_id", "pk"):
            return str(object_id)
        return "1" if match.group("converter") == "int" else "x"

    return _ROUTE_PARAM.sub(value, route)


def _bu_rows(model, bu):
    if model is User:
        return User.objects.filter(memberships__business_unit=bu).exclude(
            memberships__business_unit__in=BusinessUnit.objects.exclude(pk=bu.pk)
        )
    path = model.bu_path
    return model._default_manager.filter(**{path or "pk": bu.pk})


def _snapshot(bu) -> dict:
    """Every row of ``bu`` in every tenant model (and its own users), value by value."""
    found = {}
    for model in [*_tenant_models(), User]:
        rows = _bu_rows(model, bu).order_by("pk").values()
        found[model._meta.label] = [dict(row) for row in rows]
    return found


def _mark(bu) -> None:
    """Put MARKER into the name-like fields of every row of ``bu``."""
    for model in [*_tenant_models(), User]:
        fields = [
            f
            for f in model._meta.concrete_fields
            if f.name in _NAME_FIELDS
            and isinstance(f, models.CharField | models.TextField)
            and not f.choices
        ]
        for pk in _bu_rows(model, bu).values_list("pk", flat=True):
            changes = {}
            for field in fields:
                text = f"{MARKER}_{model._meta.model_name}_{pk}"
                changes[field.name] = text[: field.max_length] if field.max_length else text
            if changes:
                model._default_manager.filter(pk=pk).update(**changes)


def _hostile_params(theirs: dict, my_bu=None) -> dict:
    """Every name a view may read an id from, set to the other BU's object of that kind.

    With ``my_bu``, the business-unit ids are the user's own, so that a view which checks the
    BU first and then trusts the other ids it is given is caught too.
    """
    params = {"q": MARKER, "term": MARKER}
    for model, obj in theirs.items():
        target = my_bu if (model is BusinessUnit and my_bu is not None) else obj
        params[model._meta.model_name] = target.pk
        for field in model._meta.get_fields():
            if field.is_relation and field.many_to_one and field.related_model in theirs:
                related = field.related_model
                value = (
                    my_bu.pk
                    if related is BusinessUnit and my_bu is not None
                    else theirs[related].pk
                )
                params[field.name] = value
                params[f"{field.name}_id"] = value
                params[f"{field.name}__id__exact"] = value
    skill = next((obj for model, obj in theirs.items() if model._meta.model_name == "skill"), None)
    if skill is not None:
        params[f"priority_{skill.pk}"] = "1"  # the priorities page: priority_<skill id>
    return params


@pytest.fixture
def world(bu, other_bu, staff_member):
    """Acme's staff, one object of every tenant model in each BU, Globex's marked."""
    theirs = {BusinessUnit: other_bu, User: make_in_bu(User, other_bu)}
    mine = {BusinessUnit: bu}
    for model in _tenant_models():
        if model in (BusinessUnit,):
            continue
        mine[model] = make_in_bu(model, bu)
        theirs[model] = make_in_bu(model, other_bu)
    shared_user = make_in_bu(User, bu)
    Membership.objects.create(user=shared_user, business_unit=other_bu)
    _mark(other_bu)
    for obj in theirs.values():
        obj.refresh_from_db()
    return {
        "shared_user": shared_user,
        "mine": mine,
        "theirs": theirs,
        "params": [_hostile_params(theirs), _hostile_params(theirs, my_bu=bu)],
    }


def _requests(client, url: str, variants: list[dict]):
    """GET with the params, POST them as a form and as JSON: every answer, with its label."""
    for index, params in enumerate(variants):
        yield f"GET#{index}", client.get(url, params)
        yield f"POST form#{index}", client.post(url, params)
        body = json.dumps(params)
        yield f"POST json#{index}", client.post(url, body, content_type="application/json")


def _followed(client, response, limit: int = 3):
    """The answer at the end of a chain of redirects (a GET for each hop)."""
    while response.status_code in (301, 302, 303, 307, 308) and limit:
        response = client.get(response["Location"])
        limit -= 1
    return response


def _body(response) -> str:
    content = getattr(response, "content", b"")
    return content.decode(errors="replace") if isinstance(content, bytes) else ""


def _check_answer(client, what: str, response, *, names_their_object: bool, problems: list):
    final = _followed(client, response)
    if names_their_object and final.status_code not in _REFUSED:
        problems.append(f"{what}: answered {final.status_code} for the other BU's object")
    if MARKER in _body(final) or MARKER in _body(response):
        problems.append(f"{what}: the answer names the other BU ({MARKER})")


def _request_of(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


@pytest.mark.parametrize("item", _model_admins(), ids=_label)
def test_no_admin_url_of_a_model_reaches_another_bu(item, client, staff_member, other_bu, world):
    model, model_admin = item
    theirs = world["theirs"].get(model)
    shared = isinstance(model_admin, ReferenceDataAdmin | SuperuserOnlyAdmin)
    assert shared or isinstance(model_admin, TenantAdmin), model._meta.label
    object_id = theirs.pk if theirs is not None else 1
    prefix = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    before = _snapshot(other_bu)
    client.force_login(staff_member)
    problems: list[str] = []

    for route, name in _patterns(model_admin):
        names_object = bool(_ROUTE_PARAM.search(route))
        targets = [(object_id, names_object)]
        if model is User and names_object:
            # A user of both BUs is Acme's too: its pages may open, never showing Globex.
            targets.append((world["shared_user"].pk, False))
        for target, refused in targets:
            url = prefix + _fill(route, target)
            for method, response in _requests(client, url, world["params"]):
                _check_answer(
                    client,
                    f"{method} {url} ({name})",
                    response,
                    # Shared reference data is everyone's to read; superuser-only pages
                    # refuse everything.
                    names_their_object=refused and not isinstance(model_admin, ReferenceDataAdmin),
                    problems=problems,
                )
                client.force_login(staff_member)  # in case a page ended the session

    # Every action of the changelist, on the other BU's row (with the confirmation posted).
    request = _request_of(staff_member)
    if theirs is not None and not shared:
        for action in model_admin.get_actions(request):
            response = client.post(
                prefix,
                {"action": action, "_selected_action": [theirs.pk], "post": "yes"},
            )
            _check_answer(
                client, f"action {action}", response, names_their_object=False, problems=problems
            )

    # Every autocomplete this admin's forms use, asked for the other BU's rows by name.
    for field_name in model_admin.autocomplete_fields:
        response = client.get(
            "/admin/autocomplete/",
            {
                "app_label": model._meta.app_label,
                "model_name": model._meta.model_name,
                "field_name": field_name,
                "term": MARKER,
            },
        )
        _check_answer(
            client,
            f"autocomplete {field_name}",
            response,
            names_their_object=False,
            problems=problems,
        )

    assert problems == []
    assert _snapshot(other_bu) == before, "a row of the other BU changed"


def test_no_admin_site_page_reaches_another_bu(client, staff_member, other_bu, world):
    before = _snapshot(other_bu)
    client.force_login(staff_member)
    problems: list[str] = []
    site_patterns = [p for p in admin.site.get_urls() if not isinstance(p, URLResolver)]
    for pattern in site_patterns:
        if pattern.name in EXCLUDED:
            continue
        if pattern.name == "app_list":
            urls = [
                f"/admin/{label}/" for label in {m._meta.app_label for m in admin.site._registry}
            ]
        elif pattern.name == "view_on_site":
            urls = [
                "/admin/"
                + _fill(
                    str(pattern.pattern),
                    obj.pk,
                    {"content_type_id": ContentType.objects.get_for_model(model).pk},
                )
                for model, obj in world["theirs"].items()
            ]
        else:
            urls = ["/admin/" + _fill(str(pattern.pattern), 1)]
        for url in urls:
            for method, response in _requests(client, url, world["params"]):
                _check_answer(
                    client,
                    f"{method} {url} ({pattern.name})",
                    response,
                    names_their_object=pattern.name == "view_on_site",
                    problems=problems,
                )
                client.force_login(staff_member)
    assert problems == []
    assert _snapshot(other_bu) == before


def test_every_public_url_outside_the_admin_has_its_abuse_tests():
    names = set()

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name != "admin":
                    walk(pattern.url_patterns)
            elif pattern.name:
                names.add(pattern.name)

    walk(get_resolver().url_patterns)
    assert names == set(NON_ADMIN_URLS)
    repo = Path(__file__).resolve().parent.parent
    assert [path for path in NON_ADMIN_URLS.values() if not (repo / path).is_file()] == []
