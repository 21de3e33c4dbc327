"""The outbox: every status write on outbound texts, shared by the sender, the services and skills.

Marking texts in flight, recording the carrier's answers, withdrawing texts that have not left,
reconciling texts whose answer never came, and telling the status listeners
(:data:`messaging.hooks.STATUS_LISTENERS`) once the change is committed. The sender
(:mod:`messaging.sender`) decides *when*; this module owns *how a row changes*.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from messaging.backends.base import BaseSmsBackend, OutgoingSms, SendOutcome, SendResult
from messaging.emails import footer, unsubscribe_headers, unsubscribe_url, with_footer
from messaging.hooks import STATUS_LISTENERS
from messaging.models import (
    MessageEvent,
    MessageStatus,
    OutboundMessage,
    TransportCode,
    WithdrawReason,
)
from pcsms.db import execute_prepared

MAX_SEND_ATTEMPTS = 6  # carrier "retry" answers before a text is failed
STATUS_CALLBACK_PATH = "/sms/twilio/status/"


def add_events(
    messages: Iterable[int], status: str, detail: str = "", code: str = "", *, at=None
) -> None:
    """Record one transition event per message, in one multi-row INSERT.

    Plain SQL: ``bulk_create`` builds a model per row and asks for the ids back, which cost more
    than the rest of a slot's database work together. On PostgreSQL the ids go as one array
    parameter of a prepared statement: a statement with hundreds of placeholders is parsed
    again by psycopg on every call (it caches only short ones) and planned again by the server.
    """
    ids = list(messages)
    if not ids:
        return
    table = MessageEvent._meta.db_table
    if connection.vendor == "postgresql":
        execute_prepared(
            f"INSERT INTO {table} (message_id, kind, status, error_code, detail, at) "  # noqa: S608
            "SELECT unnest(%s::bigint[]), %s::text, %s::text, %s::text, %s::text, "
            "%s::timestamptz",
            [
                ids,
                str(MessageEvent.Kind.TRANSITION),
                status,
                code[:10],
                detail[:500],
                at or timezone.now(),
            ],
            fetch=False,
        )
        return
    at = connection.ops.adapt_datetimefield_value(at or timezone.now())
    row = [str(MessageEvent.Kind.TRANSITION), status, code[:10], detail[:500], at]
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 200):  # well under SQLite's bound-parameter limit
            chunk = ids[start : start + 200]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
            params = [p for message_id in chunk for p in (message_id, *row)]
            cursor.execute(
                f"INSERT INTO {table} (message_id, kind, status, error_code, detail, at) "  # noqa: S608
                f"VALUES {values}",
                params,
            )


def withdraw(ids: list[int], reason: str, *, from_statuses=(MessageStatus.QUEUED,)) -> int:
    """Withdraw messages that have not left (with the reason); returns how many changed."""
    if not ids:
        return 0
    now = timezone.now()
    with transaction.atomic():
        locked = list(
            OutboundMessage.objects.select_for_update()
            .filter(id__in=ids, status__in=from_statuses)
            .values_list("id", flat=True)
        )
        OutboundMessage.objects.filter(id__in=locked).update(
            status=MessageStatus.WITHDRAWN, withdraw_reason=reason, finished_at=now, updated_at=now
        )
        add_events(locked, MessageStatus.WITHDRAWN, WithdrawReason(reason).label)
    return len(locked)


def load_rows(model, ids: Iterable[int]) -> dict:
    """``model.objects.in_bulk(ids)``; on PostgreSQL by one prepared statement (see
    :func:`lock_queued`), as the sender loads the code and registrations for every slot."""
    if connection.vendor != "postgresql":
        return model.objects.in_bulk(ids)
    fields = model._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    rows = execute_prepared(
        f"SELECT {columns} FROM {model._meta.db_table} WHERE id = ANY(%s::bigint[])",  # noqa: S608
        [list(ids)],
    )
    names = [f.attname for f in fields]
    return {obj.pk: obj for obj in (model.from_db(connection.alias, names, row) for row in rows)}


def lock_queued(ids: list[int]) -> list[OutboundMessage]:
    """Lock the rows among ``ids`` that are still queued (in id order) and return them.

    On PostgreSQL one prepared statement with the ids as an array, and models built from its
    rows directly: the ORM's query building and psycopg's parsing of 50 placeholders cost more
    CPU than the statement itself, once per slot.
    """
    if connection.vendor != "postgresql":
        return list(
            OutboundMessage.objects.select_for_update()
            .filter(id__in=ids, status=MessageStatus.QUEUED)
            .order_by("id")
        )
    fields = OutboundMessage._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    rows = execute_prepared(
        f"SELECT {columns} FROM {OutboundMessage._meta.db_table} "  # noqa: S608
        "WHERE id = ANY(%s::bigint[]) AND status = %s ORDER BY id FOR UPDATE",
        [ids, str(MessageStatus.QUEUED)],
    )
    names = [f.attname for f in fields]
    db = connection.alias
    return [OutboundMessage.from_db(db, names, row) for row in rows]


def mark_sending(ids: list[int], *, holder: str, now: dt.datetime) -> None:
    """Mark locked rows in flight (ours, claimed now), with their "sending" events."""
    detail = "handed to the carrier"
    if connection.vendor != "postgresql":
        OutboundMessage.objects.filter(id__in=ids).update(
            status=MessageStatus.SENDING, claimed_at=now, claimed_by=holder, updated_at=now
        )
        add_events(ids, MessageStatus.SENDING, detail, at=now)
        return
    execute_prepared(
        f"""
        WITH u AS (
            UPDATE {OutboundMessage._meta.db_table}
            SET status = %s, claimed_at = %s, claimed_by = %s, updated_at = %s
            WHERE id = ANY(%s::bigint[]) RETURNING id
        )
        INSERT INTO {MessageEvent._meta.db_table} (message_id, kind, status, error_code, detail, at)
        SELECT id, %s, %s, '', %s, %s FROM u
        """,  # noqa: S608 (table names from the models, values bound as parameters)
        [
            str(MessageStatus.SENDING),
            now,
            holder,
            now,
            ids,
            str(MessageEvent.Kind.TRANSITION),
            str(MessageStatus.SENDING),
            detail,
            now,
        ],
        fetch=False,
    )


def notify(ids: list[int]) -> None:
    """Tell the status listeners of these texts' current status (after the change committed)."""
    if not STATUS_LISTENERS or not ids:
        return
    for message in OutboundMessage.objects.filter(id__in=ids):
        for listener in STATUS_LISTENERS:
            listener(message=message, status=message.status, error_code=message.error_code)


