"""Admin of skills: the skill's page, grouped by parameter page (docs/spec.md section 7; fieldsets
for the pages that are fields, inlines for the pages that are lists), its actions, the
relative-priorities page and the filter preview."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from pcsms.admin_base import (
    SYSTEM_FIELDSET,
    FixedParentMixin,
    TenantAdmin,
    TenantTabularInline,
    scoped,
)
from skills.admin.dashboards import dashboard_data, dashboard_page, forecast_chart, viewable
from skills.admin.setup_guide import setup_guide_page
from skills.admin.why import dashboard_why, why_panel
from skills.diagnosis import skill_why
from skills.forecast import skill_forecast
from skills.models import (
    CadenceStep,
    CpaRule,
    FilterCondition,
    ScheduleDay,
    Skill,
    SortCriterion,
    TimeZoneBound,
)
from skills.selectors import (
    eta_text,
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
from skills.windows import schedule_zone
from skills.xs import skill_xs_key_issue

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
        "channel",
        "state",
        "priority",
        "campaign",
        "registration",
        "template",
        "schedule_enabled",
        "dashboard_link",
        "updated_at",
    ]
    list_filter = [
        scoped("business_unit"),
        "channel",
        "state",
        scoped("campaign"),
        "schedule_enabled",
    ]
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
                    "channel",
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
        if obj is not None:  # what holds its texts now (skills/diagnosis.py)
            context["why"] = why_panel(skill_why(obj))
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
            path("setup/", view(self.setup_guide_view), name="skills_skill_setup"),
            path(
                "<int:pk>/filter-preview/",
                view(self.filter_preview_view),
                name="skills_skill_filter_preview",
            ),
            path("<int:pk>/dashboard/", view(self.dashboard_view), name="skills_skill_dashboard"),
            path("<int:pk>/forecast/", view(self.forecast_view), name="skills_skill_forecast"),
            path(
                "<int:pk>/dashboard/data/",
                view(self.dashboard_data_view),
                name="skills_skill_dashboard_data",
            ),
            *super().get_urls(),
        ]

    def setup_guide_view(self, request):
        """The guided set-up of a first skill, step by step (skills/admin/setup_guide.py)."""
        return setup_guide_page(self, request)

    @admin.display(description="dashboard")
    def dashboard_link(self, obj):
        url = reverse("admin:skills_skill_dashboard", args=[obj.pk])
        return format_html('<a href="{}">Dashboard</a>', url)

    def dashboard_view(self, request, pk):
        skill = viewable(self, request, pk)
        return dashboard_page(
            self, request, skill, skill_dashboard(skill), "skill", extra=dashboard_why
        )

    def forecast_view(self, request, pk):
        """When the skill will finish if it starts now (or at the time asked), day by day and
        hour by hour, with what the forecast assumes (skills.forecast)."""
        skill = viewable(self, request, pk)
        zone = schedule_zone(skill.business_unit)
        start, error = None, ""
        asked = request.GET.get("start", "").strip()
        if asked:
            try:
                start = dt.datetime.fromisoformat(asked)
            except ValueError:
                error = f"{asked!r} is not a date and time such as 2026-12-08T09:00."
            else:
                if start.tzinfo is None:
                    start = start.replace(tzinfo=zone)
        forecast = skill_forecast(skill, now=start)
        return TemplateResponse(
            request,
            "admin/skills/forecast.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Forecast: {skill}",
                "object": skill,
                "forecast": forecast,
                "chart": forecast_chart(forecast, zone),
                "zone": zone,
                "asked": asked,
                "error": error,
                "start_local": forecast.starts_at.astimezone(zone),
                "finish_local": forecast.finishes_at.astimezone(zone)
                if forecast.finishes_at
                else None,
                "duration": eta_text(round(forecast.duration.total_seconds() / 60))
                if forecast.duration
                else "",
                "days": [
                    {
                        "day": d.day,
                        "texts": d.texts,
                        "finished": d.finished,
                        "first": d.first_text.astimezone(zone) if d.first_text else None,
                        "last": d.last_text.astimezone(zone) if d.last_text else None,
                    }
                    for d in forecast.days
                ],
                "change_url": reverse("admin:skills_skill_change", args=[skill.pk]),
                "dashboard_url": reverse("admin:skills_skill_dashboard", args=[skill.pk]),
            },
        )

    def dashboard_data_view(self, request, pk):
        skill = viewable(self, request, pk)
        return JsonResponse(
            dashboard_data(f"skill:{skill.pk}", skill_dashboard, skill, extra=dashboard_why)
        )

    def filter_preview_view(self, request, pk):
        """JSON: how many open records the filter rows now in the form (saved or not) match."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        skill = viewable(self, request, pk)
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
