"""Admin for campaigns, calling lists and their records, upload jobs, skills and attempts.

The skill's page groups its settings by parameter page (docs/spec.md section 7; fieldsets for the
pages that are fields, inlines for the pages that are lists).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import (
    FileResponse,
    Http404,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from messaging.models import OutboundMessage
from messaging.selectors import message_export_rows
from pcsms import timezones
from pcsms.admin_base import (
    FixedParentMixin,
    PhoneSearchMixin,
    ReferenceDataAdmin,
    SystemWrittenMixin,
    TenantAdmin,
    TenantTabularInline,
    scoped,
)
from pcsms.csvexport import csv_download
from pcsms.files import validate_upload_size
from pcsms.models import BusinessUnit, visible_to
from skills.models import (
    Attempt,
    CadenceStep,
    CallingList,
    Campaign,
    CpaRule,
    CustomField,
    Destination,
    FieldType,
    FilterCondition,
    Record,
    ScheduleDay,
    SendingWindowPreset,
    Skill,
    SortCriterion,
    TimeZoneBound,
    UploadJob,
    XsEvent,
)
from skills.selectors import (
    campaign_dashboard,
    skill_dashboard,
    skill_filter_preview,
    skill_priority_table,
)
from skills.services import (
    SkillStateError,
    skill_apply_defaults,
    skill_filter_changed,
    skill_pause,
    skill_priorities_set,
    skill_queue_reprioritise,
    skill_start,
    skill_stop,
)
from skills.xs import skill_xs_key_issue

SYSTEM_FIELDSET = ("System", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]})


# --- Campaigns and calling lists -------------------------------------------------------------


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
        campaign = _viewable(self, request, pk)
        return _dashboard_page(self, request, campaign, campaign_dashboard(campaign), "campaign")

    def dashboard_data_view(self, request, pk):
        campaign = _viewable(self, request, pk)
        return JsonResponse(
            _dashboard_data(f"campaign:{campaign.pk}", campaign_dashboard, campaign)
        )


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
        "upload_job",
        "created_at",
        "updated_at",
    ]
    inlines = [DestinationInline]
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
        ("Outcome", {"fields": ["is_final", "final_reason", "attempts", "last_attempt_at"]}),
        ("System", {"fields": ["upload_job", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]


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


class UploadJobForm(forms.ModelForm):
    """The upload page: the file and the import's settings; the mapping comes on the next page.

    A file that cannot be imported at all (wrong type, not UTF-8, empty, binary, no header) is
    refused here, with the reason, before anything is saved.
    """

    class Meta:
        model = UploadJob
        fields = [
            "calling_list",
            "file",
            "mode",
            "no_zone_policy",
            "default_time_zone",
            "expires_on",
            "start_skill",
        ]
        widgets = {"default_time_zone": forms.TextInput(attrs={"list": "pcsms-zone-names"})}

    preview = None

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if self.instance.pk is None:  # a saved job's file is already in storage
            validate_upload_size(upload)
        return upload

    def clean(self):
        cleaned = super().clean()
        calling_list = cleaned.get("calling_list") or (
            self.instance.calling_list if self.instance.calling_list_id else None
        )
        # Not checked by the model: the skill to start must be one of the list's BU.
        skill = cleaned.get("start_skill")
        if skill and calling_list and skill.business_unit_id != calling_list.business_unit_id:
            self.add_error("start_skill", f"{skill} belongs to another business unit.")
        zone = (cleaned.get("default_time_zone") or "").strip()
        if zone and calling_list:
            bu = calling_list.business_unit
            known = timezones.normalise_zone_name(zone)
            custom = bu.custom_time_zones.filter(name__iexact=zone).values_list("name", flat=True)
            if known is None and not custom:
                self.add_error(
                    "default_time_zone",
                    f"'{zone}' is not a time zone: use an IANA name such as America/Chicago or "
                    f"a custom zone of {bu}.",
                )
            else:
                cleaned["default_time_zone"] = known or custom[0]
        upload = cleaned.get("file")
        if self.instance.pk is None and upload and calling_list and not self.errors:
            self.preview = self._preview(upload, calling_list)
        return cleaned

    def _preview(self, upload, calling_list):
        from skills.importing.readers import FileError, detect_format, open_table

        try:
            file_format = detect_format(upload.name)
        except FileError as exc:
            self.add_error("file", str(exc))
            return None
        with tempfile.NamedTemporaryFile(suffix=Path(upload.name).suffix) as tmp:
            for block in upload.chunks():
                tmp.write(block)
            tmp.flush()
            upload.seek(0)
            try:
                table = open_table(tmp.name, file_format)
                table.close()
            except FileError as exc:
                self.add_error("file", str(exc))
                return None
        return file_format


@admin.register(UploadJob)
class UploadJobAdmin(FixedParentMixin, TenantAdmin):
    """Upload -> mapping page -> background import with live progress -> counts and report."""

    form = UploadJobForm
    change_form_template = "admin/skills/uploadjob/change_form.html"
    fixed_after_creation = ("calling_list",)
    list_display = [
        "__str__",
        "calling_list",
        "status",
        "progress",
        "rows_valid",
        "rows_invalid",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = [
        scoped("calling_list__business_unit"),
        scoped("calling_list"),
        "status",
        "mode",
        "created_at",
    ]
    search_fields = ["original_name", "calling_list__name"]
    # The list is in __str__ and its own column; the creator is shown too.
    list_select_related = ["calling_list", "created_by"]
    autocomplete_fields = ["calling_list", "start_skill"]
    readonly_fields = [
        "original_name",
        "file_format",
        "mapping_summary",
        "status",
        "progress",
        "rows_total",
        "rows_processed",
        "rows_valid",
        "rows_invalid",
        "rows_flagged",
        "message",
        "error_report_link",
        "cancel_requested",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    add_fieldsets = [
        (None, {"fields": ["calling_list", "file"]}),
        (
            "Import settings",
            {
                "fields": [
                    "mode",
                    "no_zone_policy",
                    "default_time_zone",
                    "expires_on",
                    "start_skill",
                ],
                "description": "Next you will see the file's columns and choose the field each "
                "one fills before the import starts.",
            },
        ),
    ]
    # The file itself is not linked: uploads are not served (they hold personal data).
    fieldsets = [
        (None, {"fields": ["calling_list", "original_name", "file_format"]}),
        (
            "Import settings",
            {
                "fields": [
                    "mapping_summary",
                    "mode",
                    "no_zone_policy",
                    "default_time_zone",
                    "expires_on",
                    "start_skill",
                ]
            },
        ),
        # Status, progress and counts are in the live panel above the form.
        ("Result", {"fields": ["message", "error_report_link", "cancel_requested"]}),
        ("System", {"fields": ["created_by", "created_at", "started_at", "finished_at"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # The job is about this file. Read-only rather than disabled: a disabled file field
            # re-validates the stored file, which fails once an imported file is cleaned away.
            fields.append("file")
        # Once the import has been queued its settings are history, not choices.
        if obj is not None and obj.status != UploadJob.Status.PENDING:
            fields += ["no_zone_policy", "default_time_zone", "expires_on", "mode", "start_skill"]
        return fields

    @admin.display(description="progress")
    def progress(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return f"{obj.rows_processed:,} / {obj.rows_total:,}"

    @admin.display(description="mapping")
    def mapping_summary(self, obj):
        if obj is None or not obj.mapping:
            return "-"
        items = []
        for column, spec in obj.mapping.items():
            field = spec.get("field") if isinstance(spec, dict) else spec
            items.append(f"{column} → {field}" if field else f"{column} (ignored)")
        return "; ".join(items)

    @admin.display(description="error report")
    def error_report_link(self, obj):
        if obj is None or not obj.error_report:
            return "-"
        url = reverse("admin:skills_uploadjob_report", args=[obj.pk])
        return format_html('<a href="{}">Download the error report (CSV)</a>', url)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            upload = form.cleaned_data.get("file")
            obj.original_name = getattr(upload, "name", "") or obj.original_name
            obj.file_format = form.preview or obj.file_format
            obj.status = UploadJob.Status.PENDING
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:skills_uploadjob_mapping", args=[obj.pk]))

    # --- Custom pages: mapping, progress (JSON), cancel, error report --------------------------

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(func)

        return [
            path("<int:pk>/mapping/", view(self.mapping_view), name="skills_uploadjob_mapping"),
            path("<int:pk>/progress/", view(self.progress_view), name="skills_uploadjob_progress"),
            path("<int:pk>/cancel/", view(self.cancel_view), name="skills_uploadjob_cancel"),
            path("<int:pk>/report/", view(self.report_view), name="skills_uploadjob_report"),
            *super().get_urls(),
        ]

    def _job(self, request, pk, change=False):
        job = self.get_object(request, str(pk))  # scoped to the user's business units
        if job is None:
            raise Http404("No such upload job in your business units.")
        allowed = (
            self.has_change_permission(request, job)
            if change
            else self.has_view_permission(request, job)
        )
        if not allowed:
            raise PermissionDenied
        return job

    def mapping_view(self, request, pk):
        from skills.importing.mapping import MappingError, build_plan
        from skills.importing.readers import FileError
        from skills.importing.service import upload_job_preview
        from skills.tasks import upload_job_enqueue

        job = self._job(request, pk, change=True)
        change_url = reverse("admin:skills_uploadjob_change", args=[job.pk])
        if job.status != UploadJob.Status.PENDING:
            messages.info(request, "This import has already been started.")
            return HttpResponseRedirect(change_url)
        try:
            preview = upload_job_preview(job=job)
        except FileError as exc:
            UploadJob.objects.filter(pk=job.pk).update(
                status=UploadJob.Status.FAILED, message=str(exc)
            )
            messages.error(request, str(exc))
            return HttpResponseRedirect(change_url)
        existing = dict(job.calling_list.custom_fields.values_list("name", "field_type"))
        current = job.mapping or preview.mapping
        error = ""
        if request.method == "POST":
            current = _mapping_from_post(request.POST, preview.columns)
            try:
                build_plan(preview.header, current, existing_types=existing)
            except MappingError as exc:
                error = str(exc)
            else:
                with transaction.atomic():
                    job.mapping = current
                    job.status = UploadJob.Status.QUEUED
                    job.save(update_fields=["mapping", "status"])
                    upload_job_enqueue(job=job)
                messages.success(request, "The import is queued; its progress shows below.")
                return HttpResponseRedirect(change_url)
        rows = []
        for index, column in enumerate(preview.columns):
            spec = current.get(column) or {}
            field = spec.get("field", "") if isinstance(spec, dict) else str(spec)
            is_system = field in SYSTEM_FIELD_NAMES
            rows.append(
                {
                    "index": index,
                    "column": column,
                    "samples": [r[index] for r in preview.sample[:3] if r[index]],
                    "choice": field if is_system or not field else "__custom__",
                    "custom_name": "" if is_system or not field else field,
                    "type": (spec.get("type") if isinstance(spec, dict) else None) or "string",
                    "existing": not is_system and field in existing,
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Map the columns of {job.original_name or job.file.name}",
            "job": job,
            "rows": rows,
            "preview": preview,
            "system_fields": SYSTEM_FIELD_NAMES,
            "field_types": FieldType.choices,
            "error": error,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/skills/uploadjob/mapping.html", context)

    def progress_view(self, request, pk):
        job = self._job(request, pk)
        done = job.status in (
            UploadJob.Status.COMPLETED,
            UploadJob.Status.FAILED,
            UploadJob.Status.CANCELLED,
        )
        total = max(job.rows_total, job.rows_processed)
        saving = job.status == UploadJob.Status.RUNNING and total and job.rows_processed >= total
        return JsonResponse(
            {
                "status": job.status,
                "status_display": "Saving the records" if saving else job.get_status_display(),
                "rows_total": total,
                "rows_processed": job.rows_processed,
                "rows_valid": job.rows_valid,
                "rows_invalid": job.rows_invalid,
                "rows_flagged": job.rows_flagged,
                "percent": round(100 * job.rows_processed / total) if total else 0,
                "cancel_requested": job.cancel_requested,
                "message": job.message,
                "finished": done,
                "report_url": (
                    reverse("admin:skills_uploadjob_report", args=[job.pk])
                    if job.error_report
                    else ""
                ),
            }
        )

    def cancel_view(self, request, pk):
        job = self._job(request, pk, change=True)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        now = timezone.now()
        # Not started yet: it simply never runs. Running: the importer stops at its next batch.
        stopped = UploadJob.objects.filter(
            pk=job.pk, status__in=[UploadJob.Status.PENDING, UploadJob.Status.QUEUED]
        ).update(
            status=UploadJob.Status.CANCELLED,
            cancel_requested=True,
            finished_at=now,
            message="Cancelled before it ran: nothing was imported.",
        )
        if not stopped:
            UploadJob.objects.filter(pk=job.pk, status=UploadJob.Status.RUNNING).update(
                cancel_requested=True
            )
        messages.info(request, "Cancelling: nothing from this file will be imported.")
        return HttpResponseRedirect(reverse("admin:skills_uploadjob_change", args=[job.pk]))

    def report_view(self, request, pk):
        job = self._job(request, pk)
        if not job.error_report:
            raise Http404("This upload has no error report.")
        stem = Path(job.original_name or "upload").stem
        return FileResponse(
            job.error_report.open("rb"),
            as_attachment=True,
            filename=f"{stem}-errors.csv",
            content_type="text/csv; charset=utf-8",
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["zone_names"] = sorted(
            set(timezones.US_ZONES)
            | {
                z
                for bu in visible_to(BusinessUnit.objects.all(), request.user)
                for z in bu.allowed_time_zones
            }
        )
        if add:
            # One way on from the upload: the mapping page (response_add), whatever is clicked.
            context.update(show_save_and_add_another=False, show_save_and_continue=False)
        elif obj is not None and obj.status != UploadJob.Status.PENDING:
            # Everything but the list is read-only once queued: nothing to save.
            context.update(
                show_save=False, show_save_and_add_another=False, show_save_and_continue=False
            )
        if obj is not None:
            total = max(obj.rows_total, obj.rows_processed)
            context["upload_counts"] = (
                f"{obj.rows_processed:,} of {total:,} rows: {obj.rows_valid:,} valid, "
                f"{obj.rows_invalid:,} invalid, {obj.rows_flagged:,} with warnings"
            )
            context["upload_percent"] = round(100 * obj.rows_processed / total) if total else 0
            context["progress_url"] = reverse("admin:skills_uploadjob_progress", args=[obj.pk])
            context["cancel_url"] = reverse("admin:skills_uploadjob_cancel", args=[obj.pk])
            context["mapping_url"] = reverse("admin:skills_uploadjob_mapping", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)


SYSTEM_FIELD_NAMES = [
    "ExternalId",
    "FirstName",
    "LastName",
    "PhoneNumber",
    "SMSPhoneNumber",
    "Address",
    "City",
    "State",
    "Zip",
    "TimeZone",
    "ExpirationDate",
    "Priority",
    "Score",
    "Customer1",
    "Customer2",
]


def _mapping_from_post(data, columns: list[str]) -> dict[str, dict[str, str]]:
    """The mapping page's form -> the stored mapping."""
    from skills.importing.fields import custom_name_for

    mapping = {}
    for index, column in enumerate(columns):
        choice = data.get(f"field_{index}", "")
        if choice == "__custom__":
            name = data.get(f"name_{index}", "").strip() or custom_name_for(column)
            mapping[column] = {"field": name, "type": data.get(f"type_{index}", "string")}
        elif choice in SYSTEM_FIELD_NAMES:
            mapping[column] = {"field": choice, "type": ""}
        else:
            mapping[column] = {"field": "", "type": ""}
    return mapping


