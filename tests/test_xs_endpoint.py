"""The CRM endpoint of a skill's XS settings: a CRM pushes records to a skill with its key."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from skills.models import CallingList, CustomField, Record, Skill, UploadJob
from skills.xs import XS_MAX_RECORDS, skill_xs_key_issue
from tests.factories import SkillFactory


@pytest.fixture
def skill(bu):
    return SkillFactory(business_unit=bu, name="Visits", xs_enabled=True)


@pytest.fixture
def key(skill):
    return skill_xs_key_issue(skill=skill)


def _push(client, skill, key, body, *, scheme="Bearer"):
    return client.post(
        reverse("xs_records", args=[skill.pk]),
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"{scheme} {key}",
    )


RECORDS = [
    {
        "ExternalId": "C-1",
        "FirstName": "Ada",
        "PhoneNumber": "(312) 555-0123",
        "Visit": "2027-01-05",
    },
    {"ExternalId": "C-2", "FirstName": "Bob", "PhoneNumber": "555", "Visit": "2027-01-06"},
    {"ExternalId": "C-3", "FirstName": None, "SMS": "+12125550100", "Visit": "2027-01-07"},
]


def test_pushed_records_land_in_the_skills_crm_list(client, skill, key):
    response = _push(client, skill, key, {"records": RECORDS})

    assert response.status_code == 200
    data = response.json()
    assert (data["processed"], data["valid"], data["invalid"]) == (3, 2, 1)
    assert data["calling_list"] == "Visits (CRM)"
    [error] = data["errors"]
    assert error["index"] == 1 and "phone" in error["reason"].lower()  # records[1]
    crm_list = CallingList.objects.get(name="Visits (CRM)")
    assert crm_list in skill.calling_lists.all()  # the skill texts it
    ada = Record.objects.get(calling_list=crm_list, external_id="C-1")
    assert ada.destinations.get().phone_number == "+13125550123"
    assert ada.custom == {"Visit": "2027-01-05"}
    assert CustomField.objects.get(calling_list=crm_list, name="Visit").field_type == "date"
    cy = Record.objects.get(external_id="C-3")
    assert cy.destinations.get().source_field == "SMSPhoneNumber"
    # Every push is an upload job, seen in the admin like any other.
    assert UploadJob.objects.get(pk=data["upload_job"]).status == UploadJob.Status.COMPLETED


def test_a_record_sent_again_is_updated(client, skill, key):
    _push(client, skill, key, {"records": RECORDS[:1]})

    again = [{**RECORDS[0], "FirstName": "Adeline"}]
    response = _push(client, skill, key, {"records": again})

    assert response.json()["valid"] == 1
    assert Record.objects.get(external_id="C-1").first_name == "Adeline"
    assert Record.objects.filter(external_id="C-1").count() == 1


def test_append_mode_refuses_a_record_already_there(client, skill, key):
    _push(client, skill, key, {"records": RECORDS[:1]})

    response = _push(client, skill, key, {"records": RECORDS[:1], "mode": "append"})

    assert response.json()["errors"][0]["reason"].startswith("ExternalId 'C-1' is already")


def test_a_default_zone_for_records_without_one(client, skill, key):
    toll_free = [{"ExternalId": "Z-1", "PhoneNumber": "+18005550199"}]  # a number with no zone

    refused = _push(client, skill, key, {"records": toll_free})
    kept = _push(client, skill, key, {"records": toll_free, "default_time_zone": "CST"})

    assert (refused.json()["valid"], refused.json()["invalid"]) == (0, 1)
    assert "time zone" in refused.json()["errors"][0]["reason"].lower()
    assert kept.json()["valid"] == 1
    assert Record.objects.get(external_id="Z-1").time_zone == "America/Chicago"


@pytest.mark.parametrize(
    ("scheme", "wrong"),
    [("Bearer", "not-the-key"), ("Basic", None), ("", None)],
)
def test_a_wrong_or_missing_key_is_refused(client, skill, key, scheme, wrong):
    response = _push(client, skill, wrong or key, {"records": RECORDS}, scheme=scheme)

    assert response.status_code == 401
    assert not Record.objects.exists() and not UploadJob.objects.exists()


def test_an_unknown_skill_looks_like_a_wrong_key(client, skill, key):
    response = client.post(
        reverse("xs_records", args=[skill.pk + 100]),
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert response.status_code == 401


def test_a_new_key_retires_the_old_one(client, skill, key):
    new = skill_xs_key_issue(skill=skill)

    assert _push(client, skill, key, {"records": RECORDS}).status_code == 401
    assert _push(client, skill, new, {"records": RECORDS}).status_code == 200


def test_the_endpoint_switched_off_refuses(client, skill, key):
    Skill.objects.filter(pk=skill.pk).update(xs_enabled=False)

    response = _push(client, skill, key, {"records": RECORDS})

    assert response.status_code == 403 and "switched off" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("not json", 400, "The body is not JSON"),
        ([], 400, 'The body must be an object with "records".'),
        ({"records": []}, 400, '"records" must be a non-empty array of objects.'),
        ({"records": ["x"]}, 400, "records[0] is not an object."),
        ({"records": [{"ExternalId": {"a": 1}}]}, 400, "records[0].ExternalId: a value must"),
        ({"records": [{"Name": "x"}]}, 400, "phone"),
        ({"records": RECORDS, "mode": "merge"}, 400, '"mode" must be one of'),
        ({"records": RECORDS, "default_time_zone": "Mars"}, 400, "is not a time zone"),
        ({"records": [{}] * (XS_MAX_RECORDS + 1)}, 413, "at most 10,000"),
    ],
)
def test_a_request_that_cannot_be_read_imports_nothing(client, skill, key, body, status, message):
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.post(
        reverse("xs_records", args=[skill.pk]),
        data=raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert response.status_code == status
    assert message.lower() in response.json()["error"].lower()
    assert not Record.objects.exists()


def test_only_post(client, skill, key):
    response = client.get(
        reverse("xs_records", args=[skill.pk]), HTTP_AUTHORIZATION=f"Bearer {key}"
    )

    assert response.status_code == 405


def test_the_admin_issues_a_key_and_shows_the_endpoint(client, staff_member, skill):
    client.force_login(staff_member)

    response = client.post(
        reverse("admin:skills_skill_changelist"),
        {"action": "issue_xs_keys", "index": "0", helpers.ACTION_CHECKBOX_NAME: [skill.pk]},
        follow=True,
    )
    [message] = [str(m) for m in response.context["messages"]]
    key = message.split(": ", 1)[1].split(" ", 1)[0]

    assert _push(client, skill, key, {"records": RECORDS[:1]}).status_code == 200
    page = client.get(reverse("admin:skills_skill_change", args=[skill.pk])).content.decode()
    assert reverse("xs_records", args=[skill.pk]) in page
