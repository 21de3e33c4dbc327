"""A skill's dashboard charts in a real browser: drawn from the figures, redrawn on each poll, in
the dark theme's colours when it is switched on, and the "Why is nothing sending?" panel."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage
from skills.models import Record, Skill
from tests.factories import AttemptFactory, CallingListFactory, RecordFactory, SkillFactory

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

SHOTS = os.environ.get("PCSMS_SCREENSHOTS")  # a folder: save each page's picture there
# Undefined until the deferred Chart.js has run: a wait on it keeps waiting till then.
CHART = "(id) => window.Chart && Chart.getChart(document.getElementById(id))"


def chart(page, canvas_id: str, expression: str):
    """``expression`` of the Chart instance ``c`` on the canvas ``canvas_id``."""
    return page.evaluate(
        f"(id) => {{ const c = ({CHART})(id); return {expression}; }}",
        canvas_id,
    )


def drawn_pixels(page, canvas_id: str) -> int:
    return page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            const size = [canvas.width, canvas.height];
            const pixels = canvas.getContext("2d").getImageData(0, 0, ...size).data;
            let n = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) n++;
            return n;
        }""",
        canvas_id,
    )


def bar_pixel(page, index: int) -> list[int]:
    """The colour in the middle of the per-minute chart's bar ``index``."""
    return page.evaluate(
        """(index) => {
            const c = Chart.getChart(document.getElementById("chart-per-minute"));
            const bar = c.getDatasetMeta(0).data[index];
            const ratio = c.currentDevicePixelRatio;
            const x = Math.round(bar.x * ratio), y = Math.round(((bar.y + bar.base) / 2) * ratio);
            return Array.from(c.ctx.getImageData(x, y, 1, 1).data.slice(0, 3));
        }""",
        index,
    )


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def abort(route):
    route.abort()


def rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]


@pytest.fixture
def skill(bu):
    """Five texts sent in the last minutes: three records delivered, one opted out, one waits;
    two more records wait for their first text."""
    made = SkillFactory(business_unit=bu, name="Flu shots", state=Skill.State.RUNNING)
    calling_list = CallingListFactory(business_unit=bu)
    made.calling_lists.add(calling_list)
    now = timezone.now()
    for minutes_ago, reason in (
        (1, "delivered"),
        (1, "delivered"),
        (3, "delivered"),
        (4, "opted_out"),
        (4, ""),
    ):
        attempt = AttemptFactory(skill=made, record__calling_list=calling_list)
        OutboundMessage.objects.filter(pk=attempt.message_id).update(
            status=MessageStatus.DELIVERED, sent_at=now - dt.timedelta(minutes=minutes_ago)
        )
        if reason:
            Record.objects.filter(pk=attempt.record_id).update(
                is_final=True, final_reason=reason, updated_at=now
            )
    for _ in range(2):
        RecordFactory(calling_list=calling_list)
    return made


def open_dashboard(page, login, staff_member, skill):
    login(staff_member)
    page.goto(reverse("admin:skills_skill_dashboard", args=[skill.pk]))
    for canvas in ("chart-per-minute", "chart-outcomes", "chart-waiting"):
        page.wait_for_function(f"({CHART})('{canvas}') !== undefined")


def test_the_charts_are_drawn_from_the_figures(page, login, staff_member, skill):
    open_dashboard(page, login, staff_member, skill)

    per_minute = chart(page, "chart-per-minute", "c.data.datasets[0].data")
    assert len(per_minute) == 60 and sum(per_minute) == 5  # every text sent this hour
    assert per_minute[-2:] in ([2, 0], [0, 2])  # the two of a minute ago, by the clock's second
    labels = chart(page, "chart-per-minute", "c.data.labels")
    now = timezone.localtime()
    assert labels[-1] in {f"{now:%H:%M}", f"{now - dt.timedelta(minutes=1):%H:%M}"}  # by the clock

    outcomes = chart(
        page,
        "chart-outcomes",
        "c.data.datasets.map(d => [d.label, d.data.reduce((a, b) => a + b)])",
    )
    assert outcomes == [["Delivered", 3], ["Opted out", 1]]
    assert chart(page, "chart-outcomes", "c.options.scales.y.stacked") is True

    waiting = chart(page, "chart-waiting", "c.data.datasets.map(d => [d.label, d.data])")
    history, projection = waiting[0][1], waiting[1][1]
    assert history[0] == {"x": -60, "y": 8} and history[-1] == {"x": 0, "y": 3}
    assert projection == [{"x": 0, "y": 3}, {"x": 9, "y": 0}]  # 3 waiting at 5 texts a 15 min
    assert waiting[1][0] == "At the current rate"
    # The x axis reads as times from now.
    ticks = chart(page, "chart-waiting", "c.scales.x.ticks.map(t => t.label)")
    assert "now" in ticks and any(t.startswith("-") and t.endswith("min") for t in ticks)

    for canvas in ("chart-per-minute", "chart-outcomes", "chart-waiting"):
        assert drawn_pixels(page, canvas) > 500, canvas
    # The figures stay readable without the charts.
    expect(page.locator('[data-d="waiting_note"]')).to_contain_text("3 waiting now")


