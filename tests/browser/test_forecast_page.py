"""A skill's forecast in a real browser: from its page to the finish, the day table and the
chart, then from a start time typed in the form."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import SmsRegistrationFactory
from tests.test_planner import add_record, make_skill

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_the_forecast_from_the_skills_page(page, login, staff_member, bu):
    registration = SmsRegistrationFactory(
        business_unit=bu,
        transport_code__business_unit=bu,
        transport_code__messages_per_second=1,
    )
    skill = make_skill(bu, registration=registration, name="Reminders", state="stopped")
    for _ in range(120):
        add_record(skill, zone="America/Los_Angeles")
    login(staff_member)
    page.goto(reverse("admin:skills_skill_change", args=[skill.pk]))
    page.get_by_role("link", name="Forecast", exact=True).click()
    expect(page.locator("h1")).to_contain_text("Forecast: Reminders")
    expect(page.locator('[data-f="records"]')).to_have_text("120")
    expect(page.locator('[data-f="texts"]')).to_have_text("120")

    # Monday 8 June 2026, 09:00 in New York (the BU's zone): 06:00 in Los Angeles, whose
    # window opens at 08:00 there, 11:00 here; 120 texts at one a second take two minutes.
    page.get_by_label("Starting at").fill("2026-06-08T09:00")
    page.get_by_role("button", name="Forecast", exact=True).click()
    expect(page.locator('[data-f="finishes"]')).to_contain_text("Mon 8 Jun 11:0")
    days = page.locator('[data-f="days"] tbody')
    expect(days).to_contain_text("Mon 2026-06-08")
    expect(days).to_contain_text("11:00-11:02")
    assert page.locator('[data-f="chart"] rect').count() >= 3  # 09:00, 10:00, 11:00
    expect(page.locator('[data-f="assumptions"]')).to_contain_text("1 segment a second")

    page.get_by_label("Starting at").fill("")
    page.goto(reverse("admin:skills_skill_forecast", args=[skill.pk]) + "?start=soon")
    expect(page.locator(".errorlist")).to_contain_text("is not a date and time")
