"""A skill's dashboard in a real browser: it follows the skill without a reload."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage
from skills.models import Record, Skill
from tests.factories import AttemptFactory, CallingListFactory, SkillFactory

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_the_dashboard_follows_the_skill(page, login, staff_member, bu):
    skill = SkillFactory(business_unit=bu, name="Flu shots", state=Skill.State.RUNNING)
    calling_list = CallingListFactory(business_unit=bu)
    skill.calling_lists.add(calling_list)
    attempts = [AttemptFactory(skill=skill, record__calling_list=calling_list) for _ in range(4)]
    login(staff_member)

    page.goto(reverse("admin:skills_skill_change", args=[skill.pk]))
    page.get_by_role("link", name="Dashboard").first.click()
    expect(page.locator('[data-d="records"]')).to_have_text("4")
    expect(page.locator('[data-d="finalized"]')).to_have_text("0")
    expect(page.locator('[data-d="eta"]')).to_have_text("-")
    per_minute = "Chart.getChart(document.getElementById('chart-per-minute')).data.datasets[0].data"
    # The figures are in the page as served; the charts come once the deferred scripts ran.
    page.wait_for_function(
        "window.Chart && Chart.getChart(document.getElementById('chart-per-minute'))"
    )
    assert page.evaluate(per_minute) == [0] * 60  # a bar a minute, none sent yet

    # Two texts go out and are delivered; one recipient opts out.
    delivered = [a.message_id for a in attempts[:2]]
    OutboundMessage.objects.filter(pk__in=delivered).update(
        status=MessageStatus.DELIVERED, sent_at=timezone.now()
    )
    Record.objects.filter(pk=attempts[0].record_id).update(is_final=True, final_reason="delivered")
    Record.objects.filter(pk=attempts[1].record_id).update(is_final=True, final_reason="opted_out")

    # Within one poll (every 5 s).
    expect(page.locator('[data-d="finalized"]')).to_have_text("2", timeout=15_000)
    expect(page.locator('[data-d="percent_done"]')).to_have_text("50")
    expect(page.locator('[data-d="opted_out"]')).to_have_text("1")
    expect(page.locator('[data-d="texts"]')).to_contain_text("Delivered2")
    expect(page.locator('[data-d="eta"]')).to_have_text("15 min")  # 2 waiting, 2 texts per 15 min
    expect(page.locator('[data-d="peak"]')).to_have_text("2")
    assert sum(page.evaluate(per_minute)) == 2  # the chart was redrawn with the poll
