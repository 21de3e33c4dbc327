"""Writes for skills and calling lists (HackSoft style: keyword-only, typed, <entity>_<action>)."""

from __future__ import annotations

import collections
import datetime as dt
import logging
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from messaging.models import (
    Channel,
    MessageStatus,
    MessageTemplate,
    OutboundMessage,
    WithdrawReason,
)
from messaging.outbox import withdraw
from messaging.tasks import kick_senders
from pcsms.queue import enqueue_on_commit
from pcsms.timezones import resolve_zone
from skills.calendars import holiday_calendar
from skills.diagnosis import start_problems
from skills.filters import RecordFilter, custom_field_types
from skills.forecast import skill_forecast
from skills.importing.service import Progress, upload_job_run
from skills.models import (
    DEFAULT_CPA_RULES,
    Attempt,
    CadenceStep,
    CallingList,
    CpaRule,
    PresetHoliday,
    Record,
    RecordTally,
    ScheduleDay,
    SendingWindowPreset,
    Skill,
    SkillForecast,
    SortCriterion,
    TimeZoneBound,
    UploadJob,
    Weekday,
)
from skills.queries import active_list_ids, pending_q, textable_records
from skills.selectors import skill_progress
from skills.windows import schedule_window

logger = logging.getLogger(__name__)

DEFAULT_CADENCE = [("SMSPhoneNumber", 1), ("PhoneNumber", 1)]
DEFAULT_EMAIL_CADENCE = [("Email", 1)]


@transaction.atomic
def skill_apply_defaults(*, skill: Skill) -> None:
    """Give a new skill the default rows of its list-like parameter pages.

    Only pages that are still empty are filled, so calling it again never overwrites what an
    administrator changed. Defaults: CPA rules of docs/spec.md section 13, SMS then main number
    (an email skill: the Email column),
    Monday-Saturday 08:00-21:00, every allowed zone of the BU active at the TCPA window, and
    records taken oldest first.
    """
    if not skill.cpa_rules.exists():
        CpaRule.objects.bulk_create(
            CpaRule(skill=skill, match=match, outcome=outcome, description=description)
            for match, outcome, description in DEFAULT_CPA_RULES
        )
    if not skill.cadence_steps.exists():
        CadenceStep.objects.bulk_create(
            CadenceStep(skill=skill, position=i, phone_field=field, attempts=attempts)
            for i, (field, attempts) in enumerate(
                DEFAULT_EMAIL_CADENCE if skill.channel == Channel.EMAIL else DEFAULT_CADENCE
            )
        )
    if not skill.schedule_days.exists():
        ScheduleDay.objects.bulk_create(
            ScheduleDay(
                skill=skill,
                weekday=day.value,
                is_active=day != Weekday.SUNDAY,
                start_time=dt.time(8, 0),
                end_time=dt.time(21, 0),
            )
            for day in Weekday
        )
    if not skill.time_zone_bounds.exists():
        TimeZoneBound.objects.bulk_create(
            TimeZoneBound(skill=skill, time_zone=zone, is_active=True)
            for zone in skill.business_unit.allowed_time_zones
        )
    if not skill.sort_criteria.exists():
        SortCriterion.objects.create(skill=skill, position=0, field="created_at")


class SkillStateError(ValidationError):
    """A start, pause or stop that is not allowed now; the message says why in plain words."""


def _check_startable(skill: Skill) -> list[str]:
    # The template row is read locked (see skill_start); the checks are those the "why is
    # nothing sending" panel names.
    template = MessageTemplate.objects.select_for_update().get(pk=skill.template_id)
    return [reason.text for reason in start_problems(skill, template)]


@transaction.atomic
def skill_start(*, skill: Skill) -> Skill:
    """Start sending. Only with an active template, registration and provisioned code.

    The template row is locked while checking, so a template cannot be deactivated between the
    check and the start (deactivation takes the same lock and sees the running skill).
    """
    skill = (
        Skill.objects.select_for_update()
        .select_related("registration__transport_code")
        .get(pk=skill.pk)
    )
    if skill.state == Skill.State.RUNNING:
        return skill
    problems = _check_startable(skill)
    if problems:
        raise SkillStateError(f'Skill "{skill}" cannot start: ' + "; ".join(problems) + ".")
    skill.state = Skill.State.RUNNING
    skill.state_changed_at = timezone.now()
    skill.paused_reason = ""
    skill.save(update_fields=["state", "state_changed_at", "paused_reason", "updated_at"])
    kick_senders()
    # The forecast of this start, which the dashboard compares with what happens.
    enqueue_on_commit(
        "skills.tasks.forecast_skill_task",
        skill.id,
        skill.state_changed_at.isoformat(),
        task_name=f"forecast_skill_{skill.id}",
        group="planner",
    )
    # A pass of its own at once, so its first texts do not wait for the next tick.
    enqueue_on_commit(
        "skills.tasks.plan_skill_task",
        skill.id,
        task_name=f"plan_skill_{skill.id}",
        group="planner",
    )
    return skill


