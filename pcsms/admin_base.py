"""Admin building blocks that keep each business unit's data to its members.

Every admin in the project derives from one of three bases, and the isolation test in
``tests/test_admin_isolation.py`` checks each registered model against them:

* :class:`TenantAdmin` for tenant data: changelists, change forms, foreign-key and many-to-many
  choices, autocomplete and direct URLs all show only the user's BUs (another BU's object is a
  404, not a redirect that would confirm it exists).
* :class:`SuperuserOnlyAdmin` for the machinery shared by all tenants (worker queues, groups).
* :class:`ReferenceDataAdmin` for shared reference data every staff user may read and only
  superusers change (e.g. state sending-window presets).
"""

from __future__ import annotations

import phonenumbers
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404

from pcsms.models import bu_of, visible_to
from pcsms.selectors import users_visible_to

# The timestamps every model page shows, folded away at the bottom.
SYSTEM_FIELDSET = ("System", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]})


def _scoped(queryset, request):
    if hasattr(queryset.model, "bu_path"):
        return visible_to(queryset, request.user)
    return queryset


def _scoped_choices(related, request):
    """The rows of ``related`` a form may offer the user, or ``None`` when it is not tenant data.

    Users belong to BUs through their memberships: only those who share a BU with the user are
    offered, so no form can attach another tenant's user (or learn of one by its id).
    """
    if related is get_user_model():
        return users_visible_to(request.user)
    if hasattr(related, "bu_path"):
        return visible_to(related._default_manager.all(), request.user)
    return None


class TenantFormfieldMixin:
    """Limits every foreign-key and many-to-many choice to the user's business units."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            choices = _scoped_choices(db_field.remote_field.model, request)
            if choices is not None:
                kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            choices = _scoped_choices(db_field.remote_field.model, request)
            if choices is not None:
                kwargs["queryset"] = choices
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class MissingIs404Mixin:
    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django redirects to the index with "doesn't exist"; for another tenant's object that
        # is the same answer as for a missing one, but a plain 404 is what users and tests expect.
        raise Http404(f"No {opts.verbose_name} with ID {object_id!r} in your business units.")


class TenantAdmin(MissingIs404Mixin, TenantFormfieldMixin, admin.ModelAdmin):
    """Base admin for tenant data; ``bu_path`` defaults to the model's."""

    bu_path: str | None = None
    list_per_page = 50
    # Webhook URLs typed without a scheme are https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request):
        return visible_to(super().get_queryset(request), request.user, self.bu_path)

    def save_model(self, request, obj, form, change):
        # The scoped choices already stop this; this guards forms that bypass them.
        bu = bu_of(obj) if hasattr(type(obj), "bu_path") else None
        user = request.user
        if (
            bu is not None
            and not user.is_superuser
            and not user.memberships.filter(business_unit=bu).exists()
        ):
            raise PermissionDenied("You are not a member of that business unit.")
        super().save_model(request, obj, form, change)


class TenantInline(TenantFormfieldMixin):
    """Mixed into inlines so their rows and choices are scoped like the parent form's."""

    extra = 0

    def get_queryset(self, request):
        # A parent shared by several BUs (a user) has children in each: show and accept only
        # the rows of the user's own BUs. The formset checks posted row ids against this too.
        queryset = super().get_queryset(request)
        if hasattr(queryset.model, "bu_path"):
            return visible_to(queryset, request.user)
        return queryset


class TenantTabularInline(TenantInline, admin.TabularInline):
    pass


class TenantStackedInline(TenantInline, admin.StackedInline):
    pass


class SuperuserOnlyAdmin(MissingIs404Mixin, admin.ModelAdmin):
    """Shared machinery: visible and editable by superusers only."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, *args):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


class ReferenceDataPermissions:
    """Shared reference data: every staff user may read it, only superusers change it."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request, *args):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


class ReferenceDataAdmin(ReferenceDataPermissions, MissingIs404Mixin, admin.ModelAdmin):
    """Shared reference data: every staff user may read it, only superusers change it."""


class ReferenceDataTabularInline(ReferenceDataPermissions, admin.TabularInline):
    """Rows of a reference-data object, with its permissions."""


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A foreign-key list filter that offers only the user's BUs' objects.

    Django's own filter lists every row of the related table, which would show a member of one
    business unit the names of the others' BUs, groups, lists and skills.
    """

    def field_choices(self, field, request, model_admin):
        related = field.remote_field.model
        ordering = self.field_admin_ordering(field, request, model_admin)
        if not hasattr(related, "bu_path"):
            return field.get_choices(include_blank=False, ordering=ordering)
        visible = visible_to(related._default_manager.all(), request.user).values("pk")
        return field.get_choices(
            include_blank=False, ordering=ordering, limit_choices_to={"pk__in": visible}
        )


def scoped(field_path: str) -> tuple[str, type[admin.RelatedFieldListFilter]]:
    """``list_filter`` entry for a foreign key (or a path to one), with BU-scoped choices."""
    return (field_path, ScopedRelatedFieldListFilter)


def e164_or_none(term: str) -> str | None:
    """``term`` as an E.164 number if it reads as a phone number, e.g. ``(555) 010-1234``."""
    try:
        parsed = phonenumbers.parse(term, settings.PHONENUMBER_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class PhoneSearchMixin:
    """Also finds rows whose stored E.164 number equals the search term written in any format.

    Django splits the term on spaces and matches each word, so ``(555) 010-1234`` alone would
    find nothing in a column that holds ``+15550101234``.
    """

    phone_search_field = ""  # a lookup path to an E.164 column

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        e164 = e164_or_none(search_term.strip()) if search_term.strip() else None
        if self.phone_search_field and e164:
            results |= queryset.filter(**{self.phone_search_field: e164})
            may_have_duplicates |= "__" in self.phone_search_field
        return results, may_have_duplicates


class SystemWrittenMixin:
    """For rows only the system writes (the message log, attempts): shown, never added or edited.

    Deleting them would erase the audit trail, so only superusers may (e.g. to remove a test
    skill, whose attempts cascade).
    """

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


class FixedParentMixin:
    """Disables the owning foreign keys once an object exists.

    Moving a group, list or skill to another business unit (or a record to another list) would
    drag its children along and leave references across tenants. The field is disabled rather
    than read-only so that it stays in the form and unique constraints that include it (e.g. one
    name per BU) are still validated instead of failing as database errors.
    """

    fixed_after_creation: tuple[str, ...] = ("business_unit",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None:
            for name in self.fixed_after_creation:
                if name in form.base_fields:
                    form.base_fields[name].disabled = True
        return form
