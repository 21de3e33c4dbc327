"""The home page and the "Why is nothing sending?" panel, as an operator sees them in Chromium."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo

import pytest
import time_machine
from django.urls import reverse

from skills.diagnosis import window_words
from skills.models import FinalReason
from skills.outcomes import _block
from tests.factories import AttemptFactory
from tests.test_planner import add_record, make_skill

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
SHOTS = os.environ.get("PCSMS_SCREENSHOTS")  # a folder: save each page's picture there


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def _tomorrow_at_3():
    """03:00 in Chicago tomorrow: outside every US zone's window, yet near enough to today
    that the browser's session cookie (dated by the server's clock) is still valid."""
    day = dt.datetime.now(CHICAGO).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(3, 0), tzinfo=CHICAGO)


def test_the_home_page_shows_skills_figures_and_alerts(page, login, bu, staff_member):
    running = make_skill(bu, name="Flu shots")
    add_record(running)
    add_record(running, is_final=True, final_reason=FinalReason.DELIVERED)
    blocked = make_skill(bu, name="Promo")
    record = add_record(blocked)
    attempt = AttemptFactory(skill=blocked, record=record, destination=record.destinations.first())
    _block(blocked, attempt, "30007: Carrier filtering")
    login(staff_member)
    home = page.locator("#home")
    expect(home.locator("#home-alerts")).to_contain_text(
        'Skill "Promo" is paused: The carrier blocked a text as spam or filtered it'
    )
    expect(home.locator("#home-texts-today")).to_contain_text("texts sent today")
    expect(home.locator("#home-review")).to_contain_text("probable opt-outs to review")
    rows = home.locator("#home-skills tr.home-skill")
    expect(rows).to_have_count(2)
    flu = rows.filter(has_text="Flu shots")
    expect(flu).to_contain_text("Running")
    expect(flu).to_contain_text("50% (1 of 2 records final)")
    expect(flu.locator("progress")).to_have_attribute("value", "50")
    expect(page.locator("#content-main caption").first).to_have_text("Campaigns & skills")
    _shot(page, "home")
    home.locator("#home-alerts a").first.click()
    expect(page.locator("h1")).to_contain_text("Change skill")
    expect(page.locator("#why-panel")).to_contain_text("the skill is paused since")


def test_at_night_the_skill_page_says_when_the_window_opens(page, login, bu, staff_member):
    skill = make_skill(bu, name="Reminders")
    for _ in range(3):
        add_record(skill, zone="America/New_York")
    add_record(skill, zone="America/Los_Angeles")
    night = _tomorrow_at_3()
    opens = night.astimezone(zoneinfo.ZoneInfo("America/New_York")).replace(hour=8, minute=0)
    with time_machine.travel(night, tick=True):
        login(staff_member)
        page.goto(reverse("admin:skills_skill_change", args=[skill.pk]))
        panel = page.locator("#why-panel")
        expect(panel.locator("h2")).to_have_text("Why is nothing sending?")
        expect(panel.locator(".why-headline")).to_have_text(
            "Nothing is sending now: no waiting record is inside its window. The next window "
            f"opens {window_words(opens, 'America/New_York', skill)}."
        )
        expect(panel.locator("li")).to_contain_text(
            ["3 records are outside the window in America/New_York", "1 record is outside"]
        )
        _shot(page, "why-panel")
        panel.get_by_role("link", name="3 records are outside the window").click()
        expect(page.locator("h1")).to_contain_text("Forecast")
