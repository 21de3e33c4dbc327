"""The skills' parameter rows on their own (cadence steps, CPA rules, filter conditions, sort
criteria, schedule days, time-zone bounds) and the shared sending-window presets."""

from __future__ import annotations

from django.contrib import admin

from pcsms.admin_base import (
    FixedParentMixin,
    ReferenceDataAdmin,
    ReferenceDataTabularInline,
    TenantAdmin,
    scoped,
)
from skills.admin.skill import (
    CadenceStepInline,
    CpaRuleInline,
    FilterConditionInline,
    ScheduleDayInline,
    SortCriterionInline,
    TimeZoneBoundInline,
)
from skills.models import (
    CadenceStep,
    CpaRule,
    FilterCondition,
    PresetHoliday,
    ScheduleDay,
    SendingWindowPreset,
    SortCriterion,
    TimeZoneBound,
)


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


class PresetHolidayInline(ReferenceDataTabularInline):
    """The preset's holiday dates (filled by ``manage.py state_holidays``, edited here)."""

    model = PresetHoliday
    extra = 0
    fields = ["date", "name"]


@admin.register(PresetHoliday)
class PresetHolidayAdmin(ReferenceDataAdmin):
    """Every preset's holiday dates, to find one day across states."""

    list_display = ["date", "preset", "name"]
    list_filter = ["preset"]
    search_fields = ["name", "preset__code"]
    date_hierarchy = "date"


@admin.register(SendingWindowPreset)
class SendingWindowPresetAdmin(ReferenceDataAdmin):
    list_display = [
        "code",
        "name",
        "start_time",
        "end_time",
        "no_sundays",
        "no_holidays",
        "max_per_24h",
        "effective_from",
        "source",
    ]
    list_filter = ["no_sundays"]
    search_fields = ["code", "name"]
    fields = [
        "code",
        "name",
        ("start_time", "end_time"),
        ("saturday_start", "saturday_end"),
        ("sunday_start", "sunday_end"),
        "no_sundays",
        ("no_holidays", "observed_rule"),
        ("max_per_24h", "cap_purchase_exempt_months"),
        "stop_retention_years",
        "area_codes",
        "effective_from",
        "source",
        "notes",
    ]
    inlines = [PresetHolidayInline]
