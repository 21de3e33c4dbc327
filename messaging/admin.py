"""Admin for sending numbers, registrations, templates and the log of texts in and out.

The message log (outbound messages, their events, inbound messages) is written by the system:
it is shown read-only, except the review of inbound probable opt-outs, which a person decides.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import BadRequest, PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from messaging import segments, templating
from messaging.models import (
    InboundMessage,
    MessageEvent,
    MessageTemplate,
    OutboundMessage,
    SenderLease,
    SenderProcess,
    SmsRegistration,
    TransportCode,
    template_fields_for,
)
from messaging.selectors import (
    merged_variable_texts,
    message_export_rows,
    template_business_units,
    template_calling_lists,
    template_preview_records,
    template_record_values,
    template_sample_values,
    template_variables,
)
from messaging.services import inbound_review_confirm, inbound_review_undo
from messaging.template_services import (
    template_activate,
    template_check_deactivation,
    template_deactivate,
)
from pcsms.admin_base import (
    SYSTEM_FIELDSET,
    FixedParentMixin,
    PhoneSearchMixin,
    SuperuserOnlyAdmin,
    SystemWrittenMixin,
    TenantAdmin,
    TenantTabularInline,
    scoped,
)
from pcsms.csvexport import csv_download


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
        ("Pace", {"fields": ["messages_per_second", "messages_per_day", "counts_segments"]}),
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


class MessageTemplateAdminForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["business_unit", "name", "channel", "is_active", "subject", "body", "html_body"]

    def clean_body(self):
        # Browsers submit line breaks as CRLF, but the live counter (and the text a person
        # meant) has one character per break: store what the counter showed.
        return (self.cleaned_data.get("body") or "").replace("\r\n", "\n")

    def clean_html_body(self):
        return (self.cleaned_data.get("html_body") or "").replace("\r\n", "\n")

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and "is_active" in self.changed_data and not cleaned.get("is_active"):
            try:
                template_check_deactivation(template=self.instance)
            except ValidationError as exc:
                self.add_error("is_active", exc)
        return cleaned


def _json_body(request) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The request body is not JSON.") from exc
    if not isinstance(data, dict):
        raise BadRequest("Send a JSON object.")
    return data


def _int_or_none(value) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{value!r} is not an id.") from exc


@admin.register(MessageTemplate)
class MessageTemplateAdmin(FixedParentMixin, TenantAdmin):
    """Templates, with a live check and merged preview on the change page.

    The page's JavaScript (``static/messaging/template_editor.js``) counts characters and
    segments itself with the tables of :mod:`messaging.segments`, and asks the JSON endpoints
    below for everything that needs the one parser or the database: syntax problems, the
    variables list, records to preview with, and the merged text.
    """

    form = MessageTemplateAdminForm
    list_display = ["name", "business_unit", "channel", "is_active", "short_body", "updated_at"]
    list_filter = [scoped("business_unit"), "channel", "is_active"]
    search_fields = ["name", "subject", "body"]
    list_select_related = ["business_unit"]  # shown on every row
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["business_unit", "name", "channel", "is_active", "subject", "body"]}),
        ("Email: HTML part", {"fields": ["html_body"], "classes": ["collapse"]}),
        SYSTEM_FIELDSET,
    ]
    actions = ["activate_selected", "deactivate_selected"]
    change_form_template = "admin/messaging/messagetemplate/change_form.html"
    #: Most records offered at once in the preview's record chooser.
    preview_record_limit = 25

    @admin.display(description="body")
    def short_body(self, obj):
        return _shorten(obj.body)

    # --- Actions -----------------------------------------------------------------------------

    def _set_active(self, request, queryset, service, verb: str) -> None:
        changed = unchanged = 0
        for template in queryset:
            try:
                did = service(template=template, user=request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                continue
            if did:
                changed += 1
                self.log_change(request, template, [{"changed": {"fields": ["is_active"]}}])
            else:
                unchanged += 1
        if changed:
            noun = "template" if changed == 1 else "templates"
            self.message_user(request, f"{verb} {changed} {noun}.", messages.SUCCESS)
        if unchanged:
            noun = "template was" if unchanged == 1 else "templates were"
            self.message_user(request, f"{unchanged} {noun} already {verb.lower()}.", messages.INFO)

    @admin.action(description="Activate selected templates", permissions=["change"])
    def activate_selected(self, request, queryset):
        self._set_active(request, queryset, template_activate, "Activated")

    @admin.action(description="Deactivate selected templates", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        self._set_active(request, queryset, template_deactivate, "Deactivated")

    # --- The live editor ---------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        views = [
            ("variables", self.variables_view),
            ("validate", self.validate_view),
            ("records", self.records_view),
            ("preview", self.preview_view),
        ]
        # Before the default URLs, whose "<path:object_id>/" would swallow these.
        return [
            path(
                f"editor/{name}/",
                self.admin_site.admin_view(view),
                name="{}_{}_editor_{}".format(*info, name),
            )
            for name, view in views
        ] + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if self.has_add_permission(request) if add else self.has_change_permission(request, obj):
            context["template_editor"] = self._editor_config(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _editor_config(self, obj) -> dict:
        info = self.opts.app_label, self.opts.model_name
        return {
            "urls": {
                name: reverse("admin:{}_{}_editor_{}".format(*info, name))
                for name in ("variables", "validate", "records", "preview")
            },
            "businessUnit": obj.business_unit_id if obj is not None else None,
            "maxLength": templating.MAX_BODY_LENGTH,
            # The counter's tables come from segments.py, so the page cannot drift from it.
            "encoding": {
                "basic": segments.GSM_BASIC.replace("\x1b", ""),
                "extension": segments.GSM_EXTENSION,
                "gsmSingle": segments.GSM_SINGLE,
                "gsmMulti": segments.GSM_MULTI,
                "ucs2Single": segments.UCS2_SINGLE,
                "ucs2Multi": segments.UCS2_MULTI,
            },
            "lookalikes": segments.LOOKALIKES,
        }

    def _check_editor_permission(self, request) -> None:
        if not (self.has_view_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied

    def _business_unit(self, request, value):
        """The BU named by the request, if the user may see it; None when none is given."""
        pk = _int_or_none(value)
        if pk is None:
            return None
        return get_object_or_404(template_business_units(request.user), pk=pk)

    def variables_view(self, request):
        """GET ?business_unit=ID: the variables list and the calling lists to preview with."""
        self._check_editor_permission(request)
        bu = self._business_unit(request, request.GET.get("business_unit"))
        lists = template_calling_lists(bu, request.user) if bu else []
        return JsonResponse(
            {
                "variables": [v.as_dict() for v in template_variables(bu)],
                "lists": [{"id": cl.pk, "name": cl.name} for cl in lists],
            }
        )

    @method_decorator(require_POST)
    def validate_view(self, request):
        """POST {business_unit, body}: every problem saving would report, with positions."""
        self._check_editor_permission(request)
        data = _json_body(request)
        bu = self._business_unit(request, data.get("business_unit"))
        body = str(data.get("body") or "")
        known = (template_fields_for(bu) if bu else []) or templating.SYSTEM_FIELDS
        problems = templating.validate(body, known)
        return JsonResponse(
            {
                "problems": [
                    {
                        "message": p.message,
                        "code": p.code,
                        "position": p.position,
                        "line": p.line,
                        "column": p.column,
                    }
                    for p in problems
                ]
            }
        )

    def records_view(self, request):
        """GET ?business_unit=ID&calling_list=ID&q=TEXT: records to preview with."""
        self._check_editor_permission(request)
        bu = self._business_unit(request, request.GET.get("business_unit"))
        if bu is None:
            raise BadRequest("Choose a business unit.")
        calling_list = get_object_or_404(
            template_calling_lists(bu, request.user),
            pk=_int_or_none(request.GET.get("calling_list")),
        )
        records = template_preview_records(
            calling_list, request.GET.get("q", "")[:100], self.preview_record_limit + 1
        )
        return JsonResponse(
            {
                "records": [
                    {"id": r.pk, "label": str(r)} for r in records[: self.preview_record_limit]
                ],
                "more": len(records) > self.preview_record_limit,
            }
        )

    @method_decorator(require_POST)
    def preview_view(self, request):
        """POST {business_unit, body, source: "sample"|"record", calling_list, record, values}.

        Merges the body with a record of one of the BU's lists, or with sample values (which the
        request may override), through the same parser and renderer as sending, and returns the
        merged text with its encoding and segments.
        """
        self._check_editor_permission(request)
        data = _json_body(request)
        bu = self._business_unit(request, data.get("business_unit"))
        body = str(data.get("body") or "").replace("\r\n", "\n")

        source = "record" if data.get("source") == "record" else "sample"
        if source == "record":
            if bu is None:
                raise BadRequest("Choose a business unit.")
            calling_list = get_object_or_404(
                template_calling_lists(bu, request.user), pk=_int_or_none(data.get("calling_list"))
            )
            record = get_object_or_404(
                calling_list.records.prefetch_related("destinations"),
                pk=_int_or_none(data.get("record")),
            )
            values = template_record_values(record)
            label = f"{record} ({calling_list.name})"
        else:
            values = template_sample_values(template_variables(bu))
            overrides = data.get("values") or {}
            if not isinstance(overrides, dict):
                raise BadRequest("values must be an object.")
            # Field names ignore case: a typed value replaces the sample in any spelling.
            spelled = {key.lower(): key for key in values}
            for key, value in overrides.items():
                values.pop(spelled.get(str(key).lower(), ""), None)
                values[str(key)] = "" if value is None else str(value)
            label = "sample values"

        try:
            compiled = templating.parse(body)
        except templating.TemplateSyntaxError as exc:
            return JsonResponse({"ok": False, "error": exc.message, "source": label})
        text = compiled.render(values)
        return JsonResponse(
            {
                "ok": True,
                "source": label,
                "text": text,
                "analysis": asdict(segments.analyse(text)),
                "variables": [
                    {"name": name, "value": value}
                    for name, value in merged_variable_texts(compiled, values)
                ],
            }
        )


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
        scoped("attempt__skill"),
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
                    "subject",
                    "body",
                    "html_body",
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
    actions = ["export_csv"]

    def get_fieldsets(self, request, obj=None):
        """A text has no subject or HTML part: only an email's page shows them."""
        if obj is not None and obj.subject:
            return self.fieldsets
        drop = {"subject", "html_body"}
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in drop]})
            for name, options in self.fieldsets
        ]

    # "Select all" exports every message the filters match, streamed (see pcsms.csvexport).
    @admin.action(description="Export the selected messages as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        stamp = timezone.localtime().strftime("%Y-%m-%d-%H%M")
        return csv_download(message_export_rows(queryset), f"messages-{stamp}.csv")


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
    """Inbound texts; only the review of a probable opt-out is a person's decision.

    The review is done with the actions (filter "Review: Pending review"): *confirm* keeps the
    opt-out (or makes it, under the "review only" policy or for a text read as "other"); *undo*
    removes the DNC entries the text created. Both record who decided.
    """

    list_display = [
        "from_number",
        "received_at",
        "short_body",
        "classification",
        "review",
        "reviewed_by",
        "business_unit",
        "to_number",
    ]
    list_filter = [
        "review",
        "classification",
        scoped("business_unit"),
        scoped("registration"),
        "received_at",
    ]
    search_fields = ["=from_number", "=carrier_sid", "body"]
    phone_search_field = "from_number"
    list_select_related = ["business_unit", "reviewed_by"]  # shown on every row
    show_full_result_count = False
    actions = ["confirm_opt_out", "undo_opt_out"]
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
        "review",
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

    def _review(self, request, queryset, service, verb: str) -> None:
        done, refused = 0, []
        for inbound in queryset:
            try:
                service(inbound=inbound, user=request.user)
                done += 1
            except ValidationError as error:
                refused.append(f"{inbound.from_number}: {' '.join(error.messages)}")
        if done:
            self.message_user(request, f"{done} text(s) {verb}.", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.ERROR)

    @admin.action(description="Confirm as opt-out (keep the number on DNC)", permissions=["change"])
    def confirm_opt_out(self, request, queryset):
        self._review(request, queryset, inbound_review_confirm, "confirmed as opt-outs")

    @admin.action(
        description="Undo: not an opt-out (remove the DNC entries it created)",
        permissions=["change"],
    )
    def undo_opt_out(self, request, queryset):
        self._review(request, queryset, inbound_review_undo, "undone")


@admin.register(SenderLease)
class SenderLeaseAdmin(SuperuserOnlyAdmin):
    """Which process sends for which code: shared machinery, for operations engineers."""

    list_display = ["transport_code", "holder", "expires_at", "acquired_at", "renewed_at"]
    readonly_fields = ["transport_code", "holder", "expires_at", "acquired_at", "renewed_at"]

    def has_add_permission(self, request, *args):
        return False


@admin.register(SenderProcess)
class SenderProcessAdmin(SuperuserOnlyAdmin):
    """Dispatcher processes seen recently, and how many codes each was sending for."""

    list_display = ["name", "seen_at", "codes"]
    readonly_fields = ["name", "seen_at", "codes"]

    def has_add_permission(self, request, *args):
        return False