def test_the_charts_follow_the_dark_theme(page, login, staff_member, skill):
    open_dashboard(page, login, staff_member, skill)
    # No poll answers: the charts re-colour on the theme's change, not on new figures.
    page.route(f"**{reverse('admin:skills_skill_dashboard_data', args=[skill.pk])}", abort)
    page.evaluate("document.documentElement.dataset.theme = 'light'")
    page.wait_for_function(f"({CHART})('chart-per-minute').options.scales.y.ticks.color === '#666'")
    busy = chart(page, "chart-per-minute", "c.data.datasets[0].data.findLastIndex(n => n > 0)")
    light_bar = bar_pixel(page, busy)
    assert light_bar == rgb("#417893")  # the admin's --link-fg

    page.evaluate("document.documentElement.dataset.theme = 'dark'")

    # Django admin's dark theme: --body-quiet-color #d0d0d0, --body-fg #eeeeee, --link-fg #81d4fa.
    page.wait_for_function(
        f"({CHART})('chart-per-minute').options.scales.y.ticks.color === '#d0d0d0'"
    )
    assert chart(page, "chart-per-minute", "c.data.datasets[0].backgroundColor") == "#81d4fa"
    assert bar_pixel(page, busy) == rgb("#81d4fa")
    assert chart(page, "chart-outcomes", "c.options.plugins.legend.labels.color") == "#eeeeee"
    assert chart(page, "chart-waiting", "c.options.scales.x.grid.color") == "#272727"
    # Back to light: the charts follow again.
    page.evaluate("document.documentElement.dataset.theme = 'light'")
    page.wait_for_function(f"({CHART})('chart-waiting').options.scales.x.ticks.color === '#666'")
    assert bar_pixel(page, busy) == light_bar


def test_the_charts_and_the_why_panel_follow_each_poll(page, login, staff_member, skill):
    open_dashboard(page, login, staff_member, skill)
    panel = page.locator("#why-panel")
    expect(panel).to_be_visible()
    expect(panel.locator("h2")).to_have_text("Sending")

    # The skill is paused, and a waiting record's text is delivered meanwhile.
    Skill.objects.filter(pk=skill.pk).update(state=Skill.State.PAUSED)
    waiting = Record.objects.filter(is_final=False, attempt_set__isnull=False).get()
    Record.objects.filter(pk=waiting.pk).update(
        is_final=True, final_reason="delivered", updated_at=timezone.now()
    )

    # Within a poll or two (every 5 s, the figures cached as long).
    expect(panel.locator("h2")).to_have_text("Why is nothing sending?", timeout=15_000)
    headline = panel.locator(".why-headline")
    expect(headline).to_contain_text("Nothing is sending: the skill is paused")
    held = panel.locator("li.why-holds").first
    expect(held).to_contain_text("The skill is paused")
    expect(held.locator("a")).to_have_attribute(
        "href", reverse("admin:skills_skill_changelist") + f"?id={skill.pk}"
    )
    delivered = "c.data.datasets[0].data.reduce((a, b) => a + b)"
    page.wait_for_function(
        f"({CHART})('chart-outcomes').data.datasets[0].data.reduce((a, b) => a + b) === 4"
    )
    assert chart(page, "chart-outcomes", delivered) == 4  # the delivered record came in
    _shot(page, "dashboard")

    held.locator("a").click()  # to the skills list, where it is resumed
    expect(page.locator("#result_list")).to_contain_text("Flu shots")
