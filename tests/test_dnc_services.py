"""DNC writes: opt-out and opt-in, entries, the default group, deactivation of a used group."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from dnc.models import DncEntry, DncGroup
from dnc.services import (
    OPT_OUT_LISTENERS,
    dnc_default_group,
    dnc_entry_add,
    dnc_group_set_active,
    dnc_opt_in,
    dnc_opt_out,
    normalise_phone,
)
from messaging.models import MessageStatus, WithdrawReason
from messaging.services import phone_opt_out
from tests.factories import (
    BusinessUnitFactory,
    DncEntryFactory,
    DncGroupFactory,
    OutboundMessageFactory,
    SkillFactory,
)

NUMBER = "+13125550123"


def test_default_group_is_created_once_when_missing(bu):
    group = dnc_default_group(business_unit=bu)
    assert (group.name, group.is_default, group.is_active) == ("Default DNC", True, True)
    assert dnc_default_group(business_unit=bu) == group
    assert DncGroup.objects.filter(business_unit=bu).count() == 1


def test_an_existing_group_named_default_dnc_becomes_the_default(bu):
    named = DncGroupFactory(business_unit=bu, name="Default DNC", is_active=False)
    assert dnc_default_group(business_unit=bu) == named
    named.refresh_from_db()
    assert named.is_default and named.is_active


def test_opt_out_is_written_once_and_says_whether_it_was_new(bu):
    group = DncGroupFactory(business_unit=bu, is_default=True)
    first = dnc_opt_out(business_unit=bu, phone_number=NUMBER, evidence="STOP")
    assert not first.already_opted_out
    assert [e.group for e in first.entries] == [group]
    second = dnc_opt_out(business_unit=bu, phone_number=NUMBER, evidence="STOP again")
    assert second.already_opted_out and second.entries == []
    assert group.entries.get().evidence == "STOP"


def test_a_manual_entry_is_not_an_opt_out_and_is_never_relabelled(bu):
    group = DncGroupFactory(business_unit=bu, is_default=True)
    manual = DncEntryFactory(group=group, phone_number=NUMBER, source=DncEntry.Source.MANUAL)
    result = dnc_opt_out(business_unit=bu, phone_number=NUMBER, evidence="STOP")
    assert not result.already_opted_out  # a manual entry is no recipient opt-out...
    manual.refresh_from_db()
    assert manual.source == DncEntry.Source.MANUAL  # ...and stays manual (opt-in keeps it)


def test_an_expired_entry_blocks_again_for_the_new_reason(bu):
    group = DncGroupFactory(business_unit=bu)
    old = DncEntryFactory(
        group=group,
        phone_number=NUMBER,
        source=DncEntry.Source.FILE_IMPORT,
        collected_at=timezone.now() - dt.timedelta(days=90),
        expires_on=timezone.localdate() - dt.timedelta(days=1),
    )
    entry, changed = dnc_entry_add(
        group=group, phone_number=NUMBER, source=DncEntry.Source.STOP_REPLY, evidence="STOP"
    )
    assert changed and entry.pk == old.pk
    old.refresh_from_db()
    assert (old.source, old.expires_on, old.evidence) == ("stop_reply", None, "STOP")


def test_opt_out_withdraws_queued_texts_to_that_number_in_that_bu_only(bu, other_bu):
    mine = OutboundMessageFactory(business_unit=bu, to=NUMBER)
    sending = OutboundMessageFactory(business_unit=bu, to=NUMBER, status=MessageStatus.SENDING)
    theirs = OutboundMessageFactory(business_unit=other_bu, to=NUMBER)
    result = phone_opt_out(business_unit=bu, phone_number=NUMBER, evidence="STOP")
    for message in (mine, sending, theirs):
        message.refresh_from_db()
    assert (mine.status, mine.withdraw_reason) == ("withdrawn", WithdrawReason.OPTED_OUT)
    assert sending.status == MessageStatus.SENDING  # already in flight: not ours to change
    assert theirs.status == MessageStatus.QUEUED
    assert "withdrew 1 queued text(s)" in result.notes


def test_listeners_run_before_the_entry_exists_inside_the_transaction(bu):
    seen = []

    def listener(opt_out):
        seen.append(DncEntry.objects.filter(phone_number=opt_out.phone_number).exists())

    OPT_OUT_LISTENERS.append(listener)
    try:
        dnc_opt_out(business_unit=bu, phone_number=NUMBER)
    finally:
        OPT_OUT_LISTENERS.remove(listener)
    assert seen == [False]
    assert DncEntry.objects.filter(phone_number=NUMBER).exists()


def test_opt_in_removes_only_recipient_entries_of_that_bu(bu, other_bu):
    kept = {}
    for source in DncEntry.Source.values:
        kept[source] = DncEntryFactory(
            group=DncGroupFactory(business_unit=bu), phone_number=NUMBER, source=source
        )
    other = DncEntryFactory(
        group=DncGroupFactory(business_unit=other_bu),
        phone_number=NUMBER,
        source=DncEntry.Source.STOP_REPLY,
    )
    result = dnc_opt_in(business_unit=bu, phone_number=NUMBER)
    assert result.removed == 2
    left = set(DncEntry.objects.filter(group__business_unit=bu).values_list("source", flat=True))
    assert left == set(DncEntry.Source.values) - set(DncEntry.RECIPIENT_SOURCES)
    # A manual, file, carrier, API entry, and an email unsubscribe or complaint (a text's START
    # does not undo an email opt-out) each still blocks in its own group.
    assert len(result.still_blocked_in) == 6
    assert DncEntry.objects.filter(pk=other.pk).exists()


def test_a_group_used_by_a_skill_cannot_be_deactivated_and_the_message_names_it(bu):
    group = DncGroupFactory(business_unit=bu, name="Scrub me")
    scrubbing = SkillFactory(business_unit=bu, name="Reminders")
    contributing = SkillFactory(business_unit=bu, name="Collections")
    scrubbing.scrubbed_dnc_groups.add(group)
    contributing.contributing_dnc_groups.add(group)
    with pytest.raises(ValidationError) as raised:
        dnc_group_set_active(group=group, is_active=False)
    assert "Collections, Reminders" in str(raised.value)
    # The model's clean (what every form calls) refuses it too.
    group.is_active = False
    with pytest.raises(ValidationError) as raised:
        group.full_clean()
    assert "Reminders" in str(raised.value.message_dict["is_active"])
    group.refresh_from_db()
    assert group.is_active
    scrubbing.scrubbed_dnc_groups.clear()
    contributing.contributing_dnc_groups.clear()
    assert not dnc_group_set_active(group=group, is_active=False).is_active


def test_an_unused_group_deactivates_and_an_inactive_group_can_still_be_edited(bu):
    group = DncGroupFactory(business_unit=bu)
    group.is_active = False
    group.full_clean()
    group.save()
    SkillFactory(business_unit=bu).scrubbed_dnc_groups.add(group)  # attached while inactive
    group.description = "kept for the record"
    group.full_clean()  # already inactive: not a deactivation


def test_the_default_group_cannot_be_deactivated(bu):
    group = DncGroupFactory(business_unit=bu, is_default=True)
    with pytest.raises(ValidationError):
        dnc_group_set_active(group=group, is_active=False)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(312) 555-0123", "US", NUMBER),
        ("+1 312 555 0123", "GB", NUMBER),
        ("020 7946 0018", "GB", "+442079460018"),
        ("12345", "US", None),
        ("Acme", "US", None),
    ],
)
def test_normalise_phone(raw, region, expected):
    assert normalise_phone(raw, region=region) == expected


def test_opt_out_goes_to_the_given_group_of_the_same_bu_only(bu, other_bu):
    foreign = DncGroupFactory(business_unit=other_bu)
    result = dnc_opt_out(business_unit=BusinessUnitFactory(), phone_number=NUMBER, group=foreign)
    assert result.group != foreign and result.group.is_default
