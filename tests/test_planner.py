"""The planner: who is due, which number, when, and how much is queued (skills.planner).

Every pass gets ``now`` explicitly: Monday 15 June 2026, noon in Chicago (13:00 in New York).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import zoneinfo
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from dnc.models import DncEntry
from messaging.models import MessageStatus, OutboundMessage, WithdrawReason
from skills import planner
from skills.models import (
    Attempt,
    CadenceStep,
    CustomField,
    Destination,
    FieldType,
    FilterCondition,
    FinalReason,
    Record,
    Skill,
    SortCriterion,
    TimeZoneBound,
)
from skills.planner import plan_skill, plan_tick
from skills.services import skill_apply_defaults
from tests.factories import (
    BusinessUnitFactory,
    CallingListFactory,
    DncEntryFactory,
    DncGroupFactory,
    OutboundMessageFactory,
    RecordFactory,
    SkillFactory,
    SmsRegistrationFactory,
    us_number,
)

UTC = dt.UTC
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=CHICAGO).astimezone(UTC)
_numbers = iter(range(500_000, 10**6))


# --- Helpers (also used by the outcome and end-to-end tests) --------------------------------


def make_skill(bu, *, registration=None, **fields) -> Skill:
    """A running skill with the default parameter pages and one active list."""
    fields.setdefault(
        "template__body", "Hi {FirstName|there}, see you soon. Reply STOP to opt out."
    )
    if registration is not None:
        fields["registration"] = registration
    fields.setdefault("state", Skill.State.RUNNING)
    skill = SkillFactory(business_unit=bu, **fields)
    skill_apply_defaults(skill=skill)
    skill.calling_lists.add(CallingListFactory(business_unit=bu))
    return skill


def add_record(skill, *, phones=None, zone="America/Chicago", **fields) -> Record:
    """A record of the skill's first list; ``phones`` is [(column, number or email address)]
    (default: one SMS number)."""
    calling_list = skill.calling_lists.first()
    record = RecordFactory(calling_list=calling_list, time_zone=zone, **fields)
    if phones is None:
        phones = [("SMSPhoneNumber", us_number(next(_numbers)))]
    for position, (column, number) in enumerate(phones):
        email = "@" in number  # an email address: no zone of its own
        Destination.objects.create(
            record=record,
            position=position,
            source_field=column,
            phone_number=number,
            time_zone="" if email else zone,
        )
    return record


def planned_ids(skill) -> list[str]:
    """External ids of the skill's queued texts, in the order they were planned."""
    return list(
        Attempt.objects.filter(skill=skill, message__status=MessageStatus.QUEUED)
        .order_by("message_id")
        .values_list("record__external_id", flat=True)
    )


def settle(skill, status=MessageStatus.FAILED, error_code="30003") -> None:
    """The carrier answered every queued text of the skill (without the outcome listener)."""
    OutboundMessage.objects.filter(attempt__skill=skill, status=MessageStatus.QUEUED).update(
        status=status, error_code=error_code
    )
    Attempt.objects.filter(skill=skill, outcome="").update(outcome="transient")


@pytest.fixture
def skill(bu):
    return make_skill(bu)


# --- What a text looks like --------------------------------------------------------------------


def test_plans_one_merged_text_per_due_record(skill):
    grace = add_record(skill, first_name="Grace", external_id="R1")
    add_record(skill, first_name="", external_id="R2")
    result = plan_skill(skill=skill, now=NOW)
    assert (result.planned, result.cost, result.limit) == (2, 2, 900), "5/s x 180 s"
    attempt = Attempt.objects.get(record=grace)
    message = attempt.message
    assert message.body == "Hi Grace, see you soon. Reply STOP to opt out."
    assert message.to == grace.destinations.get().phone_number
    assert (message.encoding, message.segments, message.status) == ("GSM-7", 1, "queued")
    assert message.idempotency_key == f"skill:{skill.id}:record:{grace.id}:20260615T170000.000000Z"
    assert (message.source, message.priority) == (f"skill:{skill.id}", skill.priority)
    assert message.transport_code_id == skill.registration.transport_code_id
    assert message.not_before == dt.datetime(2026, 6, 15, 8, tzinfo=CHICAGO)
    assert message.window_ends_at == dt.datetime(2026, 6, 15, 21, tzinfo=CHICAGO)
    assert message.events.get().status == "queued"
    assert attempt.created_at == NOW
    grace.refresh_from_db()
    assert (grace.attempts, grace.last_attempt_at) == (1, NOW)
    assert grace.destinations.get().attempts == 1
    assert OutboundMessage.objects.get(attempt__record__external_id="R2").body.startswith(
        "Hi there,"
    )


