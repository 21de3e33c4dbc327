"""A compliance owner's pages in a real browser: declaring a blackout, and the evidence of a
number with the rule that held its text back."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse

from skills.models import Blackout
from skills.planner import plan_skill
from tests.test_planner import add_record, make_skill

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

NEW_ORLEANS = "+15045550177"


def test_a_blackout_declared_in_the_admin_holds_and_the_evidence_names_it(
    page, login, staff_member, bu
):
    login(staff_member)
    page.goto(reverse("admin:skills_blackout_add"))
    page.select_option("#id_business_unit", str(bu.pk))
    page.fill("#id_reason", "Hurricane state of emergency")
    page.fill("#id_states", '["LA"]')
    page.fill("#id_starts_at_0", "2026-06-16")
    page.fill("#id_starts_at_1", "00:00:00")
    page.fill("#id_ends_at_0", "2026-06-30")
    page.fill("#id_ends_at_1", "00:00:00")
    page.fill("#id_source", "Proclamation 26-101")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    assert Blackout.objects.get().declared_by == staff_member

    skill = make_skill(bu, name="Renewals")
    add_record(skill, phones=[("SMSPhoneNumber", NEW_ORLEANS)], state="LA", external_id="C-9")
    noon = dt.datetime(2026, 6, 17, 12, tzinfo=zoneinfo.ZoneInfo("America/Chicago"))
    assert plan_skill(skill=skill, now=noon).planned == 0

    page.goto(reverse("admin:skills_rulehold_changelist"))
    expect(page.locator("#result_list")).to_contain_text("blackout: Hurricane state of emergency")
    page.get_by_role("link", name="Evidence of a number").click()
    page.get_by_label("Phone number").fill("(504) 555-0177")
    page.get_by_role("button", name="Show the evidence").click()
    timeline = page.locator("#evidence-timeline")
    expect(timeline).to_contain_text("Held back: blackout: Hurricane state of emergency")
    expect(timeline).to_contain_text("Proclamation 26-101")
    with page.expect_download() as download:
        page.get_by_role("link", name="PDF").click()
    assert download.value.suggested_filename == "evidence-15045550177.pdf"

    page.get_by_label("Phone number").fill("not a number")
    page.get_by_role("button", name="Show the evidence").click()
    expect(page.locator(".errornote")).to_contain_text("is not a phone number")
