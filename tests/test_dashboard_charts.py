"""The dashboards' charts: records finalized per outcome over time, records waiting with the line
to zero and the start's forecast, and the tables that show the same figures without JavaScript."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage
from skills.models import Attempt, Record, Skill
from skills.selectors import _outcomes_over_time, campaign_dashboard, skill_dashboard
from tests.factories import (
    AttemptFactory,
    CallingListFactory,
    CampaignFactory,
    RecordFactory,
    SkillFactory,
    SkillForecastFactory,
)
from tests.test_planner import add_record, make_skill

NOW = dt.datetime(2026, 12, 7, 14, 37, 20, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def campaign(bu):
    return CampaignFactory(business_unit=bu, name="Fall")


def running_skill(bu, campaign, name="Flu shots"):
    skill = SkillFactory(business_unit=bu, name=name, campaign=campaign, state=Skill.State.RUNNING)
    skill.calling_lists.add(CallingListFactory(business_unit=bu))
    return skill


def texted(skill, reason="", *, minutes_ago=0.0, texted_minutes_ago=None):
    """A record the skill texted, finalized ``reason`` (if any) ``minutes_ago``."""
    attempt = AttemptFactory(skill=skill, record__calling_list=skill.calling_lists.get())
    when = NOW - dt.timedelta(minutes=texted_minutes_ago or minutes_ago)
    Attempt.objects.filter(pk=attempt.pk).update(created_at=when)
    OutboundMessage.objects.filter(pk=attempt.message_id).update(
        status=MessageStatus.DELIVERED, sent_at=when
    )
    if reason:
        Record.objects.filter(pk=attempt.record_id).update(
            is_final=True, final_reason=reason, updated_at=NOW - dt.timedelta(minutes=minutes_ago)
        )
    return attempt


@pytest.fixture
def skill(bu, campaign):
    """Records finalized over the afternoon: 3 delivered in the current 10 minutes, one opted
    out 25 minutes ago, one with every number bad 3 1/2 hours ago, one delivered 5 hours ago
    (before the chart), and one found on a DNC group by the planner just now (never texted)."""
    made = running_skill(bu, campaign)
    texted(made, "delivered", minutes_ago=2, texted_minutes_ago=40)
    texted(made, "delivered", minutes_ago=1)
    texted(made, "delivered", minutes_ago=7)  # 14:30:20, in 14:30-14:37
    texted(made, "opted_out", minutes_ago=25)  # 14:12:20, in 14:10-14:20
    texted(made, "bad_numbers", minutes_ago=210)  # 11:07:20, in 11:00-11:10
    texted(made, "delivered", minutes_ago=300)  # 09:37:20: before the chart's 10:40
    RecordFactory(calling_list=made.calling_lists.get(), is_final=True, final_reason="dnc")
    return made


def series(data):
    over = data["outcomes_over_time"]
    return {s["label"]: s["counts"] for s in over["series"]}, over["labels"]


def test_outcomes_over_time_by_ten_minutes_of_the_clock(skill):
    data = skill_dashboard(skill).as_json()

    counts, labels = series(data)
    assert len(labels) == 24 and (labels[0], labels[-2], labels[-1]) == ("10:40", "14:20", "14:30")
    # FinalReason's order, every outcome: the DNC record the planner finalized without a text too.
    assert list(counts) == ["Delivered", "Opted out", "On a DNC group", "All numbers bad"]
    assert counts["Delivered"][-1] == 3 and sum(counts["Delivered"]) == 3  # 5 h ago: off it
    assert counts["On a DNC group"][-1] == 1
    assert counts["Opted out"][labels.index("14:10")] == 1
    assert counts["All numbers bad"][labels.index("11:00")] == 1
    # The outcomes table counts the whole run, the one before the chart too.
    assert dict(data["outcomes"]) == {
        "Delivered": 4,
        "Opted out": 1,
        "On a DNC group": 1,
        "All numbers bad": 1,
    }


def test_the_buckets_follow_the_local_clock(skill):
    with timezone.override("Asia/Kathmandu"):  # UTC+5:45
        counts, labels = series(skill_dashboard(skill).as_json())

    assert labels[-1] == "20:20" and labels[0] == "16:30"  # 14:37 UTC is 20:22 there
    assert counts["Delivered"][-1] == 2  # 20:20-20:22: the records finalized 1 and 2 min ago
    assert counts["Delivered"][-2] == 1  # 14:30:20 UTC is 20:15:20


def test_an_outcome_counts_when_it_came_not_when_its_text_went(bu, campaign):
    made = running_skill(bu, campaign)
    texted(made, "opted_out", minutes_ago=5, texted_minutes_ago=20 * 60)  # a reply the next day

    counts, _labels = series(skill_dashboard(made).as_json())

    assert counts == {"Opted out": [0] * 23 + [1]}


def test_the_outcomes_series_is_one_query(skill, django_assert_num_queries):
    list_ids = [skill.calling_lists.get().pk]
    with django_assert_num_queries(1):
        _outcomes_over_time(list_ids, NOW)


def test_the_past_buckets_are_counted_once_and_the_current_one_each_refresh(skill):
    """14:37: the buckets before 14:30 are kept; the records finalized since still count."""
    list_ids = [skill.calling_lists.get().pk]
    first = _outcomes_over_time(list_ids, NOW)
    later = NOW + dt.timedelta(minutes=2)
    with time_machine.travel(later, tick=False):
        texted(skill, "opted_out", minutes_ago=0)  # in the current bucket: counted

    kept = _outcomes_over_time(list_ids, later)
    cache.clear()
    counted_afresh = _outcomes_over_time(list_ids, later)

    assert kept.counts == counted_afresh.counts
    assert kept.counts["opted_out"][-1] == first.counts["opted_out"][-1] + 1 == 1
    assert kept.counts["bad_numbers"] == first.counts["bad_numbers"]


def test_nothing_is_kept_while_the_bucket_before_may_still_commit(skill):
    """14:31: a transaction that finalized records at 14:29:59 may not have committed yet."""
    list_ids = [skill.calling_lists.get().pk]
    turned = NOW.replace(minute=31, second=0)
    _outcomes_over_time(list_ids, turned)
    late = RecordFactory(calling_list=skill.calling_lists.get(), is_final=True, final_reason="dnc")
    Record.objects.filter(pk=late.pk).update(updated_at=turned - dt.timedelta(minutes=1, seconds=1))

    counts = _outcomes_over_time(list_ids, turned).counts

    assert counts["dnc"][-2] == 1  # 14:29:59, in 14:20-14:30, though it came in later


def test_a_campaigns_outcomes_add_up_its_skills(skill, bu, campaign):
    other = running_skill(bu, campaign, name="Billing")
    texted(other, "delivered", minutes_ago=3)
    texted(other, "expired", minutes_ago=15)
    shared = running_skill(bu, campaign, name="Reminders")
    shared.calling_lists.set([skill.calling_lists.get()])  # its records count for both skills

    data = campaign_dashboard(campaign).as_json()
    counts, labels = series(data)

    assert counts["Delivered"][-1] == 3 + 1 + 3
    assert counts["Expired"][labels.index("14:20")] == 1
    assert dict(data["outcomes"])["On a DNC group"] == 2 == counts["On a DNC group"][-1]


def test_records_waiting_reckoned_back_and_projected_to_zero(bu, campaign):
    """Three records waiting; 6 texts in the last hour, 3 of them in the last 15 minutes."""
    made = running_skill(bu, campaign)
    for minutes_ago in (50, 40, 20, 10, 5, 1):
        texted(made, "delivered", minutes_ago=minutes_ago)
    for _ in range(3):
        RecordFactory(calling_list=made.calling_lists.get())

    data = skill_dashboard(made).as_json()
    curve = data["waiting_curve"]

    assert (data["waiting"], data["rate"], data["eta_minutes"]) == (3, 0.2, 15)
    history = dict(curve["history"])
    assert len(history) == 13 and (history[-60], history[-45], history[-15], history[0]) == (
        9,
        8,
        6,
        3,
    )  # now's 3 and the texts sent since
    assert curve["projection"] == [[0, 3], [15, 0]]  # none left in 15 min, as the ETA says
    assert curve["forecast"] == []  # no forecast of this run


def test_nothing_to_project_when_nothing_waits_or_nothing_sends(bu, campaign):
    made = running_skill(bu, campaign)
    RecordFactory(calling_list=made.calling_lists.get())

    assert skill_dashboard(made).as_json()["waiting_curve"]["projection"] == []  # no rate

    Record.objects.update(is_final=True, final_reason="dnc")
    assert skill_dashboard(made).as_json()["waiting_curve"]["projection"] == []  # done


def test_the_starts_forecast_as_records_left(bu, campaign):
    """Started 30 minutes ago; the forecast: 600 texts to 300 records in an hour, evenly."""
    made = running_skill(bu, campaign)
    start = NOW - dt.timedelta(minutes=30)
    Skill.objects.filter(pk=made.pk).update(state_changed_at=start)
    made.refresh_from_db()
    progress = [[(start + dt.timedelta(minutes=m)).isoformat(), 10 * m] for m in range(61)]
    SkillForecastFactory(
        skill=made,
        made_at=start,
        starts_at=start,
        finishes_at=start + dt.timedelta(hours=1),
        records=300,
        texts=600,
        data={"progress": progress},
    )

    forecast = dict(skill_dashboard(made).as_json()["waiting_curve"]["forecast"])

    assert forecast[-30.0] == 300  # all of them at the start
    assert forecast[0.0] == 150  # half the texts sent by now: half the records left
    assert forecast[30.0] == 0 and max(forecast) == 30.0  # none left when it finishes


@pytest.fixture
def operator(client, staff_member):
    client.force_login(staff_member)
    return client


def test_the_page_shows_the_charts_figures_in_tables(operator, skill):
    page = operator.get(reverse("admin:skills_skill_dashboard", args=[skill.pk])).content.decode()

    for canvas in ("chart-per-minute", "chart-outcomes", "chart-waiting"):
        assert f'<canvas id="{canvas}"' in page
    assert "vendor/chartjs/chart.umd.js" in page and "pcsms/charts.js" in page
    # Records finalized 14:30-14:37: three delivered, none opted out, one DNC, no bad numbers.
    assert '<tr><th scope="row">14:30</th><td>3</td><td>0</td><td>1</td><td>0</td></tr>' in page
    assert '<tr><th scope="row">14:37</th><td>1</td></tr>' in page  # a text a minute ago
    assert '<tr><th scope="row">-60</th><td>4</td></tr>' in page  # none waiting, 4 texts since
    assert 'id="dashboard-initial"' in page  # the charts are drawn from it at once


def test_the_skill_dashboard_says_why_nothing_is_sending(operator, bu):
    """The dashboard and its polled data carry the skill page's panel: here a skill paused
    with records waiting, then resumed at a time inside their window."""
    skill = make_skill(bu, name="Promo")
    for _ in range(2):
        add_record(skill, zone="America/Chicago")  # 08:37 there: inside the default window
    Skill.objects.filter(pk=skill.pk).update(state=Skill.State.PAUSED)
    page_url = reverse("admin:skills_skill_dashboard", args=[skill.pk])
    data_url = reverse("admin:skills_skill_dashboard_data", args=[skill.pk])

    page = operator.get(page_url).content.decode()
    assert '<h2 id="why-title" data-why="title">Why is nothing sending?</h2>' in page
    assert "Nothing is sending: the skill is paused" in page
    paused = operator.get(data_url).json()
    assert paused["why_sending"] is False
    assert paused["why_headline"].startswith("Nothing is sending: the skill is paused")
    first = paused["why"][0]
    assert first["text"].startswith("The skill is paused") and first["holds"] is True
    assert first["url"] == reverse("admin:skills_skill_changelist") + f"?id={skill.pk}"

    Skill.objects.filter(pk=skill.pk).update(state=Skill.State.RUNNING)
    cache.clear()  # the figures are kept for a poll interval
    running = operator.get(data_url).json()
    assert running["why_sending"] is True
    assert not any(item["holds"] for item in running["why"])
    page = operator.get(page_url).content.decode()
    assert '<h2 id="why-title" data-why="title">Sending</h2>' in page


def test_a_campaign_dashboard_has_no_why_panel(operator, skill, campaign):
    page = operator.get(reverse("admin:skills_campaign_dashboard", args=[campaign.pk]))
    assert 'id="why-panel"' not in page.content.decode()
    assert (
        "why"
        not in operator.get(
            reverse("admin:skills_campaign_dashboard_data", args=[campaign.pk])
        ).json()
    )


def test_just_after_the_start_the_rate_is_over_the_minutes_since(bu, campaign):
    """Started 2 minutes ago, 60 texts sent since and 60 records left: 30 a minute, 2 minutes
    left (over 15 minutes the rate would read 4 a minute and the time left 15 minutes)."""
    made = running_skill(bu, campaign)
    Skill.objects.filter(pk=made.pk).update(state_changed_at=NOW - dt.timedelta(minutes=2))
    made.refresh_from_db()
    for i in range(60):
        texted(made, "delivered", minutes_ago=(i % 2) + 0.5)
    for _ in range(60):
        RecordFactory(calling_list=made.calling_lists.get())

    data = skill_dashboard(made).as_json()
    assert (data["rate_minutes"], data["rate"], data["eta_minutes"]) == (2, 30.0, 2)

    Skill.objects.filter(pk=made.pk).update(state=Skill.State.PAUSED)
    made.refresh_from_db()
    assert skill_dashboard(made).as_json()["rate_minutes"] == 15  # not running: the last 15

    Skill.objects.filter(pk=made.pk).update(
        state=Skill.State.RUNNING, state_changed_at=NOW - dt.timedelta(hours=1)
    )
    made.refresh_from_db()
    assert skill_dashboard(made).as_json()["rate"] == 4.0  # running long: the last 15 minutes