# --- Skills and their parameter pages ---------------------------------------------------------
# Inlines in the order of the parameter pages (docs/spec.md section 7).


class CadenceStepInline(TenantTabularInline):
    model = CadenceStep
    tab = "cadence"  # the skill page's tab (SkillAdmin.tabs)
    verbose_name_plural = "2. Cadence settings: numbers texted, in order"
    fields = [
        "position",
        "phone_field",
        "attempts",
        "rest_minutes",
        "weekday_start",
        "weekday_end",
        "weekend_start",
        "weekend_end",
    ]


class CpaRuleInline(TenantTabularInline):
    model = CpaRule
    tab = "cpa"  # the skill page's tab (SkillAdmin.tabs)
    verbose_name_plural = "4. CPA management: carrier outcomes"
    fields = ["match", "outcome", "description", "bad_number_after"]


class FilterConditionInline(TenantTabularInline):
    model = FilterCondition
    tab = "filter"  # the skill page's tab (SkillAdmin.tabs)
    verbose_name_plural = "6. Filter: conditions (all must hold)"
    fields = ["position", "field", "operator", "value"]


class SortCriterionInline(TenantTabularInline):
    model = SortCriterion
    tab = "list"  # the skill page's tab (SkillAdmin.tabs)
    verbose_name_plural = "7. List management: sort order"
    fields = ["position", "field", "direction"]


