"""Admin for DNC groups and entries."""

from __future__ import annotations

import re
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import slugify

from dnc.importing import FORMATS, FileError, dnc_import, export_rows
from dnc.models import DncEntry, DncGroup
from dnc.services import dnc_group_set_active
from pcsms.admin_base import FixedParentMixin, PhoneSearchMixin, TenantAdmin, scoped
from pcsms.csvexport import csv_download
from pcsms.files import validate_upload_size

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


class DncImportForm(forms.Form):
    file = forms.FileField(
        help_text="A .csv (comma), .txt (tab) or .xlsx file with a phone number column and, "
        "optionally, an expire date column. Other columns are ignored."
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if Path(upload.name).suffix.lower() not in FORMATS:
            raise ValidationError("Upload a .csv, .txt or .xlsx file.")
        validate_upload_size(upload)
        return upload


REPORT_DIR = "dnc-import-reports"
_REPORT_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def _csv_response(groups, name: str) -> StreamingHttpResponse:
    stamp = timezone.localdate().isoformat()
    return csv_download(export_rows(groups), f"dnc-{slugify(name)}-{stamp}.csv")


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
    actions = ["export_csv", "activate_selected", "deactivate_selected"]
    change_form_template = "admin/dnc/dncgroup/change_form.html"

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

    # --- actions -----------------------------------------------------------------------------

    @admin.action(description="Export selected groups as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        groups = list(queryset)
        name = groups[0].name if len(groups) == 1 else "groups"
        return _csv_response(queryset.model.objects.filter(pk__in=[g.pk for g in groups]), name)

    @admin.action(description="Activate selected groups", permissions=["change"])
    def activate_selected(self, request, queryset):
        for group in queryset:
            dnc_group_set_active(group=group, is_active=True)
        self.message_user(request, f"{queryset.count()} group(s) active.", messages.SUCCESS)

    @admin.action(description="Deactivate selected groups", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        done = 0
        for group in queryset:
            try:
                dnc_group_set_active(group=group, is_active=False)
                done += 1
            except ValidationError as error:
                for text in error.messages:
                    self.message_user(request, text, messages.ERROR)
        if done:
            self.message_user(request, f"{done} group(s) deactivated.", messages.SUCCESS)

    # --- import and export pages -------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/import/",
                wrap(self.import_view),
                name="dnc_dncgroup_import",
            ),
            path(
                "<path:object_id>/import/report/<str:token>/",
                wrap(self.import_report_view),
                name="dnc_dncgroup_import_report",
            ),
            path(
                "<path:object_id>/export/",
                wrap(self.export_view),
                name="dnc_dncgroup_export",
            ),
            *super().get_urls(),
        ]

    def _group(self, request, object_id, *, change: bool) -> DncGroup:
        # get_object reads the BU-scoped queryset: another tenant's group is a 404.
        group = self.get_object(request, object_id)
        if group is None:
            raise Http404("No such DNC group in your business units.")
        allowed = (
            self.has_change_permission(request, group) and request.user.has_perm("dnc.add_dncentry")
            if change
            else self.has_view_permission(request, group)
        )
        if not allowed:
            raise PermissionDenied
        return group

    def import_view(self, request, object_id):
        group = self._group(request, object_id, change=True)
        result = report_url = None
        form = DncImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            suffix = Path(upload.name).suffix.lower()
            with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
                for chunk in upload.chunks():
                    handle.write(chunk)
                handle.flush()
                try:
                    result = dnc_import(
                        group=group, path=handle.name, file_name=upload.name, added_by=request.user
                    )
                except FileError as error:
                    form.add_error("file", f"{error} Nothing was imported.")
            if result is not None and result.report:
                token = uuid.uuid4().hex
                default_storage.save(
                    f"{REPORT_DIR}/{group.pk}/{token}.csv", ContentFile(result.report)
                )
                report_url = reverse("admin:dnc_dncgroup_import_report", args=[group.pk, token])
            if result is not None:
                self.message_user(
                    request,
                    f"{result.file_name}: {result.added} added, {result.updated} updated, "
                    f"{result.unchanged} already there, {result.invalid} rejected.",
                    messages.WARNING if result.invalid else messages.SUCCESS,
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": group,
            "title": f"Import numbers into {group.name}",
            "form": form,
            "result": result,
            "report_url": report_url,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/dnc/dncgroup/import.html", context)

    def import_report_view(self, request, object_id, token):
        group = self._group(request, object_id, change=True)
        name = f"{REPORT_DIR}/{group.pk}/{token}.csv"
        if not _REPORT_TOKEN.match(token) or not default_storage.exists(name):
            raise Http404("This error report no longer exists.")
        return FileResponse(
            default_storage.open(name, "rb"),
            as_attachment=True,
            filename=f"dnc-import-errors-{slugify(group.name)}.csv",
            content_type="text/csv",
        )

    def export_view(self, request, object_id):
        group = self._group(request, object_id, change=False)
        return _csv_response(DncGroup.objects.filter(pk=group.pk), group.name)


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
    readonly_fields = ["source", "added_by", "retain_until", "retention_rule", "created_at"]
    fields = [
        "group",
        "phone_number",
        "source",
        "expires_on",
        ("retain_until", "retention_rule"),
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