def test_a_rerun_plans_nothing_twice(skill):
    skill.min_retry_minutes = 10
    skill.save()
    for _ in range(3):
        add_record(skill)
    assert plan_skill(skill=skill, now=NOW).planned == 3
    assert plan_skill(skill=skill, now=NOW).planned == 0
    later = NOW + dt.timedelta(minutes=20)  # past the retry time, the texts still queued
    assert plan_skill(skill=skill, now=later).planned == 0
    assert OutboundMessage.objects.count() == 3


def test_a_replayed_pass_cannot_queue_a_second_text(skill):
    skill.min_retry_minutes = 1
    skill.save()
    record = add_record(skill)
    plan_skill(skill=skill, now=NOW)
    # Its text is withdrawn and given back, then the very same pass runs again.
    OutboundMessage.objects.update(status=MessageStatus.WITHDRAWN, withdraw_reason="dnc")
    Record.objects.filter(pk=record.pk).update(attempts=0, last_attempt_at=None)
    result = plan_skill(skill=skill, now=NOW)
    assert (result.planned, result.skipped["already_planned"]) == (0, 1)
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=1)).planned == 1


def test_a_pass_never_finalizes_a_record_another_pass_just_planned(skill):
    """Two passes of one skill overlap: the first read the record before the second planned it
    and its numbers after (attempts used up, so "exhausted"). Finalizing it would withdraw the
    queued text at send time, and the person would never be texted."""
    skill.max_attempts = 1
    skill.finalize_when_exhausted = True
    skill.save()
    record = add_record(skill)
    assert plan_skill(skill=skill, now=NOW).planned == 1  # the other pass
    first = planner._Pass(skill, NOW, 900, planner.PlanResult(skill.id, skill.name, "BU"))
    first.write([], {FinalReason.EXHAUSTED: [record]})
    record.refresh_from_db()
    assert not record.is_final
    assert first.result.skipped["already_planned"] == 1
    assert OutboundMessage.objects.get().status == MessageStatus.QUEUED


def test_a_stopped_skill_is_not_planned(skill):
    add_record(skill)
    Skill.objects.filter(pk=skill.pk).update(state=Skill.State.PAUSED)
    result = plan_skill(skill=skill, now=NOW)
    assert (result.planned, result.state) == (0, "paused")


# --- Selection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feed", "expected"),
    [
        (Skill.Feed.ALL, ["fresh", "old"]),
        (Skill.Feed.FRESH, ["fresh"]),
        (Skill.Feed.NON_FRESH, ["old"]),
    ],
)
def test_fresh_and_non_fresh_feed(skill, feed, expected):
    skill.feed = feed
    skill.save()
    add_record(skill, external_id="fresh")
    add_record(skill, external_id="old", attempts=1, last_attempt_at=NOW - dt.timedelta(days=1))
    plan_skill(skill=skill, now=NOW)
    assert sorted(planned_ids(skill)) == expected


def test_max_attempts_and_minimum_retry_time(skill):
    skill.max_attempts, skill.min_retry_minutes = 3, 60
    skill.save()
    add_record(skill, external_id="used-up", attempts=3, last_attempt_at=NOW - dt.timedelta(days=1))
    add_record(
        skill, external_id="too-soon", attempts=1, last_attempt_at=NOW - dt.timedelta(minutes=59)
    )
    add_record(skill, external_id="due", attempts=1, last_attempt_at=NOW - dt.timedelta(minutes=60))
    result = plan_skill(skill=skill, now=NOW)
    assert planned_ids(skill) == ["due"]
    assert result.finalized == {"exhausted": 1}
    assert Record.objects.get(external_id="used-up").final_reason == FinalReason.EXHAUSTED


