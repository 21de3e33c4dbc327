"""Business units (the tenants), who belongs to them, and their custom time zones.

Every tenant-owned model declares ``bu_path``: the lookup from that model to its business unit
(``"business_unit"``, ``"calling_list__business_unit"``, or ``""`` for the BU itself). The admin's
isolation and :func:`visible_to` both follow it, so a new model only has to say where its BU is.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q, QuerySet

from pcsms import timezones

DEFAULT_OPT_OUT_KEYWORDS = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "OPT OUT",
    "REVOKE",
]
DEFAULT_OPT_IN_KEYWORDS = ["START", "UNSTOP", "YES"]
DEFAULT_HELP_KEYWORDS = ["HELP", "INFO"]


def _default_opt_out_keywords() -> list[str]:
    return list(DEFAULT_OPT_OUT_KEYWORDS)


def _default_opt_in_keywords() -> list[str]:
    return list(DEFAULT_OPT_IN_KEYWORDS)


def _default_help_keywords() -> list[str]:
    return list(DEFAULT_HELP_KEYWORDS)


def _default_allowed_zones() -> list[str]:
    return list(timezones.US_ZONES)


def validate_zone_list(value) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("Enter a list of time zone names.")


def validate_keyword_list(value) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValidationError("Enter a list of non-empty keywords.")


def bu_ids_for(user) -> QuerySet | None:
    """IDs of the BUs a user may see, or ``None`` for "all" (superusers)."""
    if user.is_superuser:
        return None
    return Membership.objects.filter(user=user).values("business_unit_id")


def visible_to(queryset: QuerySet, user, bu_path: str | None = None) -> QuerySet:
    """Narrow a queryset of a tenant model to the rows of the user's business units.

    ``bu_path`` defaults to the model's own; a many-valued path (a user's memberships) may
    match one row several times, hence ``distinct()`` only then.
    """
    if not user.is_active:
        return queryset.none()
    ids = bu_ids_for(user)
    if ids is None:
        return queryset
    path = queryset.model.bu_path if bu_path is None else bu_path
    lookup = f"{path}__in" if path else "pk__in"
    queryset = queryset.filter(**{lookup: ids})
    return queryset.distinct() if bu_path is not None else queryset


def bu_of(obj) -> BusinessUnit | None:
    """The business unit an object of a tenant model belongs to (follows ``bu_path``)."""
    current = obj
    for part in filter(None, type(obj).bu_path.split("__")):
        current = getattr(current, part, None)
        if current is None:
            return None
    return current


class ProbableOptOutPolicy(models.TextChoices):
    OPT_OUT = "opt_out", "Treat as opt-out (and list for review)"
    REVIEW_ONLY = "review_only", "List for review only"


class OptOutScope(models.TextChoices):
    """What a recipient's opt-out binds (docs/spec.md section 12)."""

    REGISTRATION = "registration", "This registration: the programs sharing its STOP group"
    BUSINESS_UNIT = "business_unit", "The whole business unit (revoke all)"


# The FCC's revoke-all rule, 47 CFR 64.1200(a)(10), is waived until this day (DA-26-12A, see
# docs/spec.md section 12): from it a revocation binds every program of the caller.
FCC_REVOKE_ALL_DATE = dt.date(2027, 1, 31)


def _default_revoke_all_from() -> dt.date:
    return FCC_REVOKE_ALL_DATE


