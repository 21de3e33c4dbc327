"""Bad data typed into the admin gets a message on the field, never a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dnc.models import DncEntry
from messaging.models import TransportCode
from skills.models import Skill
from tests.factories import (
    DncEntryFactory,
    DncGroupFactory,
    MessageTemplateFactory,
    SmsRegistrationFactory,
)


def _errors(response, field: str) -> list[str]:
    assert response.status_code == 200, "expected the form back with errors"
    return list(response.context["adminform"].form.errors.get(field, []))


@pytest.fixture
def logged_in(client, staff_member):
    client.force_login(staff_member)
    return client


def _code_form(bu, **overrides):
    data = {
        "business_unit": bu.pk,
        "number": "(415) 555-2671",
        "kind": TransportCode.Kind.LONG,
        "messages_per_second": "5",
        "counts_segments": "on",
        "provisioning_status": TransportCode.Provisioning.REQUESTED,
        "notes": "",
    }
    data.update(overrides)
    return data


def test_transport_code_with_a_bad_phone_number(logged_in, bu):
    response = logged_in.post(
        reverse("admin:messaging_transportcode_add"), _code_form(bu, number="12345")
    )
    assert "is not a valid phone number" in " ".join(_errors(response, "number"))
    assert not TransportCode.objects.exists()


def test_transport_code_any_format_is_stored_as_e164(logged_in, bu):
    response = logged_in.post(reverse("admin:messaging_transportcode_add"), _code_form(bu))
    assert response.status_code == 302
    assert TransportCode.objects.get().number == "+14155552671"


@pytest.mark.parametrize("rate", ["0", "-1"])
def test_transport_code_rate_must_be_positive(logged_in, bu, rate):
    response = logged_in.post(
        reverse("admin:messaging_transportcode_add"), _code_form(bu, messages_per_second=rate)
    )
    assert _errors(response, "messages_per_second")
    assert not TransportCode.objects.exists()


def test_short_code_must_have_five_or_six_digits(logged_in, bu):
    response = logged_in.post(
        reverse("admin:messaging_transportcode_add"),
        _code_form(bu, number="1234", kind=TransportCode.Kind.SHORT),
    )
    assert "5 or 6 digits" in " ".join(_errors(response, "number"))


def test_rate_defaults_by_kind_when_left_empty(logged_in, bu):
    logged_in.post(
        reverse("admin:messaging_transportcode_add"),
        _code_form(bu, number="55123", kind=TransportCode.Kind.SHORT, messages_per_second=""),
    )
    assert TransportCode.objects.get().messages_per_second == 100


def _skill_form(bu, name):
    return {
        "business_unit": bu.pk,
        "name": name,
        "channel": "sms",  # the select's first choice, as a browser posts it
        "registration": SmsRegistrationFactory(business_unit=bu).pk,
        "template": MessageTemplateFactory(business_unit=bu).pk,
        "priority": 5,
        "state": Skill.State.STOPPED,
        "max_attempts": 3,
        "min_retry_minutes": 60,
        "feed": Skill.Feed.ALL,
        "attempt_mode": Skill.AttemptMode.SINGLE_PASS,
        "record_mode": Skill.RecordMode.SEQUENTIAL,
        "receipt_mode": Skill.ReceiptMode.DELIVERED,
        "receipt_wait_minutes": 60,
        "max_segments": 3,
        "stale_minutes": 30,
        "filter_change_action": Skill.FilterChange.NOTHING,
    }


def _with_empty_inlines(client, url, data):
    """Add the management forms of every inline the add page shows, with no rows."""
    page = client.get(url)
    for formset in page.context["inline_admin_formsets"]:
        prefix = formset.formset.prefix
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    return data


@pytest.mark.parametrize("name", ["A", "x" * 31, "Bad/name", "émoji"])
def test_skill_name_rules(logged_in, bu, name):
    url = reverse("admin:skills_skill_add")
    response = logged_in.post(url, _with_empty_inlines(logged_in, url, _skill_form(bu, name)))
    assert _errors(response, "name")
    assert not Skill.objects.exists()


def test_valid_skill_is_created_with_default_pages(logged_in, bu):
    url = reverse("admin:skills_skill_add")
    response = logged_in.post(
        url, _with_empty_inlines(logged_in, url, _skill_form(bu, "Spring: reminders-2.0"))
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    skill = Skill.objects.get()
    assert skill.cpa_rules.filter(match="21610", outcome="opted_out").exists()
    assert skill.schedule_days.count() == 7
    assert set(skill.time_zone_bounds.values_list("time_zone", flat=True)) == set(
        bu.allowed_time_zones
    )


def test_duplicate_dnc_entry_in_any_format(logged_in, bu):
    group = DncGroupFactory(business_unit=bu)
    DncEntryFactory(group=group, phone_number="+13125550123")
    url = reverse("admin:dnc_dncentry_add")
    response = logged_in.post(
        url,
        _with_empty_inlines(
            logged_in,
            url,
            {
                "group": group.pk,
                "phone_number": "(312) 555-0123",
                "source": DncEntry.Source.MANUAL,
                "collected_at_0": "2026-11-25",
                "collected_at_1": "10:00:00",
                "evidence": "",
            },
        ),
    )
    assert "already in this DNC group" in " ".join(_errors(response, "phone_number"))
    assert DncEntry.objects.count() == 1


def test_dnc_entry_with_a_bad_phone(logged_in, bu):
    group = DncGroupFactory(business_unit=bu)
    url = reverse("admin:dnc_dncentry_add")
    response = logged_in.post(
        url,
        _with_empty_inlines(
            logged_in,
            url,
            {
                "group": group.pk,
                "phone_number": "not a number",
                "source": DncEntry.Source.MANUAL,
                "collected_at_0": "2026-11-25",
                "collected_at_1": "10:00:00",
            },
        ),
    )
    assert _errors(response, "phone_number")
    assert not DncEntry.objects.exists()


def test_second_default_dnc_group_is_refused(logged_in, bu):
    DncGroupFactory(business_unit=bu, is_default=True)
    url = reverse("admin:dnc_dncgroup_add")
    response = logged_in.post(
        url,
        _with_empty_inlines(
            logged_in,
            url,
            {"business_unit": bu.pk, "name": "Another", "is_active": "on", "is_default": "on"},
        ),
    )
    assert response.status_code == 200
    assert "already has a default DNC group" in str(response.context["adminform"].form.errors)


def test_cannot_pick_another_business_units_template(logged_in, bu, other_bu):
    data = _skill_form(bu, "Cross BU")
    data["template"] = MessageTemplateFactory(business_unit=other_bu).pk
    url = reverse("admin:skills_skill_add")
    response = logged_in.post(url, _with_empty_inlines(logged_in, url, data))
    assert _errors(response, "template")
    assert not Skill.objects.exists()