def test_restricted_window_counts_recent_texts(skill):
    skill.cadence_steps.update(attempts=10)
    skill.min_retry_minutes = 1
    skill.restricted_window_count, skill.restricted_window_minutes = 2, 120
    skill.save()
    record = add_record(skill)
    for minutes in (100, 50):  # two texts in the last two hours, both failed (transient)
        plan_skill(skill=skill, now=NOW - dt.timedelta(minutes=minutes))
        settle(skill)
    assert plan_skill(skill=skill, now=NOW).planned == 0
    assert plan_skill(skill=skill, now=NOW).skipped["restricted_window"] == 1
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=21)).planned == 1
    record.refresh_from_db()
    assert record.attempts == 3


def test_a_text_still_awaiting_its_receipt_is_not_followed_by_another(skill):
    skill.cadence_steps.update(attempts=10)
    skill.min_retry_minutes, skill.receipt_wait_minutes = 1, 60
    skill.save()
    add_record(skill)
    plan_skill(skill=skill, now=NOW)
    OutboundMessage.objects.update(status=MessageStatus.SENT, sent_at=NOW)
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=30)).planned == 0
    # No receipt within the wait: unconfirmed, retried like a transient failure.
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=61)).planned == 1


# --- Filter ----------------------------------------------------------------------------------


@pytest.fixture
def filtered(skill):
    calling_list = skill.calling_lists.first()
    for name, field_type in (
        ("Age", FieldType.INTEGER),
        ("Balance", FieldType.DECIMAL),
        ("AppointmentDate", FieldType.DATE),
        ("Plan", FieldType.STRING),
        ("Member", FieldType.BOOLEAN),
    ):
        CustomField.objects.create(calling_list=calling_list, name=name, field_type=field_type)
    add_record(
        skill,
        external_id="A",
        state="IL",
        score=10,
        last_name="Hopper",
        custom={
            "Age": 30,
            "Balance": 12.5,
            "AppointmentDate": "2026-06-20",
            "Plan": "Gold",
            "Member": True,
        },
    )
    add_record(
        skill,
        external_id="B",
        state="FL",
        score=None,
        last_name="Lovelace",
        custom={
            "Age": 70,
            "Balance": 100.0,
            "AppointmentDate": "2026-07-01",
            "Plan": "silver",
            "Member": False,
        },
    )
    add_record(skill, external_id="C", state="il", score=50, last_name="Hamilton", custom={})
    skill.filter_active = True
    skill.save()
    return skill


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([("State", "eq", "il")], "AC"),
        ([("state", "ne", "IL")], "B"),
        ([("State", "in", "FL, TX")], "B"),
        ([("Score", "lt", "20")], "A"),
        ([("Score", "gt", "20")], "C"),
        ([("Score", "ne", "10")], "BC"),
        ([("Score", "is_empty", "")], "B"),
        ([("LastName", "contains", "AMIL")], "C"),
        ([("LastName", "startswith", "h")], "AC"),
        ([("Age", "gt", "40")], "B"),
        ([("Age", "lt", "40")], "A"),
        ([("Age", "eq", "30")], "A"),
        ([("Age", "ne", "30")], "BC"),
        ([("Age", "in", "30, 31")], "A"),
        ([("Age", "is_empty", "")], "C"),
        ([("Balance", "gt", "$50.00")], "B"),
        ([("Member", "eq", "yes")], "A"),
        ([("AppointmentDate", "lt", "2026-06-25")], "A"),
        ([("AppointmentDate", "gt", "06/25/2026")], "B"),
        ([("AppointmentDate", "is_empty", "")], "C"),
        ([("Plan", "eq", "GOLD")], "A"),
        ([("Plan", "startswith", "Sil")], "B"),
        ([("Plan", "contains", "l")], "AB"),
        ([("Plan", "ne", "gold")], "BC"),
        ([("plan", "in", "gold,silver")], "AB"),
        ([("State", "eq", "IL"), ("Age", "gt", "20")], "A"),
        ([("ExpirationDate", "is_empty", "")], "ABC"),
        ([("NoSuchField", "is_empty", "")], "ABC"),
    ],
)
def test_filter_operators(filtered, conditions, expected):
    for position, (field, operator, value) in enumerate(conditions):
        FilterCondition.objects.create(
            skill=filtered, position=position, field=field, operator=operator, value=value
        )
    plan_skill(skill=filtered, now=NOW)
    assert "".join(sorted(planned_ids(filtered))) == expected


