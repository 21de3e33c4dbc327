"""Campaigns, skills with their parameter pages, calling lists and their records.

``skills`` decides what to send to whom and when, and hands merged messages to ``messaging``.
The skill's parameter pages (docs/spec.md section 7) are fields on :class:`Skill` where a page is a
handful of settings, and child rows where a page is a list (cadence, CPA rules, filter
conditions, sort order, schedule days, time-zone bounds).
"""

from __future__ import annotations

import datetime as dt
import functools

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from dnc.models import DncGroup
from messaging.models import Channel, MessageTemplate, OutboundMessage, SmsRegistration
from pcsms import timezones
from pcsms.addresses import AddressError, is_email, normalise
from pcsms.indexes import EqualityIndex
from pcsms.models import BusinessUnit

SKILL_NAME_RE = r"^[-A-Za-z0-9_.: ]{2,30}$"
TCPA_START = dt.time(8, 0)
TCPA_END = dt.time(21, 0)


def _bu_mismatch(errors: dict, field: str, related, business_unit_id) -> None:
    if related is not None and business_unit_id and related.business_unit_id != business_unit_id:
        errors[field] = f"{related} belongs to another business unit."


# --- Campaigns and calling lists -------------------------------------------------------------


class Campaign(models.Model):
    """A named group of skills, used for reports."""

    bu_path = "business_unit"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="campaigns"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["business_unit__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit", "name"], name="campaign_unique_name_per_bu"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CallingListQuerySet(models.QuerySet):
    def delete(self):
        """Deletes the lists with their records once no import into them is still writing.

        Records have no database foreign key to their list (see ``Record.calling_list``), so
        nothing in PostgreSQL stops a list going while an import writes into it. Django
        collects the records first, then deletes the list: it would collect before the import
        commits and leave that import's records behind, orphaned. An import holds its list's
        row lock until it commits; taking the lock first here waits for that.
        """
        with transaction.atomic(using=self.db):
            locked = self.select_for_update(of=("self",)).order_by().values_list("pk", flat=True)
            pks = list(locked)
            return models.QuerySet.delete(self.model.objects.using(self.db).filter(pk__in=pks))


class CallingList(models.Model):
    bu_path = "business_unit"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"
        DELETED = "deleted", "Deleted"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="calling_lists"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CallingListQuerySet.as_manager()

    class Meta:
        ordering = ["business_unit__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit", "name"], name="callinglist_unique_name_per_bu"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def delete(self, using=None, keep_parents=False):
        # The admin's delete page comes here, not through the queryset: same lock, same reason.
        with transaction.atomic(using=using):
            CallingList.objects.using(using).select_for_update(of=("self",)).filter(
                pk=self.pk
            ).order_by().values_list("pk", flat=True).first()
            return super().delete(using=using, keep_parents=keep_parents)


class FieldType(models.TextChoices):
    STRING = "string", "Text"
    INTEGER = "integer", "Whole number"
    DECIMAL = "decimal", "Decimal"
    DATE = "date", "Date"
    BOOLEAN = "boolean", "Yes/no"
    PHONE = "phone", "Phone number"
    EMAIL = "email", "Email address"


