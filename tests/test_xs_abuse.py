"""Attacks on the CRM endpoint: without the skill's own key nothing is read or written.

Wrong and missing keys, unknown skills and malformed bodies are in
``tests/test_xs_endpoint.py``; this file adds another skill's key (of the same and of another
business unit), bodies over the request size limit and a full 10,000-record push
(docs/security.md, "The public endpoints").
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from skills.models import Record, Skill, UploadJob
from skills.xs import XS_MAX_RECORDS, skill_xs_key_issue
from tests.factories import SkillFactory


def _written() -> tuple:
    return (
        Record.objects.count(),
        UploadJob.objects.count(),
        tuple(Skill.objects.order_by("pk").values_list("state", flat=True)),
    )


def _push(client, skill, key, body: bytes | str, *, header: str | None = None):
    return client.post(
        reverse("xs_records", args=[skill.pk]),
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=header if header is not None else f"Bearer {key}",
    )


def _records(count: int) -> list[dict]:
    return [
        {"ExternalId": f"C-{n}", "PhoneNumber": f"+1312555{n % 10_000:04d}"} for n in range(count)
    ]


@pytest.fixture
def skill(bu):
    return SkillFactory(business_unit=bu, name="Visits", xs_enabled=True)


@pytest.fixture
def key(skill):
    return skill_xs_key_issue(skill=skill)


@pytest.mark.parametrize("where", ["same_bu", "other_bu"])
def test_another_skills_key_is_refused(client, skill, bu, other_bu, where):
    other = SkillFactory(business_unit=bu if where == "same_bu" else other_bu, xs_enabled=True)
    other_key = skill_xs_key_issue(skill=other)
    before = _written()
    response = _push(client, skill, other_key, json.dumps({"records": _records(2)}))
    assert response.status_code == 401
    # The same answer as a wrong key: nothing says the skill exists or whose it is.
    assert skill.name not in response.content.decode()
    assert _written() == before


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic abc", "bearer wrong", "Token {key}", "{key}"]
)
def test_a_missing_or_malformed_authorization_is_401(client, skill, key, header):
    before = _written()
    response = _push(
        client, skill, key, json.dumps({"records": _records(1)}), header=header.format(key=key)
    )
    assert response.status_code == 401
    assert _written() == before


def test_a_body_over_the_request_limit_is_refused_unread(client, skill, key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    body = json.dumps({"records": _records(2_000)})
    assert len(body) > 50_000
    before = _written()
    response = _push(client, skill, key, body)
    assert response.status_code in (400, 413)
    assert _written() == before


@pytest.mark.parametrize("body", [b"\xff\xfe\x00garbage", b'{"records": [', b"null", b'"x"'])
def test_malformed_json_writes_nothing(client, skill, key, body):
    before = _written()
    response = _push(client, skill, key, body)
    assert response.status_code == 400
    assert "error" in response.json()
    assert _written() == before


def test_ten_thousand_records_in_one_push_are_all_written(client, skill, key):
    response = _push(client, skill, key, json.dumps({"records": _records(XS_MAX_RECORDS)}))
    assert response.status_code == 200, response.content[:500]
    assert Record.objects.filter(calling_list__skills=skill).count() == XS_MAX_RECORDS


def test_one_record_over_the_limit_writes_nothing(client, skill, key):
    before = _written()
    response = _push(client, skill, key, json.dumps({"records": _records(XS_MAX_RECORDS + 1)}))
    assert response.status_code == 413
    assert _written() == before
