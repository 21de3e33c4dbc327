"""Writes for messaging: carrier status updates and inbound texts.

Every carrier answer goes through here, whether it comes from a real carrier's callback, the
simulator or the sender itself, so that all of them obey the same rules: callbacks may arrive late,
twice or out of order, and a final status is never turned back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from dnc.keywords import Kind, Verdict, classify_for_business_unit, keyword_set_of
from dnc.models import DncEntry
from dnc.services import (
    OptOut,
    dnc_entries_remove,
    dnc_opt_in,
    dnc_opt_out,
    normalise_phone,
)
from messaging.backends import get_backend
from messaging.hooks import INBOUND_HANDLERS, STATUS_LISTENERS, register
from messaging.models import (
    InboundMessage,
    MessageEvent,
    MessageStatus,
    OutboundMessage,
    TransportCode,
    WithdrawReason,
)
from messaging.outbox import notify, withdraw
from messaging.selectors import registrations_bound_by
from pcsms.db import execute_prepared
from pcsms.models import ProbableOptOutPolicy

logger = logging.getLogger(__name__)

# How far along the lifecycle each carrier status is; an update may only move forward.
# undelivered/failed after delivered would be a carrier contradiction: delivered wins.
_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.UNKNOWN: 1,
    MessageStatus.SENT: 2,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.DELIVERED: 4,
    MessageStatus.WITHDRAWN: 5,
}
# Twilio's status words -> ours. "queued"/"accepted"/"sending" at the carrier all mean it holds
# the message, which for us is "sent" (handed over).
CARRIER_STATUS_MAP = {
    "accepted": MessageStatus.SENT,
    "scheduled": MessageStatus.SENT,
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}


def message_record_status(
    *,
    carrier_sid: str,
    carrier_status: str,
    error_code: str = "",
    error_text: str = "",
    message_id: int | None = None,
    at: dt.datetime | None = None,
    kind: str = MessageEvent.Kind.CALLBACK,
) -> OutboundMessage | None:
    """Apply a carrier status report to the message with that carrier id.

    Every report is kept as an event, even one that changes nothing (a duplicate or a late
    ``sent`` after ``delivered``). An unknown carrier id is logged and ignored: the caller answers
    the carrier with success so it stops retrying. Returns the message, or ``None`` if unknown.

    ``message_id`` (our id, carried in the status callback URL) finds a message whose carrier id
    is not recorded yet: a fast carrier can call back before the sender has stored its answer.
    ``kind`` says where the report came from (a callback, or the carrier asked by
    :func:`message_receipts_check`), for the text's history.
    """
    at = at or timezone.now()
    new_status = CARRIER_STATUS_MAP.get((carrier_status or "").lower())
    error_code, error_text = (error_code or "")[:10], (error_text or "")[:500]
    carrier_status = (carrier_status or "")[:20]
    with transaction.atomic() if error_code else contextlib.nullcontext():
        record = _record_status_pg if connection.vendor == "postgresql" else _record_status
        found = record(
            carrier_sid, carrier_status, new_status, error_code, error_text, message_id, at, kind
        )
        if found is None:
            logger.warning(
                "Status %r for unknown carrier id %s ignored", carrier_status, carrier_sid
            )
            return None
        message, changed = found
        if changed:
            for listener in STATUS_LISTENERS:
                listener(message=message, status=new_status, error_code=message.error_code)
    return message


def _record_status_pg(
    carrier_sid, carrier_status, new_status, error_code, error_text, message_id, at, kind
) -> tuple[OutboundMessage, bool] | None:
    """PostgreSQL: lock, update, event in one prepared statement (one round trip, its own
    transaction unless the caller holds one): the status URL's whole database work."""
    sql = _status_sql()
    rows = execute_prepared(
        sql.one_statement,
        {
            "sid": carrier_sid,
            "id": message_id,
            "status": new_status.value if new_status is not None else None,
            "rank": _RANK[new_status] if new_status is not None else -1,
            "carrier_status": carrier_status,
            "code": error_code,
            "text": error_text,
            "at": at,
            "now": timezone.now(),
            "kind": str(kind),
        },
    )
    if not rows:
        return None
    *values, changed = rows[0]
    return OutboundMessage.from_db(connection.alias, sql.fields, values), changed


