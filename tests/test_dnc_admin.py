"""The DNC admin pages: import/export, deactivation, search; the review of probable opt-outs."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from dnc.models import DncEntry
from messaging.models import InboundMessage, MessageStatus, WithdrawReason
from pcsms.models import ProbableOptOutPolicy
from tests.factories import (
    DncEntryFactory,
    DncGroupFactory,
    InboundMessageFactory,
    MembershipFactory,
    OutboundMessageFactory,
    SkillFactory,
    SmsRegistrationFactory,
    UserFactory,
)

NUMBER = "+13125550123"


@pytest.fixture
def logged_in(client, staff_member):
    client.force_login(staff_member)
    return client


@pytest.fixture
def group(bu):
    return DncGroupFactory(business_unit=bu, name="Do not text")


def _upload(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


# --- import / export ---------------------------------------------------------------------------


def test_group_page_has_import_and_export_buttons(logged_in, group):
    content = logged_in.get(reverse("admin:dnc_dncgroup_change", args=[group.pk])).content.decode()
    assert reverse("admin:dnc_dncgroup_import", args=[group.pk]) in content
    assert reverse("admin:dnc_dncgroup_export", args=[group.pk]) in content
    assert "Import numbers" in content and "Export CSV" in content


def test_import_page_imports_and_offers_the_error_report(logged_in, group, staff_member):
    url = reverse("admin:dnc_dncgroup_import", args=[group.pk])
    assert logged_in.get(url).status_code == 200
    response = logged_in.post(
        url, {"file": _upload("list.csv", "Phone,Expires\n(312) 555-0123,\nbogus,\n")}
    )
    assert response.status_code == 200
    result = response.context["result"]
    assert (result.added, result.invalid) == (1, 1)
    entry = group.entries.get()
    assert (str(entry.phone_number), entry.source, entry.added_by) == (
        NUMBER,
        DncEntry.Source.FILE_IMPORT,
        staff_member,
    )
    content = response.content.decode()
    assert "bogus" in content and "not a valid phone number" in content
    report = logged_in.get(response.context["report_url"])
    assert report.status_code == 200
    assert report["Content-Disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode("utf-8-sig"))))
    assert rows == [
        ["row", "outcome", "reason", "values"],
        ["3", "rejected", "not a valid phone number (read in region US)", "bogus | "],
    ]


def test_a_bad_file_is_refused_on_the_form_and_changes_nothing(logged_in, group):
    DncEntryFactory(group=group)
    url = reverse("admin:dnc_dncgroup_import", args=[group.pk])
    response = logged_in.post(url, {"file": _upload("list.csv", "name\nAda\n")})
    errors = response.context["form"].errors["file"]
    assert "No phone number column" in errors[0] and "Nothing was imported" in errors[0]
    response = logged_in.post(url, {"file": _upload("list.pdf", "%PDF")})
    assert "Upload a .csv, .txt or .xlsx file." in response.context["form"].errors["file"]
    assert group.entries.count() == 1


def test_another_business_units_group_cannot_be_imported_or_exported(logged_in, other_bu):
    theirs = DncGroupFactory(business_unit=other_bu)
    for name in ("import", "export"):
        assert (
            logged_in.get(reverse(f"admin:dnc_dncgroup_{name}", args=[theirs.pk])).status_code
            == 404
        )
    response = logged_in.post(
        reverse("admin:dnc_dncgroup_import", args=[theirs.pk]),
        {"file": _upload("list.csv", "phone\n3125550123\n")},
    )
    assert response.status_code == 404
    assert not theirs.entries.exists()


def test_report_url_needs_a_real_token(logged_in, group):
    url = reverse("admin:dnc_dncgroup_import_report", args=[group.pk, "0" * 32])
    assert logged_in.get(url).status_code == 404
    url = reverse("admin:dnc_dncgroup_import_report", args=[group.pk, "..%2F..%2Fetc"])
    assert logged_in.get(url).status_code == 404


def test_a_viewer_may_export_but_not_import(client, bu, group):
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    MembershipFactory(user=viewer, business_unit=bu)
    client.force_login(viewer)
    assert client.get(reverse("admin:dnc_dncgroup_export", args=[group.pk])).status_code == 200
    assert client.get(reverse("admin:dnc_dncgroup_import", args=[group.pk])).status_code == 403


def test_export_view_and_action_give_csv(logged_in, bu, group):
    DncEntryFactory(group=group, phone_number=NUMBER, expires_on=dt.date(2031, 1, 2))
    other = DncGroupFactory(business_unit=bu, name="Other")
    DncEntryFactory(group=other, phone_number="+13125550124")
    response = logged_in.get(reverse("admin:dnc_dncgroup_export", args=[group.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert "dnc-do-not-text-" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][:3] == [NUMBER, "2031-01-02", "manual"]
    assert len(rows) == 2
    response = logged_in.post(
        reverse("admin:dnc_dncgroup_changelist"),
        {"action": "export_csv", "_selected_action": [group.pk, other.pk]},
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert sorted(r[4] for r in rows[1:]) == ["Do not text", "Other"]


# --- deactivation ------------------------------------------------------------------------------


def _group_form(group, **overrides):
    data = {
        "business_unit": group.business_unit_id,
        "name": group.name,
        "description": "",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def test_a_group_a_skill_uses_cannot_be_deactivated_in_the_form(logged_in, bu, group):
    SkillFactory(business_unit=bu, name="Reminders").scrubbed_dnc_groups.add(group)
    data = _group_form(group)
    del data["is_active"]
    response = logged_in.post(reverse("admin:dnc_dncgroup_change", args=[group.pk]), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["is_active"]
    assert "Reminders" in errors[0]
    group.refresh_from_db()
    assert group.is_active


def test_deactivate_action_names_the_skills_and_deactivates_the_rest(logged_in, bu, group):
    free = DncGroupFactory(business_unit=bu, name="Unused")
    SkillFactory(business_unit=bu, name="Collections").contributing_dnc_groups.add(group)
    response = logged_in.post(
        reverse("admin:dnc_dncgroup_changelist"),
        {"action": "deactivate_selected", "_selected_action": [group.pk, free.pk]},
        follow=True,
    )
    texts = [str(m) for m in response.context["messages"]]
    assert any("Collections" in t for t in texts)
    assert "1 group(s) deactivated." in texts
    group.refresh_from_db()
    free.refresh_from_db()
    assert group.is_active and not free.is_active


# --- entries: search and filters ----------------------------------------------------------------


@pytest.mark.parametrize(
    "term", ["(312) 555-0123", "312-555-0123", "+1 312 555 0123", "3125550123"]
)
def test_entries_are_found_by_any_phone_format(logged_in, group, term):
    DncEntryFactory(group=group, phone_number=NUMBER)
    DncEntryFactory(group=group, phone_number="+13125550124")
    response = logged_in.get(reverse("admin:dnc_dncentry_changelist"), {"q": term})
    found = [str(e.phone_number) for e in response.context["cl"].result_list]
    assert found == [NUMBER]


def test_entries_filter_by_source_evidence_and_expiry(logged_in, group):
    today = timezone.localdate()
    DncEntryFactory(group=group, source=DncEntry.Source.STOP_REPLY, evidence='"STOP" from x')
    DncEntryFactory(
        group=group,
        source=DncEntry.Source.FILE_IMPORT,
        collected_at=timezone.now() - dt.timedelta(days=30),
        expires_on=today - dt.timedelta(days=1),
    )
    url = reverse("admin:dnc_dncentry_changelist")

    def count(**query):
        return len(logged_in.get(url, query).context["cl"].result_list)

    assert count(source__exact="stop_reply") == 1
    assert count(q="STOP") == 1
    assert count(expired="yes") == 1
    assert count(expired="no") == 1


# --- review of probable opt-outs ---------------------------------------------------------------


@pytest.fixture
def registration(bu):
    return SmsRegistrationFactory(business_unit=bu)


def _act(client, action, *inbound):
    return client.post(
        reverse("admin:messaging_inboundmessage_changelist"),
        {"action": action, "_selected_action": [m.pk for m in inbound]},
        follow=True,
    )


def test_confirm_under_review_only_makes_the_opt_out(logged_in, bu, registration, staff_member):
    bu.probable_opt_out_policy = ProbableOptOutPolicy.REVIEW_ONLY
    bu.save()
    default = DncGroupFactory(business_unit=bu, is_default=True)
    queued = OutboundMessageFactory(business_unit=bu, registration=registration, to=NUMBER)
    inbound = InboundMessageFactory(
        business_unit=bu,
        registration=registration,
        from_number=NUMBER,
        body="please quit texting me",
        classification=InboundMessage.Classification.PROBABLE_OPT_OUT,
        review=InboundMessage.Review.PENDING,
    )
    pending = logged_in.get(
        reverse("admin:messaging_inboundmessage_changelist"), {"review__exact": "pending"}
    )
    assert list(pending.context["cl"].result_list) == [inbound]

    _act(logged_in, "confirm_opt_out", inbound)

    inbound.refresh_from_db()
    assert (inbound.review, inbound.reviewed_by) == ("confirmed", staff_member)
    entry = default.entries.get()
    assert (entry.source, entry.added_by) == (DncEntry.Source.PROBABLE_OPT_OUT, staff_member)
    assert "please quit texting me" in entry.evidence
    assert list(inbound.dnc_entries.all()) == [entry]
    queued.refresh_from_db()
    assert (queued.status, queued.withdraw_reason) == (
        MessageStatus.WITHDRAWN,
        WithdrawReason.OPTED_OUT,
    )
    assert "confirmed as opt-out by operator" in inbound.action_taken


def test_undo_removes_the_entries_the_text_created_and_nothing_else(
    logged_in, bu, registration, staff_member
):
    group = DncGroupFactory(business_unit=bu, is_default=True)
    contributing = DncGroupFactory(business_unit=bu)
    created = [
        DncEntryFactory(group=g, phone_number=NUMBER, source=DncEntry.Source.PROBABLE_OPT_OUT)
        for g in (group, contributing)
    ]
    manual = DncEntryFactory(
        group=DncGroupFactory(business_unit=bu), phone_number=NUMBER, source="manual"
    )
    inbound = InboundMessageFactory(
        business_unit=bu,
        from_number=NUMBER,
        body="don't text me at work",
        classification=InboundMessage.Classification.PROBABLE_OPT_OUT,
        review=InboundMessage.Review.PENDING,
    )
    inbound.dnc_entries.add(*created, manual)

    _act(logged_in, "undo_opt_out", inbound)

    inbound.refresh_from_db()
    assert (inbound.review, inbound.reviewed_by) == ("undone", staff_member)
    assert list(DncEntry.objects.all()) == [manual]
    assert "removed 2 DNC entries" in inbound.action_taken


def test_undo_keeps_an_entry_another_text_also_caused(logged_in, bu):
    entry = DncEntryFactory(
        group=DncGroupFactory(business_unit=bu),
        phone_number=NUMBER,
        source=DncEntry.Source.PROBABLE_OPT_OUT,
    )
    first, second = (
        InboundMessageFactory(
            business_unit=bu,
            from_number=NUMBER,
            body=body,
            classification=InboundMessage.Classification.PROBABLE_OPT_OUT,
            review=InboundMessage.Review.PENDING,
        )
        for body in ("no more texts", "seriously no more texts")
    )
    first.dnc_entries.add(entry)
    second.dnc_entries.add(entry)
    _act(logged_in, "undo_opt_out", first)
    assert DncEntry.objects.filter(pk=entry.pk).exists()
    _act(logged_in, "undo_opt_out", second)
    assert not DncEntry.objects.filter(pk=entry.pk).exists()


def test_undoing_one_text_keeps_the_opt_out_another_confirmed_text_asked_for(client, logged_in, bu):
    """Two free-text opt-outs from one number: the second finds the first's entry. Undoing the
    first must not lift the opt-out the second (confirmed) also asks for."""
    group = DncGroupFactory(business_unit=bu, is_default=True)
    registration = SmsRegistrationFactory(business_unit=bu)
    first, second = (
        InboundMessageFactory(
            business_unit=bu,
            registration=registration,
            from_number=NUMBER,
            body=body,
            classification=InboundMessage.Classification.PROBABLE_OPT_OUT,
            review=InboundMessage.Review.PENDING,
        )
        for body in ("please stop texting me", "no mas")
    )
    from messaging.services import inbound_classify

    for inbound in (first, second):
        inbound_classify(inbound=inbound)
    entry = group.entries.get()
    assert set(entry.evidence_messages.all()) == {first, second}
    _act(logged_in, "confirm_opt_out", second)
    _act(logged_in, "undo_opt_out", first)
    assert group.entries.filter(pk=entry.pk).exists()
    first.refresh_from_db()
    assert "removed 0 DNC entries" in first.action_taken


def test_a_keyword_stop_cannot_be_undone(logged_in, bu):
    entry = DncEntryFactory(group=DncGroupFactory(business_unit=bu), phone_number=NUMBER)
    entry.source = DncEntry.Source.STOP_REPLY
    entry.save()
    inbound = InboundMessageFactory(business_unit=bu, from_number=NUMBER, body="STOP")
    inbound.dnc_entries.add(entry)
    response = _act(logged_in, "undo_opt_out", inbound)
    assert any("handled by rule" in str(m) for m in response.context["messages"])
    inbound.refresh_from_db()
    assert inbound.review == "not_needed"
    assert DncEntry.objects.filter(pk=entry.pk).exists()


def test_review_is_not_editable_on_the_page(logged_in, bu):
    inbound = InboundMessageFactory(
        business_unit=bu,
        classification=InboundMessage.Classification.PROBABLE_OPT_OUT,
        review=InboundMessage.Review.PENDING,
    )
    url = reverse("admin:messaging_inboundmessage_change", args=[inbound.pk])
    logged_in.post(url, {"review": "undone"})
    inbound.refresh_from_db()
    assert inbound.review == "pending"


def test_another_business_units_texts_cannot_be_reviewed(logged_in, other_bu):
    theirs = InboundMessageFactory(
        business_unit=other_bu,
        classification=InboundMessage.Classification.PROBABLE_OPT_OUT,
        review=InboundMessage.Review.PENDING,
    )
    _act(logged_in, "confirm_opt_out", theirs)
    theirs.refresh_from_db()
    assert theirs.review == "pending"
    assert not DncEntry.objects.exists()
