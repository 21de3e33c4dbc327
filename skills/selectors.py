"""Reads for skills and calling lists (HackSoft style: writes live in services.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.db.models import Count, QuerySet

from messaging.models import MessageStatus, OutboundMessage, TransportCode
from pcsms.models import BusinessUnit
from skills.models import CustomField, FilterCondition, FinalReason, Record, Skill
from skills.planner import RecordFilter, active_list_ids, custom_field_types


def custom_field_names(business_unit: BusinessUnit) -> list[str]:
    """Custom field names of the BU's calling lists: merge fields for its templates."""
    return list(
        CustomField.objects.filter(calling_list__business_unit=business_unit)
        .values_list("name", flat=True)
        .distinct()
    )


# --- Relative priorities ----------------------------------------------------------------------


@dataclass
class PriorityRow:
    skill: Skill
    code: TransportCode
    # The skill's part of its code's pace while every running skill of the code has texts
    # ready: now if it runs, else if it were started (the planner and the sender split a code
    # in proportion to priority; a skill alone on its code gets all of it).
    share: Fraction

    @property
    def running(self) -> bool:
        return self.skill.state == Skill.State.RUNNING

    @property
    def percent(self) -> int:
        return math.floor(100 * self.share + Fraction(1, 2))  # half up, as the page's script

    @property
    def rate(self) -> Decimal:
        """Texts (or segments) per second the share is worth."""
        share = Decimal(self.share.numerator) / Decimal(self.share.denominator)
        return (self.code.messages_per_second * share).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass
class PriorityGroup:
    business_unit: BusinessUnit
    rows: list[PriorityRow]


def skill_priority_table(skills: QuerySet[Skill]) -> list[PriorityGroup]:
    """The relative-priorities page: ``skills`` by business unit, then transport code."""
    skills = skills.select_related("business_unit", "registration__transport_code").order_by(
        "business_unit__name", "registration__transport_code__number", "-priority", "name"
    )
    running: dict[int, int] = {}  # transport code id -> the sum of its running skills' priority
    for skill in skills:
        if skill.state == Skill.State.RUNNING:
            code_id = skill.registration.transport_code_id
            running[code_id] = running.get(code_id, 0) + skill.priority
    groups: list[PriorityGroup] = []
    for skill in skills:
        code = skill.registration.transport_code
        others = running.get(code.id, 0)
        if skill.state == Skill.State.RUNNING:
            others -= skill.priority
        row = PriorityRow(skill, code, Fraction(skill.priority, others + skill.priority))
        if not groups or groups[-1].business_unit.id != skill.business_unit_id:
            groups.append(PriorityGroup(skill.business_unit, []))
        groups[-1].rows.append(row)
    return groups


# --- Filter preview ---------------------------------------------------------------------------

PREVIEW_SCAN_LIMIT = 200_000  # records checked in Python at most (see skill_filter_preview)


@dataclass
class FilterPreview:
    matching: int
    total: int  # the open records of the skill's active lists
    approximate: bool  # only the first PREVIEW_SCAN_LIMIT candidates were checked
    problems: list[str]

    @property
    def text(self) -> str:
        about = "about " if self.approximate else ""
        return f"{about}{self.matching:,} of {self.total:,} open records match the filter."


def skill_filter_preview(
    *, skill: Skill, conditions: list[FilterCondition], scan_limit: int = PREVIEW_SCAN_LIMIT
) -> FilterPreview:
    """How many open records of the skill's lists ``conditions`` (saved or not) let through.

    The planner's own filter (RecordFilter) does the work, so the count is what the skill
    would text. Conditions on custom numbers and yes/no values are checked in Python, record
    by record, as the planner does: past ``scan_limit`` candidates the count is extrapolated.
    """
    list_ids = active_list_ids(skill)
    records = Record.objects.filter(calling_list_id__in=list_ids, is_final=False)
    total = records.count()
    record_filter = RecordFilter(
        conditions,
        custom_types=custom_field_types(list_ids),
        phone_region=skill.business_unit.phone_region,
    )
    candidates = record_filter.apply(records)
    if not record_filter.checks:
        return FilterPreview(candidates.count(), total, False, record_filter.problems)
    matching = 0
    rows = candidates.order_by("pk").iterator(chunk_size=2000)
    for scanned, record in enumerate(rows, start=1):
        matching += record_filter.passes(record)
        if scanned >= scan_limit:
            share = matching / scanned
            return FilterPreview(
                round(share * candidates.count()), total, True, record_filter.problems
            )
    return FilterPreview(matching, total, False, record_filter.problems)


# --- A skill's progress -----------------------------------------------------------------------


@dataclass
class SkillProgress:
    records: int  # of the skill's active calling lists
    open: int
    finalized: list[tuple[str, int]]  # (reason, records), in FinalReason's order, none empty
    texts: list[tuple[str, int]]  # (status, texts the skill planned), in MessageStatus' order


def skill_progress(skill: Skill) -> SkillProgress:
    """Records of the skill's lists by outcome, and the skill's texts by status."""
    reasons = dict(FinalReason.choices)
    finals: dict[str, int] = {}
    records = open_records = 0
    rows = (
        Record.objects.filter(calling_list_id__in=active_list_ids(skill))
        .values_list("is_final", "final_reason")
        .annotate(n=Count("id"))
        .order_by()
    )
    for is_final, reason, n in rows:
        records += n
        if is_final:
            finals[reason] = finals.get(reason, 0) + n
        else:
            open_records += n
    # Through the attempts (indexed by skill): a skill's texts, on whichever code they went.
    statuses = dict(
        OutboundMessage.objects.filter(attempt__skill=skill)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return SkillProgress(
        records=records,
        open=open_records,
        finalized=[(reasons[r], finals[r]) for r in reasons if finals.get(r)]
        + [(r or "unknown", n) for r, n in finals.items() if r not in reasons],
        texts=[(label, statuses[s]) for s, label in MessageStatus.choices if statuses.get(s)],
    )
