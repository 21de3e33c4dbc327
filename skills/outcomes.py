"""Record outcomes from message status: what a receipt or a failure means for the record.

``messaging`` tells ``skills`` of every status change through ``STATUS_LISTENERS`` (carrier
callbacks, the simulator, and the sender's own failures and withdrawals); ``skills/apps.py``
registers :func:`on_message_status` there. The planner's sweep (:func:`outcomes_settle`)
applies the same rules to any settled text whose outcome was not recorded, so a listener that
failed, or a withdrawal made without notifying (a stopped skill, a STOP reply), is caught up.

- delivered (or sent, when the skill counts "sent" as received) -> the record is final
- failed / undelivered -> the skill's CPA rule for the error code (else for the status word;
  no rule: transient):
    bad number  -> that number is final; when all are, the record is final ``bad_numbers``
    transient   -> retried after the minimum retry time (a rule's ``bad_number_after`` makes
                   the number bad after that many transient failures in a row)
    blocked     -> the skill is paused and an alert logged
    opted out   -> recorded on the attempt (``skills/dnc_hooks.py`` does the DNC part)
  then, with nothing pending for it: attempts used up (or a single-pass cadence done) and
  "finalize when exhausted" -> the record is final ``exhausted``
- withdrawn (never left) -> the attempt no longer counts: the record goes back to the list

Each attempt keeps its class in ``Attempt.outcome``; a withdrawn attempt is marked transient
(it is retried), the message's withdraw reason says why.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Count, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage
from pcsms.db import execute_prepared
from skills.cadence import Cadence
from skills.models import (
    Attempt,
    CallingList,
    CpaRule,
    Destination,
    FinalReason,
    OutcomeClass,
    Record,
    Skill,
    XsEvent,
)
from skills.queries import pending_q
from skills.services import SkillStateError, skill_pause
from skills.xs import xs_records_finalized

logger = logging.getLogger(__name__)

SETTLED_STATUSES = (
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.FAILED,
    MessageStatus.UNDELIVERED,
    MessageStatus.WITHDRAWN,
)
# Finalizations a later delivery receipt corrects: the text did reach the person.
RECEIPT_OVERRIDES = (FinalReason.SENT, FinalReason.EXHAUSTED, FinalReason.EXPIRED)
# The sweep settles outcomes a chunk per transaction (one commit per attempt cost a disk flush
# each), chunk after chunk until none is left or the tick's time for the skill is up: 10,000
# failures at once (a carrier refusing a bad batch) are settled within one tick
# (bench/planner.py).
SETTLE_BATCH = 500
SETTLE_SECONDS = 30.0
_COUNTED = [s for s in MessageStatus.values if s != MessageStatus.WITHDRAWN]


def on_message_status(*, message: OutboundMessage, status: str, error_code: str = "", **_) -> None:
    """The ``STATUS_LISTENERS`` hook. Never raises: the carrier's status is kept whatever
    happens here, and the sweep applies the outcome later if this failed."""
    # Only texts a skill planned carry a "skill:" source; for the rest (tests, other senders)
    # the attempt lookup below would be a query for nothing on every callback.
    if status not in SETTLED_STATUSES or not (message.source or "").startswith("skill:"):
        return
    try:
        receipt = status in (MessageStatus.DELIVERED, MessageStatus.SENT) and not error_code
        if receipt and connection.vendor == "postgresql":
            _receipt_record(message_id=message.id, status=status)
            return
        failed = status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED)
        if failed and _left_to_sweep(message_id=message.id, status=status, code=error_code):
            return
        # A savepoint only inside the caller's transaction: alone, the block is the transaction.
        with transaction.atomic():
            attempt = (
                Attempt.objects.select_related("skill")  # the rest loads only on rare paths
                .filter(message_id=message.id)
                .first()
            )
            if attempt is not None:
                attempt_record_outcome(attempt=attempt, status=status, error_code=error_code)
    except Exception:
        logger.exception("Recording the outcome of message %s (%s) failed", message.id, status)


def _receipt_record(*, message_id: int, status: str) -> None:
    """A receipt (``delivered``, or ``sent`` for a skill that counts it as received) in one
    prepared statement: the attempt's outcome and the record final, as
    :func:`attempt_record_outcome` does it. This is most of what the status URL does."""
    delivered = status == MessageStatus.DELIVERED
    overrides = RECEIPT_OVERRIDES if delivered else RECEIPT_OVERRIDES[1:]
    now = timezone.now()
    execute_prepared(
        _RECEIPT_SQL.get("sql") or _receipt_sql(),
        {
            "message": message_id,
            "status": status,
            "delivered": OutcomeClass.DELIVERED.value,
            "reason": (FinalReason.DELIVERED if delivered else FinalReason.SENT).value,
            "overrides": [reason.value for reason in overrides],
            "now": now,
            "stamp": now.isoformat(timespec="seconds"),  # as skills.xs writes it
        },
        fetch=False,
    )


# Failure classes whose effects wait for the planner anyway (a retry after the minimum retry
# time, the next number): while the skill runs, its next pass applies them (``outcomes_settle``
# runs before it plans, and a text whose outcome is not recorded keeps its record pending).
DEFERRED_OUTCOMES = (OutcomeClass.TRANSIENT, OutcomeClass.BAD_NUMBER)


def _left_to_sweep(*, message_id: int, status: str, code: str) -> bool:
    """True when a failure's outcome may wait for the skill's next planner pass: the skill is
    running and its CPA class for the failure is transient or bad number (no text planned
    by a skill: nothing to do). A block (pause the skill now), an opt-out or a rule that
    counts it as delivered is applied at once, and so is anything for a skill not running."""
    if connection.vendor == "postgresql":
        rows = execute_prepared(
            _RECEIPT_SQL.get("failure") or _receipt_sql("failure"),
            {"message": message_id, "status": status, "code": code},
        )
        if not rows:
            return True
        state, outcome = rows[0]
    else:
        found = Attempt.objects.filter(message_id=message_id).values_list(
            "skill_id", "skill__state"
        )
        if not found:
            return True
        skill_id, state = found[0]
        rules = CpaRule.objects.filter(
            skill_id=skill_id, match__in=[m for m in (code, status) if m]
        )
        by_match = dict(rules.values_list("match", "outcome"))
        outcome = by_match.get(code) or by_match.get(status)
    return state == Skill.State.RUNNING and (outcome or OutcomeClass.TRANSIENT) in DEFERRED_OUTCOMES


_RECEIPT_SQL: dict[str, str] = {}


def _receipt_sql(name: str = "sql") -> str:
    """PostgreSQL; names from the models, values as parameters."""
    quote = connection.ops.quote_name

    def column(model, name: str) -> str:
        return quote(model._meta.get_field(name).column)

    attempt, record, skill = (quote(m._meta.db_table) for m in (Attempt, Record, Skill))
    rule = quote(CpaRule._meta.db_table)
    # The skill's state and its class for the failure: the error code's rule, else the
    # status word's (as ``classify``).
    _RECEIPT_SQL["failure"] = f"""
        SELECT s.{column(Skill, "state")}, (
            SELECT r.{column(CpaRule, "outcome")} FROM {rule} AS r
            WHERE r.{column(CpaRule, "skill")} = s.{column(Skill, "id")}
              AND r.{column(CpaRule, "match")} IN (%(code)s::text, %(status)s::text)
              AND r.{column(CpaRule, "match")} <> ''
            ORDER BY r.{column(CpaRule, "match")} = %(code)s::text DESC LIMIT 1)
        FROM {attempt} AS a
        JOIN {skill} AS s ON s.{column(Skill, "id")} = a.{column(Attempt, "skill")}
        WHERE a.{column(Attempt, "message")} = %(message)s::bigint
    """  # noqa: S608
    # "sent" counts only for a skill in "sent" receipt mode; "delivered" always. A record it
    # finalizes is an event of the skill's XS webhook when it has one (skills.xs).
    event, calling_list = quote(XsEvent._meta.db_table), quote(CallingList._meta.db_table)
    sql = f"""
        WITH attempt AS (
            UPDATE {attempt} AS a SET {column(Attempt, "outcome")} = %(delivered)s::text
            FROM {skill} AS s
            WHERE a.{column(Attempt, "message")} = %(message)s::bigint
              AND s.{column(Skill, "id")} = a.{column(Attempt, "skill")}
              AND (%(status)s::text = '{MessageStatus.DELIVERED.value}'
                   OR s.{column(Skill, "receipt_mode")} = '{Skill.ReceiptMode.SENT.value}')
            RETURNING a.{column(Attempt, "record")} AS record_id,
                a.{column(Attempt, "skill")} AS skill_id,
                s.{column(Skill, "xs_webhook_url")} <> '' AS told
        ), finalized AS (
            UPDATE {record} AS r SET {column(Record, "is_final")} = true,
                {column(Record, "final_reason")} = %(reason)s::text,
                {column(Record, "updated_at")} = %(now)s
            FROM attempt
            WHERE r.{column(Record, "id")} = attempt.record_id
              AND (NOT r.{column(Record, "is_final")}
                   OR r.{column(Record, "final_reason")} = ANY(%(overrides)s::text[]))
              AND r.{column(Record, "final_reason")} <> %(reason)s::text
            RETURNING r.{column(Record, "external_id")} AS external_id,
                r.{column(Record, "calling_list")} AS list_id, attempt.skill_id, attempt.told
        )
        INSERT INTO {event} ({column(XsEvent, "skill")}, {column(XsEvent, "kind")},
            {column(XsEvent, "payload")}, {column(XsEvent, "status")},
            {column(XsEvent, "attempts")}, {column(XsEvent, "next_attempt_at")},
            {column(XsEvent, "last_error")}, {column(XsEvent, "created_at")})
        SELECT f.skill_id, '{XsEvent.Kind.FINALIZED.value}', jsonb_build_object(
                'external_id', f.external_id, 'calling_list', l.{column(CallingList, "name")},
                'outcome', %(reason)s::text, 'finalized_at', %(stamp)s::text),
            '{XsEvent.Status.PENDING.value}', 0, %(now)s, '', %(now)s
        FROM finalized AS f
        JOIN {calling_list} AS l ON l.{column(CallingList, "id")} = f.list_id
        WHERE f.told
    """  # noqa: S608
    _RECEIPT_SQL["sql"] = sql
    return _RECEIPT_SQL[name]


def classify(
    skill: Skill, status: str, error_code: str = "", rules: dict[str, CpaRule] | None = None
) -> tuple[str, CpaRule | None]:
    """The skill's CPA class for a failure: the rule for the error code, else for the status
    word, else transient. ``rules``: the skill's rules by match, when the caller has them."""
    matches = [m for m in (error_code, status) if m]
    if rules is None:
        rules = {r.match: r for r in CpaRule.objects.filter(skill=skill, match__in=matches)}
    for match in matches:
        if match in rules:
            return rules[match].outcome, rules[match]
    return OutcomeClass.TRANSIENT, None


