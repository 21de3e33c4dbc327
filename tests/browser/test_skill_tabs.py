"""The skill page's parameter pages as tabs, in a real browser."""

from __future__ import annotations

import pytest
from django.urls import reverse

from skills.services import skill_apply_defaults
from tests.factories import CallingListFactory, RecordFactory, SkillFactory

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

TABS = [
    "Skill",
    "1. General",
    "2. Cadence",
    "3. Delivery",
    "4. CPA",
    "5. Retry",
    "6. Filter",
    "7. List management",
    "8. Schedule",
    "9. Time zones",
    "10. XS",
]


@pytest.fixture
def skill(bu):
    made = SkillFactory(business_unit=bu, name="Reminders")
    skill_apply_defaults(skill=made)
    return made


def _tab(page, title: str):
    return page.locator(".skill-tabs").get_by_role("tab", name=title, exact=True)


def test_one_parameter_page_at_a_time(page, login, staff_member, skill):
    login(staff_member)
    page.goto(reverse("admin:skills_skill_change", args=[skill.pk]))

    expect(page.locator(".skill-tabs [role=tab]")).to_have_text(TABS)
    expect(_tab(page, "Skill")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#id_name")).to_be_visible()
    expect(page.locator("#id_max_attempts")).to_be_hidden()
    expect(page.get_by_text("4. CPA management: carrier outcomes")).to_be_hidden()

    _tab(page, "4. CPA").click()
    expect(page.get_by_text("4. CPA management: carrier outcomes")).to_be_visible()
    expect(page.locator("#id_name")).to_be_hidden()

    # A page with its own fields and rows shows both.
    _tab(page, "2. Cadence").click()
    expect(page.locator("#id_attempt_mode")).to_be_visible()
    expect(page.get_by_text("2. Cadence settings: numbers texted, in order")).to_be_visible()

    # The buttons stay, whatever the tab.
    expect(page.locator("input[name=_save]").last).to_be_visible()


def test_the_tab_with_an_error_opens_and_is_marked(page, login, staff_member, skill):
    login(staff_member)
    page.goto(reverse("admin:skills_skill_change", args=[skill.pk]))
    _tab(page, "5. Retry").click()
    page.fill("#id_stale_minutes", "-5")
    _tab(page, "Skill").click()
    page.locator("input[name=_continue]").last.click()

    expect(page.locator(".errornote")).to_be_visible()
    expect(_tab(page, "5. Retry")).to_have_attribute("aria-selected", "true")
    expect(_tab(page, "5. Retry")).to_have_class("has-errors")
    expect(page.locator("#id_stale_minutes")).to_be_visible()
    skill.refresh_from_db()
    assert skill.stale_minutes != -5


def test_the_last_tab_opens_again_after_save_and_continue(page, login, staff_member, skill):
    login(staff_member)
    page.goto(reverse("admin:skills_skill_change", args=[skill.pk]))
    _tab(page, "3. Delivery").click()
    page.fill("#id_max_segments", "4")
    page.locator("input[name=_continue]").last.click()

    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(_tab(page, "3. Delivery")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#id_max_segments")).to_have_value("4")


def test_the_filter_page_counts_the_records_its_rows_let_through(
    page, login, staff_member, skill, bu
):
    calling_list = CallingListFactory(business_unit=bu)
    for state in ("IL", "IL", "TX"):
        RecordFactory(calling_list=calling_list, state=state)
    skill.calling_lists.add(calling_list)
    login(staff_member)
    page.goto(reverse("admin:skills_skill_change", args=[skill.pk]))

    _tab(page, "6. Filter").click()
    page.locator("#filter_conditions-group .add-row a").click()
    page.fill("#id_filter_conditions-0-field", "State")
    page.select_option("#id_filter_conditions-0-operator", "eq")
    page.fill("#id_filter_conditions-0-value", "il")
    page.get_by_role("button", name="Count the records that match").click()

    expect(page.locator(".skill-filter-preview output")).to_have_text(
        "2 of 3 open records match the filter."
    )
    # Counting saved nothing; the preview belongs to the Filter page only.
    assert not skill.filter_conditions.exists()
    _tab(page, "Skill").click()
    expect(page.get_by_role("button", name="Count the records that match")).to_be_hidden()


def test_saving_a_changed_filter_applies_the_choice_to_queued_texts(page, login, staff_member, bu):
    from messaging.models import MessageStatus, OutboundMessage
    from tests.factories import AttemptFactory

    texted = SkillFactory(business_unit=bu, name="Texted")
    calling_list = CallingListFactory(business_unit=bu)
    texted.calling_lists.add(calling_list)
    for state in ("IL", "TX"):  # a queued text each, planned before the filter
        AttemptFactory(skill=texted, record__calling_list=calling_list, record__state=state)
    login(staff_member)
    page.goto(reverse("admin:skills_skill_change", args=[texted.pk]))

    _tab(page, "6. Filter").click()
    page.check("#id_filter_active")
    page.select_option("#id_filter_change_action", label="Pause until re-planned")
    page.locator("#filter_conditions-group .add-row a").click()
    page.fill("#id_filter_conditions-0-field", "State")
    page.fill("#id_filter_conditions-0-value", "IL")
    page.locator("input[name=_continue]").last.click()

    expect(page.locator(".messagelist")).to_contain_text("1 queued text(s) withdrawn")
    queued = OutboundMessage.objects.filter(status=MessageStatus.QUEUED)
    assert list(queued.values_list("attempt__record__state", flat=True)) == ["IL"]