@transaction.atomic
def skill_priorities_set(*, priorities: dict[Skill, int]) -> list[Skill]:
    """Set the relative priority (1-10) of each skill; returns the skills that changed.

    Queued texts carry their skill's priority (the sender shares a code by it): they take
    the new one at once, not only the texts planned from now on. All or nothing: one value
    out of range changes no skill.
    """
    errors = {
        skill.name: f"{value!r} is not a priority from 1 to 10"
        for skill, value in priorities.items()
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10
    }
    if errors:
        raise ValidationError(errors)
    changed = [skill for skill, value in priorities.items() if skill.priority != value]
    for skill in changed:
        skill.priority = priorities[skill]
        skill.save(update_fields=["priority", "updated_at"])
        skill_queue_reprioritise(skill=skill)
    return changed


def skill_queue_reprioritise(*, skill: Skill) -> int:
    """The skill's queued texts take its current priority (the sender shares a code by the
    texts' priority); returns how many. Texts already sent keep theirs, as history."""
    # By code, status and source: the sender's queue index answers it.
    return OutboundMessage.objects.filter(
        transport_code_id=skill.registration.transport_code_id,
        status=MessageStatus.QUEUED,
        source=f"skill:{skill.pk}",
    ).update(priority=skill.priority)


@transaction.atomic
def skill_pause(*, skill: Skill, reason: str = "") -> Skill:
    """Hold sending and keep the queue: the sender keeps paused skills' texts queued.

    ``reason``: why the system paused it (a spam block), for the alerts; empty when a person
    did."""
    skill = Skill.objects.select_for_update().get(pk=skill.pk)
    if skill.state == Skill.State.PAUSED:
        return skill
    if skill.state != Skill.State.RUNNING:
        raise SkillStateError(
            f'Skill "{skill}" is {skill.get_state_display().lower()}, not running.'
        )
    skill.state = Skill.State.PAUSED
    skill.state_changed_at = timezone.now()
    skill.paused_reason = reason[:300]
    skill.save(update_fields=["state", "state_changed_at", "paused_reason", "updated_at"])
    return skill


def skill_stop(*, skill: Skill) -> tuple[Skill, int]:
    """Stop sending; texts still queued are withdrawn (never lost: each keeps its reason and
    its record stays open for a later run). Returns the skill and how many were withdrawn."""
    with transaction.atomic():
        skill = Skill.objects.select_for_update().get(pk=skill.pk)
        if skill.state not in (Skill.State.STOPPED, Skill.State.COMPLETED):
            skill.state = Skill.State.STOPPED
            skill.state_changed_at = timezone.now()
            skill.save(update_fields=["state", "state_changed_at", "updated_at"])
    queued = list(
        OutboundMessage.objects.filter(
            attempt__skill=skill, status=MessageStatus.QUEUED
        ).values_list("id", flat=True)
    )
    withdrawn = withdraw(queued, WithdrawReason.SKILL_STOPPED)
    return skill, withdrawn


def skill_filter_changed(*, skill: Skill) -> int:
    """Apply the skill's "when the filter changes" choice to its queued texts, after its filter
    (the switch or a condition) was changed; returns how many texts were withdrawn.

    Withdrawn texts give their attempt back: the record returns to the list and the next pass
    plans it again if it passes the new filter (skills.outcomes).
    """
    action = skill.filter_change_action
    if action == Skill.FilterChange.NOTHING:
        return 0
    # Through the attempts (indexed by skill): the skill's texts on whichever code.
    queued = OutboundMessage.objects.filter(attempt__skill=skill, status=MessageStatus.QUEUED)
    if action == Skill.FilterChange.FLUSH:
        return withdraw(list(queued.values_list("id", flat=True)), WithdrawReason.FILTERED)
    if not skill.filter_active:
        return 0  # no filter any more: every queued text passes
    rows = list(queued.values_list("id", "attempt__record_id"))
    list_ids = active_list_ids(skill)
    record_filter = RecordFilter(
        skill.filter_conditions.all(),
        custom_types=custom_field_types(list_ids),
        phone_region=skill.business_unit.phone_region,
    )
    candidates = record_filter.apply(Record.objects.filter(pk__in={r for _m, r in rows}))
    passing = {record.pk for record in candidates if record_filter.passes(record)}
    return withdraw([m for m, r in rows if r not in passing], WithdrawReason.FILTERED)


