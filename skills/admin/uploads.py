"""Admin of upload jobs: the upload form, the mapping page, progress, cancel, the error report."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
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

from pcsms import timezones
from pcsms.admin_base import (
    FixedParentMixin,
    TenantAdmin,
    scoped,
)
from pcsms.files import validate_upload_size
from pcsms.models import BusinessUnit, visible_to
from pcsms.rows import FileError, detect_format, open_table
from skills.importing.fields import SYSTEM_FIELDS, custom_name_for
from skills.importing.mapping import MappingError, build_plan
from skills.importing.service import upload_job_preview
from skills.models import (
    FieldType,
    UploadJob,
)
from skills.services import upload_job_enqueue


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


# The mapping page offers the system fields in the import's order.
SYSTEM_FIELD_NAMES = [field.name for field in SYSTEM_FIELDS]


def _mapping_from_post(data, columns: list[str]) -> dict[str, dict[str, str]]:
    """The mapping page's form -> the stored mapping."""

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