class CustomField(models.Model):
    """A column of a calling list beyond the system fields; values live in ``Record.custom``."""

    bu_path = "calling_list__business_unit"

    calling_list = models.ForeignKey(
        CallingList, on_delete=models.CASCADE, related_name="custom_fields"
    )
    name = models.CharField(
        max_length=64,
        validators=[
            RegexValidator(
                r"^[A-Za-z_][A-Za-z0-9_]*$",
                "Start with a letter; use letters, digits and underscores (it becomes {Name}).",
            )
        ],
    )
    field_type = models.CharField(max_length=8, choices=FieldType.choices, default=FieldType.STRING)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["calling_list", "position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["calling_list", "name"], name="customfield_unique_name_per_list"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_field_type_display()})"


class TimeZoneSource(models.TextChoices):
    COLUMN = "column", "TimeZone column"
    ZIP = "zip", "Zip code"
    PHONE = "phone", "Phone number"
    DEFAULT = "default", "Upload default"
    NONE = "", "Unknown"


class FinalReason(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    SENT = "sent", "Sent"
    OPTED_OUT = "opted_out", "Opted out"
    DNC = "dnc", "On a DNC group"
    BAD_NUMBERS = "bad_numbers", "All numbers bad"
    EXHAUSTED = "exhausted", "Attempts exhausted"
    EXPIRED = "expired", "Expired"
    TOO_LONG = "too_long", "Message too long"


class Record(models.Model):
    """One contact of a calling list: system fields, typed custom fields, several numbers."""

    bu_path = "calling_list__business_unit"

    # No index of its own: the (calling_list, external_id) and (calling_list, is_final, id)
    # indexes lead with it, and a third one would cost every imported row.
    # No database constraint on the three foreign keys a list import writes a million times
    # (this one, upload_job, Destination.record): PostgreSQL checks each new row one by one
    # (17 s of a 1M-row import). The import writes ids it holds locked or got from RETURNING in
    # the same statement, forms validate the others, and Django does CASCADE / SET_NULL itself.
    calling_list = models.ForeignKey(
        CallingList,
        on_delete=models.CASCADE,
        related_name="records",
        db_index=False,
        db_constraint=False,
    )
    # Shown on the record's page only; nothing looks records up by it, so no index.
    upload_job = models.ForeignKey(
        "UploadJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="records",
        db_index=False,
        db_constraint=False,
    )
    external_id = models.CharField(max_length=100)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    address = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=50, blank=True)
    zip_code = models.CharField(max_length=20, blank=True)
    time_zone = models.CharField(max_length=64, blank=True)
    time_zone_source = models.CharField(
        max_length=8, choices=TimeZoneSource.choices, blank=True, default=TimeZoneSource.NONE
    )
    priority = models.BooleanField(default=False)
    score = models.IntegerField(null=True, blank=True)
    customer1 = models.CharField(max_length=200, blank=True)
    customer2 = models.CharField(max_length=200, blank=True)
    expires_on = models.DateField(null=True, blank=True)
    custom = models.JSONField(default=dict, blank=True)
    is_final = models.BooleanField(default=False)
    final_reason = models.CharField(max_length=12, choices=FinalReason.choices, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # A state rule, a blackout or a frequency cap holds its texts back (skills.models.RuleHold
    # keeps each hold): the planner looks at the record again from this time on, not at
    # every pass, so a state's closed morning does not fill the planner's scans.
    held_until = models.DateTimeField(null=True, blank=True)
    held_by = models.CharField(max_length=200, blank=True, db_default="")
    # Defaults in the database too: a list import's COPY leaves them out, and PostgreSQL
    # takes the transaction's time instead of parsing two timestamps per row (~0.1 CPU-s per
    # 100,000 records, measured in docs/performance.md).
    created_at = models.DateTimeField(auto_now_add=True, db_default=Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    class Meta:
        ordering = ["calling_list", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["calling_list", "external_id"],
                name="record_unique_external_id_per_list",
                violation_error_message="This external ID is already in the list.",
            ),
            models.CheckConstraint(
                condition=Q(is_final=False) | ~Q(final_reason=""),
                name="record_final_has_reason",
            ),
        ]
        indexes = [
            # The planner: open records of a list in created order.
            models.Index(fields=["calling_list", "is_final", "id"], name="record_list_open_idx"),
            # "Why is nothing sending": the open records a rule holds, by rule. Only held
            # records are in it, so an import's rows cost it nothing.
            models.Index(
                fields=["calling_list", "held_by"],
                condition=Q(is_final=False, held_until__isnull=False),
                name="record_open_held_idx",
            ),
            # The tick's sweep (skills/sweeps.py): the open records that expired, found by
            # range, not by reading every open record.
            models.Index(
                fields=["calling_list", "expires_on"],
                condition=Q(is_final=False, expires_on__isnull=False),
                name="record_open_expires_idx",
            ),
            models.Index(
                fields=["calling_list", "created_at"],
                condition=Q(is_final=False, expires_on__isnull=True),
                name="record_open_created_idx",
            ),
            # The dashboards' outcomes chart (skills.selectors._outcomes_over_time): the records
            # finalized in the last hours, found by range of updated_at and read from the index
            # alone on PostgreSQL (other databases ignore INCLUDE).
            models.Index(
                fields=["calling_list", "updated_at"],
                include=["final_reason"],
                condition=Q(is_final=True),
                name="record_final_updated_idx",
            ),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{self.external_id} {name}".strip()


class RecordTally(models.Model):
    """How many records of a list are in one state: a delta row, written by database triggers on
    the records table (migration 0014) whatever writes the records (import, planner, outcomes,
    DNC, the admin, raw SQL).

    The dashboards and ``skill status`` add these up instead of counting a million records, so
    their cost does not grow with the list (docs/performance.md, bench/planner.py). Each
    statement adds its own rows, so concurrent writers never wait on one counter row;
    ``record_tallies_compact`` folds them into one row per state from time to time.
    """

    # No constraint: rows for a deleted list come from the triggers while its records go, and
    # add up to zero (the compaction drops them).
    calling_list = models.ForeignKey(
        CallingList, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    is_final = models.BooleanField()
    final_reason = models.CharField(max_length=12, blank=True)
    attempts = models.PositiveIntegerField()
    time_zone = models.CharField(max_length=64, blank=True)
    records = models.BigIntegerField(help_text="Records added to (or, negative, taken from) it.")

    class Meta:
        verbose_name_plural = "record tallies"
        indexes = [models.Index(fields=["calling_list"], name="record_tally_list_idx")]

    def __str__(self) -> str:
        return f"list {self.calling_list_id}: {self.records:+}"


class Destination(models.Model):
    """One phone number or email address of a record, with its own time zone and final state.

    ``phone_number`` holds the destination as pcsms.addresses normalises it: E.164 for SMS, the
    address for email, so DNC, caps, holds and evidence key on it alike. Its channel is what
    the value is (an address has an @, an E.164 number never has), so no writer, the import's
    COPY included, can set one that does not fit. An email destination has no zone of its own:
    its record's decides its hours."""

    bu_path = "record__calling_list__business_unit"

    # No index of its own: the unique (record, position) index leads with it. No database
    # constraint: see Record.calling_list.
    record = models.ForeignKey(
        Record,
        on_delete=models.CASCADE,
        related_name="destinations",
        db_index=False,
        db_constraint=False,
    )
    position = models.PositiveSmallIntegerField(default=0)
    source_field = models.CharField(
        max_length=64, default="PhoneNumber", help_text="The list column the number came from."
    )
    phone_number = models.CharField(
        "number or address", max_length=254, help_text="E.164, or an email address"
    )
    time_zone = models.CharField(max_length=64, blank=True)
    is_final = models.BooleanField(default=False)
    final_reason = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["record", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["record", "position"], name="destination_unique_position_per_record"
            ),
            models.CheckConstraint(
                condition=Q(phone_number__startswith="+") | Q(phone_number__contains="@"),
                name="destination_is_number_or_address",
            ),
        ]
        indexes = [
            # Look-ups by number (the admin's search, DNC and STOP handling), only ever with
            # "=": a hash index on PostgreSQL, far cheaper for an import to fill.
            EqualityIndex(fields=["phone_number"], name="destination_phone_idx"),
        ]

    def __str__(self) -> str:
        return self.phone_number

    @property
    def channel(self) -> str:
        return Channel.EMAIL if is_email(self.phone_number) else Channel.SMS

    def clean(self) -> None:
        region = self.record.calling_list.business_unit.phone_region if self.record_id else "US"
        try:
            self.phone_number = normalise(self.phone_number or "", region)
        except AddressError as error:
            raise ValidationError({"phone_number": str(error)}) from None


class UploadJob(models.Model):
    """One file loaded into a calling list, with its mapping, progress and error report."""

    bu_path = "calling_list__business_unit"

    class Format(models.TextChoices):
        CSV = "csv", "CSV (comma-separated)"
        TXT = "txt", "TXT (tab-separated)"
        XLSX = "xlsx", "Excel (XLSX)"

    class NoZonePolicy(models.TextChoices):
        REJECT = "reject", "Reject the record"
        DEFAULT = "default", "Use the default zone"

    class Mode(models.TextChoices):
        APPEND = "append", "Append"
        REPLACE = "replace", "Replace (update records with the same external ID)"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    calling_list = models.ForeignKey(
        CallingList, on_delete=models.CASCADE, related_name="upload_jobs"
    )
    file = models.FileField(upload_to="uploads/%Y/%m/")
    original_name = models.CharField(max_length=255, blank=True)
    file_format = models.CharField(max_length=4, choices=Format.choices, blank=True)
    mapping = models.JSONField(
        default=dict, blank=True, help_text="File column -> system or custom field."
    )
    no_zone_policy = models.CharField(
        max_length=8,
        choices=NoZonePolicy.choices,
        default=NoZonePolicy.REJECT,
        help_text="For a row whose zone neither a TimeZone column, its zip nor its numbers give: "
        "reject it (it is listed in the error report) or give it the default zone below.",
    )
    default_time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text='With "Use the default zone": an IANA zone (America/Chicago) or one of the '
        "business unit's custom zones.",
    )
    expires_on = models.DateField(
        null=True, blank=True, help_text="Batch expiration; an ExpirationDate column overrides it."
    )
    mode = models.CharField(
        max_length=8,
        choices=Mode.choices,
        default=Mode.APPEND,
        help_text="Append: a row whose ExternalId the list has already is an error row. Replace: "
        "it updates that record and its numbers (of rows sharing an ID, the last wins); records "
        "not in the file stay as they are.",
    )
    start_skill = models.ForeignKey(
        "Skill",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Start this skill when the import completes.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    cancel_requested = models.BooleanField(default=False)
    rows_total = models.PositiveIntegerField(default=0)
    rows_processed = models.PositiveIntegerField(default=0)
    rows_valid = models.PositiveIntegerField(default=0)
    rows_invalid = models.PositiveIntegerField(default=0)
    rows_flagged = models.PositiveIntegerField(
        "rows with warnings",
        default=0,
        help_text="Valid rows imported with a warning (e.g. a zone the BU does not allow).",
    )
    error_report = models.FileField(upload_to="upload-errors/%Y/%m/", blank=True)
    message = models.TextField(blank=True, help_text="The file-level error, if the file failed.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rows_processed=F("rows_valid") + F("rows_invalid")),
                name="uploadjob_counts_add_up",
            ),
            models.CheckConstraint(
                condition=~Q(no_zone_policy="default") | ~Q(default_time_zone=""),
                name="uploadjob_default_policy_has_zone",
                violation_error_message="Choose the default time zone to use.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.original_name or self.file.name} -> {self.calling_list}"


# --- Skills and their parameter pages ---------------------------------------------------------


_WORD = {Channel.SMS: "SMS", Channel.EMAIL: "email"}


# An email template's text sent as a text message would lose its subject, HTML part and
# unsubscribe link; an SMS template sent as email would lack the subject mail needs.
def channel_problems(skill: Skill) -> dict[str, str]:
    """Which of the skill's parts do not fit its channel, by field: the template, the sender
    (its registration's transport code) and, for email, the BU's postal address (CAN-SPAM's
    footer, docs/email.md)."""
    problems: dict[str, str] = {}
    channel = skill.channel
    template = getattr(skill, "template", None) if skill.template_id else None
    if template is not None and template.channel != channel:
        problems["template"] = (
            f'"{template}" is an {_WORD[template.channel]} template; this skill sends '
            f"{_WORD[channel]}."
        )
    registration = getattr(skill, "registration", None) if skill.registration_id else None
    if registration is not None and registration.transport_code.channel != channel:
        problems["registration"] = (
            f'"{registration}" sends from {registration.transport_code}, which does not send '
            f"{_WORD[channel]}."
        )
    bu = skill.business_unit if skill.business_unit_id else None
    if channel == Channel.EMAIL and bu is not None and not bu.postal_address.strip():
        problems["channel"] = (
            f"Business unit {bu} has no postal address: every email carries one at its foot "
            "(CAN-SPAM). Give it on the business unit's page."
        )
    return problems


class Skill(models.Model):
    """A proactive agentless SMS skill and the settings of its parameter pages."""

    bu_path = "business_unit"

    class State(models.TextChoices):
        STOPPED = "stopped", "Stopped"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"

    class Feed(models.TextChoices):
        ALL = "all", "Fresh and non-fresh records"
        FRESH = "fresh", "Fresh records only (never attempted)"
        NON_FRESH = "non_fresh", "Non-fresh records only (attempted before)"

    class AttemptMode(models.TextChoices):
        SINGLE_PASS = "single_pass", "Single pass"
        REPEAT = "repeat", "Repeat the cadence"

    class RecordMode(models.TextChoices):
        SEQUENTIAL = "sequential", "Sequential (finish a record's numbers first)"
        NEXT_BEST = "next_best", "Next best (any record whose number is due)"

    class ReceiptMode(models.TextChoices):
        DELIVERED = "delivered", "Carrier 'delivered' receipt"
        SENT = "sent", "Accepted by the carrier ('sent')"

    class FilterChange(models.TextChoices):
        NOTHING = "nothing", "Leave queued messages"
        FLUSH = "flush", "Withdraw queued messages"
        PAUSE = "pause", "Pause until re-planned"

    business_unit = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="skills")
    name = models.CharField(
        max_length=30,
        validators=[
            RegexValidator(
                SKILL_NAME_RE,
                "2-30 characters: letters, digits, spaces and - _ . : only.",
                code="invalid_skill_name",
            )
        ],
    )
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="skills"
    )
    registration = models.ForeignKey(
        SmsRegistration,
        on_delete=models.PROTECT,
        related_name="skills",
        verbose_name="sending registration",
    )
    template = models.ForeignKey(
        MessageTemplate, on_delete=models.PROTECT, related_name="skills", verbose_name="template"
    )
    # What it sends and to which of a record's destinations; its template and its sender's
    # transport code are of the same channel (clean, and skill_start checks again).
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.SMS)
    calling_lists = models.ManyToManyField(CallingList, blank=True, related_name="skills")
    priority = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Relative priority 1-10 when skills share a transport code.",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.STOPPED)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    # Why the system paused it (a carrier's spam block): the home page's alert and the "why
    # is nothing sending" panel say it; cleared when the skill starts again.
    paused_reason = models.CharField(max_length=300, blank=True, default="")

    # 1. General settings
    max_attempts = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
        help_text="Maximum texts per record (1-300).",
    )
    min_retry_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(50_000)],
        help_text="Minimum minutes between two texts to the same record (1-50,000).",
    )
    contact_expiration_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Empty: the BU's default contact expiration.",
    )
    feed = models.CharField(max_length=10, choices=Feed.choices, default=Feed.ALL)
    end_of_list_email = models.EmailField(
        blank=True, help_text="Told when every record is finalized. Empty: no notification."
    )
    # 2. Cadence settings (the rows are CadenceStep)
    attempt_mode = models.CharField(
        max_length=12, choices=AttemptMode.choices, default=AttemptMode.SINGLE_PASS
    )
    record_mode = models.CharField(
        max_length=12, choices=RecordMode.choices, default=RecordMode.SEQUENTIAL
    )
    # 3. Delivery preferences
    receipt_mode = models.CharField(
        max_length=10, choices=ReceiptMode.choices, default=ReceiptMode.DELIVERED
    )
    receipt_wait_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text="How long to wait for a receipt before treating the text as unconfirmed.",
    )
    max_segments = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Longer merged texts are not sent and are reported.",
    )
    # 4. CPA management: the rows are CpaRule
    # 5. Retry settings
    finalize_when_exhausted = models.BooleanField(default=True)
    restricted_window_count = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="At most this many texts to one contact ...",
    )
    restricted_window_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="... within this many minutes.",
    )
    stale_minutes = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="A queued text older than this goes back to the list and is re-planned.",
    )
    # 6. Filter (conditions are FilterCondition rows)
    filter_active = models.BooleanField(default=False)
    filter_change_action = models.CharField(
        "when the filter changes",
        max_length=8,
        choices=FilterChange.choices,
        default=FilterChange.NOTHING,
        help_text="What becomes of texts already queued when the filter is changed and saved. "
        "Leave: they are sent as planned. Withdraw: all are withdrawn and their records go "
        "back to the list, to be planned again under the new filter. Pause until re-planned: "
        "they are held while checked against the new filter; those whose record no longer "
        "passes are withdrawn, the others keep their place.",
    )
    # 8. Schedule (days are ScheduleDay rows)
    schedule_enabled = models.BooleanField(
        default=False, help_text="On: the skill starts and stops itself on its schedule."
    )
    # 10. XS settings
    xs_enabled = models.BooleanField(default=False, verbose_name="CRM endpoint enabled")
    xs_api_key_hash = models.CharField(max_length=128, blank=True, editable=False)
    xs_webhook_url = models.URLField(
        blank=True, help_text="Called with the outcome when a record is finalized."
    )
    xs_refill_threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="Ask the CRM for more records below this many open ones."
    )
    # DNC groups: checked before every send / receiving this skill's opt-outs.
    scrubbed_dnc_groups = models.ManyToManyField(
        DncGroup, blank=True, related_name="scrubbing_skills"
    )
    contributing_dnc_groups = models.ManyToManyField(
        DncGroup, blank=True, related_name="contributing_skills"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["business_unit__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit", "name"], name="skill_unique_name_per_bu"
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=1) & Q(priority__lte=10), name="skill_priority_1_to_10"
            ),
            models.CheckConstraint(
                condition=Q(max_attempts__gte=1) & Q(max_attempts__lte=300),
                name="skill_max_attempts_1_to_300",
            ),
            models.CheckConstraint(
                condition=Q(min_retry_minutes__gte=1) & Q(min_retry_minutes__lte=50_000),
                name="skill_min_retry_1_to_50000",
            ),
            models.CheckConstraint(condition=Q(name__regex=SKILL_NAME_RE), name="skill_name_rules"),
            models.CheckConstraint(
                condition=(
                    Q(restricted_window_count__isnull=True)
                    & Q(restricted_window_minutes__isnull=True)
                )
                | (
                    Q(restricted_window_count__isnull=False)
                    & Q(restricted_window_minutes__isnull=False)
                ),
                name="skill_restricted_window_both_or_neither",
                violation_error_message="Give both the count and the minutes of the "
                "restricted window, or neither.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def sent_noun(self) -> str:
        """What the skill's pages count: "texts" or "emails"."""
        return "emails" if self.channel == Channel.EMAIL else "texts"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        bu = self.business_unit_id
        _bu_mismatch(errors, "registration", getattr(self, "registration", None), bu)
        _bu_mismatch(errors, "template", getattr(self, "template", None), bu)
        for name, its in channel_problems(self).items():
            errors.setdefault(name, its)
        _bu_mismatch(errors, "campaign", getattr(self, "campaign", None), bu)
        if (self.restricted_window_count is None) != (self.restricted_window_minutes is None):
            errors["restricted_window_minutes"] = (
                "Give both the count and the minutes of the restricted window, or neither."
            )
        if errors:
            raise ValidationError(errors)


class OutcomeClass(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    TRANSIENT = "transient", "Transient: retry later"
    BAD_NUMBER = "bad_number", "Bad number: finalize it, move to the next"
    OPTED_OUT = "opted_out", "Opted out: add to contributing DNC, finalize the record"
    BLOCKED = "blocked", "Blocked/spam: pause the skill and alert"


# Defaults for the CPA page: the carrier error codes of docs/spec.md section 13.
DEFAULT_CPA_RULES: list[tuple[str, str, str]] = [
    ("delivered", OutcomeClass.DELIVERED, "Carrier receipt: delivered"),
    ("21211", OutcomeClass.BAD_NUMBER, "Invalid To number"),
    ("21614", OutcomeClass.BAD_NUMBER, "To is not a mobile number"),
    ("21610", OutcomeClass.OPTED_OUT, "Recipient unsubscribed at the carrier"),
    ("21612", OutcomeClass.BAD_NUMBER, "Cannot route to this number"),
    ("21408", OutcomeClass.BAD_NUMBER, "Region not enabled"),
    ("20429", OutcomeClass.TRANSIENT, "Too many requests (never processed)"),
    ("63018", OutcomeClass.TRANSIENT, "Rate limit exceeded for the sender"),
    ("30001", OutcomeClass.TRANSIENT, "Queue overflow"),
    ("30003", OutcomeClass.TRANSIENT, "Unreachable handset"),
    ("30004", OutcomeClass.BLOCKED, "Message blocked"),
    ("30005", OutcomeClass.BAD_NUMBER, "Unknown or inactive number"),
    ("30006", OutcomeClass.BAD_NUMBER, "Landline or unreachable carrier"),
    ("30007", OutcomeClass.BLOCKED, "Carrier filtering (spam)"),
    ("30008", OutcomeClass.TRANSIENT, "Unknown error"),
    # The email channel (messaging/backends/email.py, messaging/email_services.py).
    ("bounced", OutcomeClass.BAD_NUMBER, "Email bounced: the address cannot receive mail"),
]


class CpaRule(models.Model):
    """How one carrier outcome (a status or error code) is treated by a skill."""

    bu_path = "skill__business_unit"

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="cpa_rules")
    match = models.CharField(
        max_length=20,
        help_text="A Twilio error code (e.g. 30007), a status (e.g. delivered) or, for email, "
        "bounced.",
    )
    outcome = models.CharField(max_length=12, choices=OutcomeClass.choices)
    description = models.CharField(max_length=200, blank=True)
    bad_number_after = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="For transient outcomes: treat the number as bad after this many in a row.",
    )

    class Meta:
        ordering = ["skill", "match"]
        verbose_name = "CPA rule"
        constraints = [
            models.UniqueConstraint(
                fields=["skill", "match"], name="cparule_unique_match_per_skill"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.match} -> {self.get_outcome_display()}"


class CadenceStep(models.Model):
    """One row of the dialing order: which phone field is texted, how often, and when."""

    bu_path = "skill__business_unit"

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="cadence_steps")
    position = models.PositiveSmallIntegerField(default=0)
    phone_field = models.CharField(
        max_length=64,
        default="SMSPhoneNumber",
        help_text="PhoneNumber, SMSPhoneNumber or a custom phone field of the list.",
    )
    attempts = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    rest_minutes = models.PositiveIntegerField(
        default=0, help_text="Minutes to rest before moving on to the next number."
    )
    weekday_start = models.TimeField(null=True, blank=True)
    weekday_end = models.TimeField(null=True, blank=True)
    weekend_start = models.TimeField(null=True, blank=True)
    weekend_end = models.TimeField(null=True, blank=True)

    class Meta:
        ordering = ["skill", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["skill", "phone_field"], name="cadencestep_unique_field_per_skill"
            ),
            models.CheckConstraint(
                condition=Q(attempts__gte=1), name="cadencestep_attempts_at_least_one"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.phone_field} x{self.attempts}"

    def clean(self) -> None:
        errors = {}
        for prefix in ("weekday", "weekend"):
            start, end = getattr(self, f"{prefix}_start"), getattr(self, f"{prefix}_end")
            if (start is None) != (end is None):
                errors[f"{prefix}_end"] = "Give both the start and the end, or neither."
            elif start is not None and start >= end:
                errors[f"{prefix}_end"] = "The end must be after the start."
        if errors:
            raise ValidationError(errors)