def skill_end_of_list_notify(*, skill_id: int) -> bool:
    """E-mail the skill's end-of-list address that its list is done, with the outcomes.

    Run as a task once the skill is marked completed (skill_complete_if_finished).
    Returns False when the skill has no address (or is gone).
    """
    skill = Skill.objects.select_related("business_unit").filter(pk=skill_id).first()
    if skill is None or not skill.end_of_list_email:
        return False
    progress = skill_progress(skill)
    zone = skill.business_unit.default_time_zone or settings.TIME_ZONE
    tzinfo = resolve_zone(zone, skill.business_unit) or ZoneInfo(settings.TIME_ZONE)
    completed_at = timezone.localtime(skill.state_changed_at or timezone.now(), tzinfo)
    body = render_to_string(
        "skills/email/end_of_list.txt",
        {
            "skill": skill,
            "progress": progress,
            "texts_total": sum(n for _status, n in progress.texts),
            "lists": list(
                skill.calling_lists.filter(status=CallingList.Status.ACTIVE)
                .order_by("name")
                .values_list("name", flat=True)
            ),
            "completed_at": completed_at,
            "zone": zone,
            "url": settings.PUBLIC_BASE_URL + reverse("admin:skills_skill_change", args=[skill.pk]),
        },
    )
    send_mail(
        f'pcsms: skill "{skill.name}" has finished its list',
        body,
        None,  # DEFAULT_FROM_EMAIL
        [skill.end_of_list_email],
    )
    return True


# --- State rules -------------------------------------------------------------------------------


def preset_holidays_fill(*, years: list[int], codes: list[str] | None = None) -> dict[str, int]:
    """Add the legal holidays of ``years`` to each no-holiday preset (and to any preset named in
    ``codes``), on their days and the days they are observed by the preset's rule (see
    :func:`holiday_calendar`); returns the dates added per preset code. Dates already there,
    and any a compliance owner removed or added for another year, are left alone.
    """
    presets = SendingWindowPreset.objects.all()
    if codes:
        presets = presets.filter(code__in=[c.strip().upper() for c in codes])
    else:
        presets = presets.filter(no_holidays=True)
    added: dict[str, int] = {}
    for preset in presets:
        try:
            calendar = holiday_calendar(preset.code, years, preset.observed_rule)
        except NotImplementedError:  # not a US state code: its dates are entered by hand
            added[preset.code] = 0
            continue
        rows = [PresetHoliday(preset=preset, date=day, name=name) for day, name in calendar.items()]
        before = preset.holidays.count()
        PresetHoliday.objects.bulk_create(rows, ignore_conflicts=True)
        added[preset.code] = preset.holidays.count() - before
    return added


# --- Completion and schedules (run by the planner's tick) --------------------------------------


def record_tallies_compact() -> int:
    """Fold the record tallies into one row per list and state (dropping states that add up to
    none, such as those of deleted lists); returns the rows folded.

    The triggers add rows with every statement that moves records between states; the planner's
    tick folds them, so that a dashboard adds up a few rows per list. The rows read are the rows
    deleted (DELETE ... RETURNING), so a statement committing meanwhile is never lost.
    """
    table = connection.ops.quote_name(RecordTally._meta.db_table)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} RETURNING "  # noqa: S608 (a model's table name)
                "calling_list_id, is_final, final_reason, attempts, time_zone, records"
            )
            rows = cursor.fetchall()
        sums: collections.Counter = collections.Counter()
        for list_id, is_final, reason, attempts, zone, n in rows:
            sums[list_id, bool(is_final), reason, attempts, zone] += n
        RecordTally.objects.bulk_create(
            RecordTally(
                calling_list_id=list_id,
                is_final=is_final,
                final_reason=reason,
                attempts=attempts,
                time_zone=zone,
                records=n,
            )
            for (list_id, is_final, reason, attempts, zone), n in sorted(sums.items())
            if n
        )
    return len(rows)


