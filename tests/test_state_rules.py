"""State rules at work in the planner and at the moment of sending: the recipient's state from
the area code, a business unit's stricter rules, blackouts, frequency caps across skills, and
the ledger that names the rule behind every text held back (skills.windows, skills.guards).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.urls import reverse

from messaging.backends import locmem
from messaging.models import MessageStatus, OutboundMessage, WithdrawReason
from messaging.sender import CodeSender
from skills import guards
from skills.models import Blackout, Record, RuleHold, SendingWindowPreset
from skills.planner import plan_skill
from tests.factories import StateRuleOverrideFactory
from tests.test_outcomes import hand_over
from tests.test_planner import add_record, make_skill

UTC = dt.UTC
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
AUSTIN = "+15125550101"  # area code 512: Texas
MIAMI = "+13055550102"  # area code 305: Florida
NEW_ORLEANS = "+15045550103"  # area code 504: Louisiana


@pytest.fixture(autouse=True)
def _outbox(settings):
    settings.SENDER_RELEASE_QUIET = 0
    locmem.reset()
    yield
    locmem.reset()


@pytest.fixture(autouse=True)
def _rules_read_afresh():
    guards._policies.clear()  # each test's rules, whatever the ids of the last test's skills


@pytest.fixture
def skill(bu):
    return make_skill(bu)


def send_now(skill, now: dt.datetime) -> None:
    """Run the skill's sender once at ``now`` (the carrier is the in-memory one)."""
    with time_machine.travel(now, tick=True):
        CodeSender(skill.registration.transport_code_id, idle_exit=0, concurrency=0).run_inline()


# --- The recipient's state from the area code ----------------------------------------------


def test_a_number_without_an_address_is_held_by_its_area_codes_state(skill):
    """No state on the record, a Texas number, Sunday 1 Nov 2026 (the clocks went back at 2:00):
    Texas starts at noon on Sundays, 18:00 UTC that day. The hold is kept once with its rule,
    the record is not read again until then, and it is texted at noon."""
    record = add_record(skill, phones=[("SMSPhoneNumber", AUSTIN)], state="")
    morning = dt.datetime(2026, 11, 1, 10, 0, tzinfo=CHICAGO)
    result = plan_skill(skill=skill, now=morning)
    assert (result.planned, result.skipped["window_closed"]) == (0, 1)
    hold = RuleHold.objects.get()
    assert (hold.rule, hold.kind, hold.phone_number) == (
        "TX: Sunday hours 12:00-21:00",
        RuleHold.Kind.HOURS,
        AUSTIN,
    )
    assert hold.held_until == dt.datetime(2026, 11, 1, 18, 0, tzinfo=UTC)
    assert hold.record == record and hold.skill == skill
    record.refresh_from_db()
    assert record.held_by == "TX: Sunday hours 12:00-21:00"
    assert record.held_until == morning + dt.timedelta(minutes=10), "looked at again soon"

    again = plan_skill(skill=skill, now=morning + dt.timedelta(minutes=5))
    assert again.scanned == 0, "a held record is not read at every pass"
    later = plan_skill(skill=skill, now=morning + dt.timedelta(minutes=11))
    assert later.scanned == 1 and RuleHold.objects.count() == 1, "the same hold, kept once"

    noon = dt.datetime(2026, 11, 1, 12, 0, tzinfo=CHICAGO)
    assert plan_skill(skill=skill, now=noon).planned == 1
    record.refresh_from_db()
    assert (record.held_by, record.held_until) == ("", None)


def test_the_address_wins_over_the_area_code(skill):
    """A Texas number of someone who lives in Illinois: Illinois has no Sunday rule."""
    add_record(skill, phones=[("SMSPhoneNumber", AUSTIN)], state="IL")
    morning = dt.datetime(2026, 11, 1, 10, 0, tzinfo=CHICAGO)
    assert plan_skill(skill=skill, now=morning).planned == 1


# --- A business unit's stricter rule -------------------------------------------------------


def test_a_business_units_own_texas_hours_hold_only_its_skills(skill, other_bu):
    texas = SendingWindowPreset.objects.get(code="TX")
    StateRuleOverrideFactory(
        business_unit=skill.business_unit,
        preset=texas,
        start_time=dt.time(10),
        end_time=dt.time(19),
        source="Our counsel's advice",
    )
    other = make_skill(other_bu)
    add_record(skill, phones=[("SMSPhoneNumber", AUSTIN)], state="TX")
    add_record(other, phones=[("SMSPhoneNumber", AUSTIN)], state="TX")
    monday = dt.datetime(2026, 6, 15, 9, 30, tzinfo=CHICAGO)
    assert plan_skill(skill=skill, now=monday).planned == 0
    assert plan_skill(skill=other, now=monday).planned == 1, "the other BU keeps the law's 09:00"
    hold = RuleHold.objects.get()
    assert hold.rule == f"TX ({skill.business_unit.name}): hours 10:00-19:00"
    assert hold.source == "Our counsel's advice"