def attempt_record_outcome(
    *, attempt: Attempt, status: str, error_code: str = "", now: dt.datetime | None = None
) -> str | None:
    """Apply one settled status to its attempt, record, number and skill; returns the class."""
    now = now or timezone.now()
    skill = attempt.skill
    if status == MessageStatus.WITHDRAWN:
        attempts_give_back(attempt_ids=[attempt.id])
        return OutcomeClass.TRANSIENT
    if status == MessageStatus.SENT:
        if skill.receipt_mode != Skill.ReceiptMode.SENT:
            return None
        _set_outcome(attempt, OutcomeClass.DELIVERED)
        _finalize(skill, attempt.record_id, FinalReason.SENT, now, overrides=RECEIPT_OVERRIDES[1:])
        return OutcomeClass.DELIVERED
    if status == MessageStatus.DELIVERED:
        _set_outcome(attempt, OutcomeClass.DELIVERED)
        _finalize(skill, attempt.record_id, FinalReason.DELIVERED, now, overrides=RECEIPT_OVERRIDES)
        return OutcomeClass.DELIVERED

    outcome, rule = classify(skill, status, error_code)
    _set_outcome(attempt, outcome)
    described = f"{error_code or status}: {rule.description}" if rule else error_code or status
    if outcome == OutcomeClass.DELIVERED:
        _finalize(skill, attempt.record_id, FinalReason.DELIVERED, now, overrides=RECEIPT_OVERRIDES)
        return outcome
    if outcome == OutcomeClass.BAD_NUMBER:
        _number_bad(attempt.destination_id, described)
    elif outcome == OutcomeClass.TRANSIENT and rule is not None and rule.bad_number_after:
        last = list(
            Attempt.objects.filter(destination_id=attempt.destination_id)
            .exclude(message__status=MessageStatus.WITHDRAWN)
            .order_by("-created_at", "-id")
            .values_list("outcome", flat=True)[: rule.bad_number_after]
        )
        if len(last) == rule.bad_number_after and all(o == OutcomeClass.TRANSIENT for o in last):
            _number_bad(attempt.destination_id, f"{described} ({len(last)} times in a row)")
    elif outcome == OutcomeClass.BLOCKED:
        # Our text was refused, not the person's number: it does not use up their attempts,
        # so they get it once the content or number is fixed and the skill resumed.
        _recount([attempt.record_id], [attempt.destination_id])
        _block(skill, attempt, described)
        return outcome
    elif outcome == OutcomeClass.OPTED_OUT:
        return outcome  # skills.dnc_hooks finalizes the record ``opted_out``
    _finalize_if_done(skill, attempt.record_id, now)
    return outcome