def _record_status(
    carrier_sid, carrier_status, new_status, error_code, error_text, message_id, at, kind
) -> tuple[OutboundMessage, bool] | None:
    """Other databases (SQLite): lock, event and update as three statements in a transaction."""
    sql = _status_sql()
    adapt = connection.ops.adapt_datetimefield_value
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.by_sid, [carrier_sid])
        row = cursor.fetchone()
        if row is None and message_id is not None:
            cursor.execute(sql.by_id, [message_id, carrier_sid])
            row = cursor.fetchone()
        if row is None:
            return None
        *values, never_sent = row
        # The other fields load on first use (listeners read few of them).
        message = OutboundMessage.from_db(connection.alias, sql.fields, values)
        changed = new_status is not None and _RANK[new_status] > _RANK[message.status]
        now = timezone.now()
        cursor.execute(
            sql.event,
            [
                message.id,
                str(kind),
                carrier_status,
                error_code,
                error_text or ("applied" if changed else "no change"),
                adapt(now),
            ],
        )
        if not changed:
            return message, False
        updates = {
            "carrier_sid": carrier_sid,
            "status": new_status.value,
            "carrier_status": carrier_status,
            "updated_at": now,
        }
        if error_code:
            updates["error_code"] = error_code
            updates["error_text"] = error_text
        if new_status == MessageStatus.SENT and never_sent:
            updates["sent_at"] = at
        if new_status == MessageStatus.DELIVERED:
            updates["delivered_at"] = at
        if new_status in _FINISHED:
            updates["finished_at"] = at
        cursor.execute(
            sql.update.format(", ".join(f"{sql.columns[name]} = %s" for name in updates)),
            [adapt(v) if isinstance(v, dt.datetime) else v for v in updates.values()]
            + [message.id],
        )
        for name, value in updates.items():
            setattr(message, name, value)
    return message, True


_FINISHED = (MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED)

RECEIPT_CHECK_BATCH = 1000  # texts asked about per run (a run each minute)


def message_receipts_check(*, now: dt.datetime | None = None) -> Counter:
    """Ask the carrier for the status of sent texts whose receipt has not come, and apply what
    it says as if its callback had come.

    A status callback can be lost: our web tier down or restarting, the database restarting
    under it, a network cut, the carrier giving up its retries. The text then stays ``sent``
    and, once the skill's receipt wait has passed, its record is open to the cadence again: the
    person would get a second text although the first arrived. So a text still ``sent`` after
    ``RECEIPT_CHECK_AFTER`` seconds is looked up (and again each as many seconds, until
    ``RECEIPT_CHECK_FOR`` seconds after it was sent), oldest first, at most
    ``RECEIPT_CHECK_BATCH`` a run. Backends that cannot ask (the simulator) are skipped.
    Returns counts: asked, answered, cannot_ask.
    """
    now = now or timezone.now()
    every = dt.timedelta(seconds=settings.RECEIPT_CHECK_AFTER)
    due = list(
        OutboundMessage.objects.filter(
            status=MessageStatus.SENT,
            carrier_sid__isnull=False,
            sent_at__lt=now - every,
            sent_at__gte=now - dt.timedelta(seconds=settings.RECEIPT_CHECK_FOR),
        )
        .filter(Q(receipt_checked_at__isnull=True) | Q(receipt_checked_at__lt=now - every))
        # Nobody can be asked of an email: its receipts come by the ESP's webhook alone.
        .exclude(transport_code__kind=TransportCode.Kind.EMAIL)
        .order_by("sent_at")
        .values_list("id", "carrier_sid", "registration__backend", "registration__carrier_account")[
            :RECEIPT_CHECK_BATCH
        ]
    )
    counts: Counter = Counter()
    if not due:
        return counts
    # Stamped first: two workers running the check at once ask about different texts.
    OutboundMessage.objects.filter(id__in=[row[0] for row in due]).update(receipt_checked_at=now)
    by_backend: dict[str, dict[str, str]] = defaultdict(dict)
    for _id, sid, path, account in due:
        by_backend[path or settings.SMS_BACKEND][sid] = account or "default"
    for path, sids in by_backend.items():
        with get_backend(path) as backend:
            reports = backend.fetch_statuses(sids)
        if reports is None:
            counts["cannot_ask"] += len(sids)
            continue
        counts["asked"] += len(sids)
        for report in reports.values():
            message_record_status(
                carrier_sid=report.carrier_sid,
                carrier_status=report.carrier_status,
                error_code=report.error_code,
                error_text=report.error_text,
                at=report.updated_at or now,
                kind=MessageEvent.Kind.STATUS_CHECK,
            )
            counts["answered"] += 1
    if counts["answered"]:
        logger.info(
            "Receipt check: %s texts asked about, %s answered", counts["asked"], counts["answered"]
        )
    return counts


