"""The guided set-up of a business unit's first skill: which of its steps are done, which one
needs attention and what was found for each (docs/setup-guide.md).

Reads only, and only the one business unit it is given: the admin page
(skills/admin/setup_guide.py) chooses that unit among the user's and turns each step into a
link the user may follow. The steps follow the seed task "Set Up Agentless Proactive SMS":
a sending number, its sending registration, a template, a calling list with records, the skill
with its schedule and time-zone bounds, then the start.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from django.db import models
from django.db.models import Sum
from django.utils.text import Truncator

from messaging.models import MessageTemplate, SmsRegistration, TransportCode
from pcsms.models import BusinessUnit
from skills.models import CallingList, RecordTally, Skill, UploadJob, Weekday
from skills.windows import schedule_zone

# A business unit with many skills: the guide weighs its most recently changed ones only.
SKILLS_WEIGHED = 50
STARTED = (Skill.State.RUNNING, Skill.State.COMPLETED)


class Status(enum.StrEnum):
    DONE = "done"
    MISSING = "missing"
    ATTENTION = "attention"  # something is there but cannot serve yet (e.g. a code not provisioned)

    @property
    def label(self) -> str:
        return {"done": "Done", "missing": "Missing", "attention": "Needs attention"}[self.value]


@dataclass(frozen=True)
class SetupStep:
    """One step of the set-up.

    ``model`` is the model whose admin page does the step; ``obj`` the object to open there (its
    change page), or ``None`` for the add page, prefilled with ``initial``.
    """

    number: int
    key: str
    title: str
    status: Status
    found: str  # one line: what was found, or that nothing was
    problems: list[str] = field(default_factory=list)  # what to fix, for ATTENTION
    model: type[models.Model] | None = None
    obj: models.Model | None = None
    initial: dict[str, str] = field(default_factory=dict)
    is_next: bool = False


# Each step's number, title and the model whose admin page does it, in the order of the seed
# task; a builder below gives the rest (what was found) and may name another model's page.
_HEADS = {
    "code": ("A transport code (sending number) that can send", TransportCode),
    "registration": ("An active sending registration on a provisioned code", SmsRegistration),
    "template": ("An active message template", MessageTemplate),
    "list": ("A calling list with records", CallingList),
    "skill": (
        "A skill with the registration, the template, the list, a schedule and time-zone bounds",
        Skill,
    ),
    "start": ("The skill started", Skill),
}


def _step(key: str, **fields) -> SetupStep:
    title, model = _HEADS[key]
    fields.setdefault("model", model)
    return SetupStep(number=list(_HEADS).index(key) + 1, key=key, title=title, **fields)


def setup_steps(business_unit: BusinessUnit) -> list[SetupStep]:
    """The six steps for ``business_unit``, in order; the first one not done is ``is_next``."""
    bu = business_unit
    codes = list(TransportCode.objects.filter(business_unit=bu).order_by("number"))
    registrations = list(
        # The code of each is named in the step's line.
        SmsRegistration.objects.filter(business_unit=bu)
        .select_related("transport_code")
        .order_by("-is_active", "name")
    )
    templates = list(
        MessageTemplate.objects.filter(business_unit=bu).order_by("-is_active", "-updated_at")
    )
    lists = list(
        CallingList.objects.filter(business_unit=bu)
        .exclude(status=CallingList.Status.DELETED)
        .order_by("name")
    )
    counts = _record_counts([c.pk for c in lists])
    code_step = _code_step(bu, codes)
    registration_step = _registration_step(bu, registrations, code_step)
    template_step = _template_step(bu, templates)
    list_step = _list_step(bu, lists, counts)
    skill = _best_skill(bu, counts)
    steps = [
        code_step,
        registration_step,
        template_step,
        list_step,
        _skill_step(bu, skill, counts, registration_step, template_step, list_step),
        _start_step(bu, skill),
    ]
    for i, step in enumerate(steps):
        if step.status != Status.DONE:
            steps[i] = dataclasses.replace(step, is_next=True)
            break
    return steps


def _record_counts(list_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{list id: (records, open records)}, from the tallies the database keeps (RecordTally):
    the cost of a few rows per list, not of its records."""
    counts: dict[int, list[int]] = {}
    rows = (
        RecordTally.objects.filter(calling_list_id__in=list_ids)
        .values_list("calling_list_id", "is_final")
        .annotate(n=Sum("records"))
        .order_by()
    )
    for list_id, is_final, n in rows:
        total = counts.setdefault(list_id, [0, 0])
        total[0] += n
        if not is_final:
            total[1] += n
    return {pk: (total, open_) for pk, (total, open_) in counts.items()}