def _mark_accepted(accepted: list[SendResult], *, sent_at: dt.datetime, now: dt.datetime) -> None:
    """Record carrier ids in one statement: in-flight rows become sent; rows a fast callback
    already moved on keep their status and only gain the carrier id.

    Plain SQL (``UPDATE ... FROM (VALUES ...)``, PostgreSQL and SQLite >= 3.33): the ORM
    equivalent, a CASE with one WHEN per row, cost ~2 ms of Python per text to build.
    ``sent_at`` is when the backend started the request if it says so: that moment wins over
    the time a fast "sent" callback stamped while the answer was on its way (the callback's
    arrival, up to a second later under load, which bunched a code's sends at pcsms's clock in
    bench/journey.py). Without it, the slot's moment, unless a callback gave one already.
    """
    table = OutboundMessage._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(accepted))
    params: list = []
    for r in accepted:
        started = dt.datetime.fromtimestamp(r.started_at, tz=dt.UTC) if r.started_at else None
        params += [
            r.message_id,
            r.carrier_sid,
            r.carrier_status[:20],
            adapt(started) if started else None,
            adapt(sent_at),
        ]
    sending, sent = str(MessageStatus.SENDING), str(MessageStatus.SENT)
    sql = f"""
        UPDATE {table} SET
            status = CASE WHEN status = %s THEN %s ELSE status END,
            carrier_status = CASE WHEN status = %s THEN v.column3 ELSE carrier_status END,
            carrier_sid = COALESCE(carrier_sid, v.column2),
            sent_at = COALESCE(v.column4, sent_at, v.column5),
            send_attempts = send_attempts + 1,
            updated_at = %s
        FROM (VALUES {rows}) AS v
        WHERE {table}.id = v.column1
    """  # noqa: S608 (table name from the model, values bound as parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [sending, sent, sending, adapt(now), *params])


