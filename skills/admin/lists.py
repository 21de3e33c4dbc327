"""Admin of campaigns, calling lists, their custom fields, records and destinations."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import (
    JsonResponse,
)
from django.urls import path, reverse
from django.utils.html import format_html

from pcsms.admin_base import (
    SYSTEM_FIELDSET,
    FixedParentMixin,
    PhoneSearchMixin,
    SuperuserOnlyAdmin,
    TenantAdmin,
    TenantTabularInline,
    scoped,
)
from skills.admin.dashboards import dashboard_data, dashboard_page, viewable
from skills.admin.rules import RuleHoldInline
from skills.admin.why import record_why_html
from skills.diagnosis import record_why
from skills.models import (
    CallingList,
    Campaign,
    CustomField,
    Destination,
    Record,
    RecordTally,
)
from skills.selectors import (
    campaign_dashboard,
)


@admin.register(Campaign)
class CampaignAdmin(FixedParentMixin, TenantAdmin):
    list_display = [
        "name",
        "business_unit",
        "is_active",
        "skill_count",
        "dashboard_link",
        "created_at",
    ]
    list_filter = [scoped("business_unit"), "is_active"]
    search_fields = ["name", "description"]
    list_select_related = ["business_unit"]  # shown on every row
    readonly_fields = ["created_at"]
    fields = ["business_unit", "name", "description", "is_active", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(skill_count=Count("skills"))

    @admin.display(description="skills", ordering="skill_count")
    def skill_count(self, obj):
        return obj.skill_count

    @admin.display(description="dashboard")
    def dashboard_link(self, obj):
        url = reverse("admin:skills_campaign_dashboard", args=[obj.pk])
        return format_html('<a href="{}">Dashboard</a>', url)

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(func)

        return [
            path(
                "<int:pk>/dashboard/", view(self.dashboard_view), name="skills_campaign_dashboard"
            ),
            path(
                "<int:pk>/dashboard/data/",
                view(self.dashboard_data_view),
                name="skills_campaign_dashboard_data",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request, pk):
        campaign = viewable(self, request, pk)
        return dashboard_page(self, request, campaign, campaign_dashboard(campaign), "campaign")

    def dashboard_data_view(self, request, pk):
        campaign = viewable(self, request, pk)
        return JsonResponse(dashboard_data(f"campaign:{campaign.pk}", campaign_dashboard, campaign))


class CustomFieldInline(TenantTabularInline):
    model = CustomField
    fields = ["position", "name", "field_type"]


@admin.register(CallingList)
class CallingListAdmin(FixedParentMixin, TenantAdmin):
    list_display = ["name", "business_unit", "status", "records_link", "updated_at"]
    list_filter = [scoped("business_unit"), "status"]
    search_fields = ["name", "description"]
    list_select_related = ["business_unit"]  # shown on every row
    readonly_fields = ["records_link", "uploads", "created_at", "updated_at"]
    inlines = [CustomFieldInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "business_unit",
                    "name",
                    "description",
                    "status",
                    "records_link",
                    "uploads",
                ]
            },
        ),
        SYSTEM_FIELDSET,
    ]

    def get_queryset(self, request):
        # Counted per displayed list from the (calling_list, is_final, id) index; a JOIN +
        # GROUP BY would count every record of every list.
        records = (
            Record.objects.filter(calling_list=OuterRef("pk"))
            .order_by()
            .values("calling_list")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(record_count=Coalesce(Subquery(records), 0))

    @admin.display(description="uploads")
    def uploads(self, obj):
        if obj is None or obj.pk is None:
            return "Save the list first, then upload files into it."
        add = reverse("admin:skills_uploadjob_add") + "?" + urlencode({"calling_list": obj.pk})
        jobs = (
            reverse("admin:skills_uploadjob_changelist")
            + "?"
            + urlencode({"calling_list__id__exact": obj.pk})
        )
        return format_html(
            '<a class="button" href="{}">Upload a file</a> &nbsp; <a href="{}">{} uploads</a>',
            add,
            jobs,
            obj.upload_jobs.count(),
        )

    @admin.display(description="records", ordering="record_count")
    def records_link(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        url = reverse("admin:skills_record_changelist")
        query = urlencode({"calling_list__id__exact": obj.pk})
        count = getattr(obj, "record_count", None)
        if count is None:
            count = obj.records.count()
        return format_html('<a href="{}?{}">{} records</a>', url, query, count)


@admin.register(CustomField)
class CustomFieldAdmin(FixedParentMixin, TenantAdmin):
    fixed_after_creation = ("calling_list",)
    list_display = ["name", "calling_list", "field_type", "position"]
    list_filter = [scoped("calling_list__business_unit"), scoped("calling_list"), "field_type"]
    search_fields = ["name", "calling_list__name"]
    list_select_related = ["calling_list"]  # shown on every row
    autocomplete_fields = ["calling_list"]
    fields = ["calling_list", "name", "field_type", "position"]


class DestinationInline(TenantTabularInline):
    model = Destination
    fields = [
        "position",
        "source_field",
        "phone_number",
        "time_zone",
        "is_final",
        "final_reason",
        "attempts",
    ]
    readonly_fields = ["is_final", "final_reason", "attempts"]  # set by sending outcomes


@admin.register(Record)
class RecordAdmin(PhoneSearchMixin, FixedParentMixin, TenantAdmin):
    fixed_after_creation = ("calling_list",)
    list_display = [
        "external_id",
        "first_name",
        "last_name",
        "calling_list",
        "time_zone",
        "priority",
        "is_final",
        "final_reason",
        "attempts",
        "expires_on",
    ]
    list_filter = [
        scoped("calling_list__business_unit"),
        scoped("calling_list"),
        "is_final",
        "final_reason",
        "priority",
        "time_zone_source",
    ]
    search_fields = ["=external_id", "first_name", "last_name"]
    phone_search_field = "destinations__phone_number"
    list_select_related = ["calling_list"]  # shown on every row
    autocomplete_fields = ["calling_list"]
    readonly_fields = [
        "time_zone_source",
        "is_final",
        "final_reason",
        "attempts",
        "last_attempt_at",
        "held_by",
        "held_until",
        "why_not_texted",
        "upload_job",
        "created_at",
        "updated_at",
    ]
    inlines = [DestinationInline, RuleHoldInline]
    show_full_result_count = False  # a second COUNT(*) over a large table on every search
    fieldsets = [
        (None, {"fields": ["calling_list", "external_id"]}),
        (
            "Contact",
            {"fields": ["first_name", "last_name", "address", "city", "state", "zip_code"]},
        ),
        ("Time zone", {"fields": ["time_zone", "time_zone_source"]}),
        (
            "List fields",
            {"fields": ["priority", "score", "customer1", "customer2", "expires_on", "custom"]},
        ),
        (
            "Outcome",
            {
                "fields": [
                    "is_final",
                    "final_reason",
                    "attempts",
                    "last_attempt_at",
                    ("held_by", "held_until"),
                    "why_not_texted",
                ]
            },
        ),
        ("System", {"fields": ["upload_job", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description="why not texted now")
    def why_not_texted(self, obj):
        """Per skill of the record's list, what holds its next text (skills/diagnosis.py)."""
        if obj is None or obj.pk is None:
            return "-"
        return record_why_html(record_why(obj))


