"""The admin's home page: what an operator looks at first, for the business units given.

Running and paused skills with their progress, texts sent today and per hour, opt-outs today,
probable opt-outs waiting for review, imports under way, and the alerts that need a person
(docs/console.md). Reads only; the admin's index renders it (skills/admin/home.py).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from dnc.models import DncEntry
from messaging.models import (
    InboundMessage,
    MessageStatus,
    OutboundMessage,
    SenderLease,
    SmsRegistration,
    TransportCode,
)
from pcsms.models import BusinessUnit
from skills.models import Skill, UploadJob
from skills.queries import active_list_ids
from skills.selectors import list_tallies
from skills.windows import schedule_zone

# The carrier is "failing" on a code when, of the texts it settled in this long, at least
# FAILING_SHARE ended failed, undelivered or unknown, and there were FAILING_MIN of them.
FAILING_SPAN = dt.timedelta(minutes=15)
FAILING_SHARE = 0.5
FAILING_MIN = 10
# A queued text older than this with no live sender lease on its code: the sender is gone.
NO_SENDER_AFTER = dt.timedelta(seconds=30)
BAD_ENDS = [MessageStatus.FAILED, MessageStatus.UNDELIVERED, MessageStatus.UNKNOWN]


class AlertKind:
    SKILL_BLOCKED = "skill_blocked"
    NO_SENDER = "no_sender"
    CARRIER_FAILING = "carrier_failing"
    UNPROVISIONED = "unprovisioned"


@dataclass(frozen=True)
class Alert:
    kind: str
    text: str
    business_unit: str
    object_id: int  # the skill, code or registration it is about


@dataclass(frozen=True)
class SkillLine:
    skill: Skill
    records: int
    finalized: int
    open: int

    @property
    def percent(self) -> int:
        return round(100 * self.finalized / self.records) if self.records else 0


@dataclass
class Home:
    now: dt.datetime
    zone: dt.tzinfo  # whose day "today" is (see day_zone)
    skills: list[SkillLine] = field(default_factory=list)
    texts_today: int = 0
    per_hour: list[tuple[dt.datetime, int]] = field(default_factory=list)  # local hours
    opt_outs_today: int = 0
    to_review: int = 0
    imports: list[UploadJob] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    has_skills: bool = False


def day_zone(business_unit_ids) -> dt.tzinfo:
    """The zone of "today": the business units' own default zone when they share one, else
    the site's (settings.TIME_ZONE)."""
    units = list(BusinessUnit.objects.filter(id__in=business_unit_ids))
    zones = {schedule_zone(bu) for bu in units}
    if len(zones) == 1:
        return zones.pop()
    return timezone.get_default_timezone()


def home(business_unit_ids, now: dt.datetime | None = None) -> Home:
    """The home page of a user who sees ``business_unit_ids`` (a list or a values() query)."""
    now = now or timezone.now()
    page = Home(now=now, zone=day_zone(business_unit_ids))
    local_now = now.astimezone(page.zone)
    day_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    skills = Skill.objects.filter(business_unit_id__in=business_unit_ids)
    page.has_skills = skills.exists()
    for skill in (
        skills.filter(state__in=[Skill.State.RUNNING, Skill.State.PAUSED])
        .select_related("business_unit")
        .order_by("business_unit__name", "state", "name")
    ):
        tallies = list_tallies(active_list_ids(skill))
        records = sum(n for *_rest, n in tallies)
        finalized = sum(n for is_final, *_rest, n in tallies if is_final)
        page.skills.append(SkillLine(skill, records, finalized, records - finalized))
    sent = OutboundMessage.objects.filter(
        business_unit_id__in=business_unit_ids, sent_at__gte=day_start, sent_at__lte=now
    )
    hours = dict(
        sent.annotate(hour=TruncHour("sent_at", tzinfo=page.zone))
        .values_list("hour")
        .annotate(n=Count("id"))
        .values_list("hour", "n")
        .order_by()
    )
    by_local = Counter()
    for hour, n in hours.items():
        by_local[hour.astimezone(page.zone).hour] += n
    # By the wall clock: a day that changes its offset has 23 or 25 hours, one label each.
    page.per_hour = [
        (day_start.replace(hour=h), by_local.get(h, 0)) for h in range(local_now.hour + 1)
    ]
    page.texts_today = sum(by_local.values())
    page.opt_outs_today = DncEntry.objects.filter(
        group__business_unit_id__in=business_unit_ids,
        source__in=DncEntry.RECIPIENT_SOURCES + (DncEntry.Source.CARRIER,),
        created_at__gte=day_start,
    ).count()
    page.to_review = InboundMessage.objects.filter(
        business_unit_id__in=business_unit_ids, review=InboundMessage.Review.PENDING
    ).count()
    page.imports = list(
        UploadJob.objects.filter(
            calling_list__business_unit_id__in=business_unit_ids,
            status__in=[
                UploadJob.Status.PENDING,
                UploadJob.Status.QUEUED,
                UploadJob.Status.RUNNING,
            ],
        )
        .select_related("calling_list__business_unit")
        .order_by("created_at")
    )
    page.alerts = alerts(business_unit_ids, now)
    return page


