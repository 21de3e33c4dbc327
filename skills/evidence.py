"""The evidence of one number (docs/spec.md section 16): everything pcsms did with it and why,
for a compliance owner answering a dispute.

For the business units the reader may see: every text to the number (its skill, record, body,
status and each transition with its time and reason), every reply from it (how it was read and
what was done), every DNC entry of it (group, source, evidence, who added it, expiry) and every
text a rule held back (the rule in words, its source, from when until when). One page in the
admin, and ``manage.py evidence NUMBER --json|--csv|--pdf`` for the same in a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
from django.conf import settings
from django.db.models import Prefetch

from dnc.models import DncEntry
from messaging.models import InboundMessage, MessageEvent, MessageStatus, OutboundMessage
from messaging.selectors import message_reason
from pcsms.addresses import AddressError, is_email, normalise_email
from skills.models import RuleHold


class NotANumber(ValueError):
    """The text given cannot be read as a phone number or an email address."""


def normalise_number(text: str, region: str = "US") -> str:
    """``(312) 555-0123`` -> ``+13125550123``, ``Ada@Example.com`` -> ``ada@example.com`` (an
    address's evidence is kept as a number's: docs/email.md); NotANumber says why not."""
    if is_email(text):
        try:
            return normalise_email(text)
        except AddressError as exc:
            raise NotANumber(str(exc)) from exc
    try:
        number = phonenumbers.parse((text or "").strip(), region)
    except phonenumbers.NumberParseException as exc:
        raise NotANumber(f"{text!r} is not a phone number ({exc}).") from exc
    if not phonenumbers.is_possible_number(number):
        raise NotANumber(f"{text!r} is not a possible phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class Event:
    """One line of the timeline: what happened to the number, when, and the source of it."""

    at: dt.datetime
    business_unit: str
    kind: str  # text, status, reply, dnc, hold
    what: str
    detail: str = ""
    reference: str = ""

    def as_json(self) -> dict:
        return {
            "at": self.at.astimezone(dt.UTC).isoformat(),
            "business_unit": self.business_unit,
            "kind": self.kind,
            "what": self.what,
            "detail": self.detail,
            "reference": self.reference,
        }


@dataclass
class Evidence:
    number: str
    business_units: list[str]
    generated_at: dt.datetime
    texts: list[dict] = field(default_factory=list)
    replies: list[dict] = field(default_factory=list)
    dnc_entries: list[dict] = field(default_factory=list)
    holds: list[dict] = field(default_factory=list)
    timeline: list[Event] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "number": self.number,
            "business_units": self.business_units,
            "generated_at": self.generated_at.astimezone(dt.UTC).isoformat(),
            "texts": self.texts,
            "replies": self.replies,
            "dnc_entries": self.dnc_entries,
            "holds": self.holds,
            "timeline": [e.as_json() for e in self.timeline],
        }


def _iso(value: dt.datetime | dt.date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value.isoformat()


def number_evidence(number: str, business_units) -> Evidence:
    """The evidence of ``number`` (E.164) in ``business_units`` (a queryset the caller scoped
    to what the reader may see), oldest first."""
    from django.utils import timezone

    units = list(business_units.order_by("name"))
    ids = [bu.id for bu in units]
    evidence = Evidence(number, [bu.name for bu in units], timezone.now())
    timeline = evidence.timeline
    statuses = dict(MessageStatus.choices)

    texts = (
        OutboundMessage.objects.filter(business_unit_id__in=ids, to=number)
        .select_related(
            "business_unit",
            "transport_code",
            "attempt__skill__campaign",
            "attempt__record__calling_list",
        )
        .prefetch_related(Prefetch("events", MessageEvent.objects.order_by("at", "id")))
        .order_by("created_at", "id")
    )
    for message in texts:
        attempt = getattr(message, "attempt", None)
        skill = attempt.skill if attempt else None
        record = attempt.record if attempt else None
        bu = message.business_unit.name
        reason = message_reason(
            message.status, message.withdraw_reason, message.error_code, message.error_text
        )
        events = [
            {
                "at": _iso(e.at),
                "kind": e.get_kind_display(),
                "status": e.status,
                "error_code": e.error_code,
                "detail": e.detail,
            }
            for e in message.events.all()
        ]
        evidence.texts.append(
            {
                "id": message.id,
                "business_unit": bu,
                "queued_at": _iso(message.created_at),
                "sent_at": _iso(message.sent_at),
                "delivered_at": _iso(message.delivered_at),
                "from": message.transport_code.number,
                "skill": skill.name if skill else "",
                "campaign": skill.campaign.name if skill and skill.campaign_id else "",
                "record": record.external_id if record else "",
                "calling_list": record.calling_list.name if record else "",
                "source": message.source,
                "status": statuses.get(message.status, message.status),
                "reason": reason,
                "carrier_sid": message.carrier_sid or "",
                "body": message.body,
                "events": events,
            }
        )
        origin = f"skill {skill.name}, record {record.external_id}" if skill else message.source
        timeline.append(
            Event(
                message.created_at,
                bu,
                "text",
                f"Text queued ({origin})",
                message.body,
                f"message {message.id}",
            )
        )
        for e in message.events.all():
            if e.kind == MessageEvent.Kind.TRANSITION and e.status != MessageStatus.QUEUED:
                label = statuses.get(e.status, e.status)
                detail = " ".join(x for x in (e.error_code, e.detail) if x)
                timeline.append(
                    Event(
                        e.at, bu, "status", f"Text {label.lower()}", detail, f"message {message.id}"
                    )
                )

    replies = InboundMessage.objects.filter(
        business_unit_id__in=ids, from_number=number
    ).select_related("business_unit")
    for reply in replies.order_by("received_at", "id"):
        bu = reply.business_unit.name
        evidence.replies.append(
            {
                "id": reply.id,
                "business_unit": bu,
                "received_at": _iso(reply.received_at),
                "to": reply.to_number,
                "body": reply.body,
                "read_as": reply.get_classification_display(),
                "action_taken": reply.action_taken,
                "carrier_sid": reply.carrier_sid,
            }
        )
        timeline.append(
            Event(
                reply.received_at,
                bu,
                "reply",
                f"Reply read as {reply.get_classification_display().lower()}",
                " - ".join(x for x in (reply.body, reply.action_taken) if x),
                f"inbound {reply.id}",
            )
        )

    entries = DncEntry.objects.filter(
        group__business_unit_id__in=ids, phone_number=number
    ).select_related("group__business_unit", "added_by")
    for entry in entries.order_by("collected_at", "id"):
        bu = entry.group.business_unit.name
        evidence.dnc_entries.append(
            {
                "id": entry.id,
                "business_unit": bu,
                "group": entry.group.name,
                "collected_at": _iso(entry.collected_at),
                "source": entry.get_source_display(),
                "evidence": entry.evidence,
                "added_by": entry.added_by.get_username() if entry.added_by else "",
                "expires_on": _iso(entry.expires_on),
                "retain_until": _iso(entry.retain_until),
                "retention_rule": entry.retention_rule,
            }
        )
        timeline.append(
            Event(
                entry.collected_at,
                bu,
                "dnc",
                f"On DNC group {entry.group.name} ({entry.get_source_display()})",
                entry.evidence
                + (f" - expires after {entry.expires_on:%Y-%m-%d}" if entry.expires_on else "")
                + (
                    f" - kept until {entry.retain_until:%Y-%m-%d}: {entry.retention_rule}"
                    if entry.retain_until
                    else ""
                ),
                f"dnc entry {entry.id}",
            )
        )

    holds = RuleHold.objects.filter(business_unit_id__in=ids, phone_number=number).select_related(
        "business_unit", "skill", "record"
    )
    for hold in holds.order_by("held_at", "id"):
        bu = hold.business_unit.name
        evidence.holds.append(
            {
                "id": hold.id,
                "business_unit": bu,
                "held_at": _iso(hold.held_at),
                "held_until": _iso(hold.held_until),
                "kind": hold.get_kind_display(),
                "rule": hold.rule,
                "source": hold.source,
                "skill": hold.skill.name if hold.skill else "",
                "record": hold.record.external_id if hold.record else "",
                "message": hold.message_id,
            }
        )
        until = f"until {hold.held_until:%Y-%m-%d %H:%M} UTC" if hold.held_until else "no end"
        timeline.append(
            Event(
                hold.held_at,
                bu,
                "hold",
                f"Held back: {hold.rule}",
                "; ".join(x for x in (until, hold.source) if x),
                f"message {hold.message_id}" if hold.message_id else f"hold {hold.id}",
            )
        )
    timeline.sort(key=lambda e: e.at)
    return evidence


# --- Files ------------------------------------------------------------------------------------

CSV_HEADER = ["at (UTC)", "business unit", "kind", "what", "detail", "reference"]


def evidence_csv(evidence: Evidence) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for e in evidence.timeline:
        row = e.as_json()
        writer.writerow(
            [row[k] for k in ("at", "business_unit", "kind", "what", "detail")] + [e.reference]
        )
    return out.getvalue()


def evidence_json(evidence: Evidence) -> str:
    return json.dumps(evidence.as_json(), indent=2, ensure_ascii=False)


def _pdf_font(pdf) -> str:
    """A Unicode font when the machine has one (``EVIDENCE_PDF_FONT``), else the PDF core font,
    which shows only Latin-1: the PDF then says so, and the JSON and CSV keep every character."""
    path = Path(getattr(settings, "EVIDENCE_PDF_FONT", ""))
    if path.is_file():
        pdf.add_font("Evidence", "", str(path))
        return "Evidence"
    return ""


def evidence_pdf(evidence: Evidence) -> bytes:
    from fpdf import FPDF  # needed only for this file
    from fpdf.fonts import FontFace

    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Evidence for {evidence.number}")
    pdf.set_creator("pcsms")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    font = _pdf_font(pdf)

    def text(value: str) -> str:
        if font:
            return value
        return value.encode("latin-1", "replace").decode("latin-1")

    pdf.set_font(font or "Helvetica", size=15)
    pdf.cell(0, 9, text(f"Evidence for {evidence.number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font or "Helvetica", size=9)
    generated = evidence.generated_at.astimezone(dt.UTC)
    lines = [
        f"Business units: {', '.join(evidence.business_units) or '-'}",
        f"Generated {generated:%Y-%m-%d %H:%M:%S} UTC by pcsms; times are UTC.",
        f"{len(evidence.texts)} texts, {len(evidence.replies)} replies, "
        f"{len(evidence.dnc_entries)} DNC entries, {len(evidence.holds)} texts held back.",
    ]
    if not font:
        lines.append("Characters outside Latin-1 are shown as '?': the JSON and CSV keep them.")
    for line in lines:
        pdf.cell(0, 5, text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    widths = (36, 28, 14, 80, 94, 25)
    headings = FontFace(emphasis="")  # one font face: the Unicode font has no bold of its own
    with pdf.table(
        col_widths=widths, text_align="LEFT", line_height=4.5, headings_style=headings
    ) as table:
        table.row([text(h) for h in CSV_HEADER])
        for e in evidence.timeline:
            row = e.as_json()
            table.row(
                [
                    f"{e.at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}",
                    text(row["business_unit"]),
                    row["kind"],
                    text(row["what"]),
                    text(row["detail"][:600]),
                    text(e.reference),
                ]
            )
    return bytes(pdf.output())
