"""The guided set-up of a first skill (Skills -> "Set up a skill"): each step done, missing or
needing attention, what was found, the link to the page that does it, the first step not done
marked next, and only the chosen business unit's objects (skills/setup_guide.py,
skills/admin/setup_guide.py)."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from messaging.models import TransportCode
from skills.models import Skill, UploadJob
from skills.services import skill_apply_defaults
from skills.setup_guide import Status, setup_steps
from tests.factories import (
    CallingListFactory,
    MembershipFactory,
    MessageTemplateFactory,
    RecordFactory,
    SkillFactory,
    SmsRegistrationFactory,
    TransportCodeFactory,
    UploadJobFactory,
    UserFactory,
)

URL = "/admin/skills/skill/setup/"
KEYS = ["code", "registration", "template", "list", "skill", "start"]


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _states(bu) -> list[tuple[str, str, bool]]:
    return [(s.key, s.status.value, s.is_next) for s in setup_steps(bu)]


def _expected(done: int, attention: tuple[str, ...] = ()) -> list[tuple[str, str, bool]]:
    """The first ``done`` steps done, the next one marked next; ``attention``: those keys need
    attention instead of missing."""
    return [
        (
            key,
            "done" if i < done else ("attention" if key in attention else "missing"),
            i == done,
        )
        for i, key in enumerate(KEYS)
    ]


def _set_up(bu, *, prefix: str = "", started: bool = True) -> Skill:
    """Every step of ``bu`` done (the last one only if ``started``); names begin ``prefix``."""
    code = TransportCodeFactory(business_unit=bu, messages_per_second=Decimal("10"))
    registration = SmsRegistrationFactory(
        business_unit=bu, name=f"{prefix}Registration", transport_code=code
    )
    template = MessageTemplateFactory(business_unit=bu, name=f"{prefix}Template")
    calling_list = CallingListFactory(business_unit=bu, name=f"{prefix}List")
    RecordFactory.create_batch(2, calling_list=calling_list)
    skill = SkillFactory(
        business_unit=bu,
        name=f"{prefix}Skill",
        registration=registration,
        template=template,
        state=Skill.State.RUNNING if started else Skill.State.STOPPED,
    )
    skill.calling_lists.add(calling_list)
    skill_apply_defaults(skill=skill)
    return skill


@pytest.fixture
def member(client, staff_member):
    client.force_login(staff_member)
    return client


# --- The steps, in order --------------------------------------------------------------------


def test_an_empty_business_unit_starts_at_the_transport_code(bu):
    steps = setup_steps(bu)
    assert _states(bu) == _expected(0)
    assert steps[0].found.startswith("No transport code yet")
    assert steps[0].obj is None and steps[0].initial == {"business_unit": str(bu.pk)}


def test_each_step_turns_done_in_order(bu):
    code = TransportCodeFactory(
        business_unit=bu, number="+13125550100", messages_per_second=Decimal("10")
    )
    steps = setup_steps(bu)
    assert _states(bu) == _expected(1)
    assert steps[0].found == "Code +13125550100, 10 texts/s"
    assert steps[0].obj == code
    # The registration's add page is prefilled with the code just found.
    assert steps[1].initial == {"business_unit": str(bu.pk), "transport_code": str(code.pk)}

    registration = SmsRegistrationFactory(business_unit=bu, name="Main", transport_code=code)
    assert _states(bu) == _expected(2)
    assert setup_steps(bu)[1].found == 'Registration "Main" on +13125550100'

    template = MessageTemplateFactory(
        business_unit=bu, name="Reminder", body="Hi {FirstName}, see you tomorrow."
    )
    assert _states(bu) == _expected(3)
    assert setup_steps(bu)[2].found == 'Template "Reminder": "Hi {FirstName}, see you tomorrow."'

    calling_list = CallingListFactory(business_unit=bu, name="Patients")
    steps = setup_steps(bu)
    assert _states(bu) == _expected(3)  # a list without records is not done yet
    assert steps[3].found == 'List "Patients" has no records yet: upload a file into it.'
    assert steps[3].model is UploadJob and steps[3].initial == {
        "calling_list": str(calling_list.pk)
    }

    RecordFactory.create_batch(3, calling_list=calling_list)
    UploadJobFactory(
        calling_list=calling_list,
        original_name="patients.csv",
        status=UploadJob.Status.COMPLETED,
        rows_total=4,
        rows_processed=4,
        rows_valid=3,
        rows_invalid=1,
    )
    steps = setup_steps(bu)
    assert _states(bu) == _expected(4)
    assert steps[3].found == (
        'List "Patients": 3 records (3 open); last upload "patients.csv": 3 valid, 1 invalid'
    )
    # The skill's add page is prefilled with what the steps before found.
    assert steps[4].initial == {
        "business_unit": str(bu.pk),
        "registration": str(registration.pk),
        "template": str(template.pk),
        "calling_lists": str(calling_list.pk),
    }

    skill = SkillFactory(
        business_unit=bu,
        name="Reminders",
        registration=registration,
        template=template,
        state=Skill.State.STOPPED,
    )
    skill.calling_lists.add(calling_list)
    # No schedule day and no time-zone bound yet: the skill is there but not ready.
    steps = setup_steps(bu)
    assert _states(bu) == _expected(4, attention=("skill",))
    assert steps[4].problems == [
        "Its schedule has no active day (tab 8. Schedule).",
        "No allowed time zone is bounded active (tab 9. Time zones).",
    ]

    skill_apply_defaults(skill=skill)  # what the admin's add page gives a new skill
    steps = setup_steps(bu)
    assert _states(bu) == _expected(5)
    zones = len(bu.allowed_time_zones)
    assert steps[4].found == (
        'Skill "Reminders": registration "Main", template "Reminder", list "Patients"; '
        f"schedule Mon-Sat, started by hand; {zones} of {zones} allowed time zones bounded"
    )
    assert steps[5].found == 'Skill "Reminders" is stopped: start it.'

    Skill.objects.filter(pk=skill.pk).update(state=Skill.State.RUNNING)
    assert [status for _key, status, _next in _states(bu)] == ["done"] * 6
    assert not any(step.is_next for step in setup_steps(bu))


def test_a_code_that_cannot_send_needs_attention(bu):
    code = TransportCodeFactory(
        business_unit=bu,
        number="+13125550100",
        provisioning_status=TransportCode.Provisioning.REQUESTED,
        provisioned_on=None,
    )
    SmsRegistrationFactory(business_unit=bu, name="Main", transport_code=code)
    steps = setup_steps(bu)
    assert _states(bu) == _expected(0, attention=("code", "registration"))
    assert steps[0].found == (
        "Code +13125550100 is requested: it cannot send until it is provisioned."
    )
    assert steps[0].obj == code  # its page, to set it provisioned
    assert steps[1].problems == ["It sends from +13125550100, which is requested, not provisioned."]


def test_an_inactive_template_and_a_failed_upload_need_attention(bu):
    MessageTemplateFactory(business_unit=bu, name="Draft", is_active=False)
    calling_list = CallingListFactory(business_unit=bu, name="Patients")
    job = UploadJobFactory(
        calling_list=calling_list,
        original_name="bad.csv",
        status=UploadJob.Status.FAILED,
        message="The file has no PhoneNumber column.",
    )
    steps = {step.key: step for step in setup_steps(bu)}
    assert steps["template"].status == Status.ATTENTION
    assert steps["template"].found == 'Template "Draft" is not active'
    assert steps["list"].status == Status.ATTENTION
    assert steps["list"].obj == job
    assert "failed: The file has no PhoneNumber column." in steps["list"].found


def test_a_paused_skill_says_why(bu):
    skill = _set_up(bu, started=False)
    Skill.objects.filter(pk=skill.pk).update(
        state=Skill.State.PAUSED, paused_reason="the carrier blocked texts as spam (30007)"
    )
    start = setup_steps(bu)[5]
    assert (start.status, start.is_next) == (Status.ATTENTION, True)
    assert start.problems == ["The carrier blocked texts as spam (30007)"]


def test_the_guide_follows_the_skill_that_is_furthest_along(bu):
    _set_up(bu, prefix="Old ", started=True)
    SkillFactory(business_unit=bu, name="Draft", state=Skill.State.STOPPED)  # newer, unready
    steps = setup_steps(bu)
    assert [s.status for s in steps] == [Status.DONE] * 6
    assert steps[4].obj.name == "Old Skill"


def test_the_steps_cost_a_fixed_number_of_queries(bu, django_assert_max_num_queries):
    for n in range(5):
        _set_up(bu, prefix=f"{n} ", started=n == 0)
    with django_assert_max_num_queries(12):
        setup_steps(bu)


# --- The page ---------------------------------------------------------------------------------


def test_the_page_shows_the_checklist_with_the_next_step_and_its_add_link(member, bu):
    response = member.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    text = _text(page)
    assert "Business unit: Acme" in text
    assert "0 of 6 steps done" in text
    assert re.search(r'id="setup-step-code" data-status="missing" aria-current="step"', page)
    assert page.count('aria-current="step"') == 1
    add = reverse("admin:messaging_transportcode_add") + f"?business_unit={bu.pk}"
    assert f'href="{html.escape(add)}"' in page
    assert "Add a transport code" in text
    assert text.count("Missing") == 6


def test_a_done_step_links_to_its_objects_page(member, bu):
    code = TransportCodeFactory(business_unit=bu)
    page = member.get(URL).content.decode()
    change = reverse("admin:messaging_transportcode_change", args=[code.pk])
    assert f'href="{change}">Change the transport code</a>' in page
    assert re.search(r'id="setup-step-registration" data-status="missing" aria-current', page)


def test_the_start_button_posts_the_skill_lists_start_action(member, bu):
    skill = _set_up(bu, started=False)
    page = member.get(URL).content.decode()
    assert re.search(r'id="setup-step-start" data-status="missing" aria-current', page)
    assert 'name="action" value="start_skills"' in page
    assert f'name="_selected_action" value="{skill.pk}"' in page
    response = member.post(
        reverse("admin:skills_skill_changelist"),
        {"action": "start_skills", "_selected_action": [skill.pk]},
    )
    assert response.status_code == 302
    skill.refresh_from_db()
    assert skill.state == Skill.State.RUNNING
    assert "6 of 6 steps done" in _text(member.get(URL).content.decode())


def test_no_link_to_a_page_the_user_may_not_open(client, bu):
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    MembershipFactory(user=viewer, business_unit=bu)
    code = TransportCodeFactory(business_unit=bu)
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    assert reverse("admin:messaging_smsregistration_add") not in page  # no add permission
    assert "You may not open the page of this step" in page
    # Viewing is allowed: the code's page opens read-only.
    view = reverse("admin:messaging_transportcode_change", args=[code.pk])
    assert f'href="{view}">View the transport code</a>' in page
    assert 'value="start_skills"' not in page


def test_a_user_without_skill_permissions_is_refused(client, bu):
    user = UserFactory(username="nobody")
    MembershipFactory(user=user, business_unit=bu)
    client.force_login(user)
    assert client.get(URL).status_code == 403


def test_the_page_only_reads(member):
    assert member.post(URL, {"business_unit": "1"}).status_code == 405


def test_the_skill_list_links_the_page(member):
    page = member.get(reverse("admin:skills_skill_changelist")).content.decode()
    assert f'href="{URL}">Set up a skill</a>' in page


# --- Tenancy -----------------------------------------------------------------------------------


def test_a_member_never_sees_another_units_objects(member, bu, other_bu):
    theirs = _set_up(other_bu, prefix="Globex ")
    mine = TransportCodeFactory(business_unit=bu, number="+13125550100")
    page = member.get(URL).content.decode()
    assert "Globex" not in page
    assert mine.number in page and theirs.registration.transport_code.number not in page
    assert "1 of 6 steps done" in _text(page)

    # Another unit's id in the query string: a 404 that names nothing of it.
    hostile = {"business_unit": other_bu.pk}
    response = member.get(URL, hostile)
    assert response.status_code == 404
    assert "Globex" not in response.content.decode()
    for wrong in ("999999", "x", "1 OR 1=1"):
        assert member.get(URL, {"business_unit": wrong}).status_code == 404

    # Their objects' ids under other names are ignored: still only Acme's page.
    others = {
        "skill": theirs.pk,
        "transport_code": theirs.registration.transport_code_id,
        "registration": theirs.registration_id,
        "template": theirs.template_id,
        "businessunit": other_bu.pk,
    }
    page = member.get(URL, {"business_unit": bu.pk, **others}).content.decode()
    assert "Globex" not in page and "Business unit: Acme" in _text(page)


def test_a_member_of_two_units_picks_one_and_can_switch(client, bu, other_bu):
    user = UserFactory(username="both")
    user.user_permissions.set(Permission.objects.all())
    MembershipFactory(user=user, business_unit=bu)
    MembershipFactory(user=user, business_unit=other_bu)
    TransportCodeFactory(business_unit=bu, number="+13125550100")
    _set_up(other_bu, prefix="Globex ")
    client.force_login(user)

    page = client.get(URL).content.decode()
    assert '<select id="setup-business-unit" name="business_unit">' in page
    assert f'<option value="{bu.pk}">Acme</option>' in page
    assert f'<option value="{other_bu.pk}">Globex</option>' in page
    assert "Choose the business unit to set up." in page
    assert "setup-step-code" not in page  # no unit's steps until one is chosen

    acme = client.get(URL, {"business_unit": bu.pk}).content.decode()
    assert "+13125550100" in acme and "Globex Skill" not in acme
    assert f'<option value="{bu.pk}" selected>Acme</option>' in acme
    assert "1 of 6 steps done" in _text(acme)

    globex = client.get(URL, {"business_unit": other_bu.pk}).content.decode()
    assert "Globex Skill" in globex and "+13125550100" not in globex
    assert "6 of 6 steps done" in _text(globex)


def test_a_superuser_picks_among_every_unit(client, superuser, bu, other_bu):
    client.force_login(superuser)
    page = client.get(URL).content.decode()
    assert f'<option value="{bu.pk}">Acme</option>' in page
    assert f'<option value="{other_bu.pk}">Globex</option>' in page
    acme = client.get(URL, {"business_unit": bu.pk}).content.decode()
    assert f'<option value="{bu.pk}" selected>Acme</option>' in acme
    assert "0 of 6 steps done" in _text(acme)


def test_a_user_of_no_unit_is_told_so(client, db):
    user = UserFactory(username="alone")
    user.user_permissions.set(Permission.objects.filter(codename="view_skill"))
    client.force_login(user)
    page = client.get(URL).content.decode()
    assert "You belong to no business unit yet" in page
    assert "setup-step-code" not in page
