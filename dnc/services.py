"""Writes for DNC: opt-outs, opt-ins, entries, and the groups' active flag.

Other apps take part in an opt-out through :data:`OPT_OUT_LISTENERS` instead of being imported
here (``dnc`` sits below ``messaging`` and ``skills``): ``skills`` adds the number to the
contributing groups of the skill that texted it last and finalizes that record. ``messaging``
calls :func:`dnc_opt_out` only through ``messaging.services.phone_opt_out``, which withdraws the
number's queued texts first, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import phonenumbers
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dnc.models import DncEntry, DncGroup
from dnc.selectors import opted_out_numbers
from pcsms.models import BusinessUnit

logger = logging.getLogger(__name__)

DEFAULT_GROUP_NAME = "Default DNC"


@dataclass
class OptOut:
    """One opt-out being written, handed to every listener.

    Listeners may add the entries they write to ``entries`` (they become the evidence links of
    the inbound message) and a few words to ``notes`` (shown as "what was done").
    """

    business_unit: BusinessUnit
    phone_number: str  # E.164
    source: str  # a DncEntry.Source
    evidence: str
    group: DncGroup  # where the opt-out's own entry goes
    message_id: int | None = None  # the outbound text that caused it, when known (carrier error)
    added_by: object | None = None
    already_opted_out: bool = False  # the number had opted out of this scope before
    # Whether it binds every registration of the BU (revoke all) or only those whose STOP
    # replies land in ``group`` (the BU's opt-out scope, docs/spec.md section 12).
    binds_all: bool = True
    entries: list[DncEntry] = field(default_factory=list)  # created or renewed by this opt-out
    notes: list[str] = field(default_factory=list)
    entry: DncEntry | None = None  # the number's entry in ``group``, new or already there


# Each is called with the OptOut inside its transaction, *before* the opt-out's own entry is
# written (the number's queued texts are already withdrawn: see messaging.services.phone_opt_out).
OPT_OUT_LISTENERS: list[Callable[[OptOut], None]] = []

# Each is called with (business_unit_id=, phone_number=, collected_on=) for an opt-out the
# recipient made (a reply, the carrier's "unsubscribed") and returns (keep until, rule in words)
# or None: the longest wins (``skills`` answers from the state rules, e.g. Virginia's 10 years).
RETENTION_RULES: list[Callable[..., tuple[dt.date, str] | None]] = []
# The opt-outs a state's retention applies to: the recipient's own.
RETAINED_SOURCES = (
    DncEntry.Source.STOP_REPLY,
    DncEntry.Source.PROBABLE_OPT_OUT,
    DncEntry.Source.CARRIER,
)


def retention_for(
    *, business_unit_id: int, phone_number: str, collected_on: dt.date
) -> tuple[dt.date, str] | None:
    """How long an opt-out of this number must be kept, and by which rule (None: no rule)."""
    answers = [
        answer
        for rule in RETENTION_RULES
        if (
            answer := rule(
                business_unit_id=business_unit_id,
                phone_number=phone_number,
                collected_on=collected_on,
            )
        )
    ]
    return max(answers, key=lambda a: a[0]) if answers else None


def normalise_phone(value: str, *, region: str = "US") -> str | None:
    """``value`` as E.164, or ``None`` if it cannot be a phone number (a short code, a name)."""
    try:
        parsed = phonenumbers.parse(str(value or "").strip(), region or "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def dnc_default_group(*, business_unit: BusinessUnit) -> DncGroup:
    """The BU's default group; created as "Default DNC" when the BU has none.

    An opt-out must land somewhere even in a BU nobody has configured yet: losing it would be
    worse than a group the compliance owner did not create. The creation is logged.
    """
    group = DncGroup.objects.filter(business_unit=business_unit, is_default=True).first()
    if group is not None:
        return group
    try:
        with transaction.atomic():
            group, created = DncGroup.objects.get_or_create(
                business_unit=business_unit,
                name=DEFAULT_GROUP_NAME,
                defaults={
                    "is_default": True,
                    "description": "Created automatically for opt-outs: the business unit had "
                    "no default DNC group.",
                },
            )
            if not created:
                # A group with that name exists but is not the default: it becomes the default.
                group.is_default, group.is_active = True, True
                group.save(update_fields=["is_default", "is_active", "updated_at"])
    except IntegrityError:  # another request made the default at the same moment
        return DncGroup.objects.get(business_unit=business_unit, is_default=True)
    logger.warning("Business unit %s had no default DNC group: using %r", business_unit, group.name)
    return group


def dnc_stop_group(*, business_unit: BusinessUnit, group: DncGroup | None = None) -> DncGroup:
    """Where a STOP goes: ``group`` (the registration's) if active, else the BU default.

    An inactive group blocks nothing, so an opt-out written there would not stop any text.
    """
    if group is not None and group.is_active and group.business_unit_id == business_unit.id:
        return group
    return dnc_default_group(business_unit=business_unit)


def dnc_entry_add(
    *,
    group: DncGroup,
    phone_number: str,
    source: str,
    evidence: str = "",
    added_by=None,
    expires_on: dt.date | None = None,
) -> tuple[DncEntry, bool]:
    """Put a number in a group. Returns the entry and whether this call made it block.

    An entry already there and blocking is left alone (a manual or imported entry keeps its
    source, so a later opt-in cannot remove it). An expired one blocks again, now for this
    reason.
    """
    retain_until, rule = None, ""
    if source in RETAINED_SOURCES:
        kept = retention_for(
            business_unit_id=group.business_unit_id,
            phone_number=str(phone_number),
            collected_on=timezone.localdate(),
        )
        if kept is not None:
            retain_until, rule = kept
            if expires_on is not None:
                expires_on = max(expires_on, retain_until)
    entry, created = DncEntry.objects.get_or_create(
        group=group,
        phone_number=phone_number,
        defaults={
            "source": source,
            "evidence": evidence,
            "added_by": added_by,
            "expires_on": expires_on,
            "retain_until": retain_until,
            "retention_rule": rule,
        },
    )
    if created:
        return entry, True
    if entry.is_expired:
        entry.source, entry.evidence, entry.added_by = source, evidence, added_by
        entry.expires_on = expires_on
        entry.retain_until, entry.retention_rule = retain_until, rule
        entry.save(
            update_fields=[
                "source",
                "evidence",
                "added_by",
                "expires_on",
                "retain_until",
                "retention_rule",
            ]
        )
        return entry, True
    if retain_until is not None and (entry.retain_until or dt.date.min) < retain_until:
        # Blocking already (a manual entry, say): the recipient's own STOP is kept as long as
        # the law says, whatever expiry the entry had.
        entry.retain_until, entry.retention_rule = retain_until, rule
        if entry.expires_on is not None and entry.expires_on < retain_until:
            entry.expires_on = retain_until
        entry.save(update_fields=["retain_until", "retention_rule", "expires_on"])
    return entry, False


def dnc_opt_out(
    *,
    business_unit: BusinessUnit,
    phone_number: str,
    source: str = DncEntry.Source.STOP_REPLY,
    evidence: str = "",
    group: DncGroup | None = None,
    message_id: int | None = None,
    added_by=None,
    notes: Iterable[str] = (),
) -> OptOut:
    """Record that a number must not be texted by this BU any more, and act on it at once.

    In one transaction: the listeners run (queued texts withdrawn, skills' contributing groups,
    record finalized), then the number goes into ``group`` (the registration's STOP group) or
    the BU's default group, with ``evidence`` (the inbound text or the carrier error).
    ``notes``: what the caller already did for this opt-out (messaging: texts withdrawn), shown
    before the listeners' notes.
    """
    with transaction.atomic():
        had_default = DncGroup.objects.filter(business_unit=business_unit, is_default=True).exists()
        opt_out = OptOut(
            business_unit=business_unit,
            phone_number=phone_number,
            source=source,
            evidence=evidence,
            group=dnc_stop_group(business_unit=business_unit, group=group),
            message_id=message_id,
            added_by=added_by,
            binds_all=business_unit.revokes_all(timezone.localdate()),
        )
        if not had_default and opt_out.group.is_default:
            opt_out.notes.append("the business unit had no default DNC group: created it")
        opt_out.notes.extend(notes)
        opt_out.already_opted_out = bool(
            opted_out_numbers(
                business_unit_id=business_unit.id,
                numbers=[phone_number],
                stop_group_id=opt_out.group.id,
            )
        )
        if not opt_out.binds_all:
            opt_out.notes.append(
                f"binds the registrations whose STOP replies land in '{opt_out.group.name}'"
            )
        for listener in OPT_OUT_LISTENERS:
            listener(opt_out)
        entry, changed = dnc_entry_add(
            group=opt_out.group,
            phone_number=phone_number,
            source=source,
            evidence=evidence,
            added_by=added_by,
        )
        opt_out.entry = entry
        if changed:
            opt_out.entries.insert(0, entry)
            opt_out.notes.insert(0, f"added to DNC group '{opt_out.group.name}'")
        else:
            opt_out.notes.insert(0, f"already in DNC group '{opt_out.group.name}'")
    return opt_out


@dataclass
class OptIn:
    removed: int
    still_blocked_in: list[str]  # groups whose other entries (manual, import...) still block
    carrier_kept: int = 0  # carrier "unsubscribed" entries kept: the carrier did not confirm


def dnc_opt_in(
    *, business_unit: BusinessUnit, phone_number: str, carrier_confirmed: bool = False
) -> OptIn:
    """The recipient asked to receive texts again: remove the entries *they* caused.

    Only STOP-reply and free-text opt-out entries go (``DncEntry.RECIPIENT_SOURCES``), in every
    group of the BU; manual and imported entries stay. A carrier's "unsubscribed" entry (21610:
    the carrier itself blocks the number) goes only when the carrier confirms the opt-in
    (``carrier_confirmed``: Twilio's OptOutType START); until then a text would fail anyway.
    """
    entries = DncEntry.objects.filter(group__business_unit=business_unit, phone_number=phone_number)
    sources = list(DncEntry.RECIPIENT_SOURCES)
    if carrier_confirmed:
        sources.append(DncEntry.Source.CARRIER)
    carrier_kept = (
        0 if carrier_confirmed else entries.filter(source=DncEntry.Source.CARRIER).count()
    )
    # delete() also counts the evidence links it removes; only the entries matter here.
    _, per_model = entries.filter(source__in=sources).delete()
    today = timezone.localdate()
    still = sorted(
        set(
            entries.filter(group__is_active=True)
            .filter(Q(expires_on__isnull=True) | Q(expires_on__gte=today))
            .values_list("group__name", flat=True)
        )
    )
    return OptIn(
        removed=per_model.get(DncEntry._meta.label, 0),
        still_blocked_in=still,
        carrier_kept=carrier_kept,
    )


def dnc_entries_remove(*, entry_ids: Iterable[int], sources: Iterable[str] | None = None) -> int:
    """Delete entries by id (only of ``sources`` if given). Returns how many went."""
    entries = DncEntry.objects.filter(id__in=list(entry_ids))
    if sources is not None:
        entries = entries.filter(source__in=list(sources))
    ids = list(entries.values_list("id", flat=True))
    DncEntry.objects.filter(id__in=ids).delete()
    return len(ids)


# --- groups --------------------------------------------------------------------------------


def dnc_group_set_active(*, group: DncGroup, is_active: bool) -> DncGroup:
    """Activate or deactivate a group; deactivation is refused while a skill uses it."""
    with transaction.atomic():
        group = DncGroup.objects.select_for_update().get(pk=group.pk)
        if not is_active:
            if group.is_default:
                raise ValidationError(
                    {"is_active": "The default DNC group must stay active."}, code="default"
                )
            group.check_can_deactivate()
        group.is_active = is_active
        group.save(update_fields=["is_active", "updated_at"])
    return group
