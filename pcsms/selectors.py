"""Reads about users and their business units that the admin's permission checks share."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Q, QuerySet

from pcsms.models import Membership, visible_to

USER_BU_PATH = "memberships__business_unit"


def users_visible_to(actor) -> QuerySet:
    """The users who share at least one business unit with ``actor`` (all, for superusers)."""
    return visible_to(get_user_model()._default_manager.all(), actor, USER_BU_PATH)


def user_manageable_by(*, user, actor) -> bool:
    """Whether ``actor`` may change, deactivate, delete or set the password of ``user``.

    Only when every BU of ``user`` is one of ``actor``'s and ``user`` holds no permission that
    ``actor`` lacks: otherwise editing the account (its password above all) would hand ``actor``
    another tenant's data or powers it was never given (docs/security.md, "Tenancy").
    """
    if not actor.is_active:
        return False
    if actor.is_superuser:
        return True
    if user.is_superuser:
        return False
    theirs = set(Membership.objects.filter(user=user).values_list("business_unit_id", flat=True))
    mine = set(Membership.objects.filter(user=actor).values_list("business_unit_id", flat=True))
    if not theirs or not theirs <= mine:
        return False
    return user.get_all_permissions() <= actor.get_all_permissions()


def permissions_grantable_by(actor) -> QuerySet:
    """The permissions ``actor`` may give another user: those ``actor`` holds (all, for
    superusers)."""
    permissions = Permission.objects.select_related("content_type")  # shown as app | model
    if actor.is_superuser:
        return permissions.all()
    held = Q(pk__in=[])
    for name in actor.get_all_permissions():
        app_label, _, codename = name.partition(".")
        held |= Q(content_type__app_label=app_label, codename=codename)
    return permissions.filter(held)
