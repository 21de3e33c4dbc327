"""The relative-priorities page in a real browser: the parts of each code update as a priority
is changed, and saving keeps them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from skills.models import Skill
from tests.factories import OutboundMessageFactory, SkillFactory, SmsRegistrationFactory

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def _share(page, name: str):
    return page.locator("tr", has=page.get_by_role("link", name=name, exact=True)).locator(
        "[data-share]"
    )


def test_changing_a_priority_shows_the_new_parts_then_saves(page, login, staff_member, bu):
    code = SmsRegistrationFactory(business_unit=bu, transport_code__messages_per_second=10)
    running = Skill.State.RUNNING
    SkillFactory(business_unit=bu, name="Reminders", registration=code, priority=6, state=running)
    billing = SkillFactory(
        business_unit=bu, name="Billing", registration=code, priority=4, state=running
    )
    SkillFactory(business_unit=bu, name="Surveys", registration=code, priority=5)
    login(staff_member)

    page.goto(reverse("admin:skills_skill_changelist"))
    page.get_by_role("link", name="Relative priorities").click()
    expect(_share(page, "Reminders")).to_have_text("60% = 6/s")
    expect(_share(page, "Surveys")).to_have_text("if started: 33% = 3.33/s")
    # The page's script is deferred: on a busy machine the server-rendered shares show before
    # it listens for changes, and a change made then updates nothing.
    page.wait_for_load_state("load")

    page.get_by_label("Priority of Billing").select_option("9")
    # Before saving, the page already shows what the new priority is worth.
    expect(_share(page, "Billing")).to_have_text("60% = 6/s")  # 9 of 6+9
    expect(_share(page, "Reminders")).to_have_text("40% = 4/s")
    expect(_share(page, "Surveys")).to_have_text("if started: 25% = 2.5/s")  # 5 of 6+9+5

    page.get_by_role("button", name="Save the priorities").click()
    expect(page.locator(".messagelist")).to_contain_text('Priorities saved: "Billing" 9.')
    expect(_share(page, "Billing")).to_have_text("60% = 6/s")
    billing.refresh_from_db()
    assert billing.priority == 9


def test_a_priority_changed_on_the_skills_own_page_reaches_its_queued_texts(
    page, login, staff_member, bu
):
    skill = SkillFactory(business_unit=bu, name="Reminders", priority=5)
    queued = OutboundMessageFactory(
        business_unit=bu, registration=skill.registration, source=f"skill:{skill.pk}", priority=5
    )
    login(staff_member)

    page.goto(reverse("admin:skills_skill_change", args=[skill.pk]))
    page.fill("#id_priority", "8")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    queued.refresh_from_db()
    assert queued.priority == 8