def test_a_filter_value_of_the_wrong_type_matches_nothing_and_says_so(filtered):
    FilterCondition.objects.create(skill=filtered, field="Score", operator="lt", value="lots")
    result = plan_skill(skill=filtered, now=NOW)
    assert result.planned == 0
    assert "matches no record" in result.warnings[0]


def test_filter_off_ignores_the_conditions(filtered):
    FilterCondition.objects.create(skill=filtered, field="State", operator="eq", value="TX")
    filtered.filter_active = False
    filtered.save()
    assert plan_skill(skill=filtered, now=NOW).planned == 3


# --- Order -----------------------------------------------------------------------------------


def test_default_order_is_oldest_first_across_batches(skill, monkeypatch):
    monkeypatch.setattr(planner, "BATCH_SIZE", 2)
    for i in range(5):
        add_record(skill, external_id=f"R{i}")
    result = plan_skill(skill=skill, now=NOW, limit=4)
    assert planned_ids(skill) == ["R0", "R1", "R2", "R3"]
    assert result.scanned == 4


def test_sort_criteria_with_empty_values_last(skill, monkeypatch):
    monkeypatch.setattr(planner, "BATCH_SIZE", 2)
    skill.sort_criteria.all().delete()
    SortCriterion.objects.create(skill=skill, position=0, field="Score", direction="desc")
    SortCriterion.objects.create(skill=skill, position=1, field="LastName", direction="asc")
    for external_id, score, last_name in [
        ("low", 1, "Zeta"),
        ("none", None, "Alpha"),
        ("high-b", 90, "beta"),
        ("high-a", 90, "Alpha"),
        ("mid", 50, "Mu"),
    ]:
        add_record(skill, external_id=external_id, score=score, last_name=last_name)
    plan_skill(skill=skill, now=NOW)
    assert planned_ids(skill) == ["high-a", "high-b", "mid", "low", "none"]


# --- Cadence ---------------------------------------------------------------------------------


@pytest.fixture
def two_numbers(skill):
    skill.cadence_steps.all().delete()
    CadenceStep.objects.create(
        skill=skill, position=0, phone_field="SMSPhoneNumber", attempts=1, rest_minutes=120
    )
    CadenceStep.objects.create(skill=skill, position=1, phone_field="PhoneNumber", attempts=1)
    skill.min_retry_minutes, skill.max_attempts = 60, 5
    skill.save()
    record = add_record(
        skill, phones=[("PhoneNumber", "+13125550001"), ("SMSPhoneNumber", "+13125550002")]
    )
    return skill, record


def test_cadence_order_attempts_and_rest_before_the_next_number(two_numbers):
    skill, record = two_numbers
    plan_skill(skill=skill, now=NOW)
    assert OutboundMessage.objects.get().to == "+13125550002", "SMS number first"
    settle(skill)
    resting = plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=61))
    assert (resting.planned, resting.skipped["resting"]) == (0, 1)
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=120)).planned == 1
    assert OutboundMessage.objects.latest("id").to == "+13125550001"
    settle(skill)
    done = plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=200))
    assert done.finalized == {"exhausted": 1}, "single pass: each number once"
    record.refresh_from_db()
    assert (record.is_final, record.final_reason, record.attempts) == (True, "exhausted", 2)


def test_repeat_mode_goes_round_again(two_numbers):
    skill, record = two_numbers
    skill.attempt_mode = Skill.AttemptMode.REPEAT
    skill.save()
    sent_to = []
    for hours in (0, 2, 4, 6):
        plan_skill(skill=skill, now=NOW + dt.timedelta(hours=hours))
        sent_to.append(OutboundMessage.objects.latest("id").to[-1])
        settle(skill)
    assert sent_to == ["2", "1", "2", "1"]


