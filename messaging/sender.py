"""The sender: takes queued texts of one transport code and hands them to the carrier, exactly
at the code's pace, each only if it may still be sent at that moment.

One sender per transport code at a time, whatever the number of worker processes and hosts: it
holds the code's :class:`~messaging.models.SenderLease` (see there for why a new holder cannot
break the pace). A process runs one thread per code it holds (:class:`Dispatcher`).

How a text leaves (one batch = the texts of one pacing slot)::

    claim ahead (~2 s of work, shared between sources by priority)
      -> wait for the slot (Pacer)
      -> one transaction: lock the rows still queued, run the guards, withdraw the ones that
         fail (reason recorded), mark the rest ``sending`` (in flight, ``claimed_by`` = us)
      -> backend.send_messages (in a thread pool, so slow carrier answers never stall the pace)
      -> record each answer: accepted -> sent; rejected -> failed with its code;
         retry -> queued again after a backoff; unknown -> reconciled later

No duplicates, nothing lost: a text is marked in flight *before* the carrier call. If the
process dies during the call, the row stays ``sending``. The next holder of the lease (or this
sender, for its own "unknown" answers) waits ``RECONCILE_AFTER`` seconds so that no request can
still be on its way, then asks the carrier (``backend.find_sent``): found -> recorded as sent;
not found -> queued again (it never reached the carrier, so sending it is not a duplicate);
carrier cannot tell (the backend has no lookup) -> status ``unknown`` for a human to review. We
never re-send blindly, because a duplicate text is worse than a late one.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import itertools
import logging
import math
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from messaging.backends import get_backend
from messaging.backends.base import BaseSmsBackend, SendOutcome, SendResult
from messaging.guards import HOLD_SECONDS, opted_out_messages, run_guards
from messaging.hooks import HOLD
from messaging.leases import LEASE_SECONDS, lease_acquire, lease_release, lease_renew
from messaging.models import (
    MessageStatus,
    OutboundMessage,
    SenderProcess,
    SmsRegistration,
    TransportCode,
    WithdrawReason,
)
from messaging.outbox import (
    add_events,
    apply_results,
    backend_path,
    load_rows,
    lock_queued,
    mark_sending,
    notify,
    outgoing,
    reconcile,
    withdraw,
)
from messaging.pacing import DailyQuota, Pacer, StartGate, priority_shares
from messaging.selectors import sent_today
from pcsms.models import BusinessUnit

logger = logging.getLogger(__name__)


def _setting(name: str, default):
    return getattr(settings, name, default)


LEASE_MARGIN = 2.0  # stop sending this long before the lease runs out
RENEW_EVERY = 1.0
GUARD_LEAD = 0.15  # seconds before its slot that a batch is guarded and marked
CLAIM_AHEAD_SECONDS = 2.0
SOURCES_TTL = 5.0
SLOT_SECONDS = 0.5  # at most this much of the rate per slot (see slot_budget)
PROCESS_SEEN_WITHIN = 5.0  # a dispatcher not seen for this long no longer counts
MAX_CLAIM = 500


def slot_budget(rate: float) -> int:
    """How much (texts, or segments) one slot carries: up to SLOT_SECONDS of the rate, and a
    whole fraction of it, so that slots fill each one-second window exactly. (Slots of 2 on a
    5/s code would fit only 4 texts into a window: 2 + 2, and a third slot would make 6.)

    Larger slots cost less database work per text: 50 texts a slot at 100/s instead of 20 took
    the dispatch bench from 0.70 to 0.85 x the raw ceiling.
    """
    if rate < 2 or abs(rate - round(rate)) > 1e-9:
        return 1
    whole = round(rate)
    for budget in range(max(1, math.floor(rate * SLOT_SECONDS)), 0, -1):
        if whole % budget == 0:
            return budget
    return 1


def reconcile_after() -> float:
    """Seconds after its claim before an unanswered text is looked up at the carrier."""
    return float(_setting("SENDER_RECONCILE_AFTER", 30.0))


_holders = itertools.count(1)


def holder_name() -> str:
    """Unique per sender: host, process, and a serial (a new sender never inherits a lease)."""
    return f"{socket.gethostname()}:{os.getpid()}:{next(_holders)}"


# --- One code's sender -------------------------------------------------------------------------


@dataclass
class SenderStats:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    withdrawn: int = 0
    held: int = 0
    unknown: int = 0
    requeued: int = 0
    send_times: deque = field(default_factory=lambda: deque(maxlen=100_000))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, counts: dict[str, int]) -> None:
        with self.lock:
            self.sent += counts.get("sent", 0)
            self.failed += counts.get("failed", 0)
            self.retried += counts.get("retry", 0)
            self.unknown += counts.get("unknown", 0)
            self.requeued += counts.get("requeued", 0)


@dataclass
class _Queued:
    id: int
    cost: int
    source: str


@dataclass
class _Batch:
    """Texts handed to a backend together, waiting for the carrier's answers."""

    future: concurrent.futures.Future
    messages: list[OutboundMessage]
    sent_at: dt.datetime


