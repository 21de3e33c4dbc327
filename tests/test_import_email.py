"""Calling lists with email addresses: the Email system field and custom email fields become
destinations beside the phones, normalised, in column order; a bad address is reported like a
bad number. Run on each of the import's paths (straight into the tables on PostgreSQL, the
staged commit in replace mode and on SQLite)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from messaging.models import Channel
from skills.models import CustomField, FieldType, Record, UploadJob
from skills.xs import skill_xs_key_issue
from tests.factories import CallingListFactory, SkillFactory
from tests.imports import numbers, records, report, run_import

DATA = (
    "ExternalId,FirstName,Phone,Email,Work email,TimeZone\n"
    "E1,Ada,3125550123,Ada.Lovelace@Example.COM,ada@work.example,America/Chicago\n"
    "E2,Grace,,grace@example.com,,America/New_York\n"
    "E3,Alan,3125550125,not-an-address,,America/Chicago\n"
    "E4,Hedy,,no-at-sign,,America/Chicago\n"
)


@pytest.fixture
def calling_list(bu):
    return CallingListFactory(business_unit=bu, name="Patients")


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_email_columns_become_destinations_beside_the_phones(calling_list, mode):
    job = run_import(calling_list, "emails.csv", DATA, mode=mode)

    assert job.status == UploadJob.Status.COMPLETED, job.message
    assert (job.rows_valid, job.rows_invalid) == (3, 1)
    got = records(calling_list)
    assert numbers(got["E1"]) == [
        (0, "PhoneNumber", "+13125550123", "America/Chicago"),
        (1, "Email", "ada.lovelace@example.com", "America/Chicago"),
        (2, "WorkEmail", "ada@work.example", "America/Chicago"),
    ]
    assert [d.channel for d in got["E1"].destinations.order_by("position")] == [
        "sms",
        "email",
        "email",
    ]
    # An address alone is enough for a record; its zone is the record's.
    assert numbers(got["E2"]) == [(0, "Email", "grace@example.com", "America/New_York")]
    # A bad address beside a good number: imported, with a warning.
    assert numbers(got["E3"]) == [(0, "PhoneNumber", "+13125550125", "America/Chicago")]
    field = CustomField.objects.get(calling_list=calling_list, name="WorkEmail")
    assert field.field_type == FieldType.EMAIL
    rows = {r["row"]: r for r in report(job)}
    assert "Email 'not-an-address' is not a valid email address" in rows["4"]["reason"]
    assert rows["5"]["reason"].startswith(
        "No valid phone number or email address: Email 'no-at-sign' is not a valid email address"
    )
    assert "E4" not in got


def test_a_crm_pushes_records_with_addresses_to_an_email_skill(client, bu):
    skill = SkillFactory(business_unit=bu, name="Mail", channel=Channel.EMAIL, xs_enabled=True)
    key = skill_xs_key_issue(skill=skill)
    records = [
        {"ExternalId": "M-1", "FirstName": "Ada", "Email": "ADA@example.com", "Zip": "60601"},
        {"ExternalId": "M-2", "FirstName": "Bob", "Email": "bob@", "Zip": "60601"},
    ]
    response = client.post(
        reverse("xs_records", args=[skill.pk]),
        data=json.dumps({"records": records}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 200
    data = response.json()
    assert (data["valid"], data["invalid"]) == (1, 1)
    assert "email address" in data["errors"][0]["reason"]
    ada = Record.objects.get(external_id="M-1")
    assert ada.destinations.get().phone_number == "ada@example.com"
