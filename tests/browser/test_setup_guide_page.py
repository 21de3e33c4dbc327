"""The guided set-up in a real browser: from the skill list to the checklist, the next step
marked, its link to the add page prefilled with the business unit, and back with that step
done."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import TransportCodeFactory

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_a_person_follows_the_checklist_to_the_missing_step(page, login, staff_member, bu):
    login(staff_member)
    page.goto(reverse("admin:skills_skill_changelist"))
    page.get_by_role("link", name="Set up a skill", exact=True).click()
    expect(page.locator("h1")).to_have_text("Set up a skill: Acme")
    expect(page.locator("#setup-progress")).to_have_text("0 of 6 steps done")
    steps = page.locator("li.setup-step")
    expect(steps).to_have_count(6)
    first = page.locator("#setup-step-code")
    expect(first).to_have_attribute("aria-current", "step")
    expect(first).to_contain_text("Next")
    expect(first).to_contain_text("Missing")
    expect(page.locator("[aria-current=step]")).to_have_count(1)

    first.get_by_role("link", name="Add a transport code").click()
    page.wait_for_url("**/admin/messaging/transportcode/add/**")
    expect(page.locator("h1")).to_have_text("Add transport code")
    expect(page.locator("#id_business_unit option:checked")).to_have_text("Acme")

    # Once the code exists, the registration is next.
    TransportCodeFactory(business_unit=bu, number="+13125550100")
    page.goto(reverse("admin:skills_skill_setup"))
    expect(page.locator("#setup-step-code")).to_have_attribute("data-status", "done")
    expect(page.locator("#setup-step-code")).to_contain_text("Code +13125550100, 5 texts/s")
    expect(page.locator("#setup-step-registration")).to_have_attribute("aria-current", "step")
    expect(page.locator("#setup-progress")).to_have_text("1 of 6 steps done")