def _rate(code: TransportCode) -> str:
    return f"{code.messages_per_second.normalize():f} texts/s"


def _more(n: int, word: str) -> str:
    return f" (and {n} other {word}{'s' if n > 1 else ''})" if n else ""


def _code_step(bu, codes: list[TransportCode]) -> SetupStep:
    ready = [c for c in codes if c.can_send]
    if ready:
        code = ready[0]
        return _step(
            "code",
            status=Status.DONE,
            found=f"Code {code.number}, {_rate(code)}" + _more(len(ready) - 1, "code"),
            obj=code,
        )
    if codes:
        code = next((c for c in codes if c.provisioning_status != c.Provisioning.RETIRED), codes[0])
        since = f" since {code.requested_on:%d %b %Y}" if code.requested_on else ""
        return _step(
            "code",
            status=Status.ATTENTION,
            found=f"Code {code.number} is {code.get_provisioning_status_display().lower()}"
            f"{since}: it cannot send until it is provisioned.",
            problems=[
                "When the carrier has provisioned it, set its provisioning status and date "
                "(a long code takes about 5-7 days, a short code 12 weeks or more)."
            ],
            obj=code,
        )
    return _step(
        "code",
        status=Status.MISSING,
        found="No transport code yet: enter the long or short code your account manager "
        "provisioned for this business unit.",
        initial={"business_unit": str(bu.pk)},
    )


def _registration_step(bu, registrations: list[SmsRegistration], code_step) -> SetupStep:
    ready = [r for r in registrations if r.is_active and r.transport_code.can_send]
    if ready:
        registration = ready[0]
        return _step(
            "registration",
            status=Status.DONE,
            found=f'Registration "{registration}" on {registration.transport_code.number}'
            + _more(len(ready) - 1, "registration"),
            obj=registration,
        )
    if registrations:
        registration = registrations[0]  # an active one first
        code = registration.transport_code
        problems = []
        if not registration.is_active:
            problems.append(f'Registration "{registration}" is not active.')
        if not code.can_send:
            problems.append(
                f"It sends from {code.number}, which is "
                f"{code.get_provisioning_status_display().lower()}, not provisioned."
            )
        return _step(
            "registration",
            status=Status.ATTENTION,
            found=f'Registration "{registration}" on {code.number} cannot send yet.',
            problems=problems,
            obj=registration,
        )
    initial = {"business_unit": str(bu.pk)}
    if code_step.status == Status.DONE:
        initial["transport_code"] = str(code_step.obj.pk)
    return _step(
        "registration",
        status=Status.MISSING,
        found="No sending registration yet: it binds the code to this business unit, with its "
        "carrier account and its HELP and STOP replies.",
        initial=initial,
    )


def _template_step(bu, templates: list[MessageTemplate]) -> SetupStep:
    if templates and templates[0].is_active:  # the active ones come first
        template = templates[0]
        active = sum(t.is_active for t in templates)
        body = Truncator(" ".join(template.body.split())).chars(60)
        return _step(
            "template",
            status=Status.DONE,
            found=f'Template "{template}": "{body}"' + _more(active - 1, "active template"),
            obj=template,
        )
    if templates:
        template = templates[0]
        return _step(
            "template",
            status=Status.ATTENTION,
            found=f'Template "{template}" is not active'
            + _more(len(templates) - 1, "inactive template"),
            problems=["Activate a template (its page, or the template list's action)."],
            obj=template,
        )
    return _step(
        "template",
        status=Status.MISSING,
        found="No message template yet: write the text each record is merged into, e.g. "
        "Hi {FirstName|there}, ...",
        initial={"business_unit": str(bu.pk)},
    )