def _mark_accepted_pg(
    accepted: list[SendResult], *, sent_at: dt.datetime, now: dt.datetime
) -> None:
    """:func:`_mark_accepted` and the texts' "sent" events in one prepared statement, the
    values as one array per column (see :func:`add_events` for why arrays)."""
    table, events = OutboundMessage._meta.db_table, MessageEvent._meta.db_table
    execute_prepared(
        f"""
        WITH v AS (
            SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[])
                AS v(id, sid, carrier_status, started)
        ), u AS (
            UPDATE {table} SET
                status = CASE WHEN status = %s THEN %s ELSE status END,
                carrier_status = CASE WHEN status = %s THEN v.carrier_status
                                      ELSE {table}.carrier_status END,
                carrier_sid = COALESCE(carrier_sid, v.sid),
                sent_at = COALESCE(to_timestamp(v.started), {table}.sent_at, %s),
                send_attempts = send_attempts + 1,
                updated_at = %s
            FROM v WHERE {table}.id = v.id
        )
        INSERT INTO {events} (message_id, kind, status, error_code, detail, at)
        SELECT v.id, %s, %s, '', %s, %s FROM v
        """,  # noqa: S608 (table names from the models, values bound as parameters)
        [
            [r.message_id for r in accepted],
            [r.carrier_sid for r in accepted],
            [r.carrier_status[:20] for r in accepted],
            [r.started_at for r in accepted],
            str(MessageStatus.SENDING),
            str(MessageStatus.SENT),
            str(MessageStatus.SENDING),
            sent_at,
            now,
            str(MessageEvent.Kind.TRANSITION),
            str(MessageStatus.SENT),
            "accepted by the carrier",
            now,
        ],
        fetch=False,
    )


def record_results(
    results: list[SendResult], *, attempts: dict[int, int], sent_at: dt.datetime | None = None
) -> dict[str, int]:
    """Apply the carrier's answers to messages we marked in flight. Returns counts by outcome.

    Only rows still ``sending`` change: a fast status callback may already have moved a row on
    (matched by our id in the callback URL), and it must not be moved back.
    """
    with transaction.atomic():
        counts, finished = apply_results(results, attempts=attempts, sent_at=sent_at)
    notify(finished)
    return counts


def apply_results(
    results: list[SendResult], *, attempts: dict[int, int], sent_at: dt.datetime | None = None
) -> tuple[dict[str, int], list[int]]:
    """:func:`record_results` inside the caller's transaction; returns the counts and the ids
    that finished (for the status listeners, to be told after the commit)."""
    now = timezone.now()
    counts: Counter[str] = Counter()
    accepted = [r for r in results if r.outcome == SendOutcome.ACCEPTED]
    rejected = [r for r in results if r.outcome == SendOutcome.REJECTED]
    retry = [r for r in results if r.outcome == SendOutcome.RETRY]
    finished: list[int] = []
    inflight = OutboundMessage.objects.filter(status=MessageStatus.SENDING)
    if accepted:
        if connection.vendor == "postgresql":
            _mark_accepted_pg(accepted, sent_at=sent_at or now, now=now)
        else:
            _mark_accepted(accepted, sent_at=sent_at or now, now=now)
            add_events(
                [r.message_id for r in accepted],
                MessageStatus.SENT,
                "accepted by the carrier",
                at=now,
            )
        counts["sent"] += len(accepted)
    for result in rejected:
        changed = inflight.filter(id=result.message_id).update(
            status=MessageStatus.FAILED,
            error_code=result.error_code[:10],
            error_text=result.error_text[:500],
            finished_at=now,
            send_attempts=F("send_attempts") + 1,
            updated_at=now,
        )
        if changed:
            finished.append(result.message_id)
        add_events([result.message_id], MessageStatus.FAILED, result.error_text, result.error_code)
        counts["failed"] += 1
    for result in retry:
        tries = attempts.get(result.message_id, 0) + 1
        if tries >= MAX_SEND_ATTEMPTS:
            inflight.filter(id=result.message_id).update(
                status=MessageStatus.FAILED,
                error_code=result.error_code[:10],
                error_text=f"Gave up after {tries} tries: {result.error_text}"[:500],
                finished_at=now,
                send_attempts=tries,
                updated_at=now,
            )
            finished.append(result.message_id)
            add_events([result.message_id], MessageStatus.FAILED, "retries exhausted")
            counts["failed"] += 1
            continue
        backoff = result.retry_after or min(60.0, 2.0 ** (tries - 1))
        inflight.filter(id=result.message_id).update(
            status=MessageStatus.QUEUED,
            not_before=now + dt.timedelta(seconds=backoff),
            send_attempts=tries,
            claimed_at=None,
            claimed_by="",
            error_code=result.error_code[:10],
            error_text=result.error_text[:500],
            updated_at=now,
        )
        add_events(
            [result.message_id],
            MessageStatus.QUEUED,
            f"carrier asked to retry in {backoff:.0f} s: {result.error_text}",
            result.error_code,
        )
        counts["retry"] += 1
    counts["unknown"] += sum(1 for r in results if r.outcome == SendOutcome.UNKNOWN)
    return dict(counts), finished


