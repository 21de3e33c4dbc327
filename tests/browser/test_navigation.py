"""The admin's index and sidebar by task, in a real browser."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_the_index_and_the_sidebar_go_by_task(page, login, staff_member):
    login(staff_member)
    page.goto(reverse("admin:index"))
    sections = page.locator("#content-main caption")
    expect(sections.first).to_have_text("Campaigns & skills")
    expect(page.locator("#content-main")).to_contain_text("Compliance")
    expect(page.locator("#content-main")).not_to_contain_text("Cadence steps")
    page.locator("#content-main .app-section-campaigns-skills").get_by_role(
        "link", name="Skills", exact=True
    ).click()
    expect(page.locator("h1")).to_contain_text("Select skill to change")
    sidebar = page.locator("#nav-sidebar")
    expect(sidebar.locator("caption").first).to_have_text("Campaigns & skills")
    expect(sidebar).to_contain_text("Sending")