def test_sequential_waits_for_its_number_next_best_takes_one_that_is_open(two_numbers):
    skill, record = two_numbers
    # The SMS number is a Los Angeles cell: 10:00 there is fine, 07:00 is not.
    record.destinations.filter(source_field="SMSPhoneNumber").update(
        time_zone="America/Los_Angeles"
    )
    early = dt.datetime(2026, 6, 15, 9, 0, tzinfo=CHICAGO)  # 07:00 in Los Angeles
    waiting = plan_skill(skill=skill, now=early)
    assert (waiting.planned, waiting.skipped["window_closed"]) == (0, 1)
    skill.record_mode = Skill.RecordMode.NEXT_BEST
    skill.save()
    assert plan_skill(skill=skill, now=early).planned == 1
    assert OutboundMessage.objects.get().to == "+13125550001"


def test_a_window_opening_within_the_horizon_is_planned_for_its_opening(skill):
    add_record(skill)
    before = dt.datetime(2026, 6, 15, 7, 58, tzinfo=CHICAGO)
    assert plan_skill(skill=skill, now=before - dt.timedelta(minutes=10)).planned == 0
    assert plan_skill(skill=skill, now=before).planned == 1
    assert OutboundMessage.objects.get().not_before == before + dt.timedelta(minutes=2)


def test_unknown_and_inactive_zones_are_never_texted(skill):
    add_record(skill, zone="")
    add_record(skill, zone="Mars/Olympus")
    TimeZoneBound.objects.filter(skill=skill, time_zone="America/Denver").update(is_active=False)
    add_record(skill, zone="America/Denver")
    result = plan_skill(skill=skill, now=NOW)
    assert (result.planned, result.scanned) == (0, 0), "not even read"
    assert "America/Denver" not in result.zones_open
    assert "America/Chicago" in result.zones_open
    # Nothing it may ever text: such records do not keep the skill running.
    assert result.completed
    Skill.objects.filter(pk=skill.pk).update(state=Skill.State.RUNNING)
    # Checked one by one too: a number in an inactive zone of a record whose other number
    # is open.
    record = add_record(skill, zone="America/Chicago", phones=[])
    for position, zone in enumerate(("America/Denver", "")):
        Destination.objects.create(
            record=record,
            position=position,
            source_field="SMSPhoneNumber" if position == 0 else "PhoneNumber",
            phone_number=f"+1312555010{position}",
            time_zone=zone,
        )
    result = plan_skill(skill=skill, now=NOW)
    assert OutboundMessage.objects.get().to == "+13125550101", "the SMS number's zone is off"


def test_nothing_is_read_when_every_zone_is_closed(skill):
    add_record(skill)
    result = plan_skill(skill=skill, now=dt.datetime(2026, 6, 15, 3, 0, tzinfo=CHICAGO))
    assert (result.planned, result.scanned, result.zones_open) == (0, 0, [])


def test_florida_daily_cap(skill):
    skill.cadence_steps.update(attempts=10)
    skill.min_retry_minutes, skill.max_attempts = 1, 10
    skill.save()
    add_record(skill, phones=[("SMSPhoneNumber", "+13055550123")], zone="America/New_York")
    for minutes in (0, 10, 20):
        assert plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=minutes)).planned == 1
        settle(skill)
    capped = plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=30))
    assert (capped.planned, capped.skipped["daily_cap"]) == (0, 1)
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(hours=24, minutes=1)).planned == 1


# --- DNC -------------------------------------------------------------------------------------