@admin.register(Destination)
class DestinationAdmin(PhoneSearchMixin, FixedParentMixin, TenantAdmin):
    fixed_after_creation = ("record",)
    list_display = [
        "phone_number",
        "record",
        "calling_list",
        "position",
        "source_field",
        "time_zone",
        "is_final",
        "attempts",
    ]
    list_filter = [
        scoped("record__calling_list__business_unit"),
        scoped("record__calling_list"),
        "is_final",
    ]
    search_fields = ["=phone_number", "=record__external_id"]
    phone_search_field = "phone_number"
    list_select_related = ["record__calling_list"]  # the record and its list are on every row
    autocomplete_fields = ["record"]
    readonly_fields = ["is_final", "final_reason", "attempts"]  # set by sending outcomes
    fields = [
        "record",
        "position",
        "source_field",
        "phone_number",
        "time_zone",
        "is_final",
        "final_reason",
        "attempts",
    ]
    show_full_result_count = False

    @admin.display(description="calling list", ordering="record__calling_list__name")
    def calling_list(self, obj):
        return obj.record.calling_list


@admin.register(RecordTally)
class RecordTallyAdmin(SuperuserOnlyAdmin):
    """The counts the database keeps of each list's records by state (the dashboards add them
    up): shared machinery, read-only, for operations engineers checking a count."""

    list_display = [
        "calling_list_id",
        "is_final",
        "final_reason",
        "attempts",
        "time_zone",
        "records",
    ]
    list_filter = ["is_final", "final_reason"]
    readonly_fields = list_display

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
