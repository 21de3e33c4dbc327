"""Users shared by several business units: no way from one BU's admin into another's.

The case that opened this: a staff user with every model permission in BU A opened a user who
belongs to A and B, saw and removed the B membership, set that user's password, logged in as
them and worked in B. A BU's staff may manage a user only when every BU of that user is theirs
and the user holds no power they lack themselves; otherwise the user is read-only, and
memberships of other BUs are never shown or changed (docs/security.md, "Tenancy").
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import RequestFactory
from django.urls import reverse

from pcsms.models import Membership
from tests.factories import MembershipFactory, UserFactory
from tests.forms import admin_form_data


def _login_request():
    """django-axes checks every login against its lockouts: it needs the login's request."""
    return RequestFactory().post("/admin/login/")


User = get_user_model()
NEW_PASSWORD = "Correct-Horse-Battery-42"


@pytest.fixture
def shared_user(bu, other_bu):
    """A member of both BUs (the operator's BU and another one)."""
    user = UserFactory(username="shared", first_name="Sam")
    MembershipFactory(user=user, business_unit=bu)
    MembershipFactory(user=user, business_unit=other_bu)
    return user


@pytest.fixture
def colleague(bu):
    """A member of the operator's BU only, with fewer permissions than the operator."""
    user = UserFactory(username="colleague")
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    MembershipFactory(user=user, business_unit=bu)
    return user


def _change_url(user):
    return reverse("admin:auth_user_change", args=[user.pk])


def _password_url(user):
    return reverse("admin:auth_user_password_change", args=[user.pk])


def _set_password(client, user):
    return client.post(
        _password_url(user),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )


def test_the_takeover_of_a_shared_user_is_refused(client, staff_member, shared_user, bu, other_bu):
    client.force_login(staff_member)

    # The page opens read-only and names neither the other BU nor its membership.
    page = client.get(_change_url(shared_user))
    assert page.status_code == 200
    assert other_bu.name not in page.content.decode()
    assert not page.context["has_change_permission"]

    # Posting the form back without the B membership changes nothing.
    data = admin_form_data(page)
    data.update({"first_name": "Mallory", "is_active": ""})
    for key in [k for k in data if k.startswith("memberships-")]:
        del data[key]
    data.update({"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})
    assert client.post(_change_url(shared_user), data).status_code == 403
    shared_user.refresh_from_db()
    assert shared_user.first_name == "Sam"
    assert shared_user.is_active
    assert set(shared_user.memberships.values_list("business_unit", flat=True)) == {
        bu.pk,
        other_bu.pk,
    }

    # Setting the password is refused, page and POST, and the old password still works.
    assert client.get(_password_url(shared_user)).status_code == 403
    assert _set_password(client, shared_user).status_code == 403
    client.logout()
    assert not client.login(request=_login_request(), username="shared", password=NEW_PASSWORD)
    assert client.login(request=_login_request(), username="shared", password="pw")

    # Nor may the operator delete the user.
    client.force_login(staff_member)
    delete_url = reverse("admin:auth_user_delete", args=[shared_user.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=shared_user.pk).exists()


def test_the_bulk_delete_action_spares_a_shared_user(client, staff_member, shared_user):
    client.force_login(staff_member)
    client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [shared_user.pk], "post": "yes"},
    )
    assert User.objects.filter(pk=shared_user.pk).exists()


def test_another_bus_membership_row_cannot_be_posted_into_the_form(
    client, staff_member, colleague, other_bu
):
    """A hand-made POST naming another BU's membership id cannot delete or move it."""
    theirs = MembershipFactory(business_unit=other_bu)
    client.force_login(staff_member)
    page = client.get(_change_url(colleague))
    data = admin_form_data(page)
    data.update(
        {
            "memberships-TOTAL_FORMS": "2",
            "memberships-INITIAL_FORMS": "2",
            "memberships-1-id": str(theirs.pk),
            "memberships-1-user": str(colleague.pk),
            "memberships-1-role": "administrator",
            "memberships-1-DELETE": "on",
        }
    )
    client.post(_change_url(colleague), data)
    theirs.refresh_from_db()
    assert theirs.user_id != colleague.pk
    assert Membership.objects.filter(pk=theirs.pk).exists()


def test_a_user_of_my_bus_only_is_managed_as_before(client, staff_member, colleague, bu):
    client.force_login(staff_member)
    page = client.get(_change_url(colleague))
    assert page.context["has_change_permission"]
    data = admin_form_data(page)
    data["first_name"] = "Colin"
    response = client.post(_change_url(colleague), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    colleague.refresh_from_db()
    assert colleague.first_name == "Colin"

    assert _set_password(client, colleague).status_code == 302
    client.logout()
    assert client.login(request=_login_request(), username="colleague", password=NEW_PASSWORD)


def test_a_user_with_powers_i_lack_is_read_only(client, staff_member, bu):
    """Resetting the password of someone more powerful would be an escalation."""
    boss = UserFactory(username="boss", is_superuser=True)
    MembershipFactory(user=boss, business_unit=bu)
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    MembershipFactory(user=viewer, business_unit=bu)
    viewer_only = UserFactory(username="limited")
    MembershipFactory(user=viewer_only, business_unit=bu)
    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))

    client.force_login(staff_member)
    assert _set_password(client, boss).status_code == 403
    # The operator holds every permission, so the viewer is theirs to manage...
    assert client.get(_password_url(viewer)).status_code == 200
    # ...but the viewer, once given change rights on users, may not manage the operator.
    viewer.user_permissions.add(Permission.objects.get(codename="change_user"))
    client.force_login(viewer)
    assert _set_password(client, staff_member).status_code == 403
    assert _set_password(client, viewer_only).status_code == 302