class ScheduleDayInline(TenantTabularInline):
    model = ScheduleDay
    tab = "schedule"  # the skill page's tab (SkillAdmin.tabs)
    verbose_name_plural = "8. Schedule: days (in the BU's time zone)"
    fields = ["weekday", "is_active", "start_time", "end_time"]
    max_num = 7


class TimeZoneBoundInline(TenantTabularInline):
    model = TimeZoneBound
    tab = "zones"  # the skill page's tab (SkillAdmin.tabs)
    verbose_name_plural = "9. Time zone bounding"
    fields = ["time_zone", "is_active", "start_time", "end_time", "preset"]


class SkillForm(forms.ModelForm):
    # Skill.clean checks its foreign keys' BU; a model's clean cannot see many-to-many values.
    BU_CHECKED_M2M = ("calling_lists", "scrubbed_dnc_groups", "contributing_dnc_groups")

    def clean(self):
        cleaned = super().clean()
        bu = cleaned.get("business_unit")
        bu_id = bu.pk if bu is not None else self.instance.business_unit_id
        if bu_id is None:
            return cleaned
        for name in self.BU_CHECKED_M2M:
            others = [str(o) for o in cleaned.get(name) or [] if o.business_unit_id != bu_id]
            if others:
                self.add_error(name, "Of another business unit: " + ", ".join(others) + ".")
        return cleaned


