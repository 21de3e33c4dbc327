"""Do-not-contact groups and entries.

A skill scrubs against some groups (checked before every send) and contributes its opt-outs to
others; a STOP reply lands in the registration's group or the BU's default group. An entry
blocks until its expiry date passes.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from pcsms.addresses import AddressError, normalise
from pcsms.models import BusinessUnit


class DncGroup(models.Model):
    bu_path = "business_unit"

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="dnc_groups"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    is_default = models.BooleanField(
        default=False,
        help_text="The BU's default group: STOP replies land here unless the registration "
        "names another group.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["business_unit__name", "name"]
        verbose_name = "DNC group"
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit", "name"], name="dncgroup_unique_name_per_bu"
            ),
            models.UniqueConstraint(
                fields=["business_unit"],
                condition=Q(is_default=True),
                name="dncgroup_one_default_per_bu",
                violation_error_message="This business unit already has a default DNC group.",
            ),
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(is_active=True),
                name="dncgroup_default_is_active",
                violation_error_message="The default DNC group must stay active.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (default)" if self.is_default else self.name

    def clean(self) -> None:
        # Deactivating a group a skill scrubs against would silently let its numbers be texted.
        if (
            self.pk
            and not self.is_active
            and DncGroup.objects.filter(pk=self.pk, is_active=True).exists()
        ):
            self.check_can_deactivate()

    def skill_names(self) -> list[str]:
        """Names of the skills that scrub against or contribute to this group.

        Read through the reverse relations the skills app declares (``scrubbing_skills`` and
        ``contributing_skills``), so ``dnc`` does not import ``skills``.
        """
        if self.pk is None:
            return []
        names: set[str] = set()
        for relation in ("scrubbing_skills", "contributing_skills"):
            manager = getattr(self, relation, None)
            if manager is not None:
                names.update(manager.values_list("name", flat=True))
        return sorted(names)

    def check_can_deactivate(self) -> None:
        """Raise ``ValidationError`` (naming the skills) if the group may not be made inactive."""
        users = self.skill_names()
        if users:
            raise ValidationError(
                {
                    "is_active": (
                        f"DNC group '{self.name}' is used by skill(s) {', '.join(users)}: "
                        "remove it from their scrubbed and contributing DNC groups first."
                    )
                },
                code="group_in_use",
            )


class DncEntry(models.Model):
    bu_path = "group__business_unit"

    class Source(models.TextChoices):
        STOP_REPLY = "stop_reply", "STOP reply"
        PROBABLE_OPT_OUT = "probable_opt_out", "Free-text opt-out"
        MANUAL = "manual", "Manual"
        FILE_IMPORT = "file_import", "File import"
        CARRIER = "carrier", "Carrier (unsubscribed)"
        API = "api", "API"
        UNSUBSCRIBE = "unsubscribe", "Email unsubscribe"
        COMPLAINT = "complaint", "Email complaint (marked as spam)"

    # Opt-ins remove only entries the recipient created by texting us, never a compliance
    # owner's manual or imported entry.
    RECIPIENT_SOURCES = (Source.STOP_REPLY, Source.PROBABLE_OPT_OUT)

    group = models.ForeignKey(DncGroup, on_delete=models.CASCADE, related_name="entries")
    # A number or an email address (pcsms/addresses.py): one group suppresses both channels.
    phone_number = models.CharField(
        "number or email address",
        max_length=254,
        help_text="A phone number in any format (stored as E.164) or an email address.",
    )
    expires_on = models.DateField(
        null=True, blank=True, help_text="The entry stops blocking after this day. Empty: never."
    )
    collected_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    evidence = models.TextField(
        blank=True, help_text="What caused the entry: the inbound text, file name or note."
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # A state may require a STOP to be honoured for years (docs/spec.md section 11: Virginia, 10
    # years): set when a recipient's opt-out is recorded, and the expiry is never before it.
    retain_until = models.DateField(null=True, blank=True, editable=False)
    retention_rule = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-collected_at"]
        verbose_name = "DNC entry"
        verbose_name_plural = "DNC entries"
        constraints = [
            models.UniqueConstraint(
                fields=["group", "phone_number"],
                name="dncentry_one_per_group_and_number",
                violation_error_message="This number is already in this DNC group.",
            ),
            models.CheckConstraint(
                condition=Q(expires_on__isnull=True)
                | Q(retain_until__isnull=True)
                | Q(expires_on__gte=F("retain_until")),
                name="dncentry_kept_for_its_retention",
                violation_error_message="The entry must be kept until its retention date.",
            ),
        ]
        indexes = [
            # The send-time guard: "is this number in any of these groups?"
            models.Index(fields=["phone_number", "group"], name="dncentry_phone_group_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.phone_number} in {self.group}"

    def validate_constraints(self, exclude=None) -> None:
        # Show "already in this group" on the phone field, where the user typed the duplicate.
        try:
            super().validate_constraints(exclude=exclude)
        except ValidationError as error:
            errors = error.update_error_dict({})
            duplicate = errors.pop(NON_FIELD_ERRORS, [])
            if duplicate:
                errors.setdefault("phone_number", []).extend(duplicate)
            raise ValidationError(errors) from None

    def clean(self) -> None:
        region = self.group.business_unit.phone_region if self.group_id else "US"
        try:
            self.phone_number = normalise(self.phone_number or "", region)
        except AddressError as error:
            raise ValidationError({"phone_number": str(error)}) from None
        if self.expires_on and self.collected_at and self.expires_on < self.collected_at.date():
            raise ValidationError({"expires_on": "The expiry date is before the date collected."})
        if self.expires_on and self.retain_until and self.expires_on < self.retain_until:
            raise ValidationError(
                {
                    "expires_on": f"This opt-out must be kept until {self.retain_until:%Y-%m-%d} "
                    f"({self.retention_rule}): the expiry cannot be earlier."
                }
            )

    @property
    def is_expired(self) -> bool:
        return self.expires_on is not None and self.expires_on < timezone.localdate()