def _set_outcome(attempt: Attempt, outcome: str) -> None:
    Attempt.objects.filter(pk=attempt.pk).update(outcome=outcome)
    attempt.outcome = outcome


def _finalize(skill: Skill, record_id: int, reason: str, now: dt.datetime, overrides=()) -> int:
    changed = (
        Record.objects.filter(pk=record_id)
        .filter(Q(is_final=False) | Q(final_reason__in=overrides))
        .exclude(final_reason=reason)
        .update(is_final=True, final_reason=reason, updated_at=now)
    )
    if changed:  # the CRM is told (when the skill has a webhook)
        xs_records_finalized(skill=skill, record_ids=[record_id], reason=reason, now=now)
    return changed


def _number_bad(destination_id: int, reason: str) -> None:
    Destination.objects.filter(pk=destination_id, is_final=False).update(
        is_final=True, final_reason=reason[:100]
    )


def _block(skill: Skill, attempt: Attempt, described: str) -> None:
    number = attempt.destination.phone_number
    with contextlib.suppress(SkillStateError):  # stopped or completed: nothing goes out
        skill_pause(
            skill=skill,
            reason=f"The carrier blocked a text as spam or filtered it ({described}; to "
            f"{number}). Review the template and the sending number before resuming.",
        )
    logger.error(
        "ALERT: skill %s (%s) of %s paused: the carrier blocked a text as spam or filtered it "
        "(%s; message %s to %s). Review the template and the sending number before resuming.",
        skill.id,
        skill.name,
        skill.business_unit.name,
        described,
        attempt.message_id,
        attempt.destination.phone_number,
    )


