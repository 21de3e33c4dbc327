"""Admin for business units, memberships, custom time zones and users.

It also re-registers the admins of Django's groups, django-q2's queues and django-axes' login
attempts as superuser-only: they are shared by every tenant, so no BU's staff may see or change
them.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404

from pcsms.admin_base import SuperuserOnlyAdmin, TenantAdmin, TenantTabularInline, scoped
from pcsms.models import BusinessUnit, CustomTimeZone, KeywordSet, Membership
from pcsms.selectors import USER_BU_PATH, permissions_grantable_by, user_manageable_by

User = get_user_model()


class MembershipInline(TenantTabularInline):
    model = Membership
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class KeywordSetInline(TenantTabularInline):
    """The BU's keywords and replies in other languages (Spanish to begin with)."""

    model = KeywordSet
    fields = [
        "language",
        "opt_out_keywords",
        "opt_in_keywords",
        "help_keywords",
        "opt_out_confirmation",
        "opt_in_confirmation",
        "help_reply",
    ]


@admin.register(KeywordSet)
class KeywordSetAdmin(TenantAdmin):
    list_display = ["language", "business_unit", "opt_out_keywords", "help_keywords"]
    list_filter = [scoped("business_unit")]
    search_fields = ["language"]
    list_select_related = ["business_unit"]  # shown on every row
    fields = ["business_unit", *KeywordSetInline.fields]


class CustomTimeZoneInline(TenantTabularInline):
    model = CustomTimeZone
    fields = ["name", "utc_offset_minutes", "dst_like"]


@admin.register(BusinessUnit)
class BusinessUnitAdmin(TenantAdmin):
    list_display = [
        "name",
        "is_active",
        "default_time_zone",
        "default_contact_expiration_days",
        "business_name",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "business_name"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [CustomTimeZoneInline, KeywordSetInline, MembershipInline]
    fieldsets = [
        (None, {"fields": ["name", "is_active"]}),
        (
            "Time zones and contacts",
            {
                "fields": [
                    "default_time_zone",
                    "allowed_time_zones",
                    "phone_region",
                    "default_contact_expiration_days",
                ]
            },
        ),
        (
            "Keyword replies",
            {
                "fields": [
                    "business_name",
                    "support_contact",
                    "opt_out_confirmation",
                    "opt_out_keywords",
                    "opt_in_keywords",
                    "help_keywords",
                    "probable_opt_out_policy",
                ]
            },
        ),
        ("Email", {"fields": ["postal_address"]}),
        ("Opt-out scope", {"fields": ["opt_out_scope", "revoke_all_from"]}),
        ("Frequency caps", {"fields": ["max_texts_per_24h", "last_purchase_field"]}),
        ("System", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    # A new BU has no members, so only superusers (who see every BU) may create or delete one.
    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    list_display = ["user", "business_unit", "role", "created_at"]
    list_filter = ["role", scoped("business_unit")]
    search_fields = ["user__username", "user__email", "business_unit__name"]
    autocomplete_fields = ["user", "business_unit"]
    list_select_related = ["user", "business_unit"]  # both shown on every row
    readonly_fields = ["created_at"]


@admin.register(CustomTimeZone)
class CustomTimeZoneAdmin(TenantAdmin):
    list_display = ["name", "business_unit", "utc_offset_minutes", "dst_like"]
    list_filter = [scoped("business_unit")]
    search_fields = ["name"]
    list_select_related = ["business_unit"]
    readonly_fields = ["created_at"]


admin.site.unregister(User)


@admin.register(User)
class BusinessUnitUserAdmin(TenantAdmin, UserAdmin):
    """Users who share one of your business units.

    A BU's staff may manage (change, deactivate, delete, set the password of) a user only when
    every BU of that user is theirs and the user holds no permission they lack; anyone else is
    read-only, and memberships of other BUs are never shown (pcsms/selectors.py,
    docs/security.md). Only superusers give staff or superuser status or groups.
    """

    bu_path = USER_BU_PATH
    inlines = [MembershipInline]
    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_active"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_staff", "is_superuser", "groups", "last_login", "date_joined"]
        return fields

    def get_list_filter(self, request):
        # Groups are shared by every tenant: their names are for superusers only.
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [f for f in filters if f != "groups"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "user_permissions":
            kwargs["queryset"] = permissions_grantable_by(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        if obj is None or not allowed:
            return allowed
        return user_manageable_by(user=obj, actor=request.user)

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        if obj is None or not allowed:
            return allowed
        return user_manageable_by(user=obj, actor=request.user)

    # A user created by a non-superuser would have no BU yet and vanish from their view.
    def has_add_permission(self, request):
        return request.user.is_superuser

    def history_view(self, request, object_id, extra_context=None):
        # A user's history holds what was done from every BU they belong or belonged to,
        # e.g. "Added membership: Sam in <other BU>".
        if not request.user.is_superuser:
            if self.get_object(request, unquote(object_id)) is None:
                raise Http404("No such user in your business units.")
            raise PermissionDenied("A user's history is shown to superusers only.")
        return super().history_view(request, object_id, extra_context)


def _make_superuser_only(model) -> None:
    existing = type(admin.site._registry[model])
    admin.site.unregister(model)
    admin.site.register(model, type(existing.__name__, (SuperuserOnlyAdmin, existing), {}))


_make_superuser_only(Group)
for _model in list(admin.site._registry):
    # The worker queues and the login-attempt logs (django-axes) span every tenant.
    if _model._meta.app_label in ("django_q", "axes"):
        _make_superuser_only(_model)
