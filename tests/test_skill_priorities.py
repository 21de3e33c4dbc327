"""The relative-priorities page: every skill of the user's units, its priority 1-10, and the
part of its transport code's pace that priority is worth."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from messaging.models import MessageStatus
from skills.models import Skill
from tests.factories import (
    MembershipFactory,
    OutboundMessageFactory,
    SkillFactory,
    SmsRegistrationFactory,
    UserFactory,
)

URL = "admin:skills_skill_priorities"


@pytest.fixture
def skills(bu, other_bu):
    """Two running skills and a stopped one share a 10/s code; one runs alone on a 5/s code."""
    shared = SmsRegistrationFactory(business_unit=bu, transport_code__messages_per_second=10)
    alone = SmsRegistrationFactory(business_unit=bu, transport_code__messages_per_second=5)
    running = Skill.State.RUNNING
    made = {
        "Reminders": SkillFactory(
            business_unit=bu, name="Reminders", registration=shared, priority=6, state=running
        ),
        "Billing": SkillFactory(
            business_unit=bu, name="Billing", registration=shared, priority=4, state=running
        ),
        "Surveys": SkillFactory(business_unit=bu, name="Surveys", registration=shared, priority=5),
        "Alerts": SkillFactory(
            business_unit=bu, name="Alerts", registration=alone, priority=1, state=running
        ),
        "Globex": SkillFactory(business_unit=other_bu, name="Globex", priority=3),
    }
    return made


def _shares(response) -> dict[str, str]:
    return {
        row.skill.name: f"{row.percent}% = {row.rate}/s"
        for group in response.context["groups"]
        for row in group.rows
    }


def test_the_page_lists_the_users_skills_with_their_part_of_the_code(client, staff_member, skills):
    client.force_login(staff_member)

    response = client.get(reverse(URL))

    assert response.status_code == 200
    assert _shares(response) == {
        "Reminders": "60% = 6.00/s",  # 6 of 6+4 on a 10/s code
        "Billing": "40% = 4.00/s",
        "Surveys": "33% = 3.33/s",  # stopped: 5 of 6+4+5 if it were started
        "Alerts": "100% = 5.00/s",  # alone on its code, whatever its priority
    }
    page = response.content.decode()
    assert "if started: 33% = 3.33/s" in page
    assert "Globex" not in page
    assert 'name="priority_' in page


def test_saving_changes_the_priorities_and_the_queued_texts(client, staff_member, skills, bu):
    reminders, billing = skills["Reminders"], skills["Billing"]
    queued = OutboundMessageFactory(
        business_unit=bu,
        registration=reminders.registration,
        source=f"skill:{reminders.pk}",
        priority=6,
    )
    sent = OutboundMessageFactory(
        business_unit=bu,
        registration=reminders.registration,
        source=f"skill:{reminders.pk}",
        priority=6,
        status=MessageStatus.SENT,
    )
    client.force_login(staff_member)

    response = client.post(
        reverse(URL),
        {f"priority_{reminders.pk}": "2", f"priority_{billing.pk}": "4"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == reverse(URL)
    assert [str(m) for m in response.context["messages"]] == ['Priorities saved: "Reminders" 2.']
    reminders.refresh_from_db()
    billing.refresh_from_db()
    assert (reminders.priority, billing.priority) == (2, 4)
    queued.refresh_from_db()
    sent.refresh_from_db()
    assert (queued.priority, sent.priority) == (2, 6)  # the queue at once; history unchanged
    assert _shares(response)["Reminders"] == "33% = 3.33/s"


@pytest.mark.parametrize("bad", ["0", "11", "high", ""])
def test_a_priority_out_of_range_saves_nothing(client, staff_member, skills, bad):
    reminders, billing = skills["Reminders"], skills["Billing"]
    client.force_login(staff_member)

    response = client.post(
        reverse(URL), {f"priority_{reminders.pk}": "9", f"priority_{billing.pk}": bad}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing was saved" in page
    assert "Billing: " in page and "is not a priority from 1 to 10" in page
    reminders.refresh_from_db()
    billing.refresh_from_db()
    assert (reminders.priority, billing.priority) == (6, 4)


def test_another_units_skill_cannot_be_changed_through_the_page(client, staff_member, skills):
    globex = skills["Globex"]
    client.force_login(staff_member)

    client.post(reverse(URL), {f"priority_{globex.pk}": "10"})

    globex.refresh_from_db()
    assert globex.priority == 3


def test_a_user_who_may_only_view_skills_sees_the_page_without_a_form(client, bu, skills):
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.set(Permission.objects.filter(codename="view_skill"))
    MembershipFactory(user=viewer, business_unit=bu)
    client.force_login(viewer)

    page = client.get(reverse(URL))
    refused = client.post(reverse(URL), {f"priority_{skills['Alerts'].pk}": "9"})

    assert page.status_code == 200 and 'name="priority_' not in page.content.decode()
    assert refused.status_code == 403
    skills["Alerts"].refresh_from_db()
    assert skills["Alerts"].priority == 1


def test_a_user_without_skill_permissions_is_refused(client, bu, skills):
    nobody = UserFactory(username="nobody")
    MembershipFactory(user=nobody, business_unit=bu)
    client.force_login(nobody)

    assert client.get(reverse(URL)).status_code == 403


def test_the_skill_list_links_to_the_page(client, staff_member, skills):
    client.force_login(staff_member)

    page = client.get(reverse("admin:skills_skill_changelist")).content.decode()

    assert reverse(URL) in page


def test_the_rate_follows_the_codes_pace():
    from skills.selectors import PriorityRow

    row = PriorityRow(Skill(priority=1), _code(Decimal("3")), share=_fraction(1, 3))
    assert (row.percent, row.rate) == (33, Decimal("1.00"))
    row = PriorityRow(Skill(priority=1), _code(Decimal("100")), share=_fraction(1, 40))
    assert (row.percent, row.rate) == (3, Decimal("2.50"))  # 2.5% rounds half up


def _code(rate):
    from messaging.models import TransportCode

    return TransportCode(messages_per_second=rate)


def _fraction(a, b):
    from fractions import Fraction

    return Fraction(a, b)
