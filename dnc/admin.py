"""Admin for DNC groups and entries."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from dnc.models import DncEntry, DncGroup
from pcsms.admin_base import FixedParentMixin, PhoneSearchMixin, TenantAdmin, scoped

# --- DNC --------------------------------------------------------------------------------------


class ExpiredFilter(admin.SimpleListFilter):
    title = "expired"
    parameter_name = "expired"

    def lookups(self, request, model_admin):
        return [("no", "Blocking (not expired)"), ("yes", "Expired")]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        if self.value() == "yes":
            return queryset.filter(expires_on__lt=today)
        if self.value() == "no":
            return queryset.filter(Q(expires_on__isnull=True) | Q(expires_on__gte=today))
        return queryset


@admin.register(DncGroup)
class DncGroupAdmin(FixedParentMixin, TenantAdmin):
    list_display = [
        "name",
        "business_unit",
        "is_active",
        "is_default",
        "entries_link",
        "updated_at",
    ]
    list_filter = [scoped("business_unit"), "is_active", "is_default"]
    search_fields = ["name", "description"]
    list_select_related = ["business_unit"]  # shown on every row
    readonly_fields = ["entries_link", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["business_unit", "name", "description", "is_active", "is_default"]}),
        ("Entries", {"fields": ["entries_link"]}),
        ("System", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        # A correlated count per displayed group: it reads only the (group, phone) index of the
        # groups on the page, where a JOIN + GROUP BY would count every entry of every group.
        entries = (
            DncEntry.objects.filter(group=OuterRef("pk"))
            .order_by()
            .values("group")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(entry_count=Coalesce(Subquery(entries), 0))

    @admin.display(description="entries", ordering="entry_count")
    def entries_link(self, obj):
        # Groups hold up to millions of numbers: too many for an inline, so link to the
        # entries changelist filtered by this group instead.
        if obj is None or obj.pk is None:
            return "-"
        url = reverse("admin:dnc_dncentry_changelist")
        query = urlencode({"group__id__exact": obj.pk})
        count = getattr(obj, "entry_count", None)
        if count is None:
            count = obj.entries.count()
        return format_html('<a href="{}?{}">{} entries</a>', url, query, count)


@admin.register(DncEntry)
class DncEntryAdmin(PhoneSearchMixin, TenantAdmin):
    list_display = [
        "phone_number",
        "group",
        "source",
        "expires_on",
        "collected_at",
        "added_by",
        "short_evidence",
    ]
    list_filter = [
        scoped("group__business_unit"),
        scoped("group"),
        "source",
        ExpiredFilter,
        "collected_at",
    ]
    search_fields = ["phone_number", "evidence"]
    phone_search_field = "phone_number"
    list_select_related = ["group", "added_by"]  # both shown on every row
    # The source tells an opt-in which entries it may remove (only the recipient's own), so it
    # is never relabelled here; entries added in the admin are manual.
    readonly_fields = ["source", "added_by", "created_at"]
    fields = [
        "group",
        "phone_number",
        "source",
        "expires_on",
        "collected_at",
        "evidence",
        "added_by",
        "created_at",
    ]
    show_full_result_count = False  # a second COUNT(*) over a large table on every search

    @admin.display(description="evidence")
    def short_evidence(self, obj):
        return obj.evidence if len(obj.evidence) <= 60 else obj.evidence[:59] + "…"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.added_by = request.user
            obj.source = DncEntry.Source.MANUAL
        super().save_model(request, obj, form, change)
