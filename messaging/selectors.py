"""Reads for messaging (HackSoft style: writes live in the services modules).

Calling lists, records and skills belong to ``skills``, which depends on ``messaging`` and never
the other way round. The reads below reach them only through the reverse relations ``skills``
declares on messaging's and pcsms's models (``business_unit.calling_lists``,
``calling_list.records``, ``template.skills``), never by importing the app.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from messaging import templating
from messaging.models import (
    MessageStatus,
    MessageTemplate,
    OutboundMessage,
    SmsRegistration,
    WithdrawReason,
    template_fields_for,
)
from pcsms.models import BusinessUnit, visible_to

# --- Templates ------------------------------------------------------------------------------


def active_templates(business_unit: BusinessUnit) -> QuerySet[MessageTemplate]:
    """The templates of ``business_unit`` a running skill may use."""
    return MessageTemplate.objects.filter(business_unit=business_unit, is_active=True)


def template_running_skill_names(template: MessageTemplate) -> list[str]:
    """Names of the running skills that send ``template``, alphabetically."""
    return list(
        template.skills.filter(state="running").order_by("name").values_list("name", flat=True)
    )


# --- Merge fields and preview values ----------------------------------------------------------

# System field -> attribute of a calling-list record, for the fields a record holds itself (not
# the phone fields: its numbers are its destinations).
RECORD_SYSTEM_ATTRIBUTES: dict[str, str] = {
    name: attribute for name, attribute in templating.RECORD_SYSTEM_FIELDS.items() if attribute
}

# What "Sample values" merges before the user types their own.
SAMPLE_SYSTEM_VALUES: dict[str, object] = {
    "ExternalId": "EXT-000123",
    "FirstName": "Ada",
    "LastName": "Lovelace",
    "Address": "12 Main St",
    "City": "Chicago",
    "State": "IL",
    "Zip": "60601",
    "TimeZone": "America/Chicago",
    "Priority": False,
    "Score": 42,
    "Customer1": "MRN-204518",
    "Customer2": "Cardiology",
    "ExpirationDate": None,  # today + 30 days, filled in when asked
    "PhoneNumber": "+13125550142",
    "SMSPhoneNumber": "+13125550143",
}
SAMPLE_BY_TYPE: dict[str, object] = {
    "string": "Sample text",
    "integer": 7,
    "decimal": "12.50",
    "date": None,  # today + 7 days
    "boolean": True,
    "phone": "+13125550144",
}


@dataclass(frozen=True, slots=True)
class TemplateVariable:
    """One entry of the page's variables list."""

    name: str
    kind: str  # "system" or "custom"
    field_type: str = "string"
    lists: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "type": self.field_type,
            "lists": list(self.lists),
        }


def template_variables(business_unit: BusinessUnit | None) -> list[TemplateVariable]:
    """The fields a template of ``business_unit`` may use: system fields, then custom ones.

    The names are exactly those validation accepts (:func:`template_fields_for`), unique
    ignoring case; custom fields also say their type and which calling lists have them.
    """
    names = template_fields_for(business_unit) if business_unit else list(templating.SYSTEM_FIELDS)
    details: dict[str, tuple[str, list[str]]] = {}
    if business_unit is not None:
        rows = (
            business_unit.calling_lists.filter(custom_fields__isnull=False)
            .order_by("name")
            .values_list("custom_fields__name", "custom_fields__field_type", "name")
        )
        for field_name, field_type, list_name in rows:
            entry = details.setdefault(field_name.lower(), (field_type, []))
            entry[1].append(list_name)

    system = {name.lower() for name in templating.SYSTEM_FIELDS}
    seen: set[str] = set()
    variables: list[TemplateVariable] = []
    for name in names:
        key = name.lower()
        if key in seen:
            continue
        seen.add(key)
        if key in system:
            variables.append(TemplateVariable(name, "system"))
        else:
            field_type, lists = details.get(key, ("string", []))
            variables.append(TemplateVariable(name, "custom", field_type, tuple(lists)))
    custom = sorted((v for v in variables if v.kind == "custom"), key=lambda v: v.name.lower())
    return [v for v in variables if v.kind == "system"] + custom


