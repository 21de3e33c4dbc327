"""Admin of what skills did: attempts, the XS webhook's events and the forecasts kept at each
start (the system writes them)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone

from messaging.models import OutboundMessage
from messaging.selectors import message_export_rows
from pcsms.admin_base import (
    PhoneSearchMixin,
    SystemWrittenMixin,
    TenantAdmin,
    scoped,
)
from pcsms.csvexport import csv_download
from skills.models import (
    Attempt,
    SkillForecast,
    XsEvent,
)


@admin.register(Attempt)
class AttemptAdmin(PhoneSearchMixin, SystemWrittenMixin, TenantAdmin):
    list_display = ["created_at", "skill", "record", "destination", "outcome", "message_status"]
    list_filter = [scoped("skill__business_unit"), scoped("skill"), "outcome", "created_at"]
    search_fields = ["=destination__phone_number", "=record__external_id"]
    phone_search_field = "destination__phone_number"
    # Each is shown on every row (the message for its status).
    list_select_related = ["skill", "record", "destination", "message"]
    fields = ["skill", "record", "destination", "message", "outcome", "created_at"]
    readonly_fields = ["created_at"]
    show_full_result_count = False

    actions = ["export_csv"]

    @admin.display(description="message status", ordering="message__status")
    def message_status(self, obj):
        return obj.message.get_status_display() if obj.message else "-"

    # The attempts' texts, as the message log exports them.
    @admin.action(description="Export the selected attempts' texts as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        texts = OutboundMessage.objects.filter(attempt__in=queryset)
        stamp = timezone.localtime().strftime("%Y-%m-%d-%H%M")
        return csv_download(message_export_rows(texts), f"texts-{stamp}.csv")


@admin.register(XsEvent)
class XsEventAdmin(SystemWrittenMixin, TenantAdmin):
    """What the skills' XS webhooks told (or still owe) the CRM; written by pcsms only."""

    list_display = [
        "created_at",
        "skill",
        "kind",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = [scoped("skill__business_unit"), scoped("skill"), "kind", "status"]
    search_fields = ["skill__name", "payload__external_id"]
    list_select_related = ["skill"]  # shown on every row
    fields = [
        "skill",
        "kind",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
    ]
    readonly_fields = ["created_at"]
    show_full_result_count = False
    actions = ["send_again"]

    def has_resend_permission(self, request):
        return request.user.has_perm("skills.change_skill")

    @admin.action(description="Send again at the next minute", permissions=["resend"])
    def send_again(self, request, queryset):
        count = queryset.exclude(status=XsEvent.Status.DELIVERED).update(
            status=XsEvent.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
        )
        self.message_user(request, f"{count} event(s) will be sent again.", messages.SUCCESS)


@admin.register(SkillForecast)
class SkillForecastAdmin(SystemWrittenMixin, TenantAdmin):
    """The forecasts kept as skills started: what the dashboard compares with."""

    list_display = ["skill", "starts_at", "finishes_at", "records", "texts", "made_at"]
    list_filter = [scoped("skill__business_unit"), scoped("skill"), "starts_at"]
    list_select_related = ["skill"]  # shown on every row
    fields = ["skill", "made_at", "starts_at", "finishes_at", "records", "texts", "assumptions"]
    readonly_fields = fields

    @admin.display(description="what it assumed")
    def assumptions(self, obj):
        return "; ".join(obj.data.get("assumptions", []))