def test_dnc_scrub_at_plan_time(skill, bu):
    scrubbed = DncGroupFactory(business_unit=bu)
    skill.scrubbed_dnc_groups.add(scrubbed)
    other = DncGroupFactory(business_unit=bu)  # not scrubbed by this skill
    default = DncGroupFactory(business_unit=bu, is_default=True)
    both = add_record(
        skill,
        external_id="both",
        phones=[("SMSPhoneNumber", "+13125550011"), ("PhoneNumber", "+13125550012")],
    )
    add_record(skill, external_id="dnc", phones=[("SMSPhoneNumber", "+13125550021")])
    add_record(skill, external_id="stop", phones=[("SMSPhoneNumber", "+13125550031")])
    add_record(skill, external_id="free", phones=[("SMSPhoneNumber", "+13125550041")])
    DncEntryFactory(group=scrubbed, phone_number="+13125550011")
    DncEntryFactory(group=scrubbed, phone_number="+13125550021")
    DncEntryFactory(group=default, phone_number="+13125550031", source=DncEntry.Source.STOP_REPLY)
    DncEntryFactory(group=other, phone_number="+13125550041")
    result = plan_skill(skill=skill, now=NOW)
    assert sorted(planned_ids(skill)) == ["both", "free"]
    assert Attempt.objects.get(record=both).message.to == "+13125550012", "the blocked one skipped"
    assert result.finalized == {"dnc": 1, "opted_out": 1}
    assert Record.objects.get(external_id="stop").final_reason == FinalReason.OPTED_OUT


# --- Budget ----------------------------------------------------------------------------------


def test_the_outbox_holds_a_few_minutes_of_the_codes_pace(bu):
    registration = SmsRegistrationFactory(
        business_unit=bu, transport_code__messages_per_second=Decimal("0.1")
    )  # 18 texts in 180 s
    skill = make_skill(bu, registration=registration)
    for _ in range(30):
        add_record(skill)
    OutboundMessageFactory(
        business_unit=bu, registration=registration, source="elsewhere", segments=3
    )
    assert plan_skill(skill=skill, now=NOW).planned == 15, "18 minus 3 segments queued"
    assert plan_skill(skill=skill, now=NOW).planned == 0


def test_a_shared_code_is_split_by_priority_and_leftovers_go_to_who_needs_them(bu):
    registration = SmsRegistrationFactory(
        business_unit=bu, transport_code__messages_per_second=Decimal("1")
    )  # 180 in 180 s
    high = make_skill(bu, registration=registration, priority=8)
    low = make_skill(bu, registration=registration, priority=2)
    for _ in range(200):
        add_record(high)
        add_record(low)
    tick = plan_tick(now=NOW, kick=False)
    counts = {r.skill_id: r.planned for r in tick.skills}
    assert counts == {high.id: 144, low.id: 36}
    assert plan_tick(now=NOW, kick=False).planned == 0, "the outbox is full"
    # Once the high-priority list is done, the low one gets the whole code.
    OutboundMessage.objects.update(status=MessageStatus.DELIVERED)
    Record.objects.filter(attempts=1).update(is_final=True, final_reason="delivered")
    Record.objects.filter(calling_list__skills=high).update(is_final=True, final_reason="delivered")
    tick = plan_tick(now=NOW + dt.timedelta(hours=2), kick=False)
    assert {r.skill_id: r.planned for r in tick.skills} == {high.id: 0, low.id: 164}


def test_segments_count_against_a_code_that_meters_them(bu):
    registration = SmsRegistrationFactory(
        business_unit=bu, transport_code__messages_per_second=Decimal("0.1")
    )
    skill = make_skill(bu, registration=registration, template__body="x" * 200)  # 2 segments
    for _ in range(20):
        add_record(skill)
    result = plan_skill(skill=skill, now=NOW)
    assert (result.planned, result.cost) == (9, 18)


# --- Too long, stale, expiry, completion -----------------------------------------------------


def test_a_text_over_the_maximum_segments_finalizes_its_record_and_is_reported(skill, bu):
    skill.template.body = "Hello {Customer1}"
    skill.template.save()
    skill.max_segments = 1
    skill.save()
    add_record(skill, external_id="short", customer1="ok")
    add_record(skill, external_id="long", customer1="y" * 200)
    result = plan_skill(skill=skill, now=NOW)
    assert planned_ids(skill) == ["short"]
    assert result.too_long == ["long"]
    assert result.finalized == {"too_long": 1}
    assert Record.objects.get(external_id="long").final_reason == FinalReason.TOO_LONG