@dataclass(frozen=True)
class _StatusSql:
    by_sid: str
    by_id: str
    event: str
    update: str
    one_statement: str
    fields: list[str]
    columns: dict[str, str]


_STATUS_SQL: dict[str, _StatusSql] = {}
# Read under the lock: what the rank check and the listeners need (others load on first use).
_STATUS_FIELDS = (
    "id",
    "business_unit_id",
    "registration_id",
    "to",
    "status",
    "carrier_sid",
    "error_code",
    "source",  # the skills' listener reads it to skip texts no skill planned
)


def _status_sql() -> _StatusSql:
    """The statements of ``message_record_status``, written once per database vendor.

    The status URL is the hottest path of the system (a callback or two per text): building these
    statements through the ORM cost more CPU than everything else in the request together
    (bench/callbacks.py), so they are plain SQL, with names taken from the models.
    """
    sql = _STATUS_SQL.get(connection.vendor)
    if sql is not None:
        return sql
    quote = connection.ops.quote_name
    opts = OutboundMessage._meta
    table = quote(opts.db_table)
    fields = [f for f in opts.concrete_fields if f.attname in _STATUS_FIELDS]
    column = {f.name: quote(f.column) for f in opts.concrete_fields}
    # Names from the models, values always as parameters: nothing here comes from a request.
    select = (
        f"SELECT {', '.join(quote(f.column) for f in fields)}, {column['sent_at']} IS NULL "  # noqa: S608
        f"FROM {table} WHERE "
    )
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    events = MessageEvent._meta
    event_columns = [
        quote(events.get_field(name).column)
        for name in ("message", "kind", "status", "error_code", "detail", "at")
    ]
    event_insert = f"INSERT INTO {quote(events.db_table)} ({', '.join(event_columns)}) "
    rank = " ".join(f"WHEN '{status.value}' THEN {rank}" for status, rank in _RANK.items())
    finished = ", ".join(f"'{s.value}'" for s in _FINISHED)
    col = column
    # PostgreSQL: the row found by carrier id, else by our id while it has no carrier id yet,
    # locked; updated only if the status moves forward; the event kept either way. The lock
    # waits for a concurrent report of the same text and then reads its result.
    one_statement = f"""
        WITH target AS (
            SELECT {", ".join(quote(f.column) for f in fields)}
            FROM {table}
            WHERE {col["id"]} = COALESCE(
                (SELECT {col["id"]} FROM {table} WHERE {col["carrier_sid"]} = %(sid)s::text),
                %(id)s::bigint)
              AND ({col["carrier_sid"]} = %(sid)s::text OR {col["carrier_sid"]} IS NULL)
            FOR UPDATE
        ), changed AS (
            UPDATE {table} AS m SET
                {col["carrier_sid"]} = %(sid)s::text,
                {col["status"]} = %(status)s::text,
                {col["carrier_status"]} = %(carrier_status)s::text,
                {col["updated_at"]} = %(now)s,
                {col["error_code"]} = CASE WHEN %(code)s::text <> '' THEN %(code)s::text
                    ELSE m.{col["error_code"]} END,
                {col["error_text"]} = CASE WHEN %(code)s::text <> '' THEN %(text)s::text
                    ELSE m.{col["error_text"]} END,
                {col["sent_at"]} = CASE WHEN %(status)s::text = '{MessageStatus.SENT.value}'
                    THEN COALESCE(m.{col["sent_at"]}, %(at)s) ELSE m.{col["sent_at"]} END,
                {col["delivered_at"]} = CASE
                    WHEN %(status)s::text = '{MessageStatus.DELIVERED.value}' THEN %(at)s
                    ELSE m.{col["delivered_at"]} END,
                {col["finished_at"]} = CASE WHEN %(status)s::text IN ({finished}) THEN %(at)s
                    ELSE m.{col["finished_at"]} END
            FROM target
            WHERE m.{col["id"]} = target.{col["id"]}
              AND (CASE target.{col["status"]} {rank} END) < %(rank)s::int
            RETURNING m.{col["id"]}, m.{col["status"]}, m.{col["carrier_sid"]},
                m.{col["error_code"]}
        ), event AS (
            {event_insert}
            SELECT target.{col["id"]}, %(kind)s::text, %(carrier_status)s::text, %(code)s::text,
                CASE WHEN %(text)s::text <> '' THEN %(text)s::text
                     WHEN EXISTS (SELECT 1 FROM changed) THEN 'applied'
                     ELSE 'no change' END,
                %(now)s
            FROM target
        )
        SELECT {
        ", ".join(
            f"COALESCE(changed.{quote(f.column)}, target.{quote(f.column)})"
            if f.attname in ("status", "carrier_sid", "error_code")
            else f"target.{quote(f.column)}"
            for f in fields
        )
    }, changed.{col["id"]} IS NOT NULL
        FROM target LEFT JOIN changed ON changed.{col["id"]} = target.{col["id"]}
    """  # noqa: S608
    sql = _StatusSql(
        by_sid=f"{select}{column['carrier_sid']} = %s{lock}",
        by_id=(
            f"{select}{column['id']} = %s AND ({column['carrier_sid']} IS NULL "
            f"OR {column['carrier_sid']} = %s){lock}"
        ),
        event=f"{event_insert}VALUES (%s, %s, %s, %s, %s, %s)",  # noqa: S608
        update=f"UPDATE {table} SET {{}} WHERE {column['id']} = %s",  # noqa: S608
        one_statement=one_statement,
        columns=column,
        fields=[f.attname for f in fields],
    )
    _STATUS_SQL[connection.vendor] = sql
    return sql


