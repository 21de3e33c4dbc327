"""The live dashboards of a skill and of a campaign: progress, outcomes, texts per minute, ETA,
opt-outs."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage
from skills.models import Skill
from skills.selectors import campaign_dashboard, eta_text, skill_dashboard
from tests.factories import (
    AttemptFactory,
    CallingListFactory,
    CampaignFactory,
    RecordFactory,
    SkillFactory,
)

NOW = timezone.now().replace(second=30, microsecond=0)


@pytest.fixture
def campaign(bu):
    return CampaignFactory(business_unit=bu, name="Fall")


@pytest.fixture
def skill(bu, campaign):
    """Four records: two delivered, one opted out, one still to text; texts sent 2 and 30
    minutes ago, and one 90 minutes ago (off the chart)."""
    made = SkillFactory(
        business_unit=bu, name="Flu shots", campaign=campaign, state=Skill.State.RUNNING
    )
    calling_list = CallingListFactory(business_unit=bu)
    made.calling_lists.add(calling_list)
    for minutes_ago, reason in ((2, "delivered"), (2, "delivered"), (30, "opted_out"), (90, "")):
        attempt = AttemptFactory(
            skill=made,
            record__calling_list=calling_list,
            record__is_final=bool(reason),
            record__final_reason=reason,
        )
        OutboundMessage.objects.filter(pk=attempt.message_id).update(
            status=MessageStatus.DELIVERED, sent_at=NOW - dt.timedelta(minutes=minutes_ago)
        )
    return made


def test_a_skills_progress_outcomes_throughput_and_eta(skill):
    board = skill_dashboard(skill, now=NOW)

    data = board.as_json()
    assert (data["records"], data["open"], data["finalized"], data["percent_done"]) == (
        4,
        1,
        3,
        75,
    )
    assert data["outcomes"] == [("Delivered", 2), ("Opted out", 1)]
    assert data["texts"] == [("Delivered", 4)]
    assert data["opted_out"] == 1
    assert data["waiting"] == 1
    per_minute = data["per_minute"]
    assert len(per_minute) == 60 and sum(per_minute) == 3  # 90 minutes ago is off the chart
    assert (per_minute[58], per_minute[30]) == (2, 1)  # [now-2, now-1) and [now-30, now-29)
    assert data["rate"] == round(2 / 15, 1)
    assert data["eta_minutes"] == 8  # 1 record at 2 texts per 15 minutes
    assert data["states"] == ["Running"]


def test_no_texts_lately_means_no_eta(skill):
    assert skill_dashboard(skill, now=NOW + dt.timedelta(hours=3)).eta_minutes is None


def test_a_campaign_adds_up_its_skills(skill, bu, campaign):
    other = SkillFactory(business_unit=bu, name="Billing", campaign=campaign)
    other_list = CallingListFactory(business_unit=bu)
    other.calling_lists.add(other_list)
    RecordFactory(calling_list=other_list, time_zone="Pacific/Kiritimati")

    data = campaign_dashboard(campaign, now=NOW).as_json()

    # The other skill's record is in a zone the BU does not allow: open, but never waiting.
    assert (data["records"], data["open"], data["waiting"]) == (5, 2, 1)
    assert data["states"] == ["Billing: Stopped", "Flu shots: Running"]
    assert sum(data["per_minute"]) == 3


@pytest.fixture
def operator(client, staff_member):
    client.force_login(staff_member)
    return client


def test_the_skill_dashboard_page_and_its_data(operator, skill):
    page = operator.get(reverse("admin:skills_skill_dashboard", args=[skill.pk]))
    data = operator.get(reverse("admin:skills_skill_dashboard_data", args=[skill.pk]))

    assert page.status_code == 200
    content = page.content.decode()
    assert "Dashboard: Flu shots" in content and "Opted out" in content
    assert data.status_code == 200 and data.json()["records"] == 4


def test_the_campaign_dashboard_page_and_its_data(operator, skill, campaign):
    page = operator.get(reverse("admin:skills_campaign_dashboard", args=[campaign.pk]))
    data = operator.get(reverse("admin:skills_campaign_dashboard_data", args=[campaign.pk]))

    assert page.status_code == 200 and "Dashboard: Fall" in page.content.decode()
    assert data.json()["finalized"] == 3


def test_the_lists_link_to_the_dashboards(operator, skill, campaign):
    skills = operator.get(reverse("admin:skills_skill_changelist")).content.decode()
    campaigns = operator.get(reverse("admin:skills_campaign_changelist")).content.decode()
    change = operator.get(reverse("admin:skills_skill_change", args=[skill.pk])).content.decode()

    assert reverse("admin:skills_skill_dashboard", args=[skill.pk]) in skills
    assert reverse("admin:skills_skill_dashboard", args=[skill.pk]) in change
    assert reverse("admin:skills_campaign_dashboard", args=[campaign.pk]) in campaigns


def test_another_units_dashboards_are_not_found(operator, other_bu):
    theirs = SkillFactory(business_unit=other_bu)

    for name in ("admin:skills_skill_dashboard", "admin:skills_skill_dashboard_data"):
        assert operator.get(reverse(name, args=[theirs.pk])).status_code == 404
    for name in ("admin:skills_campaign_dashboard", "admin:skills_campaign_dashboard_data"):
        assert operator.get(reverse(name, args=[theirs.campaign.pk])).status_code == 404


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        (None, "-"),
        (0, "done"),
        (45, "45 min"),
        (60, "1 h"),
        (200, "3 h 20 min"),
        (7098, "4 d 22 h"),
        (2880, "2 d"),
    ],
)
def test_the_time_left_reads_as_a_person_says_it(minutes, text):
    assert eta_text(minutes) == text


def test_the_skill_command_reports_what_the_dashboard_shows(skill):
    import json
    from io import StringIO

    from django.core.management import call_command

    out, as_json = StringIO(), StringIO()
    args = ["skill", "report", "Flu shots", "--business-unit", "Acme"]
    call_command(*args, stdout=out)
    call_command(*args, "--json", stdout=as_json)

    text = out.getvalue()
    assert 'Skill "Flu shots" (Acme): Running' in text
    assert "records: 4, finalized 3 (75%), waiting for a text 1" in text
    assert "    Opted out: 1" in text and "    Delivered: 4" in text
    data = json.loads(as_json.getvalue())
    assert (data["skill"], data["records"], data["opted_out"]) == ("Flu shots", 4, 1)


def test_the_data_is_counted_once_per_interval_for_every_viewer(operator, skill, monkeypatch):
    from skills.admin import skill as skills_admin

    calls = []
    real = skills_admin.skill_dashboard
    monkeypatch.setattr(skills_admin, "skill_dashboard", lambda s: calls.append(s.pk) or real(s))
    url = reverse("admin:skills_skill_dashboard_data", args=[skill.pk])

    first, second = operator.get(url).json(), operator.get(url).json()

    assert calls == [skill.pk]  # the second viewer got the same figures
    assert first == second and first["next_seconds"] >= 5
