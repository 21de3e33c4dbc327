"""Record outcomes from message status (skills.outcomes): receipts, CPA classes, give-backs."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from messaging.backends import locmem
from messaging.backends.base import SendOutcome
from messaging.models import MessageStatus, OutboundMessage, WithdrawReason
from messaging.sender import CodeSender
from messaging.services import message_record_status
from skills.models import Attempt, CpaRule, FinalReason, OutcomeClass, Record, Skill
from skills.outcomes import outcomes_settle
from skills.planner import plan_skill
from skills.services import skill_start, skill_stop
from tests.factories import DncEntryFactory, DncGroupFactory
from tests.test_planner import NOW, add_record, make_skill


@pytest.fixture(autouse=True)
def _outbox(settings):
    settings.SENDER_RELEASE_QUIET = 0
    locmem.reset()
    yield
    locmem.reset()


@pytest.fixture
def skill(bu):
    return make_skill(bu)


def hand_over(skill) -> list[OutboundMessage]:
    """The carrier accepted every queued text of the skill (as the sender records it)."""
    messages = list(OutboundMessage.objects.filter(attempt__skill=skill, status="queued"))
    for message in messages:
        OutboundMessage.objects.filter(pk=message.pk).update(
            status=MessageStatus.SENT, carrier_sid=f"SM{message.pk:032d}", sent_at=NOW
        )
        message.refresh_from_db()
    return messages


def report(message, status, error_code=""):
    return message_record_status(
        carrier_sid=message.carrier_sid, carrier_status=status, error_code=error_code
    )


def next_pass(skill, now=NOW) -> None:
    """The planner's next pass (every minute): while the skill runs, the outcomes of transient
    and bad-number failures are applied there, before it plans."""
    outcomes_settle(skill=skill, now=now)


def plan_and_send(skill, now=NOW) -> OutboundMessage:
    assert plan_skill(skill=skill, now=now).planned == 1
    return hand_over(skill)[0]


def test_delivered_finalizes_the_record_and_completes_the_skill(skill):
    record = add_record(skill)
    message = plan_and_send(skill)
    report(message, "delivered")
    record.refresh_from_db()
    assert (record.is_final, record.final_reason) == (True, FinalReason.DELIVERED)
    assert Attempt.objects.get().outcome == OutcomeClass.DELIVERED
    report(message, "delivered")  # a duplicate callback changes nothing
    report(message, "undelivered", "30003")  # nor does a contradicting late one
    record.refresh_from_db()
    assert record.final_reason == FinalReason.DELIVERED
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=1)).completed


def test_sent_counts_as_received_when_the_skill_says_so(skill):
    skill.receipt_mode = Skill.ReceiptMode.SENT
    skill.save()
    record = add_record(skill)
    plan_skill(skill=skill, now=NOW)
    message = OutboundMessage.objects.get()
    OutboundMessage.objects.filter(pk=message.pk).update(status=MessageStatus.SENDING)
    message_record_status(carrier_sid="SMx", carrier_status="sent", message_id=message.pk)
    record.refresh_from_db()
    assert record.final_reason == FinalReason.SENT
    message_record_status(carrier_sid="SMx", carrier_status="delivered")
    record.refresh_from_db()
    assert record.final_reason == FinalReason.DELIVERED, "the receipt refines it"


def test_carrier_filtering_30007_pauses_the_skill_and_alerts(skill, caplog):
    add_record(skill)
    message = plan_and_send(skill)
    with caplog.at_level(logging.ERROR, logger="skills.outcomes"):
        report(message, "undelivered", "30007")
    skill.refresh_from_db()
    assert skill.state == Skill.State.PAUSED
    assert Attempt.objects.get().outcome == OutcomeClass.BLOCKED
    assert "ALERT" in caplog.text and skill.name in caplog.text and "30007" in caplog.text
    record = Record.objects.get()
    assert (record.is_final, record.attempts) == (False, 0), "texted again once resumed"


def test_invalid_number_21211_moves_on_to_the_next_number(skill):
    record = add_record(
        skill, phones=[("SMSPhoneNumber", "+13125550002"), ("PhoneNumber", "+13125550001")]
    )
    message = plan_and_send(skill)
    assert message.to == "+13125550002"
    report(message, "failed", "21211")
    next_pass(skill)
    bad = record.destinations.get(phone_number="+13125550002")
    assert bad.is_final and bad.final_reason.startswith("21211: Invalid To number")
    record.refresh_from_db()
    assert not record.is_final
    assert Attempt.objects.get().outcome == OutcomeClass.BAD_NUMBER
    plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=60))
    assert OutboundMessage.objects.latest("id").to == "+13125550001"


def test_all_numbers_bad_finalizes_the_record(skill):
    record = add_record(skill)
    report(plan_and_send(skill), "failed", "21614")
    next_pass(skill)
    record.refresh_from_db()
    assert (record.is_final, record.final_reason) == (True, FinalReason.BAD_NUMBERS)


@pytest.mark.parametrize("finalize", [True, False])
def test_attempts_exhausted(skill, finalize):
    skill.max_attempts, skill.finalize_when_exhausted = 1, finalize
    skill.save()
    skill.cadence_steps.update(attempts=5)
    record = add_record(skill)
    report(plan_and_send(skill), "undelivered", "30003")
    next_pass(skill)
    record.refresh_from_db()
    assert Attempt.objects.get().outcome == OutcomeClass.TRANSIENT
    assert record.is_final is finalize
    if finalize:
        assert record.final_reason == FinalReason.EXHAUSTED
    result = plan_skill(skill=skill, now=NOW + dt.timedelta(hours=2))
    assert result.planned == 0 and result.completed, "nothing can be planned again"


def test_a_transient_error_is_retried_after_the_minimum_retry_time(skill):
    skill.cadence_steps.update(attempts=5)
    record = add_record(skill)
    report(plan_and_send(skill), "undelivered", "99999")  # no rule: transient
    next_pass(skill)
    assert Attempt.objects.get().outcome == OutcomeClass.TRANSIENT
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=59)).planned == 0
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=60)).planned == 1
    record.refresh_from_db()
    assert record.attempts == 2


def test_transient_n_times_in_a_row_makes_the_number_bad(skill):
    skill.cadence_steps.update(attempts=5)
    skill.max_attempts = 5
    skill.save()
    CpaRule.objects.filter(skill=skill, match="30003").update(bad_number_after=2)
    record = add_record(skill)
    report(plan_and_send(skill), "undelivered", "30003")
    next_pass(skill)
    assert not record.destinations.get().is_final
    report(plan_and_send(skill, NOW + dt.timedelta(hours=1)), "undelivered", "30003")
    next_pass(skill)
    number = record.destinations.get()
    assert number.is_final and "2 times in a row" in number.final_reason
    record.refresh_from_db()
    assert record.final_reason == FinalReason.BAD_NUMBERS


def test_the_senders_own_refusal_reaches_the_record(skill):
    record = add_record(skill)
    plan_skill(skill=skill, now=NOW)
    # Send it now, whatever the time of day: the test is about the carrier's answer.
    OutboundMessage.objects.update(not_before=None, window_ends_at=None)
    number = record.destinations.get().phone_number
    locmem.answers[number] = {"outcome": SendOutcome.REJECTED, "error_code": "21211"}
    CodeSender(skill.registration.transport_code_id, idle_exit=0, concurrency=0).run_inline()
    next_pass(skill)
    record.refresh_from_db()
    assert (record.is_final, record.final_reason) == (True, FinalReason.BAD_NUMBERS)


def test_a_text_withdrawn_at_send_time_gives_its_attempt_back(skill, bu):
    group = DncGroupFactory(business_unit=bu)
    skill.scrubbed_dnc_groups.add(group)
    record = add_record(skill)
    plan_skill(skill=skill, now=NOW)
    OutboundMessage.objects.update(not_before=None, window_ends_at=None)
    DncEntryFactory(group=group, phone_number=record.destinations.get().phone_number)
    CodeSender(skill.registration.transport_code_id, idle_exit=0, concurrency=0).run_inline()
    assert OutboundMessage.objects.get().withdraw_reason == WithdrawReason.DNC
    record.refresh_from_db()
    assert (record.attempts, record.last_attempt_at) == (0, None)
    assert record.destinations.get().attempts == 0
    assert Attempt.objects.get().outcome == OutcomeClass.TRANSIENT
    result = plan_skill(skill=skill, now=NOW)
    assert result.finalized == {"dnc": 1}


def test_texts_withdrawn_by_a_stop_go_back_to_the_list(skill):
    record = add_record(skill)
    plan_skill(skill=skill, now=NOW)
    skill_stop(skill=skill)
    skill_start(skill=skill)
    result = plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=1))
    assert result.planned == 1, "not held back by the minimum retry time"
    record.refresh_from_db()
    assert record.attempts == 1
    assert [a.outcome for a in Attempt.objects.order_by("id")] == ["transient", ""]


def test_an_outcome_no_listener_applied_is_applied_by_the_sweep(skill):
    record = add_record(skill)
    plan_skill(skill=skill, now=NOW)
    OutboundMessage.objects.update(status=MessageStatus.DELIVERED)  # bypasses the listener
    assert outcomes_settle(skill=skill, now=NOW) == 1
    record.refresh_from_db()
    assert record.final_reason == FinalReason.DELIVERED


def test_a_delivered_text_whose_outcome_is_not_recorded_yet_is_never_texted_again(skill):
    """The status is committed first and the outcome just after (or by the sweep, if the
    process died in between): meanwhile the record must not look open to the planner, which
    would text its next number."""
    record = add_record(
        skill, phones=[("SMSPhoneNumber", "+13125550002"), ("PhoneNumber", "+13125550001")]
    )
    message = plan_and_send(skill)
    OutboundMessage.objects.filter(pk=message.pk).update(status=MessageStatus.DELIVERED)
    later = NOW + dt.timedelta(hours=2)  # past the minimum retry time
    assert plan_skill(skill=skill, now=later, sweep=False, complete=False).planned == 0
    assert OutboundMessage.objects.count() == 1
    assert plan_skill(skill=skill, now=later).planned == 0  # the sweep records it first
    record.refresh_from_db()
    assert record.final_reason == FinalReason.DELIVERED


@pytest.mark.parametrize("prepared", [True, False])
def test_receipts_are_recorded_with_or_without_prepared_statements(skill, settings, prepared):
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    first, second = add_record(skill), add_record(skill)
    plan_skill(skill=skill, now=NOW)
    messages = hand_over(skill)
    for message in messages:
        report(message, "delivered")
        report(message, "delivered")  # a replay
    for record in (first, second):
        record.refresh_from_db()
        assert record.final_reason == FinalReason.DELIVERED
    assert set(Attempt.objects.values_list("outcome", flat=True)) == {OutcomeClass.DELIVERED}
    assert OutboundMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 2


def test_a_failure_waits_for_the_planners_next_pass_while_the_skill_runs(skill):
    record = add_record(
        skill, phones=[("SMSPhoneNumber", "+13125550002"), ("PhoneNumber", "+13125550001")]
    )
    report(plan_and_send(skill), "failed", "21211")
    assert Attempt.objects.get().outcome == "", "not applied by the callback"
    # Not texted meanwhile, however the planner is called; its next pass applies it first.
    later = NOW + dt.timedelta(hours=2)
    assert plan_skill(skill=skill, now=later, sweep=False, complete=False).planned == 0
    assert plan_skill(skill=skill, now=later).planned == 1
    assert Attempt.objects.order_by("id").first().outcome == OutcomeClass.BAD_NUMBER
    assert OutboundMessage.objects.latest("id").to == "+13125550001"
    record.refresh_from_db()
    assert record.attempts == 2


def test_a_failure_for_a_skill_not_running_is_applied_at_once(skill):
    record = add_record(skill)
    message = plan_and_send(skill)
    skill_stop(skill=skill)
    report(message, "failed", "21614")
    record.refresh_from_db()
    assert (record.is_final, record.final_reason) == (True, FinalReason.BAD_NUMBERS)


def test_a_late_receipt_corrects_an_exhausted_record(skill):
    skill.receipt_wait_minutes = 1
    skill.save()
    record = add_record(skill)
    message = plan_and_send(skill)
    # No receipt in time: the sweep gives up on it...
    plan_skill(skill=skill, now=NOW + dt.timedelta(hours=3))
    record.refresh_from_db()
    assert record.final_reason == FinalReason.EXHAUSTED
    # ... then the carrier's receipt arrives after all.
    report(message, "delivered")
    record.refresh_from_db()
    assert record.final_reason == FinalReason.DELIVERED


def test_carrier_unsubscribed_21610_is_an_opt_out_not_an_exhausted_record(skill, bu):
    DncGroupFactory(business_unit=bu, is_default=True)
    record = add_record(skill)
    report(plan_and_send(skill), "failed", "21610")
    assert Attempt.objects.get().outcome == OutcomeClass.OPTED_OUT
    record.refresh_from_db()
    assert record.final_reason == FinalReason.OPTED_OUT


def test_an_opt_out_and_a_delivery_are_events_of_the_skills_webhook(skill, bu):
    from skills.models import XsEvent

    skill.xs_webhook_url = "https://crm.example.com/pcsms"
    skill.save()
    DncGroupFactory(business_unit=bu, is_default=True)
    out = add_record(skill, external_id="OUT")
    report(plan_and_send(skill), "failed", "21610")
    add_record(skill, external_id="OK")
    report(plan_and_send(skill, NOW + dt.timedelta(minutes=1)), "delivered")

    events = XsEvent.objects.order_by("id")
    assert [(e.payload["external_id"], e.payload["outcome"]) for e in events] == [
        ("OUT", "opted_out"),
        ("OK", "delivered"),
    ]
    out.refresh_from_db()
    assert out.final_reason == FinalReason.OPTED_OUT


def test_the_sweep_settles_a_batch_of_failures_as_one_by_one(skill, monkeypatch):
    """The sweep settles plain failures together (bench/planner.py: 10,000 in one tick); the
    records, numbers and attempts end as attempt_record_outcome leaves them one at a time."""
    from django.db import transaction

    from skills import outcomes

    skill.cadence_steps.update(attempts=2)
    skill.max_attempts = 2
    skill.save()
    CpaRule.objects.filter(skill=skill, match="30005").update(bad_number_after=1)
    for i in range(12):
        add_record(skill, external_id=f"B{i}", phones=[("SMSPhoneNumber", f"+1312555{i:04d}")])
    codes = ["30003", "21211", "21614", "", "30005", "99999"]
    for n, message in enumerate(hand_over(skill) if plan_skill(skill=skill, now=NOW) else []):
        status = "failed" if n % 2 else "undelivered"
        OutboundMessage.objects.filter(pk=message.pk).update(
            status=status, error_code=codes[n % len(codes)]
        )

    def state():
        return (
            sorted(Attempt.objects.values_list("id", "outcome")),
            sorted(Record.objects.values_list("id", "is_final", "final_reason", "attempts")),
            sorted(
                Record.objects.values_list("destinations__id", "destinations__is_final")
                .order_by()
                .distinct()
            ),
        )

    with transaction.atomic():
        assert outcomes_settle(skill=skill, now=NOW) == 12
        together = state()
        transaction.set_rollback(True)
    monkeypatch.setattr(outcomes, "_settle_failures", lambda skill, attempts, now: attempts)
    assert outcomes_settle(skill=skill, now=NOW) == 12
    assert state() == together
    assert {o for _id, o in together[0]} == {OutcomeClass.TRANSIENT, OutcomeClass.BAD_NUMBER}
    assert {r for *_x, r, _a in together[1]} >= {FinalReason.BAD_NUMBERS}
