"""The admin's home page: running and paused skills with their progress, texts today and per
hour, opt-outs today, probable opt-outs to review, imports under way and the alerts, for the
user's business units only (skills/home.py, skills/admin/home.py)."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from messaging.models import InboundMessage, MessageStatus, SenderLease, TransportCode
from skills.home import alerts, home
from skills.models import FinalReason, Skill, UploadJob
from skills.outcomes import _block
from tests.factories import (
    AttemptFactory,
    DncEntryFactory,
    DncGroupFactory,
    InboundMessageFactory,
    MembershipFactory,
    OutboundMessageFactory,
    SmsRegistrationFactory,
    UploadJobFactory,
    UserFactory,
)
from tests.test_planner import add_record, make_skill

NOW = dt.datetime(2026, 6, 17, 15, 30, tzinfo=dt.UTC)  # 11:30 in New York, the admin's zone


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the page's figures are cached for a few seconds
    yield
    cache.clear()


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def _sent(bu, skill, at, n=1, status=MessageStatus.DELIVERED):
    for _ in range(n):  # each to a record of a list of its own, not the skill's
        AttemptFactory(
            skill=skill,
            message__registration=skill.registration,
            message__status=status,
            message__sent_at=at,
            message__finished_at=at,
        )


def _busy_bu(bu):
    """A running skill half done, a paused one, texts this morning, opt-outs, a review and an
    import under way."""
    skill = make_skill(bu, name="Flu shots")
    for _ in range(2):
        add_record(skill)
    for _ in range(2):
        add_record(skill, is_final=True, final_reason=FinalReason.DELIVERED)
    make_skill(bu, name="Renewals", state=Skill.State.PAUSED)
    make_skill(bu, name="Old one", state=Skill.State.STOPPED)
    ten = NOW.replace(hour=14, minute=5)  # 10:05 local
    _sent(bu, skill, ten, 3)
    _sent(bu, skill, NOW - dt.timedelta(days=1), 5)  # yesterday: not today
    group = DncGroupFactory(business_unit=bu)
    DncEntryFactory(group=group, source="stop_reply")
    DncEntryFactory(group=group, source="manual")  # an administrator's entry: no opt-out
    InboundMessageFactory(business_unit=bu, review=InboundMessage.Review.PENDING)
    job = UploadJobFactory(
        calling_list=skill.calling_lists.first(),
        status=UploadJob.Status.RUNNING,
        rows_total=1000,
        rows_processed=400,
        rows_valid=400,
        original_name="june.csv",
    )
    return skill, job


@pytest.mark.django_db
def test_the_home_page_shows_a_members_business_unit(client, bu, other_bu, staff_member):
    with time_machine.travel(NOW, tick=False):
        skill, job = _busy_bu(bu)
        _busy_bu(other_bu)
        other = Skill.objects.get(business_unit=other_bu, name="Flu shots")
        other.name = "Globex secret"
        other.save()
        client.force_login(staff_member)
        page = client.get(reverse("admin:index")).content.decode()
    text = _text(page)
    assert "3 texts sent today" in text
    assert "1 opt-outs today" in text
    assert "1 probable opt-outs to review" in text
    assert "Flu shots" in text and "Running" in text
    assert "50% (2 of 4 records final)" in text
    assert "Renewals" in text and "Paused" in text
    assert "Old one" not in text  # stopped: not on the home page
    assert "june.csv into" in text and "400 of 1,000 rows" in text
    assert reverse("admin:skills_skill_dashboard", args=[skill.pk]) in page
    assert reverse("admin:skills_uploadjob_change", args=[job.pk]) in page
    assert "10:00: 3" in text  # the chart's hour of the texts
    assert "Globex" not in page
    assert '<th scope="col">Business unit</th>' not in page  # one BU: no column for it
    assert "Campaigns &amp; skills" in page  # the sections follow


@pytest.mark.django_db
def test_a_superuser_sees_every_business_unit_by_name(client, bu, other_bu, superuser):
    with time_machine.travel(NOW, tick=False):
        _busy_bu(bu)
        _busy_bu(other_bu)
        client.force_login(superuser)
        text = _text(client.get(reverse("admin:index")).content.decode())
    assert "6 texts sent today" in text
    assert "Acme" in text and "Globex" in text


@pytest.mark.django_db
def test_a_user_without_permissions_sees_no_figures(client, bu):
    user = UserFactory(username="viewer")
    MembershipFactory(user=user, business_unit=bu)
    with time_machine.travel(NOW, tick=False):
        _busy_bu(bu)
        client.force_login(user)
        text = _text(client.get(reverse("admin:index")).content.decode())
    assert "texts sent today" not in text and "Flu shots" not in text


@pytest.mark.django_db
def test_an_empty_business_unit_is_told_to_set_up_a_skill(client, bu, staff_member):
    client.force_login(staff_member)
    text = _text(client.get(reverse("admin:index")).content.decode())
    assert "No skill yet." in text
    assert "0 texts sent today" in text and "No texts sent yet today." in text


@pytest.mark.django_db
def test_a_skill_paused_for_a_spam_block_is_an_alert_linking_to_it(client, bu, staff_member):
    skill = make_skill(bu, name="Promo")
    record = add_record(skill)
    attempt = AttemptFactory(skill=skill, record=record, destination=record.destinations.first())
    _block(skill, attempt, "30007: Carrier filtering")
    client.force_login(staff_member)
    page = html.unescape(client.get(reverse("admin:index")).content.decode())
    assert 'Skill "Promo" is paused: The carrier blocked a text as spam or filtered it' in page
    assert f'href="{reverse("admin:skills_skill_change", args=[skill.pk])}"' in page


@pytest.mark.django_db
def test_queued_texts_with_no_live_sender_lease_are_an_alert(bu):
    skill = make_skill(bu)
    code = skill.registration.transport_code
    message = OutboundMessageFactory(
        business_unit=bu, registration=skill.registration, status=MessageStatus.QUEUED
    )
    later = message.created_at + dt.timedelta(minutes=1)
    SenderLease.objects.create(
        transport_code=code,
        holder="host:1",
        expires_at=later - dt.timedelta(seconds=20),  # lost 20 s ago
        acquired_at=message.created_at,
        renewed_at=message.created_at,
    )
    (alert,) = alerts([bu.id], later)
    assert alert.text == (
        f"No sender is sending for code {code.number}: 1 text wait in its queue (its sender "
        "lease is lost or no worker runs)."
    )
    SenderLease.objects.filter(transport_code=code).update(
        expires_at=later + dt.timedelta(seconds=5)
    )
    assert alerts([bu.id], later) == []


@pytest.mark.django_db
def test_a_failing_carrier_is_an_alert_with_its_most_common_error(bu):
    skill = make_skill(bu)
    at = NOW - dt.timedelta(minutes=5)
    _sent(bu, skill, at, 4)
    for _ in range(6):
        OutboundMessageFactory(
            business_unit=bu,
            registration=skill.registration,
            status=MessageStatus.FAILED,
            error_code="30003",
            finished_at=at,
        )
    (alert,) = alerts([bu.id], NOW)
    code = skill.registration.transport_code.number
    assert alert.text == (
        f"The carrier is failing on code {code}: 6 of 10 texts in the last 15 minutes failed; "
        "most often error 30003."
    )
    assert alerts([bu.id], NOW + dt.timedelta(minutes=20)) == []  # it has passed


@pytest.mark.django_db
def test_an_active_registration_without_a_provisioned_code_is_an_alert(bu, other_bu):
    registration = SmsRegistrationFactory(
        business_unit=bu,
        name="Care line",
        transport_code__business_unit=bu,
        transport_code__provisioning_status=TransportCode.Provisioning.REQUESTED,
    )
    SmsRegistrationFactory(
        business_unit=other_bu,
        transport_code__business_unit=other_bu,
        transport_code__provisioning_status=TransportCode.Provisioning.REQUESTED,
    )
    (alert,) = alerts([bu.id], timezone.now())
    assert alert.text.startswith(
        f'Registration "Care line" is active but its code {registration.transport_code.number} '
        "is requested, not provisioned"
    )


@pytest.mark.django_db
def test_texts_per_hour_are_the_local_hours_of_today(bu):
    skill = make_skill(bu)
    _sent(bu, skill, NOW.replace(hour=13, minute=59), 2)  # 09:59 local
    _sent(bu, skill, NOW.replace(hour=15, minute=1), 1)  # 11:01 local
    page = home([bu.id], NOW)
    hours = {f"{h:%H}": n for h, n in page.per_hour}
    assert len(page.per_hour) == 12  # 00:00 to 11:00
    assert (hours["09"], hours["10"], hours["11"]) == (2, 0, 1)
    assert page.texts_today == 3
