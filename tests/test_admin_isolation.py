"""Business-unit isolation in the admin, checked for every registered model.

A staff user who belongs to one BU must not see or reach another BU's rows anywhere: the
changelist, the change/delete/history URLs, any foreign-key or many-to-many choice (in the form
and in its inlines), and autocomplete. Models shared by all tenants must be superuser-only or
read-only reference data. A newly registered model that is none of these fails here.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter
from django.contrib.auth import get_user_model
from django.forms import ModelChoiceField
from django.test import RequestFactory
from django.urls import reverse

from pcsms.admin_base import ReferenceDataAdmin, SuperuserOnlyAdmin, TenantAdmin
from pcsms.models import BusinessUnit, Membership
from tests.factories import FACTORIES

OUR_APPS = ("pcsms", "dnc", "messaging", "skills")
REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _id(item) -> str:
    return item[0]._meta.label


def _bu_path(model_admin) -> str:
    path = getattr(model_admin, "bu_path", None)
    return model_admin.model.bu_path if path is None else path


def make_in_bu(model, bu):
    """One object of ``model`` belonging to ``bu``, with its parents in the same BU."""
    if model is BusinessUnit:
        return bu
    if model is get_user_model():
        membership = FACTORIES[Membership](business_unit=bu)
        return membership.user
    path = model.bu_path
    return FACTORIES[model](**{path: bu})


def _tenant_models():
    return [m for m, a in admin.site._registry.items() if isinstance(a, TenantAdmin)]


def in_bu(queryset, bu) -> set:
    """Primary keys of the queryset's rows that belong to ``bu``."""
    model = queryset.model
    path = getattr(model, "bu_path", None)
    if path is None:
        return set()
    lookup = f"{path}" if path else "pk"
    return set(queryset.filter(**{lookup: bu.pk}).values_list("pk", flat=True))


@pytest.fixture
def two_bus_populated(bu, other_bu):
    """One object of every tenant model in each BU, so every choice list has a foreign row."""
    objects = {}
    for model in _tenant_models():
        objects[model] = (make_in_bu(model, bu), make_in_bu(model, other_bu))
    return objects


def test_every_model_of_our_apps_is_in_the_admin():
    ours = [m for app in OUR_APPS for m in apps.get_app_config(app).get_models()]
    missing = [m._meta.label for m in ours if m not in admin.site._registry]
    assert missing == []


def test_every_tenant_model_has_a_factory():
    assert [m._meta.label for m in _tenant_models() if m not in FACTORIES] == []


@pytest.mark.parametrize("item", REGISTERED, ids=_id)
def test_admin_is_isolated(item, client, staff_member, superuser, bu, other_bu, two_bus_populated):
    model, model_admin = item
    opts = model._meta
    url = f"admin:{opts.app_label}_{opts.model_name}"

    if isinstance(model_admin, SuperuserOnlyAdmin):
        client.force_login(staff_member)
        assert client.get(reverse(f"{url}_changelist")).status_code == 403
        client.force_login(superuser)
        assert client.get(reverse(f"{url}_changelist")).status_code == 200
        return
    if isinstance(model_admin, ReferenceDataAdmin):
        client.force_login(staff_member)
        assert client.get(reverse(f"{url}_changelist")).status_code == 200
        assert client.get(reverse(f"{url}_add")).status_code == 403
        return
    assert isinstance(model_admin, TenantAdmin), (
        f"{opts.label} is registered with {type(model_admin).__name__}: derive it from "
        "TenantAdmin, SuperuserOnlyAdmin or ReferenceDataAdmin (pcsms/admin_base.py)."
    )

    mine, theirs = two_bus_populated[model]
    client.force_login(staff_member)

    # Changelist: mine is listed, theirs is not.
    response = client.get(reverse(f"{url}_changelist"))
    assert response.status_code == 200
    listed = {obj.pk for obj in response.context["cl"].queryset}
    assert mine.pk in listed
    assert theirs.pk not in listed
    # Related-field list filters name only my BU's objects.
    for spec in response.context["cl"].filter_specs:
        if isinstance(spec, RelatedFieldListFilter) and hasattr(
            spec.field.remote_field.model, "bu_path"
        ):
            related = spec.field.remote_field.model
            offered = {pk for pk, _label in spec.lookup_choices}
            foreign = offered & in_bu(related._default_manager.all(), other_bu)
            assert not foreign, f"filter {spec.field_path} names another BU's rows"

    # Direct URLs to another BU's object are 404, as for a missing object.
    # (Deleting is refused outright, 403, where the user may not delete that kind at all.)
    request = RequestFactory().get("/")
    request.user = staff_member
    may_delete = model_admin.has_delete_permission(request)
    for view, expected in (
        ("change", 404),
        ("delete", 404 if may_delete else 403),
        ("history", 404),
    ):
        response = client.get(reverse(f"{url}_{view}", args=[theirs.pk]))
        assert response.status_code == expected, view

    # Every choice in my object's form and its inlines comes from my BU only.
    response = client.get(reverse(f"{url}_change", args=[mine.pk]))
    assert response.status_code == 200
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += list(inline.formset.forms) + [inline.formset.empty_form]
    for form in forms:
        for name, field in form.fields.items():
            # An inline row's own hidden pk field is checked by the formset against the
            # parent's children, never offered as a choice.
            if name == form._meta.model._meta.pk.name:
                continue
            if isinstance(field, ModelChoiceField):
                foreign = in_bu(field.queryset, other_bu)
                assert not foreign, f"{opts.label}.{name} offers another BU's rows: {foreign}"

    # Autocomplete answers only with my BU's rows.
    for field_name in model_admin.autocomplete_fields:
        related = opts.get_field(field_name).remote_field.model
        response = client.get(
            reverse("admin:autocomplete"),
            {"app_label": opts.app_label, "model_name": opts.model_name, "field_name": field_name},
        )
        assert response.status_code == 200
        ids = {int(r["id"]) for r in response.json()["results"]}
        assert not ids & in_bu(related._default_manager.all(), other_bu), field_name

    # A superuser sees both.
    client.force_login(superuser)
    response = client.get(reverse(f"{url}_changelist"))
    listed = {obj.pk for obj in response.context["cl"].queryset}
    assert {mine.pk, theirs.pk} <= listed
