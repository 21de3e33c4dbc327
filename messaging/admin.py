"""Admin for sending numbers, registrations, templates and the log of texts in and out.

The message log (outbound messages, their events, inbound messages) is written by the system:
it is shown read-only, except the review of inbound probable opt-outs, which a person decides.
"""

from __future__ import annotations

from django.contrib import admin

from messaging.models import (
    InboundMessage,
    MessageEvent,
    MessageTemplate,
    OutboundMessage,
    SmsRegistration,
    TransportCode,
)
from pcsms.admin_base import (
    FixedParentMixin,
    PhoneSearchMixin,
    SystemWrittenMixin,
    TenantAdmin,
    TenantTabularInline,
    scoped,
)

SYSTEM_FIELDSET = ("System", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]})


def _shorten(text: str, length: int = 60) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


@admin.register(TransportCode)
class TransportCodeAdmin(FixedParentMixin, TenantAdmin):
    list_display = [
        "number",
        "kind",
        "messages_per_second",
        "counts_segments",
        "provisioning_status",
        "business_unit",
    ]
    list_filter = [scoped("business_unit"), "kind", "provisioning_status", "counts_segments"]
    search_fields = ["number", "notes"]
    list_select_related = ["business_unit"]  # shown on every row
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["business_unit", "number", "kind"]}),
        ("Pace", {"fields": ["messages_per_second", "counts_segments"]}),
        (
            "Provisioning",
            {"fields": ["provisioning_status", "requested_on", "provisioned_on", "notes"]},
        ),
        SYSTEM_FIELDSET,
    ]


@admin.register(SmsRegistration)
class SmsRegistrationAdmin(FixedParentMixin, TenantAdmin):
    list_display = [
        "name",
        "business_unit",
        "transport_code",
        "carrier_account",
        "stop_dnc_group",
        "is_active",
    ]
    list_filter = [scoped("business_unit"), "is_active", "carrier_account"]
    search_fields = ["name", "transport_code__number", "messaging_service_sid"]
    # All three are shown on every row.
    list_select_related = ["business_unit", "transport_code", "stop_dnc_group"]
    autocomplete_fields = ["transport_code"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["business_unit", "name", "is_active"]}),
        (
            "Carrier",
            {
                "fields": ["transport_code", "backend", "carrier_account", "messaging_service_sid"],
                "description": "Credentials come from the environment, never from this page.",
            },
        ),
        (
            "Keyword replies",
            {
                "fields": [
                    "stop_dnc_group",
                    "help_reply",
                    "opt_out_confirmation",
                    "opt_in_confirmation",
                ]
            },
        ),
        SYSTEM_FIELDSET,
    ]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(FixedParentMixin, TenantAdmin):
    list_display = ["name", "business_unit", "channel", "is_active", "short_body", "updated_at"]
    list_filter = [scoped("business_unit"), "channel", "is_active"]
    search_fields = ["name", "body"]
    list_select_related = ["business_unit"]  # shown on every row
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["business_unit", "name", "channel", "is_active", "body"]}),
        SYSTEM_FIELDSET,
    ]

    @admin.display(description="body")
    def short_body(self, obj):
        return _shorten(obj.body)


class MessageEventInline(TenantTabularInline):
    """The message's history; written by the sender and the callbacks only."""

    model = MessageEvent
    fields = ["at", "kind", "status", "error_code", "detail"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(PhoneSearchMixin, SystemWrittenMixin, TenantAdmin):
    list_display = [
        "to",
        "status",
        "business_unit",
        "transport_code",
        "segments",
        "source",
        "created_at",
        "sent_at",
        "error_code",
    ]
    list_filter = [
        "status",
        "withdraw_reason",
        scoped("business_unit"),
        scoped("transport_code"),
        "created_at",
    ]
    # Exact matches use the (business_unit, to, status) index and the unique carrier id.
    search_fields = ["=to", "=carrier_sid", "=idempotency_key", "source"]
    phone_search_field = "to"
    list_select_related = ["business_unit", "transport_code"]  # both shown on every row
    inlines = [MessageEventInline]
    show_full_result_count = False  # a second COUNT(*) over the largest table on every search
    fieldsets = [
        (
            "Message",
            {
                "fields": [
                    "business_unit",
                    "registration",
                    "transport_code",
                    "to",
                    "body",
                    "encoding",
                    "segments",
                    "source",
                    "priority",
                    "idempotency_key",
                ]
            },
        ),
        (
            "Status",
            {
                "fields": [
                    "status",
                    "withdraw_reason",
                    "send_attempts",
                    "carrier_sid",
                    "carrier_status",
                    "error_code",
                    "error_text",
                ]
            },
        ),
        (
            "Times",
            {
                "fields": [
                    "created_at",
                    "not_before",
                    "window_ends_at",
                    "claimed_at",
                    "sent_at",
                    "delivered_at",
                    "finished_at",
                    "updated_at",
                ]
            },
        ),
    ]
    # Non-editable model fields must be named here to appear in the fieldsets.
    readonly_fields = ["created_at", "updated_at"]


@admin.register(MessageEvent)
class MessageEventAdmin(SystemWrittenMixin, TenantAdmin):
    list_display = ["at", "message", "kind", "status", "error_code", "detail"]
    list_filter = ["kind", scoped("message__business_unit"), "at"]
    search_fields = ["=message__to", "=message__carrier_sid", "detail"]
    list_select_related = ["message"]  # its __str__ (number and status) is on every row
    fields = ["message", "kind", "status", "error_code", "detail", "at"]
    readonly_fields = ["at"]
    show_full_result_count = False


@admin.register(InboundMessage)
class InboundMessageAdmin(PhoneSearchMixin, TenantAdmin):
    """Inbound texts; only the review of a probable opt-out is a person's decision."""

    list_display = [
        "from_number",
        "received_at",
        "short_body",
        "classification",
        "review",
        "business_unit",
        "to_number",
    ]
    list_editable = ["review"]  # work through the pending probable opt-outs from the list
    list_filter = [
        "review",
        "classification",
        scoped("business_unit"),
        scoped("registration"),
        "received_at",
    ]
    search_fields = ["=from_number", "=carrier_sid", "body"]
    phone_search_field = "from_number"
    list_select_related = ["business_unit"]  # shown on every row
    show_full_result_count = False
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "business_unit",
                    "registration",
                    "from_number",
                    "to_number",
                    "body",
                    "carrier_sid",
                    "received_at",
                ]
            },
        ),
        (
            "What was done",
            {"fields": ["classification", "action_taken", "dnc_entries", "created_at"]},
        ),
        ("Review", {"fields": ["review", "reviewed_by"]}),
    ]
    readonly_fields = [
        "business_unit",
        "registration",
        "from_number",
        "to_number",
        "body",
        "carrier_sid",
        "received_at",
        "classification",
        "action_taken",
        "dnc_entries",
        "created_at",
        "reviewed_by",
    ]

    @admin.display(description="body")
    def short_body(self, obj):
        return _shorten(obj.body)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Evidence of an opt-out: only superusers may remove it.
        return request.user.is_active and request.user.is_superuser

    def save_model(self, request, obj, form, change):
        if "review" in form.changed_data:
            obj.reviewed_by = request.user
        super().save_model(request, obj, form, change)