def _finalize_if_done(skill: Skill, record_id: int, now: dt.datetime) -> None:
    """Finalize a record no text can reach any more: every number bad, or attempts used up."""
    _finalize_done(skill, {record_id}, now)


def attempts_give_back(*, attempt_ids: Iterable[int]) -> int:
    """Withdrawn attempts no longer count: mark them transient (retry) and recount their
    records' and numbers' attempts and last attempt time from the texts that did count.

    Recounting (rather than subtracting) makes this safe to run twice for the same attempt.
    """
    ids = list(attempt_ids)
    if not ids:
        return 0
    rows = list(Attempt.objects.filter(id__in=ids).values_list("record_id", "destination_id"))
    if not rows:
        return 0
    with transaction.atomic():
        changed = Attempt.objects.filter(id__in=ids, outcome="").update(
            outcome=OutcomeClass.TRANSIENT
        )
        _recount([r for r, _d in rows], [d for _r, d in rows])
    return changed


def _recount(record_ids: list[int], destination_ids: list[int]) -> None:
    """Attempts and last attempt time from the texts that count: not withdrawn, not blocked."""
    counted = Attempt.objects.filter(
        Q(message__isnull=True) | Q(message__status__in=_COUNTED)
    ).exclude(outcome=OutcomeClass.BLOCKED)
    with transaction.atomic():
        per_record = counted.filter(record=OuterRef("pk")).order_by()
        Record.objects.filter(id__in=set(record_ids)).update(
            attempts=Coalesce(
                Subquery(per_record.values("record").annotate(n=Count("id")).values("n")),
                Value(0),
            ),
            last_attempt_at=Subquery(per_record.order_by("-created_at").values("created_at")[:1]),
            updated_at=timezone.now(),
        )
        per_number = counted.filter(destination=OuterRef("pk")).order_by()
        Destination.objects.filter(id__in=set(destination_ids)).update(
            attempts=Coalesce(
                Subquery(per_number.values("destination").annotate(n=Count("id")).values("n")),
                Value(0),
            )
        )