def alerts(business_unit_ids, now: dt.datetime) -> list[Alert]:
    """What needs a person now, most urgent first."""
    found = []
    for skill in (
        Skill.objects.filter(business_unit_id__in=business_unit_ids, state=Skill.State.PAUSED)
        .exclude(paused_reason="")
        .select_related("business_unit")
        .order_by("name")
    ):
        found.append(
            Alert(
                AlertKind.SKILL_BLOCKED,
                f'Skill "{skill.name}" is paused: {skill.paused_reason}',
                skill.business_unit.name,
                skill.pk,
            )
        )
    codes = TransportCode.objects.filter(business_unit_id__in=business_unit_ids).select_related(
        "business_unit"
    )
    live = set(
        SenderLease.objects.filter(transport_code__in=codes, expires_at__gt=now).values_list(
            "transport_code_id", flat=True
        )
    )
    waiting = dict(
        OutboundMessage.objects.filter(
            transport_code__in=codes.filter(
                provisioning_status=TransportCode.Provisioning.PROVISIONED
            ),
            status=MessageStatus.QUEUED,
            created_at__lte=now - NO_SENDER_AFTER,
        )
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .values_list("transport_code_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_id = {code.pk: code for code in codes}
    for code_id, n in sorted(waiting.items()):
        if code_id not in live:
            code = by_id[code_id]
            found.append(
                Alert(
                    AlertKind.NO_SENDER,
                    f"No sender is sending for code {code.number}: {n:,} "
                    f"text{'' if n == 1 else 's'} wait in its queue (its sender lease is lost "
                    "or no worker runs).",
                    code.business_unit.name,
                    code.pk,
                )
            )
    settled = (
        OutboundMessage.objects.filter(
            transport_code__in=codes, finished_at__gte=now - FAILING_SPAN, finished_at__lte=now
        )
        .values_list("transport_code_id")
        .annotate(
            n=Count("id"),
            bad=Count("id", filter=Q(status__in=BAD_ENDS)),
        )
        .order_by()
    )
    for code_id, n, bad in settled:
        if n >= FAILING_MIN and bad >= FAILING_SHARE * n:
            code = by_id[code_id]
            top = (
                OutboundMessage.objects.filter(
                    transport_code_id=code_id,
                    finished_at__gte=now - FAILING_SPAN,
                    status__in=BAD_ENDS,
                )
                .exclude(error_code="")
                .values_list("error_code")
                .annotate(k=Count("id"))
                .order_by("-k")
                .first()
            )
            most = f"; most often error {top[0]}" if top else ""
            found.append(
                Alert(
                    AlertKind.CARRIER_FAILING,
                    f"The carrier is failing on code {code.number}: {bad:,} of {n:,} texts "
                    f"in the last {int(FAILING_SPAN.total_seconds() // 60)} minutes failed"
                    f"{most}.",
                    code.business_unit.name,
                    code.pk,
                )
            )
    for registration in (
        SmsRegistration.objects.filter(business_unit_id__in=business_unit_ids, is_active=True)
        .exclude(transport_code__provisioning_status=TransportCode.Provisioning.PROVISIONED)
        .select_related("transport_code", "business_unit")
        .order_by("name")
    ):
        code = registration.transport_code
        found.append(
            Alert(
                AlertKind.UNPROVISIONED,
                f'Registration "{registration.name}" is active but its code {code.number} is '
                f"{code.get_provisioning_status_display().lower()}, not provisioned: its skills "
                "cannot send.",
                registration.business_unit.name,
                registration.pk,
            )
        )
    return found
