"""Attacks on the CRM endpoint: without the skill's own key nothing is read or written.

``tests/test_xs_endpoint.py`` has the everyday cases (a wrong key, an unknown skill, the
common malformed bodies); this file adds another skill's key (of the same and of another
business unit), every shape of Authorization header, unknown skills answered exactly like a
wrong key, a switched-off endpoint, bodies that are not JSON a CRM means or over the size
limit, requests the import refuses, and a full 10,000-record push (docs/security.md, "The
public endpoints"). On every error nothing is written: no upload job, list, record or key.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from skills.models import CallingList, Destination, Record, Skill, UploadJob, XsEvent
from skills.xs import XS_MAX_BODY_BYTES, XS_MAX_RECORDS, skill_xs_key_issue
from tests.factories import SkillFactory

NO_HEADER = object()
WRONG_KEY = {"error": "Unknown skill or wrong API key (send Authorization: Bearer <key>)."}


def _written() -> dict:
    """Everything a push can write, as the admin would show it."""
    return {
        "records": sorted(
            Record.objects.values_list("pk", "calling_list_id", "external_id", "first_name")
        ),
        "destinations": sorted(Destination.objects.values_list("pk", "phone_number")),
        "upload_jobs": sorted(UploadJob.objects.values_list("pk", "status")),
        "lists": sorted(CallingList.objects.values_list("pk", "name")),
        "skill_lists": sorted(Skill.calling_lists.through.objects.values_list("pk", flat=True)),
        "skills": sorted(Skill.objects.values_list("pk", "state", "xs_enabled", "xs_api_key_hash")),
        "crm_events": XsEvent.objects.count(),
    }


def _push(client, skill, key, body: bytes | str, *, header=None, skill_id=None):
    extra = {}
    if header is not NO_HEADER:
        extra["HTTP_AUTHORIZATION"] = header if header is not None else f"Bearer {key}"
    return client.post(
        reverse("xs_records", args=[skill_id if skill_id is not None else skill.pk]),
        data=body,
        content_type="application/json",
        **extra,
    )


def _records(count: int) -> list[dict]:
    return [
        {"ExternalId": f"C-{n}", "PhoneNumber": f"+1312555{n % 10_000:04d}"} for n in range(count)
    ]


ONE = json.dumps(
    {"records": [{"ExternalId": "C-0", "FirstName": "Eve", "PhoneNumber": "+13125550100"}]}
)


@pytest.fixture
def skill(bu):
    return SkillFactory(business_unit=bu, name="Visits", xs_enabled=True)


@pytest.fixture
def key(skill):
    return skill_xs_key_issue(skill=skill)


@pytest.fixture
def pushed(client, skill, key):
    """One earlier push: the skill's CRM list exists and holds record C-0 (Ada)."""
    body = {"records": [{"ExternalId": "C-0", "FirstName": "Ada", "PhoneNumber": "+13125550100"}]}
    assert _push(client, skill, key, json.dumps(body)).status_code == 200
    return Record.objects.get(external_id="C-0")


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["same_bu", "other_bu"])
def test_another_skills_key_is_refused(client, skill, key, pushed, bu, other_bu, where):
    other = SkillFactory(business_unit=bu if where == "same_bu" else other_bu, xs_enabled=True)
    other_key = skill_xs_key_issue(skill=other)
    before = _written()
    response = _push(client, skill, other_key, ONE)
    assert response.status_code == 401
    # The same answer as a wrong key: nothing says the skill exists or whose it is.
    assert response.json() == WRONG_KEY
    assert skill.name not in response.content.decode()
    assert _written() == before
    # And the other way round: this skill's key opens nothing of the other skill.
    assert _push(client, other, key, ONE).status_code == 401
    assert _written() == before


@pytest.mark.parametrize(
    "header",
    [NO_HEADER, "", "Bearer", "Bearer ", "Basic abc", "bearer wrong", "Token {key}", "{key}"],
)
def test_a_missing_or_malformed_authorization_is_401(client, skill, key, pushed, header):
    before = _written()
    if header is not NO_HEADER:
        header = header.format(key=key)
    response = _push(client, skill, key, ONE, header=header)
    assert response.status_code == 401
    assert response.json() == WRONG_KEY
    assert _written() == before