def inbound_receive(
    *,
    carrier_sid: str,
    from_number: str,
    to_number: str,
    body: str,
    received_at: dt.datetime | None = None,
    opt_out_type: str = "",
) -> InboundMessage | None:
    """Store a text sent to one of our numbers, once per carrier id, then let handlers act.

    Handlers (keyword classification, opt-out) are registered in ``INBOUND_HANDLERS`` and run
    only for the first delivery of a carrier id, so a replayed webhook does nothing twice.
    ``opt_out_type`` is Twilio's ``OptOutType`` (STOP, START or HELP when its Advanced Opt-Out
    matched a keyword), left on ``inbound.opt_out_type`` (not stored) for the handlers.
    Returns ``None`` when the number is not one of ours.
    """
    code = (
        TransportCode.objects.filter(number=to_number)
        .select_related("business_unit")  # the BU owns the inbound message
        .first()
    )
    if code is None:
        logger.warning("Inbound %s to unknown number %s ignored", carrier_sid, to_number)
        return None
    with transaction.atomic():
        message, created = InboundMessage.objects.get_or_create(
            carrier_sid=carrier_sid,
            defaults={
                "business_unit": code.business_unit,
                "registration": code.registrations.filter(is_active=True).first(),
                "from_number": from_number,
                "to_number": to_number,
                "body": body,
                "received_at": received_at or timezone.now(),
            },
        )
        if created:
            message.opt_out_type = (opt_out_type or "").strip().upper()
            for handler in INBOUND_HANDLERS:
                handler(inbound=message)
    return message


# --- Keyword replies, opt-outs and the carrier's "unsubscribed" error ---------------------------
# Registered by ``MessagingConfig.ready`` (``register_handlers``): messaging may import dnc, never
# the other way round.

# Twilio 21610: "Attempt to send to unsubscribed recipient" (the recipient replied STOP at the
# carrier). The number goes on DNC as the carrier says.
CARRIER_OPT_OUT_CODES = frozenset({"21610"})
# Twilio's OptOutType (sent when its Advanced Opt-Out matched a keyword) -> our class.
CARRIER_OPT_OUT_TYPES = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}
HELP_TEMPLATE = (
    "{name}: for help contact {contact}. Msg frequency varies. Msg & data rates may apply. "
    "Reply STOP to opt out."
)


