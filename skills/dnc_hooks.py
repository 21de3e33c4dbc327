"""The skills' side of an opt-out.

When a number opts out of a business unit (a STOP reply, a free-text opt-out, or the carrier's
21610 "unsubscribed" error), the skill that sent the last text to that number adds it to its
**contributing** DNC groups and finalizes the record the text was for (``opted_out``), as the CPA
page's "opted out" outcome says. ``dnc`` calls this through
:data:`dnc.services.OPT_OUT_LISTENERS`; ``SkillsConfig.ready`` puts it there, so ``dnc`` never
imports ``skills``.

It also answers :data:`dnc.services.RETENTION_RULES`: how long a state requires the recipient's
opt-out to be honoured (Virginia, 10 years), from the state rules that apply to the number.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from dnc.services import OptOut, dnc_entry_add
from messaging.models import OutboundMessage
from messaging.selectors import registrations_bound_by
from skills.models import Attempt, Destination, FinalReason, Record, SendingWindowPreset
from skills.windows import area_code, area_code_state, state_code
from skills.xs import xs_records_finalized


def last_attempt_for(opt_out: OptOut) -> Attempt | None:
    """The skill attempt behind the opt-out: the text that caused it (a carrier error), else
    the last text handed to the carrier for that number under the registrations the opt-out
    binds; ``None`` if that text did not come from a skill."""
    related = ("skill", "record")  # both are read and changed below
    if opt_out.message_id is not None:
        attempt = (
            Attempt.objects.filter(message_id=opt_out.message_id).select_related(*related).first()
        )
        if attempt is not None:
            return attempt
    last = (
        OutboundMessage.objects.filter(
            business_unit=opt_out.business_unit,
            to=opt_out.phone_number,
            sent_at__isnull=False,
            # Under the scope "this registration" another program's text is not the one
            # the recipient answered, and its record goes on (docs/spec.md section 12).
            registration__in=registrations_bound_by(
                business_unit=opt_out.business_unit, stop_group=opt_out.group
            ),
        )
        .order_by("-sent_at", "-id")
        .values_list("id", flat=True)
        .first()
    )
    if last is None:
        return None
    return Attempt.objects.filter(message_id=last).select_related(*related).first()


def skill_opt_out(opt_out: OptOut) -> None:
    attempt = last_attempt_for(opt_out)
    if attempt is None:
        return
    skill = attempt.skill
    added = []
    for group in skill.contributing_dnc_groups.filter(is_active=True).exclude(pk=opt_out.group.pk):
        entry, changed = dnc_entry_add(
            group=group,
            phone_number=opt_out.phone_number,
            source=opt_out.source,
            evidence=opt_out.evidence,
            added_by=opt_out.added_by,
        )
        if changed:
            opt_out.entries.append(entry)
            added.append(group.name)
    if added:
        names = ", ".join(f"'{name}'" for name in added)
        opt_out.notes.append(f"added to skill '{skill.name}' contributing group(s) {names}")
    finalized = Record.objects.filter(pk=attempt.record_id, is_final=False).update(
        is_final=True, final_reason=FinalReason.OPTED_OUT, updated_at=timezone.now()
    )
    if finalized:
        xs_records_finalized(
            skill=skill, record_ids=[attempt.record_id], reason=FinalReason.OPTED_OUT
        )
        opt_out.notes.append(f"finalized record {attempt.record.external_id} (opted out)")
    # The attempt's own outcome (a 21610 failure is "opted out") is skills.outcomes' business.


def stop_retention(
    *, business_unit_id: int, phone_number: str, collected_on: dt.date
) -> tuple[dt.date, str] | None:
    """Until when an opt-out of this number must be kept, by the longest retention of the state
    rules that apply to it: the states of the BU's records with the number, its area code's
    state, and the presets that presume residents from its area code."""
    states = {area_code_state(phone_number)}
    records = Destination.objects.filter(
        phone_number=phone_number, record__calling_list__business_unit_id=business_unit_id
    ).values_list("record__state", flat=True)
    states |= {state_code(s) or s.strip().upper() for s in records.distinct()[:50]}
    code = area_code(phone_number)
    found = None
    for preset in SendingWindowPreset.objects.filter(stop_retention_years__isnull=False):
        if preset.code not in states and code not in [str(c) for c in preset.area_codes or []]:
            continue
        until = _years_after(collected_on, preset.stop_retention_years)
        if found is None or until > found[0]:
            rule = f"{preset.code}: a STOP is honoured for {preset.stop_retention_years} years"
            found = (until, f"{rule} ({preset.source})" if preset.source else rule)
    return found


def _years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)