# --- Backends shared by the senders of a process -------------------------------------------------

# One open backend per dotted path and process, shared by all its code senders (backends are
# thread-safe): one event loop and one connection pool instead of one per code, so a process
# sending for ten codes runs a dozen threads, not a hundred.
_shared_lock = threading.Lock()
_shared: dict[str, list] = {}  # path -> [backend, users, pid]


def backend_acquire(path: str) -> BaseSmsBackend:
    with _shared_lock:
        entry = _shared.get(path)
        if entry is None or entry[2] != os.getpid():
            options = {"concurrency": int(_setting("SENDER_BACKEND_CONCURRENCY", 256))}
            backend = get_backend(path, **options)
            backend.open()
            entry = _shared[path] = [backend, 0, os.getpid()]
        entry[1] += 1
        return entry[0]


def backend_release(backend: BaseSmsBackend) -> None:
    with _shared_lock:
        for path, entry in list(_shared.items()):
            if entry[0] is backend:
                entry[1] -= 1
                if entry[1] > 0:
                    return
                del _shared[path]
                break
    backend.shutdown()


class CodeSender:
    """Sends for one transport code while it holds the code's lease."""

    def __init__(
        self,
        code_id: int,
        *,
        stats: SenderStats | None = None,
        stop: threading.Event | None = None,
        idle_exit: float | None = 5.0,
        deadline: float | None = None,
        backend_path: str | None = None,
        concurrency: int = 8,
    ) -> None:
        self.code_id = code_id
        self.stats = stats or SenderStats()
        self.stop = stop or threading.Event()
        self.idle_exit = idle_exit
        self.deadline = deadline
        self.backend_path = backend_path
        self.holder = holder_name()
        self.retire = threading.Event()  # hand the code to another process
        self.buffer: deque[_Queued] = deque()
        # Batches handed to the backend and not yet recorded, at most ``concurrency``;
        # 0 waits for each batch's answers before the next slot (deterministic, for tests).
        self.concurrency = concurrency
        self.pending: deque[_Batch] = deque()
        self._backends: dict[str, BaseSmsBackend] = {}
        self._unknown: list[tuple[float, int]] = []
        self._sources: list[dict] | None = None
        self._sources_at = 0.0
        self.lease_expires: dt.datetime | None = None
        self.gate: StartGate | None = None
        self.quota = DailyQuota(None, lambda now: 0)  # the code's, once the loop reads it
        self._through_gate = 0.0  # the cost of the texts handed to backends with our gate

    # Opened before the first slot: a cold client would hold the first texts back and then
    # release them together, crowding the carrier's window.
    def backend_for(self, path: str) -> BaseSmsBackend:
        backend = self._backends.get(path)
        if backend is None:
            backend = self._backends[path] = backend_acquire(path)
        return backend

    def run(self) -> None:
        if not lease_acquire(self.code_id, self.holder):
            return
        self.lease_expires = timezone.now() + dt.timedelta(seconds=LEASE_SECONDS)
        try:
            self._loop()
        finally:
            try:
                # Every text handed over gets its answer recorded before the lease goes.
                self._collect(wait=True)
            finally:
                for backend in self._backends.values():
                    backend_release(backend)
                self._backends = {}
                lease_release(self.code_id, self.holder)
                if self.concurrency:
                    # Only a sender thread of its own closes its connection; inline (tests)
                    # keeps it.
                    close_old_connections()
                    connection.close()

    def _loop(self) -> None:
        code = TransportCode.objects.get(id=self.code_id)
        pacer = Pacer(float(code.messages_per_second))
        # The pacer picks the slots; the gate holds the same limit on the moments the backend
        # really starts each request (see StartGate for why both).
        self.gate = StartGate(float(code.messages_per_second))
        self.quota = DailyQuota(code.messages_per_day, lambda now: sent_today(self.code_id, now))
        for registration in code.registrations.filter(is_active=True):
            self.backend_for(backend_path(code, registration, self.backend_path))
        counts_segments = code.counts_segments
        last_renew = time.monotonic()
        last_reconcile = 0.0
        idle_since: float | None = None
        while not self.stop.is_set() and not self.retire.is_set():
            mono = time.monotonic()
            if self.deadline is not None and mono >= self.deadline:
                return
            if mono - last_renew >= RENEW_EVERY:
                self.lease_expires = lease_renew(self.code_id, self.holder)
                last_renew = mono
                if self.lease_expires is None:
                    logger.warning("Lost the lease of transport code %s; stopping", self.code_id)
                    return
                code.refresh_from_db(
                    fields=["messages_per_second", "counts_segments", "messages_per_day"]
                )
                self.quota.limit = code.messages_per_day
                pacer.set_rate(float(code.messages_per_second))
                self.gate.set_rate(float(code.messages_per_second))
                counts_segments = code.counts_segments
            if mono - last_reconcile >= 2.0:
                self._reconcile_due()
                last_reconcile = mono
            if not self.buffer:
                self._collect()  # else the next slot's transaction records them
            if len(self.buffer) < max(1, pacer.rate * CLAIM_AHEAD_SECONDS / 2):
                self._claim(pacer.rate, counts_segments)
            if not self.buffer:
                if self.pending or self._unknown:
                    idle_since = None
                else:
                    idle_since = mono if idle_since is None else idle_since
                    if self.idle_exit is not None and mono - idle_since >= self.idle_exit:
                        return
                self.stop.wait(0.05 if self.pending else 0.2)
                continue
            idle_since = None
            self._send_one_slot(pacer)

    def _claim(self, rate: float, counts_segments: bool) -> None:
        """Fill the buffer with ~2 s of due work, shared between sources by priority."""
        now = timezone.now()
        want = max(1, min(MAX_CLAIM, math.ceil(rate * CLAIM_AHEAD_SECONDS)))
        # The day's limit: claim no more than is left of it (what is claimed is handed over).
        left = self.quota.left(now) - len(self.buffer)
        if left <= 0:
            return
        want = int(min(want, left))
        queued = OutboundMessage.objects.filter(
            transport_code_id=self.code_id, status=MessageStatus.QUEUED
        ).filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        # Which sources (skills) have work, and their priority: looked up every few seconds,
        # not for every claim (it reads every queued row of the code).
        if self._sources is None or time.monotonic() - self._sources_at > SOURCES_TTL:
            self._sources = list(
                queued.order_by().values("source").annotate(priority=Max("priority"))
            )
            self._sources_at = time.monotonic()
        sources = self._sources
        if not sources:
            return
        # Texts already buffered are the lowest ids of their source: continue after them.
        after: dict[str, int] = {}
        for q in self.buffer:
            after[q.source] = max(after.get(q.source, 0), q.id)
        shares = priority_shares(want, {s["source"]: s["priority"] for s in sources})
        picked: dict[str, list[_Queued]] = {}
        for s in sources:
            share = shares[s["source"]]
            rows = (
                queued.filter(source=s["source"], id__gt=after.get(s["source"], 0))
                .order_by("id")
                .values_list("id", "segments")[:share]
            )
            picked[s["source"]] = [
                _Queued(id=i, cost=(seg if counts_segments else 1), source=s["source"])
                for i, seg in rows
            ]
        if not any(picked.values()):
            self._sources = None  # nothing left where we looked: look afresh next time
        # Interleave by priority (weighted round robin), so each slot goes to the skills in
        # proportion to priority and none starves.
        weights = {s["source"]: max(1, s["priority"]) for s in sources}
        credit = dict.fromkeys(picked, 0.0)
        while any(picked.values()):
            for source in list(picked):
                if not picked[source]:
                    continue
                credit[source] += weights[source]
            source = max((s for s in picked if picked[s]), key=lambda s: credit[s])
            credit[source] -= sum(weights[s] for s in picked if picked[s])
            self.buffer.append(picked[source].pop(0))

    def _send_one_slot(self, pacer: Pacer) -> None:
        # A slot carries up to slot_budget of texts, handed over together (fewer, larger
        # batches cost less database work per text); the gate then holds the window on the
        # moments their requests really start.
        budget = slot_budget(pacer.rate)
        batch: list[_Queued] = []
        cost = 0
        while self.buffer and (not batch or cost + self.buffer[0].cost <= budget):
            item = self.buffer.popleft()
            batch.append(item)
            cost += item.cost
        # At most ``concurrency`` batches awaiting answers: a carrier that stops answering
        # stops the marking of more texts in flight.
        while self.concurrency and len(self.pending) >= self.concurrency:
            if self.stop.is_set():
                self.buffer.extendleft(reversed(batch))
                return
            concurrent.futures.wait([self.pending[0].future], timeout=0.2)
            self._collect()
        # Few texts may wait between their guards and their start. When the process starts
        # requests more slowly than the pacer hands out slots (its CPU is the limit), slots
        # would otherwise pile up in the backend, up to ``concurrency`` of them: texts checked
        # seconds before they left (measured: ~5 s, 6,500 texts in flight at 20 x 100/s).
        # With at most about one slot waiting to start, the backend never runs dry either.
        while self.concurrency and (waiting := self._not_started()) >= budget:
            if self.stop.wait(max(0.005, (waiting - budget + 1) / pacer.rate)):
                self.buffer.extendleft(reversed(batch))
                return
            self._collect()
        # Run the guards shortly before the slot, not after it: their database work would
        # otherwise delay the start. So a text is checked at most GUARD_LEAD before it goes.
        wait = pacer.wait_time(cost)
        stopped = wait > GUARD_LEAD and self.stop.wait(wait - GUARD_LEAD)
        margin = dt.timedelta(seconds=LEASE_MARGIN)
        near_expiry = self.lease_expires is None or timezone.now() >= self.lease_expires - margin
        if stopped or near_expiry:
            # Stopping, or too close to losing the lease (a new holder could start any
            # moment): put the texts back, unmarked.
            self.buffer.extendleft(reversed(batch))
            if near_expiry and not stopped:
                self.lease_expires = lease_renew(self.code_id, self.holder)
            return
        costs = {q.id: q.cost for q in batch}
        messages = self._guard_and_mark(list(costs))
        if not messages:
            return
        # Marked in flight: these go out now, even if a stop was asked meanwhile.
        cost = sum(costs[m.id] for m in messages)
        while (wait := pacer.wait_time(cost)) > 0:
            time.sleep(wait)
        messages = self._recheck_opt_outs(messages)
        if not messages:
            return
        cost = sum(costs[m.id] for m in messages)
        started = pacer.take(cost)
        self._submit(messages, started)
        if not self.concurrency:
            self._collect(wait=True)

    def _not_started(self) -> float:
        """The cost of the texts handed to a backend through our gate not started yet."""
        if not self.pending:
            # Everything handed over was answered: whatever did not pass the gate (a batch
            # that failed as a whole) never will.
            self._through_gate = self.gate.started
            return 0
        return self._through_gate - self.gate.started

    def _guard_and_mark(self, ids: list[int]) -> list[OutboundMessage]:
        now = timezone.now()
        # The answers that came in since the last slot are recorded in the same transaction:
        # one commit per slot instead of two.
        answered = self._answered()
        with transaction.atomic():
            after = self._record_answered(answered) if answered else None
            rows = lock_queued(ids)
            # The code and registrations as they are now (guards and outgoing() read them),
            # loaded once for the slot rather than joined and built again for every row.
            if rows:
                code = load_rows(TransportCode, [self.code_id])[self.code_id]
                registrations = load_rows(SmsRegistration, {m.registration_id for m in rows})
                # An email's footer names its BU (messaging/emails.py).
                units = (
                    load_rows(BusinessUnit, {m.business_unit_id for m in rows})
                    if code.kind == TransportCode.Kind.EMAIL
                    else {}
                )
                for message in rows:
                    message.transport_code = code
                    message.registration = registrations[message.registration_id]
                    if units:
                        message.business_unit = units[message.business_unit_id]
            verdicts = run_guards(rows, now)
            hold = [m.id for m in rows if verdicts.get(m.id) == HOLD]
            withdrawn: dict[str, list[int]] = {}
            for message_id, verdict in verdicts.items():
                if verdict != HOLD:
                    withdrawn.setdefault(verdict, []).append(message_id)
            passing = [m for m in rows if m.id not in verdicts]
            if hold:
                OutboundMessage.objects.filter(id__in=hold).update(
                    not_before=now + dt.timedelta(seconds=HOLD_SECONDS)
                )
            for reason, reason_ids in withdrawn.items():
                OutboundMessage.objects.filter(id__in=reason_ids).update(
                    status=MessageStatus.WITHDRAWN,
                    withdraw_reason=reason,
                    finished_at=now,
                    updated_at=now,
                )
                add_events(
                    reason_ids, MessageStatus.WITHDRAWN, WithdrawReason(reason).label, at=now
                )
            if passing:
                mark_sending([m.id for m in passing], holder=self.holder, now=now)
                self.quota.spend(len(passing))
        if after is not None:
            after()
        with self.stats.lock:
            self.stats.withdrawn += sum(len(v) for v in withdrawn.values())
            self.stats.held += len(hold)
        notify([i for v in withdrawn.values() for i in v])
        for message in passing:
            message.claimed_at = now
        return passing

    def _recheck_opt_outs(self, messages: list[OutboundMessage]) -> list[OutboundMessage]:
        """Opt-outs once more, right before the hand-over: the guards ran up to GUARD_LEAD
        ago, and a STOP stored since then must still stop its text (docs/spec.md section 12)."""
        stopped = opted_out_messages(messages)
        late = [m.id for m in messages if m.id in stopped]
        if not late:
            return messages
        withdrawn = withdraw(late, WithdrawReason.OPTED_OUT, from_statuses=(MessageStatus.SENDING,))
        with self.stats.lock:
            self.stats.withdrawn += withdrawn
        notify(late)
        return [m for m in messages if m.id not in set(late)]

    def _submit(self, messages: list[OutboundMessage], started: float) -> None:
        """Hand the slot's texts to their backends without waiting for the answers."""
        # The slot's moment on the wall clock: "sent at" unless the backend knows better.
        sent_at = timezone.now() - dt.timedelta(seconds=time.monotonic() - started)
        by_backend: dict[str, list[OutboundMessage]] = {}
        for message in messages:
            path = backend_path(message.transport_code, message.registration, self.backend_path)
            by_backend.setdefault(path, []).append(message)
        for path, group in by_backend.items():
            future: concurrent.futures.Future = concurrent.futures.Future()
            backend, texts = self.backend_for(path), [outgoing(m) for m in group]
            try:
                if self.concurrency:
                    future = backend.submit(texts, gate=self.gate)
                    self._through_gate += sum(t.cost for t in texts)
                else:  # in this thread, at once (tests)
                    future.set_result(backend.send_messages(texts))
            except Exception as error:  # noqa: BLE001 (turned into outcomes by _collect)
                future.set_exception(error)
            self.pending.append(_Batch(future=future, messages=group, sent_at=sent_at))

    def _collect(self, *, wait: bool = False) -> None:
        """Record the answers of the batches the carrier has answered (all of them if
        ``wait``), in one transaction."""
        answered = self._answered(wait=wait)
        if answered:
            with transaction.atomic():
                after = self._record_answered(answered)
            after()

    def _answered(self, *, wait: bool = False) -> list[_Batch]:
        """Take the batches whose answers are in (waiting for all of them if ``wait``)."""
        if wait:
            done, self.pending = list(self.pending), deque()
            return done
        # Answers may come out of order: take every finished batch, not only the oldest.
        done = [b for b in self.pending if b.future.done()]
        if done:
            self.pending = deque(b for b in self.pending if not b.future.done())
        return done

    def _record_answered(self, done: list[_Batch]) -> Callable[[], None]:
        """Apply the answers inside the caller's transaction; returns what to do after the
        commit (tell the status listeners, count, schedule the reconciliation)."""
        results: list[SendResult] = []
        attempts: dict[int, int] = {}
        for batch in done:
            for result in self._results(batch):
                if result.started_at is None:
                    result = dataclasses.replace(result, started_at=batch.sent_at.timestamp())
                results.append(result)
            attempts.update((m.id, m.send_attempts) for m in batch.messages)
        counts, finished = apply_results(results, attempts=attempts)

        def after() -> None:
            notify(finished)
            self.stats.add(counts)
            with self.stats.lock:
                self.stats.send_times.extend(r.started_at for r in results)
            unknown = [r.message_id for r in results if r.outcome == SendOutcome.UNKNOWN]
            if unknown:
                due = time.monotonic() + reconcile_after()
                self._unknown.extend((due, i) for i in unknown)

        return after

    @staticmethod
    def _results(batch: _Batch) -> list[SendResult]:
        try:
            return batch.future.result()
        except ImproperlyConfigured as error:
            # Raised before anything is sent (e.g. missing credentials): hold the queue rather
            # than fail every text; the log tells the operator what to set.
            logger.error("The sending backend is not configured: %s", error)
            return [
                SendResult(m.id, SendOutcome.RETRY, error_text=str(error)[:200], retry_after=60)
                for m in batch.messages
            ]
        except (Exception, concurrent.futures.CancelledError) as error:
            # The backend broke its contract (or was closed mid-call): nothing is known.
            logger.error("The sending backend failed: %r", error)
            return [
                SendResult(m.id, SendOutcome.UNKNOWN, error_text=str(error)[:200] or "cancelled")
                for m in batch.messages
            ]

    def _reconcile_due(self) -> None:
        """Settle our own unknown answers and anything a dead holder left in flight."""
        now_mono = time.monotonic()
        with self.stats.lock:
            due = [i for t, i in self._unknown if t <= now_mono]
            self._unknown = [(t, i) for t, i in self._unknown if t > now_mono]
        cutoff = timezone.now() - dt.timedelta(seconds=reconcile_after())
        orphans = list(
            OutboundMessage.objects.filter(
                transport_code_id=self.code_id, status=MessageStatus.SENDING, claimed_at__lt=cutoff
            )
            .exclude(claimed_by=self.holder)
            .values_list("id", flat=True)
        )
        ids = due + orphans
        if not ids:
            return
        messages = list(
            OutboundMessage.objects.select_related(
                "registration", "transport_code", "business_unit"
            ).filter(id__in=ids, status=MessageStatus.SENDING)
        )
        by_backend: dict[str, list[OutboundMessage]] = {}
        for message in messages:
            path = backend_path(message.transport_code, message.registration, self.backend_path)
            by_backend.setdefault(path, []).append(message)
        for path, group in by_backend.items():
            self.stats.add(reconcile(self.backend_for(path), group))

    def run_inline(self) -> SenderStats:
        """Run in the calling thread until idle (tests, ``dispatch --once``)."""
        self.run()
        return self.stats