def test_a_skill_without_a_key_opens_to_none(client, bu):
    keyless = SkillFactory(business_unit=bu, xs_enabled=True)
    assert keyless.xs_api_key_hash == ""
    before = _written()
    for header in ("Bearer ", "Bearer x", "Bearer  "):
        response = _push(client, keyless, "", ONE, header=header)
        assert (response.status_code, response.json()) == (401, WRONG_KEY)
    assert _written() == before


@pytest.mark.parametrize("which", ["deleted", "never_existed", "beyond_64_bits"])
def test_an_unknown_skill_is_answered_as_a_wrong_key(client, skill, key, pushed, bu, which):
    if which == "deleted":
        gone = SkillFactory(business_unit=bu, xs_enabled=True)
        gone_key = skill_xs_key_issue(skill=gone)
        skill_id, key = gone.pk, gone_key
        gone.delete()
    elif which == "never_existed":
        skill_id = Skill.objects.order_by("-pk").first().pk + 1_000
    else:
        skill_id = 2**70
    before = _written()
    response = _push(client, skill, key, ONE, skill_id=skill_id)
    assert (response.status_code, response.json()) == (401, WRONG_KEY)
    assert _written() == before


def test_a_switched_off_endpoint_is_403_and_writes_nothing(client, skill, key, pushed):
    Skill.objects.filter(pk=skill.pk).update(xs_enabled=False)
    before = _written()
    response = _push(client, skill, key, ONE)
    assert response.status_code == 403 and "switched off" in response.json()["error"]
    # A caller without the key is not told that the skill exists and is off.
    assert _push(client, skill, "guess", ONE).json() == WRONG_KEY
    assert _written() == before


# --- bodies -------------------------------------------------------------------------------------


def test_a_body_over_the_request_limit_is_refused_unread(client, skill, key, pushed, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    body = json.dumps({"records": _records(2_000)})
    assert len(body) > 50_000
    before = _written()
    response = _push(client, skill, key, body)
    assert response.status_code == 413
    assert f"at most {50_000:,}" in response.json()["error"]
    assert _written() == before


def test_the_endpoints_own_limit_holds_when_the_site_allows_more(
    client, skill, key, pushed, settings
):
    # An operator raising DATA_UPLOAD_MAX_MEMORY_SIZE for the admin's forms does not open the
    # CRM endpoint to larger bodies: at the limit it is read, one byte more it is not.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * XS_MAX_BODY_BYTES
    at_limit = ONE.ljust(XS_MAX_BODY_BYTES)  # JSON may end in white space
    before = _written()

    over = _push(client, skill, key, at_limit + " ")

    assert over.status_code == 413
    assert f"at most {XS_MAX_BODY_BYTES:,}" in over.json()["error"]
    assert _written() == before
    assert _push(client, skill, key, at_limit).status_code == 200
    assert Record.objects.get(external_id="C-0").first_name == "Eve"


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00garbage",
        b'{"records": [',
        b"null",
        b'"x"',
        b"",
        b"[]",
        b"42",
        b"true",
        b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested past the limit
        b'{"records": [{"ExternalId": NaN, "PhoneNumber": "+13125550101"}]}',
        b'{"records": [{"ExternalId": "C-9", "PhoneNumber": "+13125550101", "X": Infinity}]}',
        b'{"records": [{"ExternalId": "\\ud800", "PhoneNumber": "+13125550101"}]}',
    ],
    ids=[
        "not_utf8",
        "truncated",
        "null",
        "string",
        "empty",
        "array",
        "number",
        "true",
        "deeply_nested",
        "nan",
        "infinity",
        "lone_surrogate",
    ],
)
def test_malformed_json_writes_nothing(client, skill, key, pushed, body):
    before = _written()
    response = _push(client, skill, key, body)
    assert response.status_code == 400
    assert "error" in response.json()
    assert _written() == before


