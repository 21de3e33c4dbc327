"""The message template page: its JSON endpoints, activate/deactivate, and the form's guards.

The live counter itself runs in the browser: tests/browser/test_template_page.py drives it and
compares its JavaScript port of the segment counter with ``segments.analyse``.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from messaging import segments
from messaging.models import MessageTemplate
from messaging.selectors import active_templates
from messaging.template_services import template_activate, template_deactivate
from skills.models import CallingList, FieldType, Skill
from tests.factories import (
    CallingListFactory,
    CustomFieldFactory,
    DestinationFactory,
    MembershipFactory,
    MessageTemplateFactory,
    RecordFactory,
    SkillFactory,
    UserFactory,
)

URL = "admin:messaging_messagetemplate_editor_{}"


@pytest.fixture
def logged_in(client, staff_member):
    client.force_login(staff_member)
    return client


@pytest.fixture
def clinic_list(bu):
    """A calling list of ``bu`` with a date custom field, and two records."""
    calling_list = CallingListFactory(business_unit=bu, name="Patients")
    CustomFieldFactory(calling_list=calling_list, name="AppointmentDate", field_type=FieldType.DATE)
    return calling_list


def post_json(client, name, payload):
    return client.post(
        reverse(URL.format(name)), data=json.dumps(payload), content_type="application/json"
    )


def get_json(client, name, **params):
    return client.get(reverse(URL.format(name)), params)


# --- validate ------------------------------------------------------------------------------


def test_validate_reports_unknown_fields_with_position_and_suggestion(logged_in, bu):
    response = post_json(
        logged_in, "validate", {"business_unit": bu.pk, "body": "Hi {FirstNam},\nbye {"}
    )
    assert response.status_code == 200
    problems = response.json()["problems"]
    assert [p["code"] for p in problems] == ["unknown_field", "syntax"]
    unknown, unclosed = problems
    assert unknown["position"] == 3
    assert (unknown["line"], unknown["column"]) == (1, 4)
    assert "did you mean 'FirstName'?" in unknown["message"]
    assert unclosed["position"] == 19
    assert (unclosed["line"], unclosed["column"]) == (2, 5)
    assert unclosed["message"].startswith("Unclosed '{' at position 19 (line 2, column 5)")


def test_validate_knows_the_custom_fields_of_the_bus_lists_only(logged_in, bu, other_bu):
    CustomFieldFactory(calling_list__business_unit=bu, name="AppointmentDate")
    CustomFieldFactory(calling_list__business_unit=other_bu, name="Balance")
    body = "On {AppointmentDate} you owe {Balance}"
    problems = post_json(logged_in, "validate", {"business_unit": bu.pk, "body": body}).json()[
        "problems"
    ]
    assert len(problems) == 1
    assert problems[0]["message"].startswith("Unknown field 'Balance' at position 29")


def test_validate_without_a_business_unit_accepts_system_fields_only(logged_in):
    problems = post_json(logged_in, "validate", {"body": "Hi {FirstName} {Balance}"}).json()[
        "problems"
    ]
    assert [p["code"] for p in problems] == ["unknown_field"]


def test_validate_empty_and_too_long_bodies(logged_in, bu):
    empty = post_json(logged_in, "validate", {"business_unit": bu.pk, "body": "  "}).json()
    assert [p["code"] for p in empty["problems"]] == ["empty"]
    long = post_json(logged_in, "validate", {"business_unit": bu.pk, "body": "x" * 1601}).json()
    assert [(p["code"], p["position"]) for p in long["problems"]] == [("too_long", 1600)]


def test_validate_needs_post_and_json(logged_in, bu):
    assert get_json(logged_in, "validate").status_code == 405
    response = logged_in.post(
        reverse(URL.format("validate")), data="not json", content_type="application/json"
    )
    assert response.status_code == 400


def test_validate_with_another_business_unit_is_404(logged_in, other_bu):
    response = post_json(logged_in, "validate", {"business_unit": other_bu.pk, "body": "Hi"})
    assert response.status_code == 404


# --- variables -----------------------------------------------------------------------------


def test_variables_lists_system_then_custom_fields_and_the_bus_lists(
    logged_in, bu, other_bu, clinic_list
):
    CallingListFactory(business_unit=bu, name="Old list", status=CallingList.Status.DELETED)
    CustomFieldFactory(calling_list__business_unit=other_bu, name="Secret")
    data = get_json(logged_in, "variables", business_unit=bu.pk).json()
    names = [v["name"] for v in data["variables"]]
    assert names[:3] == ["ExternalId", "FirstName", "LastName"]
    assert names[-1] == "AppointmentDate"
    assert "Secret" not in names
    custom = data["variables"][-1]
    assert custom == {
        "name": "AppointmentDate",
        "kind": "custom",
        "type": "date",
        "lists": ["Patients"],
    }
    assert data["lists"] == [{"id": clinic_list.pk, "name": "Patients"}]


def test_variables_of_another_business_unit_is_404(logged_in, other_bu):
    assert get_json(logged_in, "variables", business_unit=other_bu.pk).status_code == 404


# --- records -------------------------------------------------------------------------------


def test_records_are_searchable_by_external_id(logged_in, bu, clinic_list):
    for n in range(30):
        RecordFactory(calling_list=clinic_list, external_id=f"P-{n:03d}")
    first = get_json(logged_in, "records", business_unit=bu.pk, calling_list=clinic_list.pk)
    assert first.status_code == 200
    assert len(first.json()["records"]) == 25
    assert first.json()["more"] is True

    found = get_json(
        logged_in, "records", business_unit=bu.pk, calling_list=clinic_list.pk, q="p-017"
    ).json()
    assert [r["label"].split()[0] for r in found["records"]] == ["P-017"]
    assert found["more"] is False


def test_records_of_another_business_units_list_is_404(logged_in, bu, other_bu):
    foreign = CallingListFactory(business_unit=other_bu)
    RecordFactory(calling_list=foreign)
    for business_unit in (bu, other_bu):
        response = get_json(
            logged_in, "records", business_unit=business_unit.pk, calling_list=foreign.pk
        )
        assert response.status_code == 404


# --- preview -------------------------------------------------------------------------------

BODY = "Hi {FirstName|there}, see you on {AppointmentDate|soon} ({ExternalId}). Text {sms}"


def test_preview_merges_a_real_record_with_its_custom_fields(logged_in, bu, clinic_list):
    record = RecordFactory(
        calling_list=clinic_list,
        external_id="P-1",
        first_name="Zoë",
        custom={"AppointmentDate": "2026-12-01"},
    )
    DestinationFactory(record=record, source_field="SMSPhoneNumber", phone_number="+13125550101")
    response = post_json(
        logged_in,
        "preview",
        {
            "business_unit": bu.pk,
            "body": BODY.replace("{sms}", "{SMSPhoneNumber}"),
            "source": "record",
            "calling_list": clinic_list.pk,
            "record": record.pk,
        },
    )
    assert response.status_code == 200
    data = response.json()
    text = "Hi Zoë, see you on 2026-12-01 (P-1). Text +13125550101"
    assert data["ok"] is True
    assert data["text"] == text
    # ë is not GSM: the merged text, not the template, decides the encoding.
    assert data["analysis"] == json.loads(json.dumps(asdict(segments.analyse(text))))
    assert data["analysis"]["encoding"] == "UCS-2"
    assert data["analysis"]["culprits"] == ["ë"]
    assert data["variables"] == [
        {"name": "FirstName", "value": "Zoë"},
        {"name": "AppointmentDate", "value": "2026-12-01"},
        {"name": "ExternalId", "value": "P-1"},
        {"name": "SMSPhoneNumber", "value": "+13125550101"},
    ]


def test_preview_uses_fallbacks_for_a_records_empty_values(logged_in, bu, clinic_list):
    record = RecordFactory(calling_list=clinic_list, external_id="P-2", first_name="", custom={})
    data = post_json(
        logged_in,
        "preview",
        {
            "business_unit": bu.pk,
            "body": BODY.replace("{sms}", "{Customer1}"),
            "source": "record",
            "calling_list": clinic_list.pk,
            "record": record.pk,
        },
    ).json()
    assert data["text"] == "Hi there, see you on soon (P-2). Text "
    assert data["analysis"]["encoding"] == "GSM-7"
    assert {"name": "FirstName", "value": ""} in data["variables"]


def test_preview_with_sample_values_and_overrides(logged_in, bu, clinic_list):
    body = "Hi {firstname|there}, on {AppointmentDate}"
    data = post_json(logged_in, "preview", {"business_unit": bu.pk, "body": body}).json()
    assert data["ok"] is True
    assert data["text"].startswith("Hi Ada, on 20")  # a date: the custom field is a date
    assert data["source"] == "sample values"

    # Names ignore case, and an emptied value shows the fallback.
    data = post_json(
        logged_in,
        "preview",
        {
            "business_unit": bu.pk,
            "body": body,
            "values": {"FIRSTNAME": "", "appointmentdate": "Friday"},
        },
    ).json()
    assert data["text"] == "Hi there, on Friday"


def test_preview_of_a_malformed_body_says_where(logged_in, bu):
    data = post_json(logged_in, "preview", {"business_unit": bu.pk, "body": "Hi {First"}).json()
    assert data["ok"] is False
    assert data["error"].startswith("Unclosed '{' at position 3 (line 1, column 4)")


def test_preview_with_another_business_units_record_is_404(logged_in, bu, other_bu, clinic_list):
    foreign_list = CallingListFactory(business_unit=other_bu)
    foreign = RecordFactory(calling_list=foreign_list, first_name="Secret")
    attempts = [
        (bu, clinic_list, foreign),  # the record is not in the given list
        (bu, foreign_list, foreign),  # the list is not the BU's
        (other_bu, foreign_list, foreign),  # the BU is not the user's
    ]
    for business_unit, calling_list, record in attempts:
        response = post_json(
            logged_in,
            "preview",
            {
                "business_unit": business_unit.pk,
                "body": "{FirstName}",
                "source": "record",
                "calling_list": calling_list.pk,
                "record": record.pk,
            },
        )
        assert response.status_code == 404
        assert b"Secret" not in response.content


def test_superuser_previews_any_business_unit(client, superuser, other_bu):
    record = RecordFactory(calling_list__business_unit=other_bu, first_name="Olga")
    client.force_login(superuser)
    data = post_json(
        client,
        "preview",
        {
            "business_unit": other_bu.pk,
            "body": "Hi {FirstName}",
            "source": "record",
            "calling_list": record.calling_list_id,
            "record": record.pk,
        },
    ).json()
    assert data["text"] == "Hi Olga"


# --- permissions ---------------------------------------------------------------------------


def _calls(bu):
    return [
        ("get", "variables", {"business_unit": bu.pk}),
        ("post", "validate", {"business_unit": bu.pk, "body": "Hi"}),
        ("get", "records", {"business_unit": bu.pk, "calling_list": 1}),
        ("post", "preview", {"business_unit": bu.pk, "body": "Hi"}),
    ]


def _call(client, method, name, payload):
    if method == "get":
        return get_json(client, name, **payload)
    return post_json(client, name, payload)


def test_endpoints_need_a_template_permission(client, bu):
    user = UserFactory(username="dnc-only")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="dnc"))
    MembershipFactory(user=user, business_unit=bu)
    client.force_login(user)
    for method, name, payload in _calls(bu):
        assert _call(client, method, name, payload).status_code == 403, name


def test_endpoints_need_a_staff_login(client, bu):
    for method, name, payload in _calls(bu):
        response = _call(client, method, name, payload)
        assert response.status_code == 302, name
        assert "/admin/login/" in response["Location"]


def test_view_permission_is_enough_for_the_endpoints(client, bu):
    user = UserFactory(username="viewer")
    user.user_permissions.set(Permission.objects.filter(codename="view_messagetemplate"))
    MembershipFactory(user=user, business_unit=bu)
    client.force_login(user)
    assert post_json(client, "validate", {"business_unit": bu.pk, "body": "Hi"}).status_code == 200


def test_change_page_carries_the_editor_and_its_tables(logged_in, bu):
    template = MessageTemplateFactory(business_unit=bu)
    page = logged_in.get(reverse("admin:messaging_messagetemplate_change", args=[template.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "messaging/template_editor.js" in html
    assert 'id="template-editor-config"' in html
    config = page.context["template_editor"]
    assert config["businessUnit"] == bu.pk
    assert config["lookalikes"]["\u201c"] == '"'
    assert config["encoding"]["extension"] == segments.GSM_EXTENSION
    assert "\x1b" not in config["encoding"]["basic"]
    assert config["urls"]["preview"] == reverse(URL.format("preview"))


def test_add_page_carries_the_editor(logged_in):
    page = logged_in.get(reverse("admin:messaging_messagetemplate_add"))
    assert page.context["template_editor"]["businessUnit"] is None


def test_read_only_page_has_no_editor(client, bu):
    template = MessageTemplateFactory(business_unit=bu)
    user = UserFactory(username="viewer")
    user.user_permissions.set(Permission.objects.filter(codename="view_messagetemplate"))
    MembershipFactory(user=user, business_unit=bu)
    client.force_login(user)
    page = client.get(reverse("admin:messaging_messagetemplate_change", args=[template.pk]))
    assert page.status_code == 200
    assert "template_editor" not in page.context
    assert b"template_editor.js" not in page.content


# --- activate / deactivate -----------------------------------------------------------------

CHANGELIST = "admin:messaging_messagetemplate_changelist"


def _act(client, action, *templates):
    response = client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [t.pk for t in templates]},
        follow=True,
    )
    assert response.status_code == 200
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def test_deactivating_a_template_of_a_running_skill_is_refused_naming_it(logged_in, bu):
    template = MessageTemplateFactory(business_unit=bu, name="Reminder")
    SkillFactory(business_unit=bu, template=template, name="Flu shots", state="running")
    SkillFactory(business_unit=bu, template=template, name="Idle", state=Skill.State.STOPPED)
    messages = _act(logged_in, "deactivate_selected", template)
    assert messages == [
        (
            "error",
            'Template "Reminder" cannot be deactivated: the running skill "Flu shots" sends it. '
            "Stop the skill or give it another template first.",
        )
    ]
    template.refresh_from_db()
    assert template.is_active


def test_deactivate_refusal_names_every_running_skill(bu):
    template = MessageTemplateFactory(business_unit=bu, name="Reminder")
    for name in ("B skill", "A skill"):
        SkillFactory(business_unit=bu, template=template, name=name, state="running")
    user = UserFactory(is_superuser=True)
    with pytest.raises(ValidationError) as refused:
        template_deactivate(template=template, user=user)
    assert '"A skill" and "B skill" send it' in refused.value.messages[0]


def test_deactivate_and_activate_selected_templates(logged_in, bu):
    used = MessageTemplateFactory(business_unit=bu, name="Used")
    SkillFactory(business_unit=bu, template=used, state=Skill.State.PAUSED)
    free = MessageTemplateFactory(business_unit=bu, name="Free")
    messages = _act(logged_in, "deactivate_selected", used, free)
    assert messages == [("success", "Deactivated 2 templates.")]
    assert not MessageTemplate.objects.filter(is_active=True).exists()

    messages = _act(logged_in, "activate_selected", used)
    assert messages == [("success", "Activated 1 template.")]
    assert list(active_templates(bu)) == [used]


def test_activating_an_invalid_template_is_refused(logged_in, bu):
    template = MessageTemplateFactory(business_unit=bu, name="Stale", is_active=False)
    # Saved while the list had the field; the field is gone now.
    MessageTemplate.objects.filter(pk=template.pk).update(body="Due {Balance}")
    messages = _act(logged_in, "activate_selected", template)
    assert len(messages) == 1
    level, text = messages[0]
    assert level == "error"
    assert text.startswith("Template \"Stale\" cannot be activated: Unknown field 'Balance'")
    template.refresh_from_db()
    assert not template.is_active


def test_services_check_the_users_business_units(bu, other_bu):
    template = MessageTemplateFactory(business_unit=other_bu)
    outsider = UserFactory()
    MembershipFactory(user=outsider, business_unit=bu)
    with pytest.raises(PermissionDenied):
        template_deactivate(template=template, user=outsider)
    with pytest.raises(PermissionDenied):
        template_activate(template=template, user=outsider)


def test_actions_need_change_permission(client, bu):
    template = MessageTemplateFactory(business_unit=bu)
    user = UserFactory(username="viewer")
    user.user_permissions.set(Permission.objects.filter(codename="view_messagetemplate"))
    MembershipFactory(user=user, business_unit=bu)
    client.force_login(user)
    page = client.get(reverse(CHANGELIST))
    assert "deactivate_selected" not in page.content.decode()
    client.post(
        reverse(CHANGELIST), {"action": "deactivate_selected", "_selected_action": [template.pk]}
    )
    template.refresh_from_db()
    assert template.is_active


def test_active_templates_selector(bu, other_bu):
    active = MessageTemplateFactory(business_unit=bu, is_active=True)
    MessageTemplateFactory(business_unit=bu, is_active=False)
    MessageTemplateFactory(business_unit=other_bu, is_active=True)
    assert list(active_templates(bu)) == [active]


# --- the change form -----------------------------------------------------------------------


def _change(client, template, **overrides):
    data = {
        "business_unit": template.business_unit_id,
        "name": template.name,
        "channel": template.channel,
        "body": template.body,
    }
    if template.is_active:
        data["is_active"] = "on"
    data.update(overrides)
    return client.post(
        reverse("admin:messaging_messagetemplate_change", args=[template.pk]),
        {k: v for k, v in data.items() if v is not None},
    )


def test_change_form_refuses_unticking_active_while_a_skill_runs(logged_in, bu):
    template = MessageTemplateFactory(business_unit=bu, name="Reminder")
    SkillFactory(business_unit=bu, template=template, name="Flu shots", state="running")
    response = _change(logged_in, template, is_active=None, name="Renamed")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["is_active"]
    assert errors == [
        'Template "Reminder" cannot be deactivated: the running skill "Flu shots" sends it. '
        "Stop the skill or give it another template first."
    ]
    template.refresh_from_db()
    assert (template.is_active, template.name) == (True, "Reminder")


def test_change_form_deactivates_when_no_skill_runs(logged_in, bu):
    template = MessageTemplateFactory(business_unit=bu)
    SkillFactory(business_unit=bu, template=template, state=Skill.State.STOPPED)
    assert _change(logged_in, template, is_active=None).status_code == 302
    template.refresh_from_db()
    assert not template.is_active


def test_change_form_edits_a_running_skills_template_if_it_stays_active(logged_in, bu):
    template = MessageTemplateFactory(business_unit=bu)
    SkillFactory(business_unit=bu, template=template, state="running")
    assert _change(logged_in, template, body="New text {FirstName}").status_code == 302
    template.refresh_from_db()
    assert template.body == "New text {FirstName}"


def test_change_form_stores_line_breaks_as_the_counter_counts_them(logged_in, bu):
    template = MessageTemplateFactory(business_unit=bu)
    assert _change(logged_in, template, body="Line one\r\nLine two").status_code == 302
    template.refresh_from_db()
    assert template.body == "Line one\nLine two"
