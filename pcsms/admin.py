"""Admin for business units, memberships, custom time zones and users.

It also re-registers the admins of Django's groups and django-q2's queues as superuser-only:
they are shared by every tenant, so no BU's staff may see or change them.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group

from pcsms.admin_base import SuperuserOnlyAdmin, TenantAdmin, TenantTabularInline, scoped
from pcsms.models import BusinessUnit, CustomTimeZone, Membership

User = get_user_model()


class MembershipInline(TenantTabularInline):
    model = Membership
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


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
    inlines = [CustomTimeZoneInline, MembershipInline]
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
    """Users who share one of your business units; only superusers grant superuser powers."""

    bu_path = "memberships__business_unit"
    inlines = [MembershipInline]
    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_active"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_superuser", "user_permissions", "groups", "last_login", "date_joined"]
        return fields

    # A user created by a non-superuser would have no BU yet and vanish from their view.
    def has_add_permission(self, request):
        return request.user.is_superuser


def _make_superuser_only(model) -> None:
    existing = type(admin.site._registry[model])
    admin.site.unregister(model)
    admin.site.register(model, type(existing.__name__, (SuperuserOnlyAdmin, existing), {}))


_make_superuser_only(Group)
for _model in list(admin.site._registry):
    if _model._meta.app_label == "django_q":
        _make_superuser_only(_model)