def test_stale_texts_are_withdrawn_and_their_records_planned_again(skill):
    skill.stale_minutes = 30
    skill.save()
    record = add_record(skill)
    plan_skill(skill=skill, now=NOW)
    first = OutboundMessage.objects.get()
    result = plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=31))
    assert (result.stale_withdrawn, result.planned) == (1, 1)
    first.refresh_from_db()
    assert (first.status, first.withdraw_reason) == ("withdrawn", WithdrawReason.STALE)
    record.refresh_from_db()
    assert record.attempts == 1, "the withdrawn text does not count"
    assert record.last_attempt_at == NOW + dt.timedelta(minutes=31)
    assert Attempt.objects.get(message=first).outcome == "transient"


def test_expired_records_are_finalized(skill, bu):
    add_record(skill, external_id="dated", expires_on=dt.date(2026, 6, 14))
    old = add_record(skill, external_id="old")
    Record.objects.filter(pk=old.pk).update(created_at=NOW - dt.timedelta(days=31))
    add_record(skill, external_id="fine", expires_on=dt.date(2026, 6, 15))
    result = plan_skill(skill=skill, now=NOW)
    assert planned_ids(skill) == ["fine"]
    assert result.finalized == {"expired": 2}


def test_skill_completes_when_every_record_is_final(skill):
    add_record(skill)
    plan_skill(skill=skill, now=NOW)
    OutboundMessage.objects.update(status=MessageStatus.DELIVERED)
    Record.objects.update(is_final=True, final_reason="delivered")
    result = plan_skill(skill=skill, now=NOW + dt.timedelta(minutes=5))
    assert result.completed
    skill.refresh_from_db()
    assert (skill.state, skill.state_changed_at) == (
        Skill.State.COMPLETED,
        NOW + dt.timedelta(minutes=5),
    )


def test_skill_completes_when_the_rest_can_never_be_texted_again(skill):
    skill.finalize_when_exhausted = False
    skill.max_attempts = 1
    skill.save()
    add_record(skill)
    assert not plan_skill(skill=skill, now=NOW).completed, "its text is queued"
    settle(skill)
    assert plan_skill(skill=skill, now=NOW + dt.timedelta(hours=2)).completed
    assert Record.objects.get().is_final is False


# --- Tick and command ------------------------------------------------------------------------


def test_one_skills_error_does_not_stop_the_others(bu, monkeypatch):
    broken, fine = make_skill(bu), make_skill(bu)
    add_record(broken)
    add_record(fine)
    real = planner._Pass.run

    def run(self):
        if self.skill.id == broken.id:
            raise RuntimeError("boom")
        return real(self)

    monkeypatch.setattr(planner._Pass, "run", run)
    tick = plan_tick(now=NOW, kick=False)
    results = {r.skill_id: r for r in tick.skills}
    assert results[broken.id].error == "RuntimeError: boom"
    assert results[fine.id].planned == 1
    assert not Attempt.objects.filter(skill=broken).exists()


def test_plan_command_json(skill, bu):
    add_record(skill)
    out = StringIO()
    call_command("plan", "--skill", skill.name, "--business-unit", bu.name, "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert [s["skill"] for s in data["skills"]] == [skill.name]
    assert "planned" in data


def test_plan_command_refuses_a_stopped_skill(skill, bu):
    Skill.objects.filter(pk=skill.pk).update(state=Skill.State.STOPPED)
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="not running"):
        call_command("plan", "--skill", skill.name, "--business-unit", bu.name)


@pytest.mark.django_db(transaction=True)
def test_two_passes_at_once_never_plan_a_record_twice():
    if connection.vendor == "sqlite":
        pytest.skip("needs row locks and a database shared by threads (PostgreSQL)")
    skill = make_skill(BusinessUnitFactory())
    for _ in range(300):
        add_record(skill)
    start = threading.Barrier(3)
    results = []

    def run(offset):
        try:
            start.wait()
            results.append(
                plan_skill(skill=skill, now=NOW + dt.timedelta(seconds=offset), kick=False)
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(r.planned for r in results) == 300
    assert Attempt.objects.count() == 300
    assert Attempt.objects.values("record").distinct().count() == 300