class FilterCondition(models.Model):
    """One AND-ed condition of the skill's record filter."""

    bu_path = "skill__business_unit"

    class Operator(models.TextChoices):
        EQ = "eq", "="
        NE = "ne", "!="
        LT = "lt", "<"
        GT = "gt", ">"
        CONTAINS = "contains", "contains"
        STARTSWITH = "startswith", "starts with"
        IN = "in", "in (comma-separated)"
        IS_EMPTY = "is_empty", "is empty"

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="filter_conditions")
    position = models.PositiveSmallIntegerField(default=0)
    field = models.CharField(max_length=64, help_text="A system or custom field name.")
    operator = models.CharField(max_length=10, choices=Operator.choices, default=Operator.EQ)
    value = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["skill", "position"]

    def __str__(self) -> str:
        return f"{self.field} {self.get_operator_display()} {self.value}".strip()

    def clean(self) -> None:
        if self.operator != self.Operator.IS_EMPTY and self.value == "":
            raise ValidationError({"value": "Give a value to compare with."})


class SortCriterion(models.Model):
    """List management: the order records are taken in."""

    bu_path = "skill__business_unit"

    class Direction(models.TextChoices):
        ASC = "asc", "Ascending"
        DESC = "desc", "Descending"

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="sort_criteria")
    position = models.PositiveSmallIntegerField(default=0)
    field = models.CharField(max_length=64, default="created_at")
    direction = models.CharField(max_length=4, choices=Direction.choices, default=Direction.ASC)

    class Meta:
        ordering = ["skill", "position"]
        verbose_name_plural = "sort criteria"

    def __str__(self) -> str:
        return f"{self.field} {self.direction}"


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class ScheduleDay(models.Model):
    """A weekday of the skill's schedule, in the BU's time zone."""

    bu_path = "skill__business_unit"

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="schedule_days")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    is_active = models.BooleanField(default=True)
    start_time = models.TimeField(default=dt.time(9, 0))
    end_time = models.TimeField(default=dt.time(17, 0))

    class Meta:
        ordering = ["skill", "weekday"]
        constraints = [
            models.UniqueConstraint(
                fields=["skill", "weekday"], name="scheduleday_one_per_weekday"
            ),
            models.CheckConstraint(
                condition=Q(start_time__lt=F("end_time")),
                name="scheduleday_start_before_end",
                violation_error_message="The end time must be after the start time.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start_time:%H:%M}-{self.end_time:%H:%M}"


def _weekend_hours_constraints(prefix: str) -> list[models.CheckConstraint]:
    """A rule's own Saturday and Sunday hours: none, or both times, the start before the end.
    (Django gives a model's constraints no inheritance of names, so each model asks.)"""
    constraints = []
    for day in ("saturday", "sunday"):
        start, end = f"{day}_start", f"{day}_end"
        constraints.append(
            models.CheckConstraint(
                condition=Q(**{f"{start}__isnull": True, f"{end}__isnull": True})
                | Q(**{f"{start}__isnull": False, f"{end}__isnull": False, f"{start}__lt": F(end)}),
                name=f"{prefix}_{day}_hours",
                violation_error_message=f"Give both {day.title()} times, the start before the end.",
            )
        )
    return constraints


class ObservedRule(models.TextChoices):
    """On which day a state observes a legal holiday that falls at the weekend."""

    SAT_FRI_SUN_MON = "sat_fri_sun_mon", "Saturday's on the Friday before, Sunday's on the Monday"
    SUN_MON = "sun_mon", "Sunday's on the Monday after (Saturday's stays)"
    NONE = "none", "On the day itself"


class DayRules(models.Model):
    """The per-day parts a state rule and a business unit's stricter version of it share."""

    no_sundays = models.BooleanField(default=False)
    no_holidays = models.BooleanField(
        default=False, help_text="Not on the state's legal holidays (the preset's holiday dates)."
    )
    max_per_24h = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="At most this many texts to one number per 24 hours, across all skills.",
    )
    # Some states keep other hours at the weekend (docs/spec.md section 9: Texas starts at noon
    # on Sundays, Rhode Island keeps 10:00-17:00 on Saturdays).
    saturday_start = models.TimeField(null=True, blank=True, help_text="Empty: the hours above.")
    saturday_end = models.TimeField(null=True, blank=True, help_text="Empty: the hours above.")
    sunday_start = models.TimeField(null=True, blank=True, help_text="Empty: the hours above.")
    sunday_end = models.TimeField(null=True, blank=True, help_text="Empty: the hours above.")
    source = models.CharField(
        max_length=300, blank=True, help_text="The statute or the source the rule comes from."
    )
    notes = models.TextField(blank=True)

    class Meta:
        abstract = True

    def weekday_hours(self) -> tuple[dt.time, dt.time]:
        """The hours of a day with no weekend hours of its own: here, the whole day."""
        return dt.time.min, dt.time.max

    def holiday_names(self) -> dict[dt.date, str]:
        """The legal holidays the rule closes on, by date: here, none."""
        return {}

    def rule_on(self, day: dt.date) -> tuple[tuple[dt.time, dt.time] | None, str]:
        """The local hours of ``day`` under this rule (None when the day is closed), and the
        words that name that part of the rule when it holds a text back."""
        if self.no_holidays:
            name = self.holiday_names().get(day)
            if name is not None:
                return None, f"no texts on legal holidays ({name})"
        weekday = day.weekday()
        if weekday == Weekday.SUNDAY:
            if self.no_sundays:
                return None, "no texts on Sundays"
            if self.sunday_start and self.sunday_end:
                hours = self.sunday_start, self.sunday_end
                return hours, f"Sunday hours {_span(hours)}"
        if weekday == Weekday.SATURDAY and self.saturday_start and self.saturday_end:
            hours = self.saturday_start, self.saturday_end
            return hours, f"Saturday hours {_span(hours)}"
        hours = self.weekday_hours()
        return hours, f"hours {_span(hours)}"

    def hours_on(self, day: dt.date) -> tuple[dt.time, dt.time] | None:
        """The local hours of ``day`` under this rule, or None when the day is closed."""
        return self.rule_on(day)[0]


def _span(hours: tuple[dt.time, dt.time]) -> str:
    return f"{hours[0]:%H:%M}-{hours[1]:%H:%M}"


class SendingWindowPreset(DayRules):
    """A state's stricter sending hours (docs/spec.md section 9), data compliance owners edit."""

    code = models.CharField(max_length=8, unique=True, help_text="e.g. FL, or US for federal.")
    name = models.CharField(max_length=100)
    start_time = models.TimeField(default=TCPA_START)
    end_time = models.TimeField(default=TCPA_END)
    area_codes = models.JSONField(
        default=list,
        blank=True,
        help_text="Numbers with these area codes are presumed residents (FL, OK).",
    )
    effective_from = models.DateField(
        null=True,
        blank=True,
        help_text="The rule holds for local days from this date on (empty: always).",
    )
    observed_rule = models.CharField(
        max_length=16,
        choices=ObservedRule.choices,
        default=ObservedRule.SAT_FRI_SUN_MON,
        help_text="Where a weekend holiday is observed, when its dates are filled in.",
    )
    # Oregon's cap does not count for a customer who bought within the prior 18 months
    # (docs/spec.md section 9): the record's last purchase date says so.
    cap_purchase_exempt_months = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="The cap does not apply to a record whose last purchase is this recent.",
    )
    # Virginia (SB 1339): a STOP by reply is honoured for at least 10 years (docs/spec.md
    # section 11): the opt-out's DNC entry never expires before.
    stop_retention_years = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="A recipient's opt-out is kept at least this many years.",
    )

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(start_time__lt=F("end_time")), name="windowpreset_start_before_end"
            ),
            *_weekend_hours_constraints("windowpreset"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.start_time:%H:%M}-{self.end_time:%H:%M}"

    def applies_on(self, day: dt.date) -> bool:
        return self.effective_from is None or day >= self.effective_from

    def weekday_hours(self) -> tuple[dt.time, dt.time]:
        return self.start_time, self.end_time

    @functools.cached_property
    def _holiday_names(self) -> dict[dt.date, str]:
        return {h.date: h.name for h in self.holidays.all()}

    def holiday_names(self) -> dict[dt.date, str]:
        return self._holiday_names

    @property
    def holiday_dates(self) -> frozenset[dt.date]:
        return frozenset(self._holiday_names)

    def cap_exempt(self, last_purchase_on: dt.date | None, today: dt.date) -> bool:
        """Whether a record's recent purchase takes it out of this rule's cap (Oregon)."""
        months = self.cap_purchase_exempt_months
        if not months or last_purchase_on is None:
            return False
        return last_purchase_on > today - dt.timedelta(days=round(months * 30.44))