def test_numbers_are_kept_as_written_however_long(client, skill, key):
    # An id sent as a JSON number keeps every digit; one of thousands of digits is a rejected
    # row (too long for an id) like the same digits sent as text, not a server error.
    digits = "1" * 30
    records = [
        f'{{"ExternalId": {digits}, "PhoneNumber": "+13125550101"}}',
        f'{{"ExternalId": {"9" * 5_000}, "PhoneNumber": "+13125550102"}}',
    ]
    response = _push(client, skill, key, f'{{"records": [{", ".join(records)}]}}')
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["index"] == 1
    assert list(Record.objects.values_list("external_id", flat=True)) == [digits]


@pytest.mark.parametrize("records", [{"C-1": "+13125550101"}, "C-1", 7, None, True, [], "missing"])
def test_records_that_are_not_a_list_of_objects_write_nothing(client, skill, key, pushed, records):
    body = {} if records == "missing" else {"records": records}
    before = _written()
    response = _push(client, skill, key, json.dumps(body))
    assert response.status_code == 400
    assert response.json()["error"] == '"records" must be a non-empty array of objects.'
    assert _written() == before


@pytest.mark.parametrize("zone", [5, ["UTC"], {"name": "UTC"}, True])
def test_a_default_time_zone_that_is_not_text_writes_nothing(client, skill, key, pushed, zone):
    before = _written()
    response = _push(client, skill, key, json.dumps({**json.loads(ONE), "default_time_zone": zone}))
    assert response.status_code == 400
    assert '"default_time_zone"' in response.json()["error"]
    assert _written() == before


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"ExternalId": "C-1", "Name": "no phone"}], "No phone column is mapped"),
        ([{"FirstName": "no id", "PhoneNumber": "+13125550101"}], "No column is mapped"),
        ([{"ExternalId": "C-1", "PhoneNumber": "+13125550101", "Note": "a\0b"}], "NUL"),
        ([{"ExternalId": "C-1", "PhoneNumber": "+13125550101", "N\0": "x"}], "NUL"),
    ],
)
@pytest.mark.parametrize("first_push", [True, False], ids=["first_push", "later_push"])
def test_a_push_the_import_refuses_leaves_no_job_and_no_list(
    client, skill, key, records, message, first_push, request
):
    if not first_push:
        request.getfixturevalue("pushed")
    before = _written()
    response = _push(client, skill, key, json.dumps({"records": records}))
    assert response.status_code == 400
    assert message in response.json()["error"]
    # No failed upload job, and on a first push no "(CRM)" list made and attached to the skill.
    assert _written() == before


# --- the record limit ---------------------------------------------------------------------------


def test_ten_thousand_records_in_one_push_are_all_written(client, skill, key):
    body = json.dumps({"records": _records(XS_MAX_RECORDS)})
    response = _push(client, skill, key, body)
    assert response.status_code == 200, response.content[:500]
    data = response.json()
    assert (data["processed"], data["valid"], data["invalid"]) == (
        XS_MAX_RECORDS,
        XS_MAX_RECORDS,
        0,
    )
    assert Record.objects.filter(calling_list__skills=skill).count() == XS_MAX_RECORDS
    assert Destination.objects.filter(record__calling_list__skills=skill).count() == XS_MAX_RECORDS
    assert list(UploadJob.objects.values_list("status", flat=True)) == ["completed"]

    # The same push again (a CRM retrying after a timeout): updated, not doubled.
    assert _push(client, skill, key, body).status_code == 200
    assert Record.objects.count() == Destination.objects.count() == XS_MAX_RECORDS


def test_one_record_over_the_limit_writes_nothing(client, skill, key):
    before = _written()
    response = _push(client, skill, key, json.dumps({"records": _records(XS_MAX_RECORDS + 1)}))
    assert response.status_code == 413
    assert f"at most {XS_MAX_RECORDS:,}" in response.json()["error"]
    assert _written() == before