@admin.register(Skill)
class SkillAdmin(FixedParentMixin, TenantAdmin):
    form = SkillForm
    list_display = [
        "name",
        "business_unit",
        "state",
        "priority",
        "campaign",
        "registration",
        "template",
        "schedule_enabled",
        "dashboard_link",
        "updated_at",
    ]
    list_filter = [scoped("business_unit"), "state", scoped("campaign"), "schedule_enabled"]
    search_fields = ["name", "campaign__name"]
    # All four are shown on every row.
    list_select_related = ["business_unit", "campaign", "registration", "template"]
    filter_horizontal = ["calling_lists", "scrubbed_dnc_groups", "contributing_dnc_groups"]
    # The state moves only through start/stop/pause, which also plan or withdraw messages.
    readonly_fields = [
        "state",
        "state_changed_at",
        "xs_api_key",
        "xs_endpoint",
        "created_at",
        "updated_at",
    ]
    inlines = [
        CadenceStepInline,
        CpaRuleInline,
        FilterConditionInline,
        SortCriterionInline,
        ScheduleDayInline,
        TimeZoneBoundInline,
    ]
    save_on_top = True
    actions = ["start_skills", "pause_skills", "stop_skills", "issue_xs_keys"]
    change_form_template = "admin/skills/skill/change_form.html"  # the parameter pages as tabs
    change_list_template = "admin/skills/skill/change_list.html"  # links the priorities page
    # Parameter pages (docs/spec.md section 7), one tab each (static/skills/skill_tabs.js; without
    # JavaScript every section shows, one under the other). A fieldset joins a tab by its
    # class, an inline by its ``tab``.
    tabs = [
        ("skill", "Skill"),
        ("general", "1. General"),
        ("cadence", "2. Cadence"),
        ("delivery", "3. Delivery"),
        ("cpa", "4. CPA"),
        ("retry", "5. Retry"),
        ("filter", "6. Filter"),
        ("list", "7. List management"),
        ("schedule", "8. Schedule"),
        ("zones", "9. Time zones"),
        ("xs", "10. XS"),
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "business_unit",
                    "name",
                    "campaign",
                    "registration",
                    "template",
                    "calling_lists",
                    "priority",
                ],
                "classes": ["skill-tab-skill"],
            },
        ),
        (
            "1. General settings",
            {
                "fields": [
                    "state",
                    "state_changed_at",
                    "max_attempts",
                    "min_retry_minutes",
                    "contact_expiration_days",
                    "feed",
                    "end_of_list_email",
                ],
                "classes": ["skill-tab-general"],
            },
        ),
        (
            "2. Cadence settings",
            {"fields": ["attempt_mode", "record_mode"], "classes": ["skill-tab-cadence"]},
        ),
        (
            "3. Delivery preferences",
            {
                "fields": ["receipt_mode", "receipt_wait_minutes", "max_segments"],
                "classes": ["skill-tab-delivery"],
            },
        ),
        (
            "5. Retry settings",
            {
                "fields": [
                    "finalize_when_exhausted",
                    "restricted_window_count",
                    "restricted_window_minutes",
                    "stale_minutes",
                ],
                "classes": ["skill-tab-retry"],
            },
        ),
        (
            "6. Filter",
            {"fields": ["filter_active", "filter_change_action"], "classes": ["skill-tab-filter"]},
        ),
        ("8. Schedule", {"fields": ["schedule_enabled"], "classes": ["skill-tab-schedule"]}),
        (
            "10. XS settings",
            {
                "fields": [
                    "xs_enabled",
                    "xs_endpoint",
                    "xs_api_key",
                    "xs_webhook_url",
                    "xs_refill_threshold",
                ],
                "classes": ["skill-tab-xs"],
            },
        ),
        (
            "DNC groups",
            {
                "fields": ["scrubbed_dnc_groups", "contributing_dnc_groups"],
                "classes": ["skill-tab-skill"],
            },
        ),
        (
            SYSTEM_FIELDSET[0],
            {**SYSTEM_FIELDSET[1], "classes": [*SYSTEM_FIELDSET[1]["classes"], "skill-tab-skill"]},
        ),
    ]

    @admin.display(description="CRM API key")
    def xs_api_key(self, obj):
        # Only a hash is stored; the key itself is shown once, when it is issued.
        if obj is not None and obj.xs_api_key_hash:
            return "set (issue a new one with the action of the skill list)"
        return 'not set: issue one with the skill list\'s action "Issue a new CRM API key"'

    @admin.display(description="CRM endpoint")
    def xs_endpoint(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        url = settings.PUBLIC_BASE_URL + reverse("xs_records", args=[obj.pk])
        return format_html(
            "POST <code>{}</code> with <code>Authorization: Bearer &lt;key&gt;</code> and a "
            'JSON body <code>{{"records": [{{"ExternalId": ..., "PhoneNumber": ...}}]}}</code>',
            url,
        )

    def get_inlines(self, request, obj):
        # A new skill gets its default rows when saved (save_related); editing starts from them.
        return self.inlines if obj is not None else []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Each tab: what it shows, as CSS selectors within the form (read by skill_tabs.js).
        inlines = context.get("inline_admin_formsets", [])
        context["skill_tabs"] = [
            {
                "key": key,
                "title": title,
                "selectors": [f"fieldset.skill-tab-{key}", f".skill-tab-{key}-extra"]
                + [
                    f"#{inline.formset.prefix}-group"
                    for inline in inlines
                    if getattr(inline.opts, "tab", None) == key
                ],
            }
            for key, title in self.tabs
        ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:
            skill_apply_defaults(skill=form.instance)
        else:
            if "priority" in form.changed_data:
                skill_queue_reprioritise(skill=form.instance)  # as the priorities page does
            filter_rows = [f for f in formsets if f.model is FilterCondition]
            if "filter_active" in form.changed_data or any(f.has_changed() for f in filter_rows):
                withdrawn = skill_filter_changed(skill=form.instance)
                if withdrawn:
                    self.message_user(
                        request,
                        f"The filter changed: {withdrawn} queued text(s) withdrawn "
                        f'("{form.instance.get_filter_change_action_display()}"); their '
                        "records go back to the list.",
                        messages.INFO,
                    )

    def _change_state(self, request, queryset, service, done: str) -> None:
        for skill in queryset:
            try:
                result = service(skill=skill)
            except SkillStateError as error:
                self.message_user(request, error.message, messages.ERROR)
                continue
            extra = ""
            if isinstance(result, tuple):
                extra = f" ({result[1]} queued texts withdrawn)"
            self.message_user(request, f'Skill "{skill}" {done}{extra}.', messages.SUCCESS)

    # --- The relative-priorities page ----------------------------------------------------------

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(func)

        return [
            path("priorities/", view(self.priorities_view), name="skills_skill_priorities"),
            path(
                "<int:pk>/filter-preview/",
                view(self.filter_preview_view),
                name="skills_skill_filter_preview",
            ),
            path("<int:pk>/dashboard/", view(self.dashboard_view), name="skills_skill_dashboard"),
            path(
                "<int:pk>/dashboard/data/",
                view(self.dashboard_data_view),
                name="skills_skill_dashboard_data",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="dashboard")
    def dashboard_link(self, obj):
        url = reverse("admin:skills_skill_dashboard", args=[obj.pk])
        return format_html('<a href="{}">Dashboard</a>', url)

    def dashboard_view(self, request, pk):
        skill = _viewable(self, request, pk)
        return _dashboard_page(self, request, skill, skill_dashboard(skill), "skill")

    def dashboard_data_view(self, request, pk):
        skill = _viewable(self, request, pk)
        return JsonResponse(_dashboard_data(f"skill:{skill.pk}", skill_dashboard, skill))

    def filter_preview_view(self, request, pk):
        """JSON: how many open records the filter rows now in the form (saved or not) match."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        skill = _viewable(self, request, pk)
        try:
            conditions = _posted_conditions(request.POST, FilterConditionInline)
        except ValidationError as exc:
            return JsonResponse({"error": " ".join(exc.messages)}, status=400)
        preview = skill_filter_preview(skill=skill, conditions=conditions)
        return JsonResponse(
            {
                "matching": preview.matching,
                "total": preview.total,
                "approximate": preview.approximate,
                "problems": preview.problems,
                "text": preview.text,
            }
        )

    def priorities_view(self, request):
        """Every skill the user may see, with its relative priority and what it is worth."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        skills = self.get_queryset(request)
        can_change = self.has_change_permission(request)
        errors: dict[str, list[str]] = {}
        posted: dict[int, str] = {}
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            posted = _posted_priorities(request.POST)
            # Only the user's own skills: another unit's id in the form is ignored.
            mine = {s.pk: s for s in skills.select_related("registration") if s.pk in posted}
            wanted = {}
            for pk, skill in mine.items():
                try:
                    wanted[skill] = int(posted[pk])
                except ValueError:
                    wanted[skill] = posted[pk]  # refused by the service, with its name
            try:
                changed = skill_priorities_set(priorities=wanted)
            except ValidationError as exc:
                errors = exc.message_dict
            else:
                names = ", ".join(f'"{s.name}" {s.priority}' for s in changed)
                self.message_user(
                    request,
                    f"Priorities saved: {names}." if changed else "No priority changed.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(request.path)
        groups = skill_priority_table(skills)
        if errors:  # the page shows what was typed, next to the errors
            for group in groups:
                for row in group.rows:
                    row.skill.priority = posted.get(row.skill.pk, row.skill.priority)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Relative priorities",
            "groups": groups,
            "choices": range(1, 11),
            "can_change": can_change,
            "errors": errors,
        }
        return TemplateResponse(request, "admin/skills/skill/priorities.html", context)

    @admin.action(
        description="Issue a new CRM API key (the old one stops working)", permissions=["change"]
    )
    def issue_xs_keys(self, request, queryset):
        for skill in queryset:
            key = skill_xs_key_issue(skill=skill)
            self.message_user(
                request,
                f'CRM API key of "{skill}": {key} (shown this once: store it in the CRM).',
                messages.WARNING,
            )

    @admin.action(description="Start selected skills", permissions=["change"])
    def start_skills(self, request, queryset):
        self._change_state(request, queryset, skill_start, "started")

    @admin.action(description="Pause selected skills (keep their queue)", permissions=["change"])
    def pause_skills(self, request, queryset):
        self._change_state(request, queryset, skill_pause, "paused")

    @admin.action(
        description="Stop selected skills (withdraw queued texts)", permissions=["change"]
    )
    def stop_skills(self, request, queryset):
        self._change_state(request, queryset, skill_stop, "stopped")


def _viewable(model_admin, request, pk):
    """The object of a custom admin page: one of the user's business units (else 404), which
    the user may view (else 403)."""
    obj = model_admin.get_object(request, str(pk))  # scoped to the user's business units
    if obj is None:
        raise Http404("Not found in your business units.")
    if not model_admin.has_view_permission(request, obj):
        raise PermissionDenied
    return obj


DASHBOARD_POLL_SECONDS = 5


def _dashboard_data(key: str, build, obj) -> dict:
    """A dashboard's figures, computed at most once per poll interval for all its viewers.

    On a list of a million records they take seconds of database work (measured: 1.7-7.9 s,
    most of it counting the records still waiting): the interval grows to ten times the time
    they took, and the page's script waits that long before it asks again.
    """
    cache_key = f"pcsms:dashboard:{key}"
    data = cache.get(cache_key)
    if data is None:
        started = time.monotonic()
        data = build(obj).as_json()
        took = time.monotonic() - started
        data["next_seconds"] = max(DASHBOARD_POLL_SECONDS, math.ceil(10 * took))
        cache.set(cache_key, data, data["next_seconds"] - 1)
    return data


def _dashboard_page(model_admin, request, obj, dashboard, kind: str):
    """The live dashboard of a skill or a campaign (static/skills/dashboard.js polls its data)."""
    opts = model_admin.opts
    prefix = f"admin:{opts.app_label}_{opts.model_name}"
    data = dashboard.as_json()
    data["next_seconds"] = DASHBOARD_POLL_SECONDS
    peak = max(dashboard.per_minute) or 1
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": f"Dashboard: {obj}",
        "object": obj,
        "kind": kind,
        "dashboard": dashboard,
        "data": data,
        "bars": [
            {
                "x": 10 * i,
                "y": 100 - round(100 * n / peak),
                "height": round(100 * n / peak),
                "count": n,
            }
            for i, n in enumerate(dashboard.per_minute)
        ],
        "peak": peak,
        "data_url": reverse(f"{prefix}_dashboard_data", args=[obj.pk]),
        "change_url": reverse(f"{prefix}_change", args=[obj.pk]),
    }
    return TemplateResponse(request, "admin/skills/dashboard.html", context)


def _posted_conditions(data, inline) -> list[FilterCondition]:
    """The filter rows of a posted skill form (its inline formset), unsaved and checked.

    Rows marked for deletion and rows left empty are skipped, as saving would.
    """
    prefix = FilterCondition._meta.get_field("skill").remote_field.get_accessor_name()
    operators = {value for value, _label in FilterCondition.Operator.choices}
    try:
        rows = int(data.get(f"{prefix}-TOTAL_FORMS", 0))
    except ValueError:
        raise ValidationError("The filter rows could not be read.") from None
    conditions = []
    for i in range(min(rows, inline.max_num or 1000)):
        row = f"{prefix}-{i}-"
        field = data.get(row + "field", "").strip()
        if data.get(row + "DELETE") or not field:
            continue
        operator = data.get(row + "operator", "")
        if operator not in operators:
            raise ValidationError(f'Row {i + 1}: choose an operator for "{field}".')
        value = data.get(row + "value", "")
        condition = FilterCondition(field=field, operator=operator, value=value)
        try:
            condition.clean()
        except ValidationError as exc:
            raise ValidationError(f'Row {i + 1} ("{field}"): ' + " ".join(exc.messages)) from None
        conditions.append(condition)
    return conditions


def _posted_priorities(data) -> dict[int, str]:
    """``priority_<skill id>`` fields of the priorities page -> {skill id: the value typed}."""
    posted = {}
    for key, value in data.items():
        name, _, pk = key.partition("_")
        if name == "priority" and pk.isdigit():
            posted[int(pk)] = value.strip()
    return posted


# The parameter-page rows also have their own changelists, to compare a setting across skills
# (e.g. which skills treat 30007 as transient); editing normally happens in the skill's page.


class SkillChildAdmin(FixedParentMixin, TenantAdmin):
    fixed_after_creation = ("skill",)
    list_filter = [scoped("skill__business_unit"), scoped("skill")]
    search_fields = ["skill__name"]
    list_select_related = ["skill"]  # the skill is shown on every row
    autocomplete_fields = ["skill"]


@admin.register(CadenceStep)
class CadenceStepAdmin(SkillChildAdmin):
    list_display = ["skill", "position", "phone_field", "attempts", "rest_minutes"]
    search_fields = ["skill__name", "phone_field"]
    fields = ["skill", *CadenceStepInline.fields]


@admin.register(CpaRule)
class CpaRuleAdmin(SkillChildAdmin):
    list_display = ["skill", "match", "outcome", "description", "bad_number_after"]
    list_filter = [*SkillChildAdmin.list_filter, "outcome"]
    search_fields = ["skill__name", "=match", "description"]
    fields = ["skill", *CpaRuleInline.fields]


@admin.register(FilterCondition)
class FilterConditionAdmin(SkillChildAdmin):
    list_display = ["skill", "position", "field", "operator", "value"]
    search_fields = ["skill__name", "field", "value"]
    fields = ["skill", *FilterConditionInline.fields]


@admin.register(SortCriterion)
class SortCriterionAdmin(SkillChildAdmin):
    list_display = ["skill", "position", "field", "direction"]
    fields = ["skill", *SortCriterionInline.fields]


@admin.register(ScheduleDay)
class ScheduleDayAdmin(SkillChildAdmin):
    list_display = ["skill", "weekday", "is_active", "start_time", "end_time"]
    list_filter = [*SkillChildAdmin.list_filter, "weekday", "is_active"]
    fields = ["skill", *ScheduleDayInline.fields]


@admin.register(TimeZoneBound)
class TimeZoneBoundAdmin(SkillChildAdmin):
    list_display = ["skill", "time_zone", "is_active", "start_time", "end_time", "preset"]
    list_filter = [*SkillChildAdmin.list_filter, "is_active", "time_zone"]
    search_fields = ["skill__name", "time_zone"]
    list_select_related = ["skill", "preset"]  # both shown on every row
    fields = ["skill", *TimeZoneBoundInline.fields]


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


# --- Shared reference data --------------------------------------------------------------------


@admin.register(SendingWindowPreset)
class SendingWindowPresetAdmin(ReferenceDataAdmin):
    list_display = ["code", "name", "start_time", "end_time", "no_sundays", "max_per_24h"]
    list_filter = ["no_sundays"]
    search_fields = ["code", "name"]
    fields = [
        "code",
        "name",
        "start_time",
        "end_time",
        "no_sundays",
        "max_per_24h",
        "area_codes",
        "notes",
    ]