def skill_complete_if_finished(*, skill: Skill, now: dt.datetime | None = None) -> bool:
    """Mark a running skill completed when every record of its active lists is final, or when
    nothing can ever be planned again: the rest used every attempt or has no number the skill
    may text, and nothing is pending. Those records stay open (the end-of-list e-mail and the
    dashboard count them)."""
    now = now or timezone.now()
    list_ids = active_list_ids(skill)
    if not list_ids:
        return False
    open_records = Record.objects.filter(calling_list_id__in=list_ids, is_final=False)
    if open_records.exists():
        if textable_records(skill, open_records).exists():
            return False
        if Attempt.objects.filter(pending_q(skill, now), skill=skill).exists():
            return False
    changed = Skill.objects.filter(pk=skill.pk, state=Skill.State.RUNNING).update(
        state=Skill.State.COMPLETED, state_changed_at=now, updated_at=timezone.now()
    )
    if changed:
        skill.state = Skill.State.COMPLETED
        logger.info("Skill %s (%s) completed: no record left to text", skill.id, skill.name)
        if skill.end_of_list_email:
            # Sent by a worker once the completion is committed: a slow mail server must not
            # hold the planner's pass.
            enqueue_on_commit(
                "skills.tasks.notify_end_of_list",
                skill.id,
                task_name=f"end-of-list e-mail of skill {skill.id}",
                group="notifications",
            )
    return bool(changed)


def apply_schedules(*, now: dt.datetime | None = None) -> list[dict]:
    """Start scheduled skills inside today's schedule window and stop them outside it.

    Only skills with the schedule switched on; a paused skill is left alone (a pause is a
    deliberate hold, e.g. after a carrier block) and so is a completed one.
    """
    now = now or timezone.now()
    changes = []
    skills = (
        Skill.objects.filter(
            schedule_enabled=True, state__in=[Skill.State.STOPPED, Skill.State.RUNNING]
        )
        .select_related("business_unit")
        .prefetch_related("schedule_days")
    )
    for skill in skills:
        inside = schedule_window(skill, now, list(skill.schedule_days.all())) is not None
        change = {"skill_id": skill.id, "skill": skill.name}
        try:
            if inside and skill.state == Skill.State.STOPPED:
                skill_start(skill=skill)
                change["action"] = "started"
            elif not inside and skill.state == Skill.State.RUNNING:
                _skill, withdrawn = skill_stop(skill=skill)
                change.update(action="stopped", withdrawn=withdrawn)
            else:
                continue
            logger.info("Schedule: skill %s (%s) %s", skill.id, skill.name, change["action"])
        except SkillStateError as error:
            change.update(action="error", error=error.message)
            logger.warning("Schedule: skill %s (%s): %s", skill.id, skill.name, error.message)
        except Exception as error:
            change.update(action="error", error=str(error)[:500])
            logger.exception("Schedule: skill %s (%s) failed", skill.id, skill.name)
        changes.append(change)
    return changes


# --- Upload jobs ---------------------------------------------------------------------------------


def upload_job_enqueue(*, job: UploadJob) -> None:
    """Queue a job's import for a worker, once the transaction that queued it has committed."""
    enqueue_on_commit(
        "skills.tasks.import_upload_job",
        job.pk,
        task_name=f"import upload job {job.pk}",
        group="imports",
    )


def upload_job_import(
    *, job_id: int, workers: int = 1, progress: Progress | None = None
) -> UploadJob | None:
    """Run a queued upload job (see :func:`skills.importing.service.upload_job_run`), then start
    the skill the job names, if any, through :func:`skill_start`: its checks and the template
    lock apply as for a start by hand. A skill that cannot start leaves the import standing and
    says why in the job's message. ``None`` when the job is gone or was not queued.
    """
    job = upload_job_run(job_id=job_id, workers=workers, progress=progress)
    if job is None or job.status != UploadJob.Status.COMPLETED or not job.start_skill_id:
        return job
    try:
        skill_start(skill=Skill.objects.get(pk=job.start_skill_id))
    except (
        Exception
    ) as exc:  # the import stands whatever went wrong; say why the skill did not start
        text = "; ".join(exc.messages) if hasattr(exc, "messages") else str(exc)
        job.message = f"The records were imported, but the skill did not start: {text}"
        UploadJob.objects.filter(pk=job.pk).update(message=job.message)
    return job


def skill_forecast_keep(*, skill: Skill, now: dt.datetime | None = None) -> SkillForecast:
    """Work out the skill's forecast from ``now`` (its start) and keep it for the dashboard."""
    forecast = skill_forecast(skill, now=now)
    return SkillForecast.objects.create(
        skill=skill,
        made_at=forecast.made_at,
        starts_at=forecast.starts_at,
        finishes_at=forecast.finishes_at,
        records=forecast.records,
        texts=forecast.texts,
        data=forecast.as_json(),
    )