class BusinessUnit(models.Model):
    """The tenant: everything else belongs to exactly one business unit."""

    bu_path = ""

    name = models.CharField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True)
    default_time_zone = models.CharField(
        max_length=64,
        default="America/New_York",
        help_text="IANA name (e.g. America/Chicago) or the name of one of this BU's custom zones.",
    )
    allowed_time_zones = models.JSONField(
        default=_default_allowed_zones,
        blank=True,
        validators=[validate_zone_list],
        help_text="The only zones any skill of this BU may text. IANA or custom zone names.",
    )
    phone_region = models.CharField(
        max_length=2,
        default="US",
        help_text="Two-letter region used to read phone numbers written without a country code.",
    )
    default_contact_expiration_days = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    business_name = models.CharField(
        max_length=100, blank=True, help_text="Program or business name used in HELP replies."
    )
    support_contact = models.CharField(
        max_length=200, blank=True, help_text="Phone, e-mail or web address given in HELP replies."
    )
    # CAN-SPAM (15 U.S.C. 7704(a)(5)): every commercial email carries the sender's valid
    # physical postal address; an email skill does not start without it (docs/email.md).
    postal_address = models.TextField(
        blank=True,
        help_text="The postal address printed at the foot of every email this BU sends.",
    )
    opt_out_confirmation = models.CharField(
        max_length=320,
        blank=True,
        default=(
            "You have been unsubscribed and will receive no more messages. Reply START to resume."
        ),
        help_text="The one confirmation sent after an opt-out. Empty: send none.",
    )
    opt_out_keywords = models.JSONField(
        default=_default_opt_out_keywords, validators=[validate_keyword_list]
    )
    opt_in_keywords = models.JSONField(
        default=_default_opt_in_keywords, validators=[validate_keyword_list]
    )
    help_keywords = models.JSONField(
        default=_default_help_keywords, validators=[validate_keyword_list]
    )
    probable_opt_out_policy = models.CharField(
        max_length=16,
        choices=ProbableOptOutPolicy.choices,
        default=ProbableOptOutPolicy.OPT_OUT,
        help_text="US rules accept revocation by any reasonable means, hence the default.",
    )
    # Frequency caps across all skills (docs/spec.md section 9): the stricter of this and the
    # recipient's state rule holds, at planning and at the moment of sending.
    max_texts_per_24h = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="At most this many texts to one number in 24 hours, across all skills.",
    )
    last_purchase_field = models.CharField(
        max_length=64,
        default="LastPurchaseDate",
        blank=True,
        help_text="The record field with the customer's last purchase date (Oregon's exemption).",
    )
    opt_out_scope = models.CharField(
        max_length=16,
        choices=OptOutScope.choices,
        default=OptOutScope.REGISTRATION,
        help_text="What a STOP, a free-text opt-out or the carrier's unsubscribe binds. A STOP "
        "lands in its registration's STOP group (or the default group): with 'this "
        "registration', it stops the texts of the registrations whose STOP replies land there.",
    )
    revoke_all_from = models.DateField(
        null=True,
        blank=True,
        default=_default_revoke_all_from,
        help_text="From this day every opt-out binds the whole business unit, whatever the "
        "scope above (the FCC's revoke-all rule takes effect 31 Jan 2027). Empty: the scope "
        "alone decides.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "business unit"

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        created = self._state.adding
        super().save(*args, **kwargs)
        if created:  # a new BU answers in Spanish too, as carriers require (docs/spec.md 12)
            KeywordSet.objects.bulk_create(
                [KeywordSet(business_unit=self, **SPANISH_KEYWORDS)], ignore_conflicts=True
            )

    def revokes_all(self, on: dt.date) -> bool:
        """Whether a recipient's opt-out binds every registration of the BU on day ``on``."""
        return self.opt_out_scope == OptOutScope.BUSINESS_UNIT or (
            self.revoke_all_from is not None and on >= self.revoke_all_from
        )

    def zone_names(self) -> set[str]:
        """Every zone name usable in this BU: IANA names plus its custom zones."""
        return set(timezones.iana_zone_names()) | set(
            self.custom_time_zones.values_list("name", flat=True)
        )

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if len(self.phone_region or "") != 2 or not self.phone_region.isalpha():
            errors["phone_region"] = "Enter a two-letter region code such as US or CA."
        else:
            self.phone_region = self.phone_region.upper()
        known = self.zone_names() if self.pk else set(timezones.iana_zone_names())
        if self.default_time_zone not in known:
            errors["default_time_zone"] = (
                f"'{self.default_time_zone}' is not an IANA time zone or a custom zone of this BU."
            )
        if isinstance(self.allowed_time_zones, list):
            unknown = [z for z in self.allowed_time_zones if z not in known]
            if unknown:
                errors["allowed_time_zones"] = "Unknown time zone(s): " + ", ".join(unknown)
        if errors:
            raise ValidationError(errors)


# Carriers require Spanish-language programs to answer ALTO (stop) and AYUDA (help)
# (docs/spec.md section 12); the other words are common Spanish opt-outs. Editable per BU.
SPANISH_KEYWORDS = {
    "language": "Spanish",
    "opt_out_keywords": ["ALTO", "PARAR", "CANCELAR", "BAJA", "NO MAS"],
    "opt_in_keywords": [],
    "help_keywords": ["AYUDA"],
    "opt_out_confirmation": (
        "Se ha dado de baja y no recibirá más mensajes. Responda START para volver a recibirlos."
    ),
    "help_reply": (
        "{name}: para ayuda, contacte a {contact}. La frecuencia de los mensajes varía. Pueden "
        "aplicarse tarifas de mensajes y datos. Responda ALTO para cancelar."
    ),
}


class KeywordSet(models.Model):
    """A business unit's keywords and replies in another language: a reply matching one of its
    keywords is answered in its language. The BU's own keyword fields are its first language.
    """

    bu_path = "business_unit"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="keyword_sets"
    )
    language = models.CharField(max_length=40, help_text="e.g. Spanish")
    opt_out_keywords = models.JSONField(
        default=list, blank=True, validators=[validate_keyword_list]
    )
    opt_in_keywords = models.JSONField(default=list, blank=True, validators=[validate_keyword_list])
    help_keywords = models.JSONField(default=list, blank=True, validators=[validate_keyword_list])
    opt_out_confirmation = models.CharField(
        max_length=320, blank=True, help_text="Empty: the business unit's confirmation."
    )
    opt_in_confirmation = models.CharField(
        max_length=320, blank=True, help_text="Empty: the registration's confirmation."
    )
    help_reply = models.CharField(
        max_length=320,
        blank=True,
        help_text="{name} and {contact}: the BU's business name and support contact. "
        "Empty: the registration's or the BU's reply.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["business_unit", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit", "language"],
                name="keywordset_one_per_language",
                violation_error_message="This business unit already has keywords in that language.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.business_unit}: {self.language}"

    def has(self, keyword: str, kind: str) -> bool:
        """Whether ``keyword`` (as the classifier matched it) is one of this set's ``kind``."""
        words = getattr(self, f"{kind}_keywords") or []
        return keyword.strip().upper() in {w.strip().upper() for w in words}


