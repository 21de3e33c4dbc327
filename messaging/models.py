"""Sending numbers, registrations, templates, and the log of every text in and out.

``messaging`` knows how to send a text well (pace, guard, record, callbacks) and nothing about
calling lists or skills: those hand it merged messages and read message state back.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail.backends.base import BaseEmailBackend
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.module_loading import import_string

from dnc.models import DncEntry, DncGroup
from messaging import hooks, templating
from pcsms.addresses import AddressError, normalise_email, normalise_phone
from pcsms.models import BusinessUnit

SHORT_CODE_RE = re.compile(r"^\d{5,6}$")


def template_fields_for(business_unit: BusinessUnit) -> list[str]:
    """Every field name a template of this BU may use."""
    names = list(templating.SYSTEM_FIELDS)
    for provider in hooks.TEMPLATE_FIELD_PROVIDERS:
        names.extend(provider(business_unit))
    return names


class Channel(models.TextChoices):
    """How a skill reaches its recipients; its template, sender and destinations share it."""

    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class TransportCode(models.Model):
    """A sender and the pace the system must hold on it: a number for SMS, or for email a
    sending address (its domain or ESP account) with the pace the provider allows."""

    bu_path = "business_unit"

    class Kind(models.TextChoices):
        LONG = "long", "Long code (10DLC)"
        SHORT = "short", "Short code"
        TOLL_FREE = "toll_free", "Toll-free"
        EMAIL = "email", "Email sender (domain or ESP account)"

    class Provisioning(models.TextChoices):
        REQUESTED = "requested", "Requested"
        PROVISIONED = "provisioned", "Provisioned"
        RETIRED = "retired", "Retired"

    # The seed's long-code figure, the usual short-code rate and Twilio's toll-free default;
    # for email a pace a new sending domain keeps while it warms up (docs/email.md).
    DEFAULT_RATES = {
        Kind.LONG: Decimal("5"),
        Kind.SHORT: Decimal("100"),
        Kind.TOLL_FREE: Decimal("3"),
        Kind.EMAIL: Decimal("10"),
    }

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="transport_codes"
    )
    number = models.CharField(
        max_length=254,
        unique=True,
        help_text="E.164 for long codes and toll-free numbers (any format is accepted), "
        "5-6 digits for short codes, the From address for an email sender.",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.LONG)
    messages_per_second = models.DecimalField(
        max_digits=7,
        decimal_places=2,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="The pace never exceeded over any one-second window. Empty: the kind's default "
        "(long 5, short 100, toll-free 3, email 10).",
    )
    messages_per_day = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="At most this many messages a calendar day (UTC) from this sender, as a "
        "carrier's daily cap or an email provider's quota. Empty: no daily limit.",
    )
    counts_segments = models.BooleanField(
        default=True, help_text="Carriers meter segments, so a 3-part text costs 3 of the pace."
    )
    provisioning_status = models.CharField(
        max_length=12, choices=Provisioning.choices, default=Provisioning.REQUESTED
    )
    requested_on = models.DateField(null=True, blank=True)
    provisioned_on = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["business_unit__name", "number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(messages_per_second__gt=0),
                name="transportcode_rate_positive",
                violation_error_message="Messages per second must be greater than 0.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.get_kind_display()})"

    def save(self, *args, **kwargs):
        if self.messages_per_second is None:
            self.messages_per_second = self.DEFAULT_RATES.get(self.kind, Decimal("1"))
        if self.kind == self.Kind.EMAIL:
            self.counts_segments = False  # an email is one message, whatever its length
        super().save(*args, **kwargs)

    @property
    def channel(self) -> str:
        return Channel.EMAIL if self.kind == self.Kind.EMAIL else Channel.SMS

    def clean(self) -> None:
        errors = {}
        if self.messages_per_second is None:
            self.messages_per_second = self.DEFAULT_RATES.get(self.kind, Decimal("1"))
        raw = (self.number or "").strip()
        if self.kind == self.Kind.EMAIL:
            try:
                self.number = normalise_email(raw)
            except AddressError as error:
                errors["number"] = str(error)
        elif self.kind == self.Kind.SHORT:
            digits = re.sub(r"[\s-]", "", raw)
            if not SHORT_CODE_RE.match(digits):
                errors["number"] = "A short code is 5 or 6 digits."
            else:
                self.number = digits
        else:
            region = self.business_unit.phone_region if self.business_unit_id else "US"
            try:
                self.number = normalise_phone(raw, region)
            except AddressError as error:
                errors["number"] = str(error)
        if self.provisioning_status == self.Provisioning.PROVISIONED and not self.provisioned_on:
            errors["provisioned_on"] = "Give the date the code was provisioned."
        if errors:
            raise ValidationError(errors)

    @property
    def can_send(self) -> bool:
        return self.provisioning_status == self.Provisioning.PROVISIONED


class SmsRegistration(models.Model):
    """Binds a transport code to a BU for sending, with its carrier account and keyword replies.

    An email sender's registration names the mail backend it sends through and the DNC group
    its unsubscribes and complaints land in; the keyword replies are SMS alone."""

    bu_path = "business_unit"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="sms_registrations"
    )
    name = models.CharField(max_length=100)
    transport_code = models.ForeignKey(
        TransportCode, on_delete=models.PROTECT, related_name="registrations"
    )
    backend = models.CharField(
        max_length=200,
        blank=True,
        help_text="Dotted path of the SMS backend (empty: the SMS_BACKEND setting). For an email "
        "sender, of the Django mail backend, e.g. anymail.backends.mailgun.EmailBackend (empty: "
        "the EMAIL_BACKEND setting).",
    )
    carrier_account = models.CharField(
        max_length=40,
        default="default",
        help_text="Which credentials to use. 'default' reads TWILIO_ACCOUNT_SID and "
        "TWILIO_AUTH_TOKEN; NAME reads TWILIO_<NAME>_ACCOUNT_SID and TWILIO_<NAME>_AUTH_TOKEN. "
        "Secrets never live in the database.",
    )
    messaging_service_sid = models.CharField(
        max_length=34,
        blank=True,
        help_text="Twilio Messaging Service SID (MG...). Empty: send from the transport code.",
    )
    stop_dnc_group = models.ForeignKey(
        DncGroup,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="registrations",
        help_text="Where STOP replies (for email: unsubscribes and complaints) go. Empty: the "
        "BU's default DNC group.",
    )
    help_reply = models.CharField(
        max_length=320,
        blank=True,
        help_text="Reply to HELP. Empty: built from the BU's business name and support contact.",
    )
    opt_out_confirmation = models.CharField(
        max_length=320, blank=True, help_text="Empty: the BU's opt-out confirmation."
    )
    opt_in_confirmation = models.CharField(
        max_length=320,
        blank=True,
        default="You are subscribed again. Reply STOP to opt out.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["business_unit__name", "name"]
        # It binds an email sender too: "sending", not "SMS".
        verbose_name = "sending registration"
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit", "name"], name="smsregistration_unique_name_per_bu"
            ),
            models.CheckConstraint(
                condition=Q(messaging_service_sid="") | Q(messaging_service_sid__startswith="MG"),
                name="smsregistration_service_sid_format",
                violation_error_message="A Messaging Service SID starts with MG.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        code = self.transport_code if self.transport_code_id else None
        if code and self.business_unit_id and code.business_unit_id != self.business_unit_id:
            errors["transport_code"] = "The transport code belongs to another business unit."
        group = self.stop_dnc_group if self.stop_dnc_group_id else None
        if group and self.business_unit_id and group.business_unit_id != self.business_unit_id:
            errors["stop_dnc_group"] = "The DNC group belongs to another business unit."
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.carrier_account or ""):
            errors["carrier_account"] = "Use letters, digits and underscores only."
        if self.backend and code is not None:
            problem = _backend_problem(self.backend.strip(), email=code.kind == code.Kind.EMAIL)
            if problem:
                errors["backend"] = problem
        if errors:
            raise ValidationError(errors)


def _backend_problem(path: str, *, email: bool) -> str:
    """Why ``path`` cannot send for the registration, or "": a typo found when it is saved, not
    when the first batch fails. An email sender's is a Django mail backend; an SMS code's, a
    class with the sender's interface (messaging/backends/base.py, read by its methods: the
    models sit below the backends)."""
    try:
        backend = import_string(path)
    except ImportError:
        return f"'{path}' cannot be imported: check the dotted path."
    if email:
        if not (isinstance(backend, type) and issubclass(backend, BaseEmailBackend)):
            return f"'{path}' is not a Django mail backend; an email sender sends through one."
    elif not all(hasattr(backend, name) for name in ("send_messages", "submit", "find_sent")):
        return f"'{path}' is not an SMS backend (messaging/backends/base.py)."
    return ""


EMAIL_SUBJECT_MAX = 200  # a subject line, merged values included, that mail clients show
EMAIL_BODY_MAX = 100_000  # each part of an email; far above any campaign text


class MessageTemplate(models.Model):
    """A text with ``{Field}`` variables merged with each calling-list record.

    An SMS template is its body. An email template has a subject, the body as its plain-text
    part and, optionally, an HTML part: all three merge the same ``{Field|fallback}`` variables
    (messaging/templating.py), the HTML part with every merged value escaped.
    """

    bu_path = "business_unit"

    Channel = Channel

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="message_templates"
    )
    name = models.CharField(max_length=100)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.SMS)
    subject = models.CharField(
        max_length=EMAIL_SUBJECT_MAX,
        blank=True,
        help_text="Email only: the subject line, with the same {Field|fallback} variables.",
    )
    body = models.TextField(
        help_text="Use {FirstName}, {LastName} or any calling-list field; {FirstName|there} "
        "gives a fallback for empty values; {{ and }} write literal braces. For email: the "
        "plain-text part."
    )
    html_body = models.TextField(
        "HTML body",
        blank=True,
        help_text="Email only, optional: the HTML part. Merged values are HTML-escaped; "
        "write {{ and }} for the braces of CSS.",
    )
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["business_unit__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit", "name"], name="messagetemplate_unique_name_per_bu"
            ),
            # A text message has no subject or HTML part: nothing typed there is silently
            # dropped when it is sent.
            models.CheckConstraint(
                condition=Q(channel="email") | (Q(subject="") & Q(html_body="")),
                name="messagetemplate_sms_has_no_email_parts",
                violation_error_message="Only an email template has a subject or an HTML body.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_sms(self) -> bool:
        return self.channel == self.Channel.SMS

    def clean(self) -> None:
        known = template_fields_for(self.business_unit) if self.business_unit_id else []
        known = known or templating.SYSTEM_FIELDS
        errors: dict[str, list[str]] = {}
        if self.channel == self.Channel.EMAIL:
            if not (self.subject or "").strip():
                errors["subject"] = ["An email needs a subject."]
            parts = [
                ("subject", self.subject, EMAIL_SUBJECT_MAX),
                ("body", self.body, EMAIL_BODY_MAX),
                ("html_body", self.html_body, EMAIL_BODY_MAX),
            ]
        else:
            for name in ("subject", "html_body"):
                if getattr(self, name):
                    errors[name] = [
                        "Only an email template has one: clear it, or make the "
                        "template an email template."
                    ]
            parts = [("body", self.body, templating.MAX_BODY_LENGTH)]
        for name, text, limit in parts:
            if name in errors or (name != "body" and not text):
                continue
            problems = templating.validate(text or "", known, max_length=limit)
            if problems:
                errors[name] = [problem.message for problem in problems]
        if errors:
            raise ValidationError(errors)


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending (in flight)"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    UNDELIVERED = "undelivered", "Undelivered"
    FAILED = "failed", "Failed"
    WITHDRAWN = "withdrawn", "Withdrawn"
    UNKNOWN = "unknown", "Unknown outcome (review)"


class WithdrawReason(models.TextChoices):
    """Why a queued message was never handed to the carrier."""

    SKILL_STOPPED = "skill_stopped", "Skill stopped or paused"
    OPTED_OUT = "opted_out", "Recipient opted out"
    DNC = "dnc", "On a DNC group"
    OUTSIDE_WINDOW = "outside_window", "Outside the recipient's allowed hours"
    EXPIRED = "expired", "Record expired"
    STALE = "stale", "Queued too long"
    TOO_LONG = "too_long", "More segments than allowed"
    FILTERED = "filtered", "No longer passes the skill's filter"
    CODE_UNAVAILABLE = "code_unavailable", "Transport code not provisioned"
    STATE_RULE = "state_rule", "Held back by a state rule or a blackout"
    FREQUENCY_CAP = "frequency_cap", "Over a frequency cap"


PENDING_STATUSES = (MessageStatus.QUEUED, MessageStatus.SENDING)
FINAL_STATUSES = (
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
    MessageStatus.FAILED,
    MessageStatus.WITHDRAWN,
)


class OutboundMessage(models.Model):
    """One text to one number, or one email to one address (its sender a transport code of the
    email kind).

    Lifecycle::

        queued --(sender claims it; marked before the carrier call)--> sending
        queued --(a send-time guard fails: DNC, window, skill stopped)--> withdrawn
        sending --(carrier accepted)--> sent --(receipt)--> delivered | undelivered | failed
        sending --(carrier refused: permanent error code)--> failed
        sending --(transient error: 429/5xx/timeout, never processed)--> queued (retry later)
        sending --(worker died mid-call; carrier has no record we can match)--> unknown

    A ``sending`` row whose worker died is never re-sent blindly: the carrier may have taken it.
    Receipts can arrive late and out of order; ``delivered`` is final and never turns back.
    """

    bu_path = "business_unit"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="outbound_messages"
    )
    registration = models.ForeignKey(
        SmsRegistration, on_delete=models.PROTECT, related_name="outbound_messages"
    )
    # Denormalised from the registration: the sender's hot query is per transport code.
    transport_code = models.ForeignKey(
        TransportCode, on_delete=models.PROTECT, related_name="outbound_messages"
    )
    to = models.CharField(max_length=254, help_text="E.164, or an email address")
    subject = models.CharField(max_length=EMAIL_SUBJECT_MAX, blank=True, help_text="Email only.")
    body = models.TextField(help_text="The text, or an email's plain-text part.")
    html_body = models.TextField("HTML body", blank=True, help_text="Email only.")
    encoding = models.CharField(max_length=5, default="GSM-7")
    segments = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(
        max_length=12, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    # Set by whoever queued it (e.g. "skill:12:attempt:345"): one message per key, ever.
    idempotency_key = models.CharField(max_length=100, null=True, blank=True, unique=True)
    source = models.CharField(
        max_length=40, blank=True, help_text="What queued it, e.g. 'skill:12'; used for sharing."
    )
    priority = models.PositiveSmallIntegerField(default=5)
    not_before = models.DateTimeField(null=True, blank=True)
    window_ends_at = models.DateTimeField(
        null=True, blank=True, help_text="The end of the recipient's allowed window."
    )
    # Twilio's SM... sid, or an email's Message-ID (which the ESPs' webhooks name it by).
    carrier_sid = models.CharField(max_length=255, null=True, blank=True, unique=True)
    carrier_status = models.CharField(max_length=20, blank=True)
    error_code = models.CharField(max_length=10, blank=True)
    error_text = models.CharField(max_length=500, blank=True)
    withdraw_reason = models.CharField(max_length=20, choices=WithdrawReason.choices, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a sender marked it in flight."
    )
    claimed_by = models.CharField(
        max_length=100, blank=True, help_text="The sender (host:pid:thread) that marked it."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    receipt_checked_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the carrier was last asked for this sent text's status (no receipt yet).",
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "outbound message"
        indexes = [
            # The sender: "does this code have work?" (EXISTS) and "the next queued texts of
            # one code and source, in id order" (its claim).
            models.Index(
                fields=["transport_code", "status", "source", "id"],
                name="outbound_sender_queue_idx",
            ),
            # STOP handling: withdraw everything queued to one number in a BU at once.
            models.Index(
                fields=["business_unit", "to", "status"], name="outbound_bu_to_status_idx"
            ),
            # A sender's daily limit: what the code handed over today (messaging.selectors).
            models.Index(fields=["transport_code", "sent_at"], name="outbound_code_sent_idx"),
            # The receipt check: sent texts still waiting for their receipt, oldest first.
            models.Index(
                fields=["sent_at"],
                condition=Q(status=MessageStatus.SENT),
                name="outbound_awaiting_receipt_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(segments__gte=1), name="outbound_segments_at_least_one"
            ),
            models.CheckConstraint(
                condition=~Q(status=MessageStatus.WITHDRAWN) | ~Q(withdraw_reason=""),
                name="outbound_withdrawn_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"To {self.to}: {self.get_status_display()}"


class MessageEvent(models.Model):
    """Every transition of a message and every carrier callback, with time and reason."""

    bu_path = "message__business_unit"

    class Kind(models.TextChoices):
        TRANSITION = "transition", "Status change"
        CALLBACK = "callback", "Carrier callback"
        CARRIER_CALL = "carrier_call", "Carrier request"
        STATUS_CHECK = "status_check", "Status asked of the carrier"

    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=14, choices=Kind.choices)
    status = models.CharField(max_length=20, blank=True)
    error_code = models.CharField(max_length=10, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.status}"


class InboundMessage(models.Model):
    """A text a recipient sent to one of our numbers, and what was done about it."""

    bu_path = "business_unit"

    class Classification(models.TextChoices):
        OPT_OUT = "opt_out", "Opt-out"
        OPT_IN = "opt_in", "Opt-in"
        HELP = "help", "Help"
        PROBABLE_OPT_OUT = "probable_opt_out", "Probable opt-out"
        OTHER = "other", "Other"

    class Review(models.TextChoices):
        NOT_NEEDED = "not_needed", "Not needed"
        PENDING = "pending", "Pending review"
        CONFIRMED = "confirmed", "Confirmed as opt-out"
        UNDONE = "undone", "Not an opt-out (undone)"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="inbound_messages"
    )
    registration = models.ForeignKey(
        SmsRegistration,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_messages",
    )
    from_number = models.CharField(max_length=16)
    to_number = models.CharField(max_length=16)
    body = models.TextField(blank=True)
    carrier_sid = models.CharField(max_length=64, unique=True)
    received_at = models.DateTimeField()
    classification = models.CharField(
        max_length=20, choices=Classification.choices, default=Classification.OTHER
    )
    action_taken = models.CharField(max_length=300, blank=True)
    review = models.CharField(max_length=12, choices=Review.choices, default=Review.NOT_NEEDED)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dnc_entries = models.ManyToManyField(
        DncEntry, blank=True, related_name="evidence_messages", help_text="Entries it caused."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            # The review list: pending probable opt-outs of a BU.
            models.Index(fields=["business_unit", "review"], name="inbound_bu_review_idx"),
        ]

    def __str__(self) -> str:
        return f"From {self.from_number}: {self.body[:40]}"


class SenderLease(models.Model):
    """The right to send for one transport code, held by one sender at a time.

    A sender takes the lease when it is free or expired and renews it while it works; it only
    sends while its lease has at least ``SENDER_LEASE_MARGIN`` seconds left, and a new holder
    can only take it once it has expired. So two senders' texts on one code are always at
    least that margin apart, and a dead holder's code is picked up within one lease time.
    A single conditional UPDATE decides who wins, which is atomic on PostgreSQL and SQLite.
    """

    transport_code = models.OneToOneField(
        TransportCode, primary_key=True, on_delete=models.CASCADE, related_name="sender_lease"
    )
    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField()
    acquired_at = models.DateTimeField()
    renewed_at = models.DateTimeField()

    class Meta:
        verbose_name = "sender lease"

    def __str__(self) -> str:
        return f"{self.transport_code} held by {self.holder or 'nobody'}"


class SenderProcess(models.Model):
    """A running dispatcher process, seen recently: how processes share the codes fairly.

    Each dispatcher refreshes its row every tick and takes at most its share of the codes with
    work (codes / live processes), so adding a worker process spreads the load instead of one
    process holding every code while the others idle.
    """

    name = models.CharField(max_length=100, unique=True, help_text="host:pid")
    seen_at = models.DateTimeField()
    codes = models.PositiveIntegerField(default=0, help_text="Codes it was sending for.")

    class Meta:
        verbose_name = "sender process"
        verbose_name_plural = "sender processes"

    def __str__(self) -> str:
        return self.name
