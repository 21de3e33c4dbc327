"""The sender: pace, guards at the moment of sending, leases, retries, no duplicates."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from dnc.models import DncEntry
from messaging.backends import locmem
from messaging.backends.base import OutgoingSms, SendOutcome, SendResult
from messaging.leases import lease_acquire, lease_release, lease_renew
from messaging.models import MessageStatus, OutboundMessage, SenderLease, WithdrawReason
from messaging.outbox import MAX_SEND_ATTEMPTS, reconcile, record_results
from messaging.pacing import Pacer, StartGate, max_in_window
from messaging.sender import CodeSender, Dispatcher, slot_budget
from skills.models import Skill
from tests.factories import (
    AttemptFactory,
    DncEntryFactory,
    DncGroupFactory,
    OutboundMessageFactory,
    SkillFactory,
    SmsRegistrationFactory,
)


@pytest.fixture(autouse=True)
def _outbox(settings):
    # Tests run senders back to back in one thread; pacing across them is not under test.
    settings.SENDER_RELEASE_QUIET = 0
    locmem.reset()
    yield
    locmem.reset()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _send(pacer: Pacer, clock: FakeClock, cost: float = 1, late: float = 0.0) -> float:
    """What the sender does: wait for the slot (perhaps waking late), then take it."""
    clock.now += pacer.wait_time(cost) + late
    while (extra := pacer.wait_time(cost)) > 0:
        clock.now += extra
    return pacer.take(cost)


# --- Pacer -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [1, 5, 100])
def test_pacer_never_exceeds_the_rate_in_any_window_and_runs_at_full_rate(rate):
    clock = FakeClock()
    pacer = Pacer(rate, clock=clock)
    times = []
    for _ in range(rate * 30):
        times.append(_send(pacer, clock))
    assert max_in_window(times) <= rate
    mean = (len(times) - 1) / (times[-1] - times[0])
    assert mean >= rate * 0.98


def test_pacer_counts_segments():
    """A code metered in segments carries 3 two-part texts a second at 6 segments/s."""
    clock = FakeClock()
    pacer = Pacer(6, clock=clock)
    times = []
    for _ in range(60):
        times.append(_send(pacer, clock, 2))
    assert max_in_window(times, [2] * len(times)) <= 6
    assert 2 * (len(times) - 1) / (times[-1] - times[0]) >= 6 * 0.98


def test_pacer_mixed_costs_stay_within_the_window():
    clock = FakeClock()
    pacer = Pacer(5, clock=clock)
    times, costs = [], []
    for i in range(60):
        costs.append(3 if i % 2 else 1)
        times.append(_send(pacer, clock, costs[-1]))
    assert max_in_window(times, costs) <= 5


def test_pacer_holds_the_window_when_slots_are_taken_late():
    """A sender that fell behind (slow database) must not burst to catch up."""
    clock = FakeClock()
    pacer = Pacer(5, clock=clock)
    times = []
    for i in range(200):
        times.append(_send(pacer, clock, late=0.9 if i % 7 == 0 else 0.003))
    assert max_in_window(times) <= 5


def test_pacer_makes_up_small_wake_up_delays():
    clock = FakeClock()
    pacer = Pacer(5, clock=clock)
    times = [_send(pacer, clock, late=0.004) for _ in range(300)]
    assert max_in_window(times) <= 5
    assert (len(times) - 1) / (times[-1] - times[0]) >= 4.9


def test_pacer_lets_one_text_costlier_than_the_rate_through_and_keeps_the_average():
    clock = FakeClock()
    pacer = Pacer(1, clock=clock)
    starts = [_send(pacer, clock, 3) for _ in range(5)]
    assert starts[1] - starts[0] == pytest.approx(3.0)


def test_pacer_hold_pauses_sending():
    clock = FakeClock()
    pacer = Pacer(10, clock=clock)
    pacer.hold(2.0)
    assert pacer.wait_time(1) == pytest.approx(2.0)
    with pytest.raises(RuntimeError):
        pacer.take(1)


def test_start_gate_holds_back_a_late_bunch_to_the_rate():
    clock = FakeClock()
    gate = StartGate(10, margin=0.0, clock=clock)
    started = []
    # 25 texts arrive at once (a loop that fell behind): only 10 may start per second.
    for _ in range(25):
        while (wait := gate.try_take()) > 0:
            clock.now += wait
        started.append(clock.now)
    assert max_in_window(started) <= 10
    # Three seconds' worth, each spread at half the even spacing: the last starts at 2 + 4 x 0.05.
    assert started[-1] - started[0] == pytest.approx(2.2)


def test_start_gate_spreads_a_slot_instead_of_starting_it_at_once():
    # A 50-text slot of a 100/s code: started together, a carrier counting arrivals saw parts
    # of three bursts in one second as soon as jitter delayed one burst's tail.
    clock = FakeClock()
    gate = StartGate(100, margin=0.0, clock=clock)
    started = []
    for _ in range(50):
        while (wait := gate.try_take()) > 0:
            clock.now += wait
        started.append(clock.now)
    gaps = [b - a for a, b in zip(started, started[1:], strict=False)]
    assert min(gaps) >= 0.005 - 1e-9  # half the even spacing of 10 ms
    assert started[-1] - started[0] == pytest.approx(49 * 0.005)
    # Any 100 ms of arrivals then holds at most 21 texts, not 50.
    assert max_in_window(started, window=0.1) <= 21


def test_start_gate_lets_late_starts_catch_up_within_the_window():
    clock = FakeClock()
    gate = StartGate(10, margin=0.0, clock=clock)
    t0 = clock.now
    assert gate.try_take() == 0
    clock.now += 0.5  # the loop fell behind: nine texts of the second are still to go
    started = []
    for _ in range(9):
        while (wait := gate.try_take()) > 0:
            clock.now += wait
        started.append(clock.now)
    # At twice the rate (50 ms apart), so the second's ten all start inside it.
    assert started[-1] - t0 == pytest.approx(0.5 + 8 * 0.05)
    assert max_in_window([t0, *started]) <= 10


def test_start_gate_counts_a_text_held_before_the_socket_from_when_it_left():
    """A busy machine can hold one request between the gate and the socket. The carrier counts
    it when it arrives; the gate must too, or the next second at the carrier gets one too many
    (101 at 100/s in bench/journey.py)."""
    clock = FakeClock()
    gate = StartGate(10, margin=0.0, clock=clock)
    starts, arrivals = [], []
    first = None
    for n in range(20):
        while (start := gate._take(1.0)[1]) is None:
            clock.now += 0.001
        starts.append(clock.now)
        if n == 0:
            first = start
        else:
            arrivals.append(clock.now)
        if n == 6:  # 0.3 s after it was let through, the first text's request goes out
            gate.left(first)
            arrivals.append(clock.now)
    assert max_in_window(starts) <= 10
    assert max_in_window(arrivals) <= 10  # 11 when the gate counts it from its start


@pytest.mark.parametrize(
    ("rate", "budget"), [(1, 1), (5, 1), (13, 1), (2.5, 1), (20, 10), (25, 5), (100, 50)]
)
def test_a_slot_is_a_whole_fraction_of_the_rate(rate, budget):
    # Slots that do not divide the rate leave part of every window unused (2 + 2 of 5/s).
    assert slot_budget(rate) == budget


def test_max_in_window_uses_half_open_windows():
    assert max_in_window([0.0, 0.5, 1.0, 1.5]) == 2
    assert max_in_window([0.0, 0.2, 0.4, 0.6, 0.8, 0.99]) == 6


# --- Leases ------------------------------------------------------------------------------------


def test_one_holder_at_a_time_and_takeover_after_expiry(db, settings):
    settings.SENDER_RELEASE_QUIET = 1.1
    code = SmsRegistrationFactory().transport_code
    assert lease_acquire(code.id, "a")
    assert not lease_acquire(code.id, "b")
    assert lease_renew(code.id, "a") is not None
    SenderLease.objects.filter(pk=code.id).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert lease_acquire(code.id, "b")
    assert lease_renew(code.id, "a") is None, "the old holder must learn it lost the lease"
    lease_release(code.id, "b")
    assert not lease_acquire(code.id, "a"), "not within a pacing window of b's last text"
    SenderLease.objects.filter(pk=code.id).update(
        expires_at=timezone.now() - dt.timedelta(seconds=0.1)
    )
    assert lease_acquire(code.id, "a")


# --- Sending end to end (locmem backend) ---------------------------------------------------------


def _send_all(code_id: int, **kwargs) -> CodeSender:
    sender = CodeSender(code_id, idle_exit=0, concurrency=0, **kwargs)
    sender.run_inline()
    return sender


def _queue(registration, n=1, **kwargs):
    return [
        OutboundMessageFactory(
            business_unit=registration.business_unit, registration=registration, **kwargs
        )
        for _ in range(n)
    ]


@pytest.fixture
def registration(db):
    registration = SmsRegistrationFactory(transport_code__messages_per_second=100)
    return registration


def test_queued_texts_are_sent_once_each_with_events(registration):
    messages = _queue(registration, 12)
    _send_all(registration.transport_code_id)
    assert sorted(s.message_id for s in locmem.outbox) == sorted(m.id for m in messages)
    for message in OutboundMessage.objects.all():
        assert message.status == MessageStatus.SENT
        assert message.carrier_sid.startswith("LM")
        assert list(message.events.values_list("status", flat=True)) == ["sending", "sent"]
    sms = locmem.outbox[0]
    assert sms.from_number == registration.transport_code.number
    assert sms.status_callback.endswith(f"/sms/twilio/status/?m={sms.message_id}")
    # A second run sends nothing again.
    _send_all(registration.transport_code_id)
    assert len(locmem.outbox) == 12


def test_opted_out_number_is_withdrawn_at_send_time(registration):
    message = _queue(registration)[0]
    group = DncGroupFactory(business_unit=registration.business_unit, is_default=True)
    DncEntryFactory(group=group, phone_number=message.to, source=DncEntry.Source.STOP_REPLY)
    _send_all(registration.transport_code_id)
    message.refresh_from_db()
    assert message.status == MessageStatus.WITHDRAWN
    assert message.withdraw_reason == WithdrawReason.OPTED_OUT
    assert locmem.outbox == []


def test_stop_stored_after_the_guards_ran_still_stops_the_text(registration, monkeypatch):
    # The guards run shortly before the slot; a STOP stored in between must still win.
    message = _queue(registration)[0]
    group = DncGroupFactory(business_unit=registration.business_unit, is_default=True)

    def stop_arrives_now(messages, now):
        DncEntryFactory(group=group, phone_number=message.to, source=DncEntry.Source.STOP_REPLY)
        return {}

    monkeypatch.setattr("messaging.hooks.SEND_GUARDS", [stop_arrives_now])
    _send_all(registration.transport_code_id)
    message.refresh_from_db()
    assert locmem.outbox == []
    assert (message.status, message.withdraw_reason) == (
        MessageStatus.WITHDRAWN,
        WithdrawReason.OPTED_OUT,
    )
    assert list(message.events.values_list("status", flat=True)) == ["sending", "withdrawn"]


def test_expired_opt_out_no_longer_blocks(registration):
    message = _queue(registration)[0]
    group = DncGroupFactory(business_unit=registration.business_unit)
    DncEntryFactory(
        group=group,
        phone_number=message.to,
        source=DncEntry.Source.STOP_REPLY,
        expires_on=timezone.localdate() - dt.timedelta(days=1),
    )
    _send_all(registration.transport_code_id)
    assert len(locmem.outbox) == 1


def test_text_past_its_window_is_withdrawn_never_sent_late(registration):
    message = _queue(registration, window_ends_at=timezone.now() - dt.timedelta(seconds=1))[0]
    _send_all(registration.transport_code_id)
    message.refresh_from_db()
    assert (message.status, message.withdraw_reason) == ("withdrawn", "outside_window")
    assert locmem.outbox == []


def test_unprovisioned_code_sends_nothing(registration):
    code = registration.transport_code
    code.provisioning_status = code.Provisioning.REQUESTED
    code.save()
    message = _queue(registration)[0]
    _send_all(code.id)
    message.refresh_from_db()
    assert message.withdraw_reason == WithdrawReason.CODE_UNAVAILABLE


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (Skill.State.RUNNING, MessageStatus.SENT),
        (Skill.State.STOPPED, MessageStatus.WITHDRAWN),
        (Skill.State.PAUSED, MessageStatus.QUEUED),
    ],
)
def test_skill_state_is_checked_at_send_time(registration, state, expected):
    attempt = AttemptFactory(
        skill__business_unit=registration.business_unit,
        skill__registration=registration,
        skill__state=state,
        message__registration=registration,
    )
    _send_all(registration.transport_code_id)
    attempt.message.refresh_from_db()
    assert attempt.message.status == expected
    if state == Skill.State.PAUSED:
        assert attempt.message.not_before > timezone.now(), "held, looked at again later"


def test_skills_scrubbed_dnc_group_blocks(registration):
    attempt = AttemptFactory(
        skill__business_unit=registration.business_unit,
        skill__registration=registration,
        skill__state=Skill.State.RUNNING,
        message__registration=registration,
    )
    group = DncGroupFactory(business_unit=registration.business_unit)
    DncEntryFactory(group=group, phone_number=attempt.message.to, source=DncEntry.Source.MANUAL)
    attempt.skill.scrubbed_dnc_groups.add(group)
    _send_all(registration.transport_code_id)
    attempt.message.refresh_from_db()
    assert attempt.message.withdraw_reason == WithdrawReason.DNC


def test_skill_guards_judge_each_text_of_one_slot_on_its_own(registration):
    """The skill guard looks up a whole slot's attempts at once (one statement on
    PostgreSQL): each text still gets its own verdict, and texts no skill planned pass."""
    bu = registration.business_unit

    def planned(**kwargs):
        return AttemptFactory(
            skill__business_unit=bu,
            skill__registration=registration,
            skill__state=Skill.State.RUNNING,
            message__registration=registration,
            **kwargs,
        )

    clean = planned()
    expired = planned(record__expires_on=timezone.localdate() - dt.timedelta(days=1))
    final = planned(record__is_final=True, record__final_reason="delivered")
    scrubbed, off = planned(), planned()
    active = DncGroupFactory(business_unit=bu)
    inactive = DncGroupFactory(business_unit=bu, is_active=False)
    DncEntryFactory(group=active, phone_number=scrubbed.message.to)
    DncEntryFactory(group=inactive, phone_number=off.message.to)
    for attempt in (scrubbed, off):
        attempt.skill.scrubbed_dnc_groups.add(active, inactive)
    unplanned = _queue(registration)[0]
    _send_all(registration.transport_code_id)
    outcome = {
        m.id: (m.status, m.withdraw_reason)
        for m in OutboundMessage.objects.filter(registration=registration)
    }
    assert outcome == {
        clean.message_id: ("sent", ""),
        expired.message_id: ("withdrawn", WithdrawReason.EXPIRED),
        final.message_id: ("withdrawn", WithdrawReason.SKILL_STOPPED),
        scrubbed.message_id: ("withdrawn", WithdrawReason.DNC),
        off.message_id: ("sent", ""),
        unplanned.id: ("sent", ""),
    }


def test_a_record_that_no_longer_passes_the_skills_filter_is_not_texted(registration):
    """docs/spec.md section 10: the filter holds at the moment of sending. A CRM changed one record
    after its text was planned; that text is withdrawn, the other goes out."""
    from skills.models import FilterCondition, Record

    skill = SkillFactory(
        business_unit=registration.business_unit,
        registration=registration,
        state=Skill.State.RUNNING,
        filter_active=True,
    )
    FilterCondition.objects.create(skill=skill, field="State", operator="eq", value="IL")

    def planned(state):
        return AttemptFactory(skill=skill, message__registration=registration, record__state=state)

    stays, moved = planned("IL"), planned("IL")
    Record.objects.filter(pk=moved.record_id).update(state="TX")
    _send_all(registration.transport_code_id)

    outcome = {
        m.id: (m.status, m.withdraw_reason)
        for m in OutboundMessage.objects.filter(registration=registration)
    }
    assert outcome == {
        stays.message_id: ("sent", ""),
        moved.message_id: ("withdrawn", WithdrawReason.FILTERED),
    }


def test_opt_outs_at_send_time_count_only_this_bus_active_opt_out_entries(registration):
    bu = registration.business_unit
    stopped, manual, elsewhere, inactive = _queue(registration, 4)
    group = DncGroupFactory(business_unit=bu)
    DncEntryFactory(group=group, phone_number=stopped.to, source=DncEntry.Source.CARRIER)
    # A manual entry binds only the skills that scrub its group, not the whole BU.
    DncEntryFactory(group=group, phone_number=manual.to, source=DncEntry.Source.MANUAL)
    DncEntryFactory(phone_number=elsewhere.to, source=DncEntry.Source.STOP_REPLY)  # other BU
    DncEntryFactory(
        group=DncGroupFactory(business_unit=bu, is_active=False),
        phone_number=inactive.to,
        source=DncEntry.Source.STOP_REPLY,
    )
    _send_all(registration.transport_code_id)
    assert sorted(sms.to for sms in locmem.outbox) == sorted([manual.to, elsewhere.to, inactive.to])
    stopped.refresh_from_db()
    assert (stopped.status, stopped.withdraw_reason) == ("withdrawn", WithdrawReason.OPTED_OUT)


def test_permanent_error_fails_with_its_code(registration):
    message = _queue(registration)[0]
    locmem.answers[message.to] = {
        "outcome": SendOutcome.REJECTED,
        "error_code": "21211",
        "error_text": "Invalid 'To' Phone Number",
    }
    _send_all(registration.transport_code_id)
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "21211")


def test_throttled_text_is_retried_later_then_given_up(registration):
    message = _queue(registration)[0]
    locmem.answers[message.to] = {"outcome": SendOutcome.RETRY, "error_code": "20429"}
    _send_all(registration.transport_code_id)
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert message.not_before > timezone.now()
    assert message.send_attempts == 1
    for _ in range(MAX_SEND_ATTEMPTS):
        OutboundMessage.objects.filter(id=message.id).update(not_before=None)
        _send_all(registration.transport_code_id)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "Gave up" in message.error_text
    # Once the carrier accepts, a retried text is sent exactly once.
    other = _queue(registration)[0]
    locmem.answers[other.to] = {"outcome": SendOutcome.RETRY, "error_code": "20429"}
    _send_all(registration.transport_code_id)
    del locmem.answers[other.to]
    OutboundMessage.objects.filter(id=other.id).update(not_before=None)
    _send_all(registration.transport_code_id)
    assert [s.message_id for s in locmem.outbox] == [other.id]


class _ReconcilingBackend(locmem.LocmemBackend):
    """The carrier has some of the texts; it can be asked."""

    known: dict[int, str] = {}

    def find_sent(self, messages, since):
        return {
            sms.message_id: SendResult(
                sms.message_id, SendOutcome.ACCEPTED, self.known[sms.message_id], "sent"
            )
            for sms in messages
            if sms.message_id in self.known
        }


def test_worker_died_mid_call_is_reconciled_not_resent(registration, settings):
    """Rows left 'sending' by a dead holder: found at the carrier -> sent; absent -> requeued."""
    settings.SENDER_RECONCILE_AFTER = 0
    reached, lost = _queue(registration, 2)
    claimed_at = timezone.now() - dt.timedelta(minutes=5)
    OutboundMessage.objects.filter(id__in=[reached.id, lost.id]).update(
        status=MessageStatus.SENDING, claimed_by="dead-host:1:1", claimed_at=claimed_at
    )
    _ReconcilingBackend.known = {reached.id: "SMfound"}
    path = f"{__name__}._ReconcilingBackend"
    _send_all(registration.transport_code_id, backend_path=path)
    reached.refresh_from_db()
    lost.refresh_from_db()
    assert (reached.status, reached.carrier_sid) == (MessageStatus.SENT, "SMfound")
    assert reached.sent_at == claimed_at, "sent when it was claimed, not when it was found"
    assert lost.status == MessageStatus.SENT, "requeued, then sent by this run"
    assert [s.message_id for s in locmem.outbox] == [lost.id]


def test_without_a_carrier_lookup_an_unanswered_text_becomes_unknown(registration):
    message = _queue(registration)[0]
    OutboundMessage.objects.filter(id=message.id).update(
        status=MessageStatus.SENDING, claimed_at=timezone.now()
    )
    message.refresh_from_db()
    counts = reconcile(locmem.LocmemBackend(), [message])
    message.refresh_from_db()
    assert counts == {"unknown": 1}
    assert message.status == MessageStatus.UNKNOWN
    assert locmem.outbox == []


def test_fast_callback_before_the_sender_recorded_the_answer(registration):
    from messaging.services import message_record_status

    message = _queue(registration)[0]
    OutboundMessage.objects.filter(id=message.id).update(status=MessageStatus.SENDING)
    message_record_status(carrier_sid="SMx", carrier_status="delivered", message_id=message.id)

    record_results([SendResult(message.id, SendOutcome.ACCEPTED, "SMx", "queued")], attempts={})
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED, "never moved back to sent"
    assert message.carrier_sid == "SMx"


def test_a_fast_sent_callback_does_not_become_the_texts_send_time(registration):
    """The "sent" callback can beat the sender's record of the answer; the text left when the
    backend started it, not when the callback came (up to a second later under load)."""
    from messaging.services import message_record_status

    message = _queue(registration)[0]
    OutboundMessage.objects.filter(id=message.id).update(status=MessageStatus.SENDING)
    left = timezone.now() - dt.timedelta(seconds=0.8)
    message_record_status(carrier_sid="SMx", carrier_status="sent", message_id=message.id)
    message.refresh_from_db()
    assert message.sent_at > left + dt.timedelta(seconds=0.7)  # the callback's moment

    result = SendResult(message.id, SendOutcome.ACCEPTED, "SMx", "queued")
    result = dataclasses.replace(result, started_at=left.timestamp())
    record_results([result], attempts={})
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert abs((message.sent_at - left).total_seconds()) < 0.001


def test_priority_shares_a_code_without_starving(registration):
    high = _queue(registration, 30, source="skill:1", priority=9)
    low = _queue(registration, 30, source="skill:2", priority=1)
    sender = CodeSender(registration.transport_code_id, idle_exit=0, concurrency=0)
    sender._claim(rate=10, counts_segments=True)  # 20 texts' worth
    taken = [q.source for q in sender.buffer]
    assert taken.count("skill:1") > taken.count("skill:2") >= 1
    assert len(high) and len(low)


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_never_send_a_text_twice(settings):
    if connection.vendor == "sqlite":
        pytest.skip("needs a database shared by threads with row locks (PostgreSQL)")
    registration = SmsRegistrationFactory(transport_code__messages_per_second=200)
    messages = _queue(registration, 150)
    dispatchers = [Dispatcher(until_idle=True, idle_exit=0.5) for _ in range(2)]
    threads = [threading.Thread(target=d.run) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    sent = [s.message_id for s in locmem.outbox]
    assert sorted(sent) == sorted(m.id for m in messages)
    assert len(set(sent)) == len(sent)


def test_outgoing_uses_messaging_service_when_set(registration):
    registration.messaging_service_sid = "MG" + "0" * 32
    registration.save()
    _queue(registration)
    _send_all(registration.transport_code_id)
    sms: OutgoingSms = locmem.outbox[0]
    assert sms.messaging_service_sid == registration.messaging_service_sid


# --- The pace holds where requests really start -------------------------------------------------

starts: list[float] = []


class LaggingBackend(locmem.LocmemBackend):
    """Starts the first 0.6 s of batches only at 0.6 s, then on time: like an event loop that
    fell behind on a saturated machine and then caught up."""

    first: float | None = None

    def _send_gated(self, messages, gate):
        now = time.monotonic()
        LaggingBackend.first = LaggingBackend.first or now
        time.sleep(max(0.0, LaggingBackend.first + 0.6 - now))
        return super()._send_gated(messages, gate)

    def send_messages(self, messages):
        starts.extend(time.monotonic() for _ in messages)
        return super().send_messages(messages)


@pytest.mark.django_db(transaction=True)
def test_pace_holds_on_real_start_times_when_the_backend_starts_late():
    registration = SmsRegistrationFactory(transport_code__messages_per_second=20)
    messages = _queue(registration, 50)
    starts.clear()
    LaggingBackend.first = None
    sender = CodeSender(
        registration.transport_code_id,
        backend_path=f"{__name__}.LaggingBackend",
        concurrency=8,
        idle_exit=0.3,
    )
    thread = threading.Thread(target=sender.run)
    thread.start()
    thread.join(timeout=60)
    assert sorted(s.message_id for s in locmem.outbox) == sorted(m.id for m in messages)
    # Without a gate at the start, the held-back batches and the next ones would start
    # together: ~32 texts in one second on a 20/s code.
    assert max_in_window(starts) <= 20
    recorded = [
        m.sent_at.timestamp() for m in OutboundMessage.objects.filter(status=MessageStatus.SENT)
    ]
    assert max_in_window(recorded) <= 20


class StalledBackend(locmem.LocmemBackend):
    """Takes batches and starts none of them: an event loop that falls behind the pacer."""

    def submit(self, messages, *, gate=None):
        return concurrent.futures.Future()


def test_no_new_slot_is_guarded_while_a_slot_still_waits_to_start(registration):
    """A process that starts requests more slowly than the pacer hands out slots must not
    pile guarded, in-flight texts up in its backend: they would leave seconds after their
    guards ran (~5 s at 20 codes x 100/s in bench/dispatch.py before this rule)."""
    messages = _queue(registration, 150)
    clock = FakeClock()
    sender = CodeSender(registration.transport_code_id, backend_path="stalled", concurrency=8)
    sender._backends["stalled"] = StalledBackend()
    sender.gate = StartGate(100, clock=clock)
    sender.lease_expires = timezone.now() + dt.timedelta(hours=1)
    pacer = Pacer(100, clock=clock)
    sender._claim(100, counts_segments=False)

    sender._send_one_slot(pacer)  # the first slot: 50 texts handed over, none started
    clock.now += 5  # the pacer would allow the next slot long since
    sender.stop.set()  # so that the sender, held back, returns instead of waiting
    sender._send_one_slot(pacer)
    in_flight = OutboundMessage.objects.filter(status=MessageStatus.SENDING)
    assert in_flight.count() == 50
    assert len(sender.buffer) == 100, "the held-back slot stays buffered, unmarked"

    for _ in range(50):  # the backend starts the first slot's texts
        assert sender.gate.try_take() == 0
        clock.now += 0.01
    sender.stop.clear()
    sender._send_one_slot(pacer)
    assert in_flight.count() == 100
    assert {m.id for m in in_flight} == {m.id for m in messages[:100]}