class Membership(models.Model):
    """A user's access to a business unit."""

    bu_path = "business_unit"

    class Role(models.TextChoices):
        ADMINISTRATOR = "administrator", "Administrator"
        COMPLIANCE = "compliance", "Compliance owner"
        OPERATOR = "operator", "Operator"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ADMINISTRATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["business_unit__name", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "business_unit"], name="membership_one_per_user_and_bu"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.business_unit} ({self.get_role_display()})"


class CustomTimeZone(models.Model):
    """A BU-defined zone: a base UTC offset and either no DST or the DST rule of an IANA zone."""

    bu_path = "business_unit"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="custom_time_zones"
    )
    name = models.CharField(max_length=64)
    utc_offset_minutes = models.IntegerField(
        validators=[MinValueValidator(-12 * 60), MaxValueValidator(14 * 60)],
        help_text="Standard-time offset from UTC in minutes, e.g. -300 for UTC-05:00.",
    )
    dst_like = models.CharField(
        max_length=64,
        blank=True,
        help_text="Empty: no daylight saving. Otherwise the IANA zone whose DST rule it follows.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["business_unit__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit", "name"], name="customtimezone_unique_name_per_bu"
            ),
            models.CheckConstraint(
                condition=Q(utc_offset_minutes__gte=-720) & Q(utc_offset_minutes__lte=840),
                name="customtimezone_offset_in_range",
            ),
        ]

    def __str__(self) -> str:
        sign = "+" if self.utc_offset_minutes >= 0 else "-"
        hours, minutes = divmod(abs(self.utc_offset_minutes), 60)
        dst = f", DST like {self.dst_like}" if self.dst_like else ", no DST"
        return f"{self.name} (UTC{sign}{hours:02d}:{minutes:02d}{dst})"

    def clean(self) -> None:
        errors = {}
        if self.name and timezones.normalise_zone_name(self.name):
            errors["name"] = f"'{self.name}' already names an IANA zone; choose another name."
        if self.dst_like and not timezones.is_iana_zone(self.dst_like):
            errors["dst_like"] = f"'{self.dst_like}' is not an IANA time zone."
        if errors:
            raise ValidationError(errors)

    def tzinfo(self) -> dt.tzinfo:
        return timezones.CustomZoneInfo(self.name, self.utc_offset_minutes, self.dst_like or None)