class StateRuleOverride(DayRules):
    """A business unit's own, stricter version of a state's rule: it applies to the same
    recipients as the state rule, on top of it (the stricter always wins, so an override can
    narrow the law's hours and never widen them)."""

    bu_path = "business_unit"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="state_rule_overrides"
    )
    preset = models.ForeignKey(
        SendingWindowPreset, on_delete=models.CASCADE, related_name="overrides"
    )
    start_time = models.TimeField(null=True, blank=True, help_text="Empty: the state's hours.")
    end_time = models.TimeField(null=True, blank=True, help_text="Empty: the state's hours.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["business_unit", "preset"]
        verbose_name = "state rule of a business unit"
        verbose_name_plural = "state rules of business units"
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit", "preset"],
                name="staterule_override_one_per_state",
                violation_error_message="This business unit already has a rule for that state.",
            ),
            models.CheckConstraint(
                condition=Q(start_time__isnull=True, end_time__isnull=True)
                | Q(start_time__isnull=False, end_time__isnull=False, start_time__lt=F("end_time")),
                name="staterule_override_hours",
                violation_error_message="Give both times, the start before the end.",
            ),
            *_weekend_hours_constraints("staterule_override"),
        ]

    def __str__(self) -> str:
        return f"{self.business_unit}: {self.preset.code}"

    def applies_on(self, day: dt.date) -> bool:
        return self.preset.applies_on(day)

    def weekday_hours(self) -> tuple[dt.time, dt.time]:
        if self.start_time and self.end_time:
            return self.start_time, self.end_time
        return super().weekday_hours()  # no hours of its own: the state's hold

    def holiday_names(self) -> dict[dt.date, str]:
        return self.preset.holiday_names()

    def cap_exempt(self, last_purchase_on: dt.date | None, today: dt.date) -> bool:
        return self.preset.cap_exempt(last_purchase_on, today)