def _upload_line(job: UploadJob) -> str:
    name = job.original_name or "a file"
    if job.status == UploadJob.Status.COMPLETED:
        flagged = f", {job.rows_flagged:,} with warnings" if job.rows_flagged else ""
        return (
            f'last upload "{name}": {job.rows_valid:,} valid, {job.rows_invalid:,} invalid{flagged}'
        )
    if job.status in (UploadJob.Status.QUEUED, UploadJob.Status.RUNNING):
        return f'"{name}" importing: {job.rows_processed:,} of {job.rows_total:,} rows'
    if job.status == UploadJob.Status.PENDING:
        return f'"{name}" waits for its column mapping'
    reason = f": {Truncator(job.message).chars(120)}" if job.message else ""
    return f'the last upload "{name}" {job.get_status_display().lower()}{reason}'


def _list_step(bu, lists: list[CallingList], counts) -> SetupStep:
    active = [c for c in lists if c.status == CallingList.Status.ACTIVE]
    if not lists:
        return _step(
            "list",
            status=Status.MISSING,
            found="No calling list yet: create one, then upload a CSV, TXT or XLSX file into it.",
            initial={"business_unit": str(bu.pk)},
        )
    if not active:
        calling_list = lists[0]
        return _step(
            "list",
            status=Status.ATTENTION,
            found=f'List "{calling_list}" is {calling_list.get_status_display().lower()}.',
            problems=["Make a list active: a skill texts the records of its active lists only."],
            obj=calling_list,
        )
    # The list with the most records, else the first by name.
    calling_list = max(active, key=lambda c: counts.get(c.pk, (0, 0))[0])
    records, open_records = counts.get(calling_list.pk, (0, 0))
    job = calling_list.upload_jobs.order_by("-created_at").first()
    if records:
        line = f'List "{calling_list}": {records:,} records ({open_records:,} open)'
        if job is not None:
            line += f"; {_upload_line(job)}"
        return _step(
            "list",
            status=Status.DONE,
            found=line + _more(len(active) - 1, "active list"),
            obj=calling_list,
        )
    if job is not None and job.status in (UploadJob.Status.FAILED, UploadJob.Status.CANCELLED):
        return _step(
            "list",
            status=Status.ATTENTION,
            found=f'List "{calling_list}" has no records: {_upload_line(job)}.',
            problems=["Look at the upload's error report, then upload the file again."],
            model=UploadJob,
            obj=job,
        )
    if job is not None and job.status != UploadJob.Status.COMPLETED:
        return _step(
            "list",
            status=Status.MISSING,
            found=f'List "{calling_list}" has no records yet: {_upload_line(job)}.',
            model=UploadJob,
            obj=job,
        )
    return _step(
        "list",
        status=Status.MISSING,
        found=f'List "{calling_list}" has no records yet: upload a file into it.',
        model=UploadJob,
        initial={"calling_list": str(calling_list.pk)},
    )


def _days(numbers: list[int]) -> str:
    """Weekdays as "Mon-Sat" when they follow each other, else "Mon, Wed, Fri"."""
    names = [Weekday(n).label[:3] for n in sorted(numbers)]
    if len(numbers) > 2 and sorted(numbers) == list(range(min(numbers), max(numbers) + 1)):
        return f"{names[0]}-{names[-1]}"
    return ", ".join(names)


def _skill_problems(skill: Skill, counts) -> list[str]:
    """What keeps the skill from sending, as the start refuses it (skills/diagnosis.py's
    start_problems) and what the guide asks of its schedule and time-zone bounds; read from
    the prefetched rows."""
    registration, template = skill.registration, skill.template
    code = registration.transport_code
    problems = []
    if not registration.is_active:
        problems.append(f'its sending registration "{registration}" is not active')
    if not code.can_send:
        problems.append(
            f"its transport code {code.number} is "
            f"{code.get_provisioning_status_display().lower()}, not provisioned"
        )
    if not template.is_active:
        problems.append(f'its template "{template}" is not active')
    lists = [c for c in skill.calling_lists.all() if c.status == CallingList.Status.ACTIVE]
    if not lists:
        problems.append("it has no active calling list")
    elif not any(counts.get(c.pk, (0, 0))[0] for c in lists):
        problems.append("its calling lists have no records")
    if not any(d.is_active for d in skill.schedule_days.all()):
        problems.append("its schedule has no active day (tab 8. Schedule)")
    allowed = set(skill.business_unit.allowed_time_zones or [])
    if not allowed:
        problems.append("the business unit allows no time zone")
    elif not any(b.is_active and b.time_zone in allowed for b in skill.time_zone_bounds.all()):
        problems.append("no allowed time zone is bounded active (tab 9. Time zones)")
    return problems