def reconcile(backend: BaseSmsBackend, messages: list[OutboundMessage]) -> dict[str, int]:
    """Settle texts whose send may have reached the carrier (see the module docstring)."""
    if not messages:
        return {}
    since = min(m.claimed_at or timezone.now() for m in messages) - dt.timedelta(minutes=1)
    found = backend.find_sent([outgoing(m) for m in messages], since)
    ids = [m.id for m in messages]
    now = timezone.now()
    counts: Counter[str] = Counter()
    with transaction.atomic():
        inflight = OutboundMessage.objects.filter(id__in=ids, status=MessageStatus.SENDING)
        if found is None:
            changed = inflight.update(status=MessageStatus.UNKNOWN, updated_at=now)
            add_events(ids, MessageStatus.UNKNOWN, "no answer from the carrier; cannot look it up")
            counts["unknown"] += changed
            return dict(counts)
        for message in messages:
            result = found.get(message.id)
            if result is not None:
                inflight.filter(id=message.id).update(
                    status=MessageStatus.SENT,
                    carrier_sid=result.carrier_sid,
                    carrier_status=result.carrier_status[:20],
                    # It left when it was claimed, not now: the pace checks and the receipt
                    # wait both count from its send time.
                    sent_at=message.claimed_at or now,
                    updated_at=now,
                )
                add_events([message.id], MessageStatus.SENT, "found at the carrier on reconcile")
                counts["sent"] += 1
            else:
                inflight.filter(id=message.id).update(
                    status=MessageStatus.QUEUED, claimed_at=None, claimed_by="", updated_at=now
                )
                add_events([message.id], MessageStatus.QUEUED, "not at the carrier: queued again")
                counts["requeued"] += 1
    return dict(counts)


# The sender's backend for every email code: it hands each message to Django's mail framework,
# through the mail backend its registration names.
EMAIL_SENDER_BACKEND = "messaging.backends.email.EmailBackend"


def backend_path(code: TransportCode, registration, sms_override: str | None = None) -> str:
    """The dotted path of the backend that sends from ``code`` under ``registration``
    (``sms_override``: the one a caller chose for texts, as tests and benches do)."""
    if code.kind == TransportCode.Kind.EMAIL:
        return EMAIL_SENDER_BACKEND
    return sms_override or registration.backend or settings.SMS_BACKEND


def outgoing(message: OutboundMessage) -> OutgoingSms:
    registration = message.registration
    if message.transport_code.kind == TransportCode.Kind.EMAIL:
        return _outgoing_email(message)
    return OutgoingSms(
        message_id=message.id,
        to=message.to,
        body=message.body,
        from_number=message.transport_code.number,
        messaging_service_sid=registration.messaging_service_sid,
        status_callback=f"{settings.PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}?m={message.id}",
        carrier_account=registration.carrier_account,
        cost=message.segments if message.transport_code.counts_segments else 1,
    )


def _outgoing_email(message: OutboundMessage) -> OutgoingSms:
    """The email as it goes: the merged parts with their footer, and the RFC 8058 headers."""
    bu = message.business_unit
    url = unsubscribe_url(message.id)
    foot = footer(
        business_name=bu.business_name or bu.name, postal_address=bu.postal_address, url=url
    )
    return OutgoingSms(
        message_id=message.id,
        to=message.to,
        body=message.body.rstrip() + foot.text,
        from_number=message.transport_code.number,
        subject=message.subject,
        html_body=with_footer(message.html_body, foot) if message.html_body else "",
        headers=tuple(unsubscribe_headers(url).items()),
        mail_backend=message.registration.backend,
    )