class Blackout(models.Model):
    """A time when nobody in the listed states is texted, declared by a compliance owner
    (docs/spec.md section 9: Louisiana bans texts during a declared state of emergency)."""

    bu_path = "business_unit"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="blackouts"
    )
    states = models.JSONField(
        default=list,
        blank=True,
        help_text='State codes, e.g. ["LA"]; empty: every recipient of the business unit.',
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until lifted.")
    reason = models.CharField(max_length=200, help_text="e.g. Hurricane Ida state of emergency")
    source = models.CharField(max_length=300, blank=True, help_text="The order or proclamation.")
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(starts_at__lt=F("ends_at")),
                name="blackout_starts_before_end",
                violation_error_message="The end must be after the start.",
            ),
            # The reason names the blackout (config files find it by it).
            models.UniqueConstraint(
                fields=["business_unit", "reason"],
                name="blackout_one_per_reason",
                violation_error_message="This business unit already has a blackout so named.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason} ({', '.join(self.states) or 'all'})"

    def clean(self) -> None:
        codes = [str(c).strip().upper() for c in self.states or []]
        unknown = [c for c in codes if c not in state_codes()]
        if unknown:
            raise ValidationError({"states": f"Not a US state code: {', '.join(unknown)}."})
        self.states = codes

    @property
    def label(self) -> str:
        return f"blackout: {self.reason}"


@functools.cache
def state_names() -> dict[str, str]:
    """US state and territory names, lower case, to their codes ("texas" -> "TX"), and each
    code to itself: the ``holidays`` library's list, the codes the presets use."""
    from holidays.countries.united_states import US  # loaded once, when first asked

    names = {name.lower(): code for name, code in US.subdivisions_aliases.items()}
    names.update({code.lower(): code for code in US.subdivisions})
    names["washington d.c."] = "DC"
    return names


def state_codes() -> frozenset[str]:
    return frozenset(state_names().values())


class PresetHoliday(models.Model):
    """A legal holiday of a state's preset, on the day it is observed: filled for the coming years
    from the ``holidays`` library (``manage.py state_holidays``), edited like any rule."""

    preset = models.ForeignKey(
        SendingWindowPreset, on_delete=models.CASCADE, related_name="holidays"
    )
    date = models.DateField()
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["preset", "date"]
        constraints = [
            models.UniqueConstraint(
                fields=["preset", "date"],
                name="presetholiday_one_per_day",
                violation_error_message="This preset already has a holiday on that day.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.preset.code} {self.date:%Y-%m-%d}: {self.name}"


class TimeZoneBound(models.Model):
    """Time zone bounding: whether a zone of the BU is texted, and in which local hours."""

    bu_path = "skill__business_unit"

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="time_zone_bounds")
    time_zone = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True, help_text="Text recipients in this zone.")
    start_time = models.TimeField(
        null=True, blank=True, help_text="Empty: 08:00 (TCPA) or the preset's start."
    )
    end_time = models.TimeField(
        null=True, blank=True, help_text="Empty: 21:00 (TCPA) or the preset's end."
    )
    preset = models.ForeignKey(
        SendingWindowPreset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["skill", "time_zone"]
        constraints = [
            models.UniqueConstraint(
                fields=["skill", "time_zone"], name="timezonebound_one_per_zone"
            ),
        ]

    def __str__(self) -> str:
        return self.time_zone

    def window(self) -> tuple[dt.time, dt.time]:
        start = self.start_time or (self.preset.start_time if self.preset else TCPA_START)
        end = self.end_time or (self.preset.end_time if self.preset else TCPA_END)
        return start, end

    def clean(self) -> None:
        errors = {}
        if self.skill_id and self.time_zone not in self.skill.business_unit.allowed_time_zones:
            errors["time_zone"] = f"{self.time_zone} is not an allowed zone of the business unit."
        elif self.time_zone and not (
            timezones.is_iana_zone(self.time_zone)
            or (
                self.skill_id
                and self.skill.business_unit.custom_time_zones.filter(name=self.time_zone).exists()
            )
        ):
            errors["time_zone"] = f"'{self.time_zone}' is not a known time zone."
        if (self.start_time is None) != (self.end_time is None):
            errors["end_time"] = "Give both the start and the end, or neither."
        elif self.start_time is not None and self.start_time >= self.end_time:
            errors["end_time"] = "The end must be after the start."
        if errors:
            raise ValidationError(errors)


class Attempt(models.Model):
    """One text a skill planned for one destination of one record; links to the message."""

    bu_path = "skill__business_unit"

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="attempts")
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="attempt_set")
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="attempt_set"
    )
    message = models.OneToOneField(
        OutboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempt"
    )
    outcome = models.CharField(max_length=12, choices=OutcomeClass.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Dashboard counts and "attempts so far" per record.
            models.Index(fields=["skill", "record"], name="attempt_skill_record_idx"),
            # The dashboard's texts per minute: a skill's attempts of the last hours only.
            models.Index(fields=["skill", "created_at"], name="attempt_skill_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.skill} -> {self.destination}"


class SkillForecast(models.Model):
    """The forecast made when a skill started (skills.forecast): the dashboard compares what
    happens with it. ``data`` is the whole forecast (per day, per hour, its assumptions)."""

    bu_path = "skill__business_unit"

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="forecasts")
    made_at = models.DateTimeField(default=timezone.now)
    starts_at = models.DateTimeField()
    finishes_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: not within the forecast's 60 days."
    )
    records = models.PositiveIntegerField(default=0)
    texts = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["-made_at"]
        verbose_name = "skill forecast"
        indexes = [models.Index(fields=["skill", "-made_at"], name="skillforecast_skill_made_idx")]

    def __str__(self) -> str:
        return f"{self.skill}: forecast of {self.made_at:%Y-%m-%d %H:%M}"