def template_business_units(user) -> QuerySet[BusinessUnit]:
    """The business units whose templates ``user`` may preview."""
    return visible_to(BusinessUnit.objects.all(), user)


def template_calling_lists(business_unit: BusinessUnit, user) -> QuerySet:
    """Calling lists of ``business_unit`` the user may preview with (deleted ones left out)."""
    lists = business_unit.calling_lists.exclude(status="deleted").order_by("name")
    return visible_to(lists, user)


def template_preview_records(calling_list, search: str = "", limit: int = 25) -> list:
    """Up to ``limit`` records of ``calling_list`` matching ``search``, in list order.

    The search matches the external ID or the last name anywhere, ignoring case; an exact
    external ID comes first, so typing a full ID always finds it even in a huge list.
    """
    records = calling_list.records.order_by("id")
    search = search.strip()
    if not search:
        return list(records[:limit])
    exact = list(records.filter(external_id=search)[:1])
    matches = records.filter(Q(external_id__icontains=search) | Q(last_name__icontains=search))
    if exact:
        matches = matches.exclude(pk=exact[0].pk)
    return exact + list(matches[: limit - len(exact)])


def template_record_values(record) -> dict[str, object]:
    """The merge values of a calling-list record, keyed by field name.

    System fields come from the record's columns, ``PhoneNumber`` / ``SMSPhoneNumber`` (and
    custom phone fields) from its first destination loaded from that column, the rest from
    ``Record.custom``. Values keep their types; the template engine turns them into text.
    """
    values: dict[str, object] = {
        field: getattr(record, attribute) for field, attribute in RECORD_SYSTEM_ATTRIBUTES.items()
    }
    # destinations are ordered by position: the first number of each column wins.
    for destination in record.destinations.all():
        values.setdefault(destination.source_field, destination.phone_number)
    for name, value in (record.custom or {}).items():
        values.setdefault(name, value)
    return values


def template_sample_values(
    variables: list[TemplateVariable], today: dt.date | None = None
) -> dict[str, object]:
    """Plausible values for every variable, for a preview without a real record."""
    today = today or timezone.localdate()
    values: dict[str, object] = {}
    for variable in variables:
        if variable.kind == "system":
            value = SAMPLE_SYSTEM_VALUES.get(variable.name, "")
            if variable.name == "ExpirationDate":
                value = today + dt.timedelta(days=30)
        else:
            value = SAMPLE_BY_TYPE.get(variable.field_type, "Sample text")
            if variable.field_type == "date":
                value = today + dt.timedelta(days=7)
        values[variable.name] = value
    return values


def merged_variable_texts(
    compiled: templating.CompiledTemplate, values: Mapping[str, object]
) -> list[tuple[str, str]]:
    """(variable, the text its value merges as, before any fallback) for each variable used.

    Each is rendered through the same engine as the message, so dates and numbers read here
    exactly as they will in the text.
    """
    return [
        (name, templating.parse("{" + name + "}").render(values)) for name in compiled.variables
    ]


# --- Message export -----------------------------------------------------------------------------

MESSAGE_EXPORT_HEADER = [
    "message id",
    "created",
    "business unit",
    "skill",
    "campaign",
    "record external id",
    "number field",
    "from",
    "to",
    "status",
    "reason",
    "error code",
    "carrier status",
    "carrier message id",
    "segments",
    "encoding",
    "send attempts",
    "sent",
    "delivered",
    "finished",
    "subject",  # email only
    "body",
]
_EXPORT_COLUMNS = (
    "pk",
    "created_at",
    "business_unit__name",
    # The skill's side through the reverse relation skills declares (see the module's note).
    "attempt__skill__name",
    "attempt__skill__campaign__name",
    "attempt__record__external_id",
    "attempt__destination__source_field",
    "transport_code__number",
    "to",
    "status",
    "withdraw_reason",
    "error_code",
    "error_text",
    "carrier_status",
    "carrier_sid",
    "segments",
    "encoding",
    "send_attempts",
    "sent_at",
    "delivered_at",
    "finished_at",
    "subject",
    "body",
)


