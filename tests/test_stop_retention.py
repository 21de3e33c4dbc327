"""A state's retention of an opt-out (Virginia, SB 1339: a STOP by reply is honoured for at least
10 years): the entry records the rule, its expiry is never before it, and the number is not
texted meanwhile (dnc.services.RETENTION_RULES, skills.dnc_hooks.stop_retention)."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from dnc.models import DncEntry
from messaging.services import inbound_receive
from skills.planner import plan_skill
from tests.test_planner import add_record, make_skill

ARLINGTON = "+17035550142"  # area code 703: Virginia
CHICAGO_NUMBER = "+13125550142"
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
VIRGINIA_RULE = "VA: a STOP is honoured for 10 years (Va. Code 59.1-510 ff. (SB 1339"


@pytest.fixture
def skill(bu):
    return make_skill(bu)


def stop_from(skill, number: str, when: dt.datetime) -> DncEntry:
    code = skill.registration.transport_code
    with time_machine.travel(when, tick=False):
        inbound_receive(
            carrier_sid=f"SM{number[2:]:0>32}", from_number=number, to_number=code.number,
            body="STOP",
        )  # fmt: skip
    return DncEntry.objects.get(phone_number=number)


def test_a_virginia_stop_is_kept_ten_years_and_the_number_is_not_texted(skill):
    entry = stop_from(skill, ARLINGTON, dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC))
    assert entry.source == DncEntry.Source.STOP_REPLY
    assert entry.retain_until == dt.date(2036, 3, 2)
    assert entry.retention_rule.startswith(VIRGINIA_RULE)

    # Nine years later, across many DST changes, a new list has the number: never texted.
    add_record(
        skill, phones=[("SMSPhoneNumber", ARLINGTON)], zone="America/New_York",
        expires_on=dt.date(2036, 1, 31),
    )  # fmt: skip
    later = dt.datetime(2035, 11, 5, 12, tzinfo=NEW_YORK)
    result = plan_skill(skill=skill, now=later)
    assert (result.planned, dict(result.finalized)) == (0, {"opted_out": 1})

    out = StringIO()
    call_command("evidence", ARLINGTON, "--json", stdout=out)
    [dnc] = json.loads(out.getvalue())["dnc_entries"]
    assert dnc["retain_until"] == "2036-03-02"
    assert dnc["retention_rule"].startswith(VIRGINIA_RULE)


def test_its_expiry_cannot_be_set_before_the_retention(client, skill, staff_member):
    entry = stop_from(skill, ARLINGTON, dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC))
    client.force_login(staff_member)
    url = reverse("admin:dnc_dncentry_change", args=[entry.pk])
    page = client.post(
        url,
        {
            "group": entry.group_id,
            "phone_number": ARLINGTON,
            "expires_on": "2027-01-01",
            "collected_at_0": "2026-03-02",
            "collected_at_1": "15:00:00",
            "evidence": entry.evidence,
        },
    )
    assert page.status_code == 200
    assert "This opt-out must be kept until 2036-03-02 (VA: a STOP is honoured" in (
        page.content.decode()
    )
    entry.refresh_from_db()
    assert entry.expires_on is None, "unchanged"
    with pytest.raises(IntegrityError), transaction.atomic():
        DncEntry.objects.filter(pk=entry.pk).update(expires_on=dt.date(2030, 1, 1))


def test_a_stop_without_a_retention_rule_has_none(skill):
    entry = stop_from(skill, CHICAGO_NUMBER, dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC))
    assert (entry.retain_until, entry.retention_rule) == (None, "")


def test_the_records_address_brings_its_states_retention(skill):
    """A Chicago number of a Virginia resident: the record's state decides."""
    add_record(skill, phones=[("SMSPhoneNumber", CHICAGO_NUMBER)], state="Virginia")
    entry = stop_from(skill, CHICAGO_NUMBER, dt.datetime(2028, 2, 29, 15, tzinfo=dt.UTC))
    assert entry.retain_until == dt.date(2038, 2, 28), "29 February, ten years on"