def _best_skill(bu, counts) -> tuple[Skill, list[str]] | None:
    """The skill the guide follows: a started one without problems first, then a ready one,
    then the one with the fewest problems (the most recently changed on a tie)."""
    skills = list(
        Skill.objects.filter(business_unit=bu)
        # The step names the registration, its code and the template.
        .select_related("business_unit", "registration__transport_code", "template")
        .prefetch_related("calling_lists", "schedule_days", "time_zone_bounds")
        .order_by("-updated_at", "-pk")[:SKILLS_WEIGHED]
    )
    if not skills:
        return None
    weighed = [(skill, _skill_problems(skill, counts)) for skill in skills]
    return min(
        weighed,
        key=lambda pair: (bool(pair[1]), pair[0].state not in STARTED, len(pair[1])),
    )


def _skill_step(bu, best, counts, registration_step, template_step, list_step) -> SetupStep:
    if best is None:
        initial = {"business_unit": str(bu.pk)}
        if registration_step.status == Status.DONE:
            initial["registration"] = str(registration_step.obj.pk)
        if template_step.status == Status.DONE:
            initial["template"] = str(template_step.obj.pk)
        if list_step.status == Status.DONE:
            initial["calling_lists"] = str(list_step.obj.pk)
        return _step(
            "skill",
            status=Status.MISSING,
            found="No skill yet: a new skill gets a Monday-Saturday 08:00-21:00 schedule and "
            "every allowed time zone of the business unit, which you can change on its page.",
            initial=initial,
        )
    skill, problems = best
    lists = [c.name for c in skill.calling_lists.all() if c.status == CallingList.Status.ACTIVE]
    days = [d.weekday for d in skill.schedule_days.all() if d.is_active]
    allowed = set(skill.business_unit.allowed_time_zones or [])
    bounded = {b.time_zone for b in skill.time_zone_bounds.all() if b.is_active} & allowed
    schedule = f"schedule {_days(days)}" if days else "no schedule day"
    schedule += ", starts itself" if skill.schedule_enabled else ", started by hand"
    named = ", ".join(f'"{name}"' for name in lists) or "none"
    found = (
        f'Skill "{skill}": registration "{skill.registration}", template "{skill.template}", '
        f"list{'' if len(lists) == 1 else 's'} {named}; "
        f"{schedule}; {len(bounded)} of {len(allowed)} allowed time zones bounded"
    )
    return _step(
        "skill",
        status=Status.ATTENTION if problems else Status.DONE,
        found=found,
        problems=[p[0].upper() + p[1:] + "." for p in problems],
        obj=skill,
    )


def _start_step(bu, best) -> SetupStep:
    if best is None:
        return _step("start", status=Status.MISSING, found="Create the skill first (step 5).")
    skill, problems = best
    since = ""
    if skill.state_changed_at:
        zone = schedule_zone(bu)
        since = f" since {skill.state_changed_at.astimezone(zone):%d %b %Y %H:%M} ({zone})"
    if skill.state in STARTED:
        return _step(
            "start",
            status=Status.DONE,
            found=f'Skill "{skill}" is {skill.get_state_display().lower()}{since}.',
            obj=skill,
        )
    if skill.state == Skill.State.PAUSED:
        reason = skill.paused_reason or "resume it to send."
        return _step(
            "start",
            status=Status.ATTENTION,
            found=f'Skill "{skill}" is paused{since}.',
            problems=[reason[0].upper() + reason[1:]],
            obj=skill,
        )
    after = " once step 5 is done" if problems else ""
    return _step(
        "start",
        status=Status.MISSING,
        found=f'Skill "{skill}" is stopped: start it{after}.',
        obj=skill,
    )