def message_reason(status: str, withdraw_reason: str, error_code: str, error_text: str) -> str:
    """Why a message ended as it did, in plain words ("" for a delivered or pending one)."""
    if status == MessageStatus.WITHDRAWN:
        label = WithdrawReason(withdraw_reason).label if withdraw_reason else ""
        return f"Withdrawn before sending: {label}" if label else "Withdrawn before sending"
    if error_code == "bounced":  # an email (messaging/backends/email.py): words, not a code
        return f"Bounced: {error_text}" if error_text else "Bounced"
    if error_code or error_text:
        return f"Error {error_code}: {error_text}" if error_code else error_text
    if status == MessageStatus.UNKNOWN:
        return "The carrier's answer was lost; the outcome is being reconciled"
    return ""


def _when(value: dt.datetime | None) -> str:
    return timezone.localtime(value).isoformat(sep=" ", timespec="seconds") if value else ""


def message_export_rows(messages: QuerySet[OutboundMessage]) -> Iterator[list[object]]:
    """The CSV rows of a message export, a header first, oldest message first.

    Streamed from the database in chunks: an export may hold a skill's whole run.
    """
    yield MESSAGE_EXPORT_HEADER
    status_labels = dict(MessageStatus.choices)
    rows = messages.order_by("created_at", "pk").values_list(*_EXPORT_COLUMNS)
    for (pk, created, bu, skill, campaign, external_id, field, sender, to, status, withdrawn,
         code, text, carrier_status, sid, segments, encoding, attempts, sent, delivered,
         finished, subject, body) in rows.iterator(chunk_size=2000):  # fmt: skip
        yield [
            pk,
            _when(created),
            bu,
            skill or "",
            campaign or "",
            external_id or "",
            field or "",
            sender,
            to,
            status_labels.get(status, status),
            message_reason(status, withdrawn, code, text),
            code,
            carrier_status,
            sid or "",
            segments,
            encoding,
            attempts,
            _when(sent),
            _when(delivered),
            _when(finished),
            subject,
            body,
        ]


# --- Opt-out scope --------------------------------------------------------------------------


def registrations_bound_by(*, business_unit: BusinessUnit, stop_group) -> QuerySet[SmsRegistration]:
    """The registrations a recipient's opt-out stops texting when it comes in on a registration
    with STOP group ``stop_group`` (None: none of its own): every registration of the BU when
    it revokes all, else those whose STOP replies land in the same group (docs/spec.md
    section 12), as :func:`dnc.selectors.opt_out_scope_groups` reads it."""
    registrations = SmsRegistration.objects.filter(business_unit=business_unit)
    if business_unit.revokes_all(timezone.localdate()):
        return registrations
    own = (
        stop_group is not None
        and stop_group.is_active
        and stop_group.business_unit_id == business_unit.id
    )
    if own and not stop_group.is_default:
        return registrations.filter(stop_dnc_group=stop_group)
    return registrations.filter(
        Q(stop_dnc_group__isnull=True)
        | Q(stop_dnc_group__is_active=False)
        | Q(stop_dnc_group__is_default=True)
    )


def day_start(now: dt.datetime) -> dt.datetime:
    """The start of ``now``'s calendar day in UTC: the day a sender's daily limit counts."""
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def sent_today(code_id: int, now: dt.datetime) -> int:
    """Messages of the code handed over since the UTC day began, and those in flight now: what
    its ``messages_per_day`` counts (outbound_code_sent_idx answers it)."""
    since = day_start(now)
    return OutboundMessage.objects.filter(
        Q(sent_at__gte=since) | Q(status=MessageStatus.SENDING), transport_code_id=code_id
    ).count()