class RuleHold(models.Model):
    """A text a rule held back: which rule, for whom, from when and until when.

    Written by the planner when a recipient's state rule, a blackout or a frequency cap keeps
    it from planning a text it would otherwise plan, and by the send-time guard when one
    withdraws a queued text; one row per hold (the planner meets the same hold at every pass).
    The record's page and the evidence of a number list them.
    """

    bu_path = "business_unit"

    class Kind(models.TextChoices):
        HOURS = "hours", "Outside the allowed hours"
        CLOSED_DAY = "closed_day", "A day without texts (Sunday, holiday)"
        BLACKOUT = "blackout", "Blackout"
        CAP = "cap", "Frequency cap"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="rule_holds"
    )
    skill = models.ForeignKey(
        Skill, null=True, blank=True, on_delete=models.SET_NULL, related_name="rule_holds"
    )
    record = models.ForeignKey(
        Record, null=True, blank=True, on_delete=models.SET_NULL, related_name="rule_holds"
    )
    message = models.ForeignKey(
        OutboundMessage,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rule_holds",
        help_text="The queued text the send-time guard withdrew, if it was one.",
    )
    phone_number = models.CharField(max_length=16)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    rule = models.CharField(max_length=200, help_text='e.g. "TX: Sunday hours 12:00-21:00"')
    source = models.CharField(max_length=300, blank=True)
    held_at = models.DateTimeField()
    held_until = models.DateTimeField(
        null=True, blank=True, help_text="When the rule lets it go; empty: not in the coming week."
    )

    class Meta:
        ordering = ["-held_at", "-id"]
        indexes = [
            models.Index(fields=["business_unit", "phone_number"], name="rulehold_number_idx"),
            models.Index(fields=["record"], name="rulehold_record_idx"),
        ]
        constraints = [
            # The planner meets one hold at each pass until it lifts: it is written once.
            models.UniqueConstraint(
                fields=["skill", "phone_number", "rule", "held_until"],
                condition=Q(held_until__isnull=False, message__isnull=True),
                name="rulehold_once_per_hold",
            ),
            models.UniqueConstraint(
                fields=["skill", "phone_number", "rule"],
                condition=Q(held_until__isnull=True, message__isnull=True),
                name="rulehold_once_per_open_hold",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.phone_number}: {self.rule}"


class XsEvent(models.Model):
    """Something a skill's CRM is told through the XS webhook: a record was finalized (with its
    outcome), or the skill has fewer records waiting than its refill threshold.

    Written in the transaction that finalized the record (so a rollback tells nothing), sent in
    batches per skill by ``skills.xs.xs_deliver`` (every minute), retried with a growing wait
    when the CRM does not answer 2xx, and given up after XS_MAX_ATTEMPTS (kept, and listed).

        pending --2xx--> delivered
        pending --error--> pending (later) ... --> failed
    """

    bu_path = "skill__business_unit"

    class Kind(models.TextChoices):
        FINALIZED = "finalized", "Record finalized"
        REFILL = "refill", "More records wanted"

    class Status(models.TextChoices):
        PENDING = "pending", "To send"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Given up"

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="xs_events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "XS webhook event"
        indexes = [
            # The sender's question every minute: which events are due?
            models.Index(
                fields=["next_attempt_at", "skill"],
                name="xs_event_due_idx",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.skill}: {self.get_kind_display()} ({self.get_status_display()})"