def test_no_flags_and_no_permissions_beyond_my_own(client, bu):
    """An operator may grant only what they hold, and never staff or superuser status."""
    operator = UserFactory(username="lead")
    held = Permission.objects.filter(content_type__app_label="skills")
    operator.user_permissions.set(
        list(held) + list(Permission.objects.filter(codename__in=["view_user", "change_user"]))
    )
    MembershipFactory(user=operator, business_unit=bu)
    target = UserFactory(username="newbie", is_staff=False)
    MembershipFactory(user=target, business_unit=bu)

    client.force_login(operator)
    page = client.get(_change_url(target))
    offered = set(page.context["adminform"].form.fields["user_permissions"].queryset)
    assert offered == set(operator.user_permissions.all())
    data = admin_form_data(page)
    unheld = Permission.objects.get(codename="delete_dncentry")
    data["user_permissions"] = [str(held[0].pk), str(unheld.pk)]
    data["is_staff"] = "on"
    data["is_superuser"] = "on"
    client.post(_change_url(target), data)
    target.refresh_from_db()
    assert not target.is_superuser
    assert not target.is_staff
    assert unheld not in target.user_permissions.all()

    data["user_permissions"] = [str(held[0].pk)]
    response = client.post(_change_url(target), data)
    assert response.status_code == 302
    assert list(target.user_permissions.all()) == [held[0]]


def test_a_membership_is_granted_only_to_users_of_my_bus(client, staff_member, bu, other_bu):
    outsider = UserFactory(username="outsider")
    MembershipFactory(user=outsider, business_unit=other_bu)
    client.force_login(staff_member)
    response = client.post(
        reverse("admin:pcsms_membership_add"),
        {"user": outsider.pk, "business_unit": bu.pk, "role": "administrator"},
    )
    assert response.status_code == 200  # the form again, with an error
    assert "user" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=outsider, business_unit=bu).exists()


def test_superusers_keep_full_access(client, superuser, shared_user):
    client.force_login(superuser)
    page = client.get(_change_url(shared_user))
    assert page.context["has_change_permission"]
    assert _set_password(client, shared_user).status_code == 302


def test_a_users_history_never_names_another_bu(client, staff_member, superuser, shared_user):
    """The history records inline changes from every BU, e.g. "Added membership ... Globex"."""
    client.force_login(superuser)
    page = client.get(_change_url(shared_user))
    data = admin_form_data(page)
    data["first_name"] = "Samuel"
    assert client.post(_change_url(shared_user), data).status_code == 302
    history = reverse("admin:auth_user_history", args=[shared_user.pk])
    assert client.get(history).status_code == 200

    client.force_login(staff_member)
    response = client.get(history)
    assert response.status_code == 403
    assert "Globex" not in response.content.decode()