def outcomes_settle(
    *, skill: Skill, now: dt.datetime | None = None, budget: float = SETTLE_SECONDS
) -> int:
    """Apply the outcome of the skill's settled texts that have none yet, for up to ``budget``
    seconds; returns how many."""
    now = now or timezone.now()
    deadline = time.monotonic() + budget
    settled = 0
    while True:
        done, more = _settle_chunk(skill, now)
        settled += done
        if not more or time.monotonic() >= deadline:
            break
    if settled:
        logger.info("Skill %s: %s outcomes applied by the sweep", skill.id, settled)
    return settled


def _settle_chunk(skill: Skill, now: dt.datetime) -> tuple[int, bool]:
    """Up to SETTLE_BATCH of each kind in one transaction; returns how many and whether more
    may wait."""
    statuses = [
        MessageStatus.DELIVERED,
        MessageStatus.FAILED,
        MessageStatus.UNDELIVERED,
        MessageStatus.WITHDRAWN,
    ]
    if skill.receipt_mode == Skill.ReceiptMode.SENT:
        statuses.append(MessageStatus.SENT)
    unsettled = Attempt.objects.filter(skill=skill, outcome="").filter(
        Q(message__status__in=statuses) | Q(message__isnull=True)
    )
    withdrawn = list(
        unsettled.filter(
            Q(message__status=MessageStatus.WITHDRAWN) | Q(message__isnull=True)
        ).values_list("id", flat=True)[:SETTLE_BATCH]
    )
    settled = attempts_give_back(attempt_ids=withdrawn)
    others = list(
        unsettled.exclude(message__status=MessageStatus.WITHDRAWN)
        .exclude(message__isnull=True)
        .select_related("skill__business_unit", "record", "destination", "message")[:SETTLE_BATCH]
    )
    with transaction.atomic():
        one_by_one = _settle_failures(skill, others, now)
        for attempt in one_by_one:
            message = attempt.message
            attempt_record_outcome(
                attempt=attempt, status=message.status, error_code=message.error_code, now=now
            )
    settled += len(others)
    return settled, len(withdrawn) == SETTLE_BATCH or len(others) == SETTLE_BATCH