def help_reply_text(*, business_unit, registration=None, keyword_set=None) -> str:
    """The HELP answer: in the language of the keyword (its set's text, with {name} and
    {contact}), else the registration's own text, else built from the BU's details."""
    name = business_unit.business_name.strip() or business_unit.name
    contact = business_unit.support_contact.strip() or "the sender"
    if keyword_set is not None and keyword_set.help_reply.strip():
        return keyword_set.help_reply.strip().replace("{name}", name).replace("{contact}", contact)
    if registration is not None and registration.help_reply.strip():
        return registration.help_reply.strip()
    return HELP_TEMPLATE.format(name=name, contact=contact)


def opt_out_confirmation_text(*, business_unit, registration=None, keyword_set=None) -> str:
    """The one confirmation after an opt-out ("" = send none): in the keyword's language if its
    set has one, else the registration's, else the BU's."""
    if keyword_set is not None and keyword_set.opt_out_confirmation.strip():
        return keyword_set.opt_out_confirmation.strip()
    if registration is not None and registration.opt_out_confirmation.strip():
        return registration.opt_out_confirmation.strip()
    return business_unit.opt_out_confirmation.strip()


def _inbound_evidence(inbound: InboundMessage) -> str:
    received = timezone.localtime(inbound.received_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    return (
        f'Inbound text "{inbound.body}" from {inbound.from_number} to {inbound.to_number}, '
        f"received {received}, carrier id {inbound.carrier_sid}"
    )


def inbound_classify(*, inbound: InboundMessage) -> None:
    """The inbound handler: classify the text and act on it (once per carrier id).

    Opt-out (and, under the BU's default policy, probable opt-out): the number goes on DNC with
    the text as evidence, its queued texts are withdrawn, and one confirmation is prepared unless
    the number had already opted out. Opt-in removes the entries the recipient caused. HELP
    prepares the help text. The reply is left on ``inbound.reply_text`` (not stored) for the
    webhook view to answer with TwiML; a replayed webhook creates nothing and so replies nothing.
    """

    business_unit, registration = inbound.business_unit, inbound.registration
    verdict = classify_for_business_unit(inbound.body, business_unit)
    # Twilio's Advanced Opt-Out matched one of its keywords (its lists may hold words the BU's
    # do not): its STOP, START or HELP decides, and Twilio has already answered the person.
    carrier_type = CARRIER_OPT_OUT_TYPES.get(getattr(inbound, "opt_out_type", ""))
    carrier_kind = Kind(carrier_type) if carrier_type else None
    if carrier_kind is not None and carrier_kind != verdict.kind:
        verdict = Verdict(kind=carrier_kind, reasons=(f"Twilio OptOutType {inbound.opt_out_type}",))
    kind = verdict.kind
    language = keyword_set_of(verdict, business_unit)  # replies in the keyword's language
    inbound.classification = kind.value
    label = InboundMessage.Classification(kind.value).label
    notes = [f"{label} ({verdict.describe()})" if verdict.describe() else label]
    if language is not None:
        notes.append(f"answered in {language.language}")
    reply = ""
    phone = normalise_phone(inbound.from_number, region=business_unit.phone_region)
    if kind == Kind.PROBABLE_OPT_OUT:
        inbound.review = InboundMessage.Review.PENDING
    acts_as_opt_out = kind == Kind.OPT_OUT or (
        kind == Kind.PROBABLE_OPT_OUT
        and business_unit.probable_opt_out_policy == ProbableOptOutPolicy.OPT_OUT
    )
    if phone is None and kind in (Kind.OPT_OUT, Kind.PROBABLE_OPT_OUT, Kind.OPT_IN):
        notes.append("the sender is not a phone number: nothing changed")
    elif acts_as_opt_out:
        source = (
            DncEntry.Source.STOP_REPLY if kind == Kind.OPT_OUT else DncEntry.Source.PROBABLE_OPT_OUT
        )
        opt_out = phone_opt_out(
            business_unit=business_unit,
            phone_number=phone,
            source=source,
            evidence=_inbound_evidence(inbound),
            group=registration.stop_dnc_group if registration else None,
        )
        # The entry it stands behind too when it was there already: undoing another text
        # must not remove an entry this one also asks for.
        inbound.dnc_entries.add(*opt_out.entries, opt_out.entry)
        notes.extend(opt_out.notes)
        if opt_out.already_opted_out:
            notes.append("had already opted out: no second confirmation")
        else:
            reply = opt_out_confirmation_text(
                business_unit=business_unit, registration=registration, keyword_set=language
            )
            notes.append("confirmation sent" if reply else "no confirmation configured")
    elif kind == Kind.PROBABLE_OPT_OUT:
        notes.append("listed for review only (business unit policy): not opted out")
    elif kind == Kind.OPT_IN:
        opt_in = dnc_opt_in(
            business_unit=business_unit,
            phone_number=phone,
            # Twilio's own START: it has lifted its block (21610), so ours of it goes too.
            carrier_confirmed=carrier_kind == Kind.OPT_IN,
        )
        notes.append(
            f"removed {opt_in.removed} opt-out entr{'y' if opt_in.removed == 1 else 'ies'}"
        )
        if opt_in.carrier_kept:
            notes.append("the carrier's block (21610) stays until the carrier confirms the START")
        if opt_in.still_blocked_in:
            notes.append("still blocked by " + ", ".join(f"'{g}'" for g in opt_in.still_blocked_in))
        reply = registration.opt_in_confirmation.strip() if registration else ""
        if language is not None and language.opt_in_confirmation.strip():
            reply = language.opt_in_confirmation.strip()
        notes.append("confirmation sent" if reply else "no confirmation configured")
    elif kind == Kind.HELP:
        reply = help_reply_text(
            business_unit=business_unit, registration=registration, keyword_set=language
        )
        notes.append("HELP reply sent")
    if carrier_kind is not None and reply:
        reply = ""  # Twilio's Advanced Opt-Out sent its own answer: not a second one
        notes.append("no reply of ours: Twilio's Advanced Opt-Out answered")
    inbound.action_taken = "; ".join(notes)[:300]
    inbound.save(update_fields=["classification", "review", "action_taken"])
    inbound.reply_text = reply


def phone_opt_out(*, business_unit, phone_number: str, **dnc_fields) -> OptOut:
    """A number opts out (of the BU, or of the registrations its scope names): its queued texts
    there are withdrawn, then the DNC entry is written.

    One transaction, in this order: the number's queued rows are locked and withdrawn (a sender
    holding one of them finishes its hand-over first; one that comes later finds it withdrawn),
    the status listeners hear of it (skills record the attempt's outcome), and then
    :func:`dnc.services.dnc_opt_out` writes the entry and runs the DNC listeners (skills' groups
    and record). The sender also re-checks opt-outs at the moment of sending. Every opt-out of
    messaging goes through here, so the order is this code's and not the order of the apps.
    ``dnc_fields`` are :func:`~dnc.services.dnc_opt_out`'s (source, evidence, group, ...).
    """
    with transaction.atomic():
        ids = list(
            OutboundMessage.objects.filter(
                business_unit=business_unit,
                to=phone_number,
                status=MessageStatus.QUEUED,
                registration__in=registrations_bound_by(
                    business_unit=business_unit, stop_group=dnc_fields.get("group")
                ),
            ).values_list("id", flat=True)
        )
        withdrawn: list[int] = []
        if ids and withdraw(ids, WithdrawReason.OPTED_OUT):
            withdrawn = list(
                OutboundMessage.objects.filter(
                    id__in=ids,
                    status=MessageStatus.WITHDRAWN,
                    withdraw_reason=WithdrawReason.OPTED_OUT,
                ).values_list("id", flat=True)
            )
            notify(withdrawn)
        notes = [f"withdrew {len(withdrawn)} queued text(s)"] if withdrawn else []
        return dnc_opt_out(
            business_unit=business_unit, phone_number=phone_number, notes=notes, **dnc_fields
        )


def message_carrier_opt_out(*, message: OutboundMessage, status: str, error_code: str) -> None:
    """Status listener: the carrier says the recipient unsubscribed (21610) -> DNC, source
    "carrier", in the registration's STOP group or the BU default."""
    if error_code not in CARRIER_OPT_OUT_CODES or status not in (
        MessageStatus.FAILED,
        MessageStatus.UNDELIVERED,
    ):
        return

    registration = message.registration
    opt_out = phone_opt_out(
        business_unit=message.business_unit,
        phone_number=message.to,
        source=DncEntry.Source.CARRIER,
        evidence=f"carrier error {error_code} for message {message.id}",
        group=registration.stop_dnc_group,
        message_id=message.id,
    )
    logger.info("Carrier error %s for message %s: %s", error_code, message.id, opt_out.notes)


def register_handlers() -> None:
    """Wire messaging into the hooks (idempotent; called from ``MessagingConfig.ready``)."""

    register(INBOUND_HANDLERS, inbound_classify)
    register(STATUS_LISTENERS, message_carrier_opt_out)


# --- Review of probable opt-outs (the admin's confirm / undo) -----------------------------------


def _note(inbound: InboundMessage, note: str) -> str:
    """``action_taken`` with ``note`` added, the older text shortened if it must be."""
    room = 300 - len(note) - 2
    old = inbound.action_taken
    if len(old) > room:
        old = old[: max(0, room - 1)] + "…"
    return f"{old}; {note}" if old else note[:300]


# Keyword opt-outs, opt-ins and HELP are decided by rule; free text is a person's call.
REVIEWABLE = (InboundMessage.Classification.PROBABLE_OPT_OUT, InboundMessage.Classification.OTHER)


def _check_reviewable(inbound: InboundMessage) -> None:
    if inbound.classification not in REVIEWABLE:
        raise ValidationError(
            f"A {inbound.get_classification_display().lower()} keyword is handled by rule, not "
            "reviewed; change its DNC entries by hand if needed."
        )


def inbound_review_confirm(*, inbound: InboundMessage, user) -> InboundMessage:
    """A person confirms the text was an opt-out: the number is (or stays) on DNC.

    Under the "review only" policy (or for a text the classifier called "other") this is when
    the opt-out happens: entry with the text as evidence, queued texts withdrawn, contributing
    groups and record. No confirmation text is sent at this point.
    """

    with transaction.atomic():
        inbound = (
            InboundMessage.objects.select_for_update(of=("self",))
            .select_related("business_unit", "registration")  # the opt-out reads both
            .get(pk=inbound.pk)
        )
        _check_reviewable(inbound)
        bu, registration = inbound.business_unit, inbound.registration
        phone = normalise_phone(inbound.from_number, region=bu.phone_region)
        note = f"confirmed as opt-out by {user}"
        if phone is not None:  # idempotent: an entry already there is linked, not duplicated
            opt_out = phone_opt_out(
                business_unit=bu,
                phone_number=phone,
                source=DncEntry.Source.PROBABLE_OPT_OUT,
                evidence=f"{_inbound_evidence(inbound)}; confirmed by {user}",
                group=registration.stop_dnc_group if registration else None,
                added_by=user,
            )
            inbound.dnc_entries.add(*opt_out.entries, opt_out.entry)
            note += ": " + ", ".join(opt_out.notes)
        inbound.review = InboundMessage.Review.CONFIRMED
        inbound.reviewed_by = user
        inbound.action_taken = _note(inbound, note)
        inbound.save(update_fields=["review", "reviewed_by", "action_taken"])
    return inbound


def inbound_review_undo(*, inbound: InboundMessage, user) -> InboundMessage:
    """A person decides the text was not an opt-out: remove the DNC entries it created.

    Only entries the recipient's text caused (never manual, imported or carrier ones) and only
    those no other un-undone text also stands behind. Texts already withdrawn stay withdrawn and
    a record finalized as opted out stays final: re-queue by hand if wanted.
    """

    with transaction.atomic():
        inbound = InboundMessage.objects.select_for_update().get(pk=inbound.pk)
        _check_reviewable(inbound)
        entry_ids = list(
            inbound.dnc_entries.filter(source__in=DncEntry.RECIPIENT_SOURCES)
            .exclude(
                evidence_messages__in=InboundMessage.objects.exclude(pk=inbound.pk).exclude(
                    review=InboundMessage.Review.UNDONE
                )
            )
            .values_list("id", flat=True)
        )
        removed = dnc_entries_remove(entry_ids=entry_ids, sources=DncEntry.RECIPIENT_SOURCES)
        inbound.review = InboundMessage.Review.UNDONE
        inbound.reviewed_by = user
        inbound.action_taken = _note(
            inbound, f"undone by {user}: removed {removed} DNC entr{'y' if removed == 1 else 'ies'}"
        )
        inbound.save(update_fields=["review", "reviewed_by", "action_taken"])
    return inbound