# --- A process's dispatcher --------------------------------------------------------------------


def codes_with_work(now: dt.datetime | None = None) -> set[int]:
    """Transport codes with texts due or in flight.

    One EXISTS per code (a handful of codes) on the sender's index, instead of a DISTINCT over
    the whole outbox, which took seconds with 100k texts queued.
    """
    now = now or timezone.now()
    due = OutboundMessage.objects.filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now),
        transport_code=OuterRef("pk"),
        status=MessageStatus.QUEUED,
    )
    inflight = OutboundMessage.objects.filter(
        transport_code=OuterRef("pk"), status=MessageStatus.SENDING
    )
    return set(
        TransportCode.objects.filter(Exists(due) | Exists(inflight)).values_list("id", flat=True)
    )


class Dispatcher:
    """Runs a :class:`CodeSender` thread for every transport code with work that it can lease."""

    def __init__(
        self,
        *,
        until_idle: bool = False,
        max_seconds: float | None = None,
        idle_exit: float | None = 5.0,
        backend_path: str | None = None,
        on_tick: Callable[[Dispatcher], None] | None = None,
    ) -> None:
        self.until_idle = until_idle
        self.deadline = time.monotonic() + max_seconds if max_seconds else None
        self.idle_exit = idle_exit
        self.backend_path = backend_path
        self.on_tick = on_tick
        self.stats = SenderStats()
        self.stop = threading.Event()
        self.threads: dict[int, threading.Thread] = {}
        self.senders: dict[int, CodeSender] = {}
        self.process = f"{socket.gethostname()}:{os.getpid()}"

    def run(self) -> SenderStats:
        try:
            while not self.stop.is_set():
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    break
                work = codes_with_work()
                self._share_codes(work)
                if self.on_tick:
                    self.on_tick(self)
                if self.until_idle and not self.threads and not work:
                    break
                self.stop.wait(0.5)
        finally:
            self.stop.set()
            for thread in self.threads.values():
                thread.join()
            SenderProcess.objects.filter(name=self.process).delete()
        return self.stats

    def _share_codes(self, work: set[int]) -> None:
        """Send for at most this process's fair share of the codes with work."""
        self.threads = {c: t for c, t in self.threads.items() if t.is_alive()}
        self.senders = {c: s for c, s in self.senders.items() if c in self.threads}
        now = timezone.now()
        SenderProcess.objects.update_or_create(
            name=self.process, defaults={"seen_at": now, "codes": len(self.threads)}
        )
        live = SenderProcess.objects.filter(
            seen_at__gte=now - dt.timedelta(seconds=PROCESS_SEEN_WITHIN)
        ).count()
        share = max(1, math.ceil(len(work) / max(1, live)))
        for code_id in sorted(self.senders)[share:]:
            self.senders[code_id].retire.set()  # another process will take it over
        if len(self.threads) >= share:
            return
        candidates = list(work - set(self.threads))
        random.shuffle(candidates)  # so processes starting together try different codes
        for code_id in candidates[: share - len(self.threads)]:
            sender = CodeSender(
                code_id,
                stats=self.stats,
                stop=self.stop,
                idle_exit=self.idle_exit,
                deadline=self.deadline,
                backend_path=self.backend_path,
            )
            thread = threading.Thread(target=sender.run, name=f"sender-{code_id}", daemon=True)
            self.threads[code_id] = thread
            self.senders[code_id] = sender
            thread.start()