def test_an_override_never_widens_the_law(skill):
    texas = SendingWindowPreset.objects.get(code="TX")
    StateRuleOverrideFactory(
        business_unit=skill.business_unit, preset=texas, start_time=dt.time(7), end_time=dt.time(22)
    )
    add_record(skill, phones=[("SMSPhoneNumber", AUSTIN)], state="TX")
    early = dt.datetime(2026, 6, 15, 8, 30, tzinfo=CHICAGO)
    assert plan_skill(skill=skill, now=early).planned == 0
    assert RuleHold.objects.get().rule == "TX: hours 09:00-21:00"


# --- Blackouts ------------------------------------------------------------------------------


def test_a_declared_blackout_holds_louisiana_and_withdraws_its_queued_texts(
    client, skill, staff_member
):
    """A compliance owner declares a state of emergency in Louisiana in the admin: the planner
    texts no one there, and a text queued before the declaration is withdrawn at the moment
    of sending, with the blackout named; Texas is not affected."""
    noon = dt.datetime(2026, 6, 16, 12, 0, tzinfo=CHICAGO)
    queued_before = add_record(skill, phones=[("SMSPhoneNumber", NEW_ORLEANS)], state="LA")
    assert plan_skill(skill=skill, now=noon).planned == 1
    client.force_login(staff_member)
    response = client.post(
        reverse("admin:skills_blackout_add"),
        {
            "business_unit": skill.business_unit_id,
            "reason": "Hurricane state of emergency",
            "states": '["la"]',
            "starts_at_0": "2026-06-16",
            "starts_at_1": "00:00:00",
            "ends_at_0": "2026-06-30",
            "ends_at_1": "00:00:00",
            "source": "Governor's proclamation JML 26-101",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    blackout = Blackout.objects.get()
    assert blackout.states == ["LA"] and blackout.declared_by == staff_member

    add_record(skill, phones=[("SMSPhoneNumber", NEW_ORLEANS)], state="Louisiana")
    add_record(skill, phones=[("SMSPhoneNumber", AUSTIN)], state="TX")
    after = noon + dt.timedelta(minutes=1)
    assert plan_skill(skill=skill, now=after).planned == 1, "only the Texan"

    send_now(skill, after + dt.timedelta(seconds=5))
    message = OutboundMessage.objects.get(attempt__record=queued_before)
    assert message.status == MessageStatus.WITHDRAWN
    assert message.withdraw_reason == WithdrawReason.STATE_RULE
    texan = OutboundMessage.objects.get(to=AUSTIN)
    assert texan.status == MessageStatus.SENT
    holds = RuleHold.objects.filter(kind=RuleHold.Kind.BLACKOUT)
    assert {h.rule for h in holds} == {"blackout: Hurricane state of emergency"}
    assert holds.filter(message=message).count() == 1, "the withdrawn text names its rule"
    assert {h.source for h in holds} == {"Governor's proclamation JML 26-101"}
    queued_before.refresh_from_db()
    assert queued_before.held_by == "blackout: Hurricane state of emergency"


def test_a_blackout_of_another_business_unit_holds_nothing_here(skill, other_bu):
    Blackout.objects.create(
        business_unit=other_bu,
        states=["LA"],
        starts_at=dt.datetime(2026, 6, 1, tzinfo=UTC),
        reason="Their emergency",
    )
    add_record(skill, phones=[("SMSPhoneNumber", NEW_ORLEANS)], state="LA")
    assert plan_skill(skill=skill, now=dt.datetime(2026, 6, 16, 12, tzinfo=CHICAGO)).planned == 1


# --- Frequency caps across the skills of a business unit -----------------------------------


def test_a_florida_cap_of_3_in_24_hours_across_two_skills_and_the_dst_change(bu):
    """Florida: 3 texts per 24 hours to one number, from any skill. Two skills text one
    number on Saturday 31 Oct 2026 from noon (EDT); the clocks go back at 2:00 on Sunday. The
    fourth text waits until 24 hours after the first: 11:00 EST on Sunday, not noon."""
    first, second = make_skill(bu, name="Reminders"), make_skill(bu, name="Offers")
    for skill, ids in ((first, ["A1", "A2"]), (second, ["B1", "B2"])):
        for external_id in ids:
            add_record(
                skill, phones=[("SMSPhoneNumber", MIAMI)], zone="America/New_York", state="FL",
                external_id=external_id,
            )  # fmt: skip
    saturday = dt.datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK)
    assert plan_skill(skill=first, now=saturday).planned == 2
    hand_over(first)
    result = plan_skill(skill=second, now=saturday + dt.timedelta(hours=1))
    assert (result.planned, result.skipped["daily_cap"]) == (1, 1)
    hand_over(second)
    hold = RuleHold.objects.get()
    assert hold.rule == "FL: at most 3 texts to a number in 24 hours"
    assert hold.kind == RuleHold.Kind.CAP and hold.skill == second
    assert hold.held_until == dt.datetime(2026, 11, 1, 16, 0, tzinfo=UTC)
    assert hold.held_until.astimezone(NEW_YORK).hour == 11, "11:00 EST, 24 hours after noon EDT"

    sunday = dt.datetime(2026, 11, 1, 10, 59, tzinfo=NEW_YORK)
    assert plan_skill(skill=second, now=sunday).planned == 0
    assert plan_skill(skill=second, now=sunday + dt.timedelta(minutes=1)).planned == 1


def test_the_cap_holds_at_the_moment_of_sending(bu):
    """Four texts to one Florida number were queued by two skills while the cap was 5; the
    compliance owner sets it back to 3: the sender hands over three and withdraws the fourth,
    naming the cap."""
    florida = SendingWindowPreset.objects.get(code="FL")
    florida.max_per_24h = 5
    florida.save()
    first, second = make_skill(bu, name="Reminders"), make_skill(bu, name="Offers")
    for skill in (first, second):
        for _ in range(2):
            add_record(skill, phones=[("SMSPhoneNumber", MIAMI)], zone="America/New_York")
    noon = dt.datetime(2026, 6, 16, 12, 0, tzinfo=NEW_YORK)
    assert plan_skill(skill=first, now=noon).planned == 2
    assert plan_skill(skill=second, now=noon).planned == 2
    florida.max_per_24h = 3
    florida.save()
    send_now(first, noon + dt.timedelta(seconds=5))
    send_now(second, noon + dt.timedelta(seconds=10))
    statuses = sorted(OutboundMessage.objects.values_list("status", "withdraw_reason"))
    assert statuses == [("sent", "")] * 3 + [("withdrawn", WithdrawReason.FREQUENCY_CAP)]
    hold = RuleHold.objects.get(message__status=MessageStatus.WITHDRAWN)
    assert hold.rule == "FL: at most 3 texts to a number in 24 hours"


def test_a_business_unit_wide_cap_holds_every_state(bu):
    bu.max_texts_per_24h = 1
    bu.save()
    first, second = make_skill(bu, name="Reminders"), make_skill(bu, name="Offers")
    number = "+13125550104"  # Illinois: no state cap
    add_record(first, phones=[("SMSPhoneNumber", number)])
    add_record(second, phones=[("SMSPhoneNumber", number)])
    noon = dt.datetime(2026, 6, 16, 12, 0, tzinfo=CHICAGO)
    assert plan_skill(skill=first, now=noon).planned == 1
    assert plan_skill(skill=second, now=noon).planned == 0
    assert RuleHold.objects.get().rule == f"{bu.name}: at most 1 text to a number in 24 hours"


def test_oregons_cap_lapses_for_a_recent_customer(bu):
    """Oregon (HB 3865): 3 a day, unless the customer bought within the prior 18 months; the
    business unit names the record field that holds the last purchase date."""
    skill = make_skill(bu)
    portland = "+15035550105"
    for external_id, purchase in (("R1", "2025-09-01"), ("R2", "2025-09-01"), ("R3", "")):
        add_record(
            skill, phones=[("SMSPhoneNumber", portland)], zone="America/Los_Angeles",
            external_id=external_id, custom={"LastPurchaseDate": purchase} if purchase else {},
        )  # fmt: skip
    for external_id in ("R4", "R5"):
        add_record(
            skill, phones=[("SMSPhoneNumber", portland)], zone="America/Los_Angeles",
            external_id=external_id, custom={"LastPurchaseDate": "2023-01-01"},
        )  # fmt: skip
    noon = dt.datetime(2026, 6, 16, 12, 0, tzinfo=zoneinfo.ZoneInfo("America/Los_Angeles"))
    result = plan_skill(skill=skill, now=noon)
    planned = set(
        Record.objects.filter(attempt_set__isnull=False).values_list("external_id", flat=True)
    )
    # R1 and R2 bought recently: the cap does not stop them. It stops R4 and R5 (an old
    # purchase) once the number has had three texts.
    assert planned == {"R1", "R2", "R3"}
    assert result.skipped["daily_cap"] == 2
    assert set(RuleHold.objects.values_list("rule", flat=True)) == {
        "OR: at most 3 texts to a number in 24 hours"
    }