def _settle_failures(skill: Skill, attempts: list[Attempt], now: dt.datetime) -> list[Attempt]:
    """Settle the plain failures of ``attempts`` together; return the others (receipts,
    blocks, opt-outs, rules that count failures in a row), for attempt_record_outcome.

    A plain failure is what attempt_record_outcome does for a transient or bad-number class:
    the outcome set, a bad number finalized, then the record finalized if no text can reach
    it any more. Together they take a few statements for the chunk instead of seven per
    attempt (136 a second, too few for a carrier refusing a bad batch; bench/planner.py).
    """
    rules = {r.match: r for r in CpaRule.objects.filter(skill=skill)}
    by_outcome: dict[str, list[int]] = {}
    bad_numbers: dict[str, list[int]] = {}
    records: set[int] = set()
    rest = []
    for attempt in attempts:
        status, code = attempt.message.status, attempt.message.error_code
        if status not in (MessageStatus.FAILED, MessageStatus.UNDELIVERED):
            rest.append(attempt)
            continue
        outcome, rule = classify(skill, status, code, rules)
        if outcome == OutcomeClass.BAD_NUMBER:
            described = f"{code or status}: {rule.description}" if rule else code or status
            bad_numbers.setdefault(described[:100], []).append(attempt.destination_id)
        elif outcome != OutcomeClass.TRANSIENT or (rule is not None and rule.bad_number_after):
            rest.append(attempt)
            continue
        by_outcome.setdefault(outcome, []).append(attempt.id)
        records.add(attempt.record_id)
    for outcome, ids in by_outcome.items():
        Attempt.objects.filter(id__in=ids).update(outcome=outcome)
    for reason, ids in bad_numbers.items():
        Destination.objects.filter(id__in=ids, is_final=False).update(
            is_final=True, final_reason=reason
        )
    _finalize_done(skill, records, now)
    return rest


def _finalize_done(skill: Skill, record_ids: set[int], now: dt.datetime) -> None:
    """Finalize those of the records no text can reach any more (every number bad, or attempts
    used up), with nothing pending."""
    if not record_ids:
        return
    waiting = set(
        Attempt.objects.filter(pending_q(skill, now), record_id__in=record_ids).values_list(
            "record_id", flat=True
        )
    )
    candidates = list(
        Record.objects.filter(id__in=record_ids - waiting, is_final=False).prefetch_related(
            "destinations"
        )
    )
    cadence = Cadence.for_skill(skill)
    finals: dict[str, list[int]] = {}
    for record in candidates:
        destinations = list(record.destinations.all())
        if destinations and all(d.is_final for d in destinations):
            finals.setdefault(FinalReason.BAD_NUMBERS, []).append(record.id)
        elif skill.finalize_when_exhausted and (
            record.attempts >= skill.max_attempts or cadence.exhausted(destinations)
        ):
            finals.setdefault(FinalReason.EXHAUSTED, []).append(record.id)
    for reason, ids in finals.items():
        finalize_records(ids, reason, now, skill=skill)


def finalize_records(
    ids: Iterable[int], reason: str, now: dt.datetime | None = None, *, skill: Skill | None = None
) -> int:
    """Finalize the open ones of ``ids``; with ``skill``, its CRM webhook hears of them."""
    ids = list(ids)
    if not ids:
        return 0
    now = now or timezone.now()
    records = Record.objects.filter(id__in=ids, is_final=False)
    if skill is None or not skill.xs_webhook_url:
        return records.update(is_final=True, final_reason=reason, updated_at=now)
    with transaction.atomic():
        changed = list(records.select_for_update().values_list("id", flat=True))
        Record.objects.filter(id__in=changed).update(
            is_final=True, final_reason=reason, updated_at=now
        )
        xs_records_finalized(skill=skill, record_ids=changed, reason=reason, now=now)
    return len(changed)
