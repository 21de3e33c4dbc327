"""The tick's record sweep: it finalizes the open records that expired (by their own date or
by age) or used every attempt, and leaves the rest and those whose text may still reach them."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from skills.models import Attempt, FinalReason, Record
from skills.sweeps import sweep_records
from tests.factories import AttemptFactory
from tests.test_planner import add_record, make_skill


def test_the_sweep_finalizes_expired_and_exhausted_records_only(bu):
    now = timezone.now()
    skill = make_skill(bu, max_attempts=2, finalize_when_exhausted=True, contact_expiration_days=30)
    add_record(skill, external_id="DATED", expires_on=dt.date(2020, 1, 1))
    add_record(skill, external_id="KEPT", expires_on=now.date() + dt.timedelta(days=3))
    old = add_record(skill, external_id="OLD")
    Record.objects.filter(pk=old.pk).update(created_at=now - dt.timedelta(days=31))
    add_record(skill, external_id="YOUNG")
    used = add_record(skill, external_id="USED")
    Record.objects.filter(pk=used.pk).update(attempts=2)
    in_flight = add_record(skill, external_id="IN_FLIGHT")
    Record.objects.filter(pk=in_flight.pk).update(attempts=2)
    AttemptFactory(skill=skill, record=in_flight, destination=in_flight.destinations.get())

    counts = sweep_records(skill=skill, now=now)

    assert counts == {FinalReason.EXPIRED: 2, FinalReason.EXHAUSTED: 1}
    reasons = dict(Record.objects.values_list("external_id", "final_reason"))
    assert reasons == {
        "DATED": FinalReason.EXPIRED,
        "KEPT": "",
        "OLD": FinalReason.EXPIRED,
        "YOUNG": "",
        "USED": FinalReason.EXHAUSTED,
        "IN_FLIGHT": "",  # its text is queued: it may still reach the person
    }
    assert Attempt.objects.count() == 1
