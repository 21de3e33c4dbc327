"""Admin of a business unit's own compliance rules (stricter state rules, blackouts) and of the
ledger of texts the rules held back."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from pcsms.admin_base import (
    SYSTEM_FIELDSET,
    FixedParentMixin,
    PhoneSearchMixin,
    SystemWrittenMixin,
    TenantAdmin,
    TenantTabularInline,
    scoped,
)
from pcsms.models import BusinessUnit, visible_to
from skills.evidence import (
    NotANumber,
    evidence_csv,
    evidence_json,
    evidence_pdf,
    normalise_number,
    number_evidence,
)
from skills.models import Blackout, RuleHold, StateRuleOverride


@admin.register(StateRuleOverride)
class StateRuleOverrideAdmin(FixedParentMixin, TenantAdmin):
    """A BU's stricter version of a state's rule: applied on top of it, never instead."""

    fixed_after_creation = ("business_unit", "preset")
    list_display = [
        "preset",
        "business_unit",
        "start_time",
        "end_time",
        "no_sundays",
        "no_holidays",
        "max_per_24h",
        "updated_at",
    ]
    list_filter = [scoped("business_unit"), "preset"]
    search_fields = ["preset__code", "preset__name", "notes"]
    list_select_related = ["preset", "business_unit"]  # both shown on every row
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["business_unit", "preset"]}),
        (
            "Stricter than the state's rule (empty: the state's)",
            {
                "fields": [
                    ("start_time", "end_time"),
                    ("saturday_start", "saturday_end"),
                    ("sunday_start", "sunday_end"),
                    "no_sundays",
                    "no_holidays",
                    "max_per_24h",
                ]
            },
        ),
        ("Why", {"fields": ["source", "notes"]}),
        SYSTEM_FIELDSET,
    ]


@admin.register(Blackout)
class BlackoutAdmin(FixedParentMixin, TenantAdmin):
    """Declared by a compliance owner (a state of emergency): no texts to those states until it
    ends; queued texts are withdrawn at the moment of sending."""

    fixed_after_creation = ("business_unit",)
    list_display = ["reason", "business_unit", "states", "starts_at", "ends_at", "declared_by"]
    list_filter = [scoped("business_unit"), "starts_at"]
    search_fields = ["reason", "source"]
    list_select_related = ["business_unit", "declared_by"]  # both shown on every row
    readonly_fields = ["declared_by", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["business_unit", "reason", "states", ("starts_at", "ends_at")]}),
        ("Source", {"fields": ["source", "declared_by"]}),
        SYSTEM_FIELDSET,
    ]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.declared_by = request.user
        super().save_model(request, obj, form, change)


class RuleHoldInline(SystemWrittenMixin, TenantTabularInline):
    """On the record's page: every text a rule held back."""

    model = RuleHold
    fields = ["held_at", "phone_number", "kind", "rule", "held_until", "skill", "message"]
    readonly_fields = fields
    ordering = ["-held_at", "-id"]
    show_change_link = True
    verbose_name_plural = "texts held back by a rule"


@admin.register(RuleHold)
class RuleHoldAdmin(PhoneSearchMixin, SystemWrittenMixin, TenantAdmin):
    list_display = ["held_at", "phone_number", "kind", "rule", "held_until", "skill", "record"]
    list_filter = [scoped("business_unit"), scoped("skill"), "kind", "held_at"]
    search_fields = ["=phone_number", "rule", "=record__external_id"]
    phone_search_field = "phone_number"
    list_select_related = ["skill", "record"]  # both shown on every row
    fields = [
        "business_unit",
        "held_at",
        "phone_number",
        "kind",
        "rule",
        "source",
        "held_until",
        "skill",
        "record",
        "message",
    ]
    readonly_fields = fields
    show_full_result_count = False
    change_list_template = "admin/skills/rulehold/change_list.html"

    def get_urls(self):
        evidence = self.admin_site.admin_view(self.evidence_view)
        return [path("evidence/", evidence, name="skills_rulehold_evidence"), *super().get_urls()]

    def evidence_view(self, request):
        """Everything pcsms did with one number in the user's business units, and why."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        raw = request.GET.get("number", "").strip()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Evidence of a number",
            "raw_number": raw,
        }
        if raw:
            try:
                number = normalise_number(raw)
            except NotANumber as exc:
                context["error"] = str(exc)
            else:
                units = visible_to(BusinessUnit.objects.all(), request.user)
                evidence = number_evidence(number, units)
                form = request.GET.get("format", "")
                if form in EVIDENCE_FILES:
                    render, kind = EVIDENCE_FILES[form]
                    response = HttpResponse(render(evidence), content_type=kind)
                    name = f"evidence-{number.lstrip('+')}.{form}"
                    response["Content-Disposition"] = f'attachment; filename="{name}"'
                    return response
                context["evidence"] = evidence
        return TemplateResponse(request, "admin/skills/evidence.html", context)


EVIDENCE_FILES = {
    "pdf": (evidence_pdf, "application/pdf"),
    "csv": (evidence_csv, "text/csv; charset=utf-8"),
    "json": (evidence_json, "application/json"),
}
