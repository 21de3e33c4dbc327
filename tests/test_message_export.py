"""CSV export of texts with their status and reason, from the message log and from attempts."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from messaging.models import MessageStatus, OutboundMessage, WithdrawReason
from pcsms.csvexport import csv_lines, spreadsheet_safe
from skills.models import Attempt
from tests.factories import (
    AttemptFactory,
    CampaignFactory,
    OutboundMessageFactory,
    SkillFactory,
)


def _export(client, changelist: str, query: str = "") -> list[dict[str, str]]:
    """The action with "Select all": the page's boxes are ticked too, as in the browser."""
    page = client.get(reverse(changelist) + query)
    ticked = [str(obj.pk) for obj in page.context["cl"].result_list]
    response = client.post(
        reverse(changelist) + query,
        {
            "action": "export_csv",
            "select_across": "1",
            "index": "0",
            helpers.ACTION_CHECKBOX_NAME: ticked,
        },
    )
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")  # Excel reads it as UTF-8
    return list(csv.DictReader(io.StringIO(text[1:])))


@pytest.fixture
def texts(bu, other_bu):
    """A skill's texts in each way a text can end, and one text of another business unit."""
    skill = SkillFactory(
        business_unit=bu, name="Flu shots", campaign=CampaignFactory(business_unit=bu, name="Fall")
    )

    def attempt(external_id, **message):
        made = AttemptFactory(skill=skill, record__external_id=external_id)
        OutboundMessage.objects.filter(pk=made.message_id).update(**message)
        return made

    attempt("P-1", status=MessageStatus.DELIVERED, body="Hi Ada, your flu shot is due")
    attempt(
        "P-2",
        status=MessageStatus.UNDELIVERED,
        error_code="30003",
        error_text="Unreachable destination handset",
    )
    attempt("P-3", status=MessageStatus.WITHDRAWN, withdraw_reason=WithdrawReason.OPTED_OUT)
    attempt("P-4", status=MessageStatus.QUEUED, body='=HYPERLINK("http://x")')
    OutboundMessageFactory(business_unit=other_bu, body="Globex secret")
    return skill


def test_the_message_log_exports_status_and_reason_of_every_text(client, staff_member, texts):
    client.force_login(staff_member)

    rows = _export(client, "admin:messaging_outboundmessage_changelist")

    by_record = {r["record external id"]: r for r in rows}
    assert list(by_record) == ["P-1", "P-2", "P-3", "P-4"]  # oldest first; no other BU's
    assert {r["business unit"] for r in rows} == {"Acme"}
    assert {(r["skill"], r["campaign"]) for r in rows} == {("Flu shots", "Fall")}
    assert by_record["P-1"]["status"] == "Delivered" and by_record["P-1"]["reason"] == ""
    assert by_record["P-1"]["body"] == "Hi Ada, your flu shot is due"
    assert by_record["P-2"]["status"] == "Undelivered"
    assert by_record["P-2"]["reason"] == "Error 30003: Unreachable destination handset"
    assert by_record["P-2"]["error code"] == "30003"
    assert by_record["P-3"]["reason"] == "Withdrawn before sending: Recipient opted out"
    # A body that a spreadsheet would run as a formula is exported as text.
    assert by_record["P-4"]["body"] == '\'=HYPERLINK("http://x")'
    attempt = Attempt.objects.get(record__external_id="P-1")
    assert by_record["P-1"]["to"] == attempt.message.to  # E.164, not escaped
    assert by_record["P-1"]["number field"] == attempt.destination.source_field


def test_the_export_follows_the_changelists_filters(client, staff_member, texts, bu):
    other_skill = SkillFactory(business_unit=bu, name="Billing")
    AttemptFactory(skill=other_skill, record__external_id="B-1")
    client.force_login(staff_member)

    rows = _export(
        client,
        "admin:messaging_outboundmessage_changelist",
        f"?attempt__skill__id__exact={other_skill.pk}",
    )

    assert [(r["skill"], r["record external id"]) for r in rows] == [("Billing", "B-1")]


def test_only_the_selected_messages_are_exported(client, staff_member, texts):
    client.force_login(staff_member)
    chosen = Attempt.objects.get(record__external_id="P-2").message_id

    response = client.post(
        reverse("admin:messaging_outboundmessage_changelist"),
        {"action": "export_csv", "index": "0", helpers.ACTION_CHECKBOX_NAME: [chosen]},
    )
    text = b"".join(response.streaming_content).decode("utf-8")[1:]
    assert [r["message id"] for r in csv.DictReader(io.StringIO(text))] == [str(chosen)]


def test_attempts_export_their_texts(client, staff_member, texts):
    client.force_login(staff_member)

    rows = _export(client, "admin:skills_attempt_changelist")

    assert sorted(r["record external id"] for r in rows) == ["P-1", "P-2", "P-3", "P-4"]
    assert "Globex secret" not in {r["body"] for r in rows}


def test_another_business_units_messages_cannot_be_exported_by_id(
    client, staff_member, texts, other_bu
):
    client.force_login(staff_member)
    foreign = OutboundMessage.objects.get(business_unit=other_bu).pk

    response = client.post(
        reverse("admin:messaging_outboundmessage_changelist"),
        {"action": "export_csv", "index": "0", helpers.ACTION_CHECKBOX_NAME: [foreign]},
    )

    # The selection is taken from the user's own rows: a file with the header only.
    text = b"".join(response.streaming_content).decode("utf-8")[1:]
    assert list(csv.DictReader(io.StringIO(text))) == []
    assert "Globex" not in text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("+1 (312) cmd", "'+1 (312) cmd"),
        ("\tx", "'\tx"),
        ("+13125550123", "+13125550123"),
        ("-3", "-3"),
        ("12.50", "12.50"),
        ("Hello = world", "Hello = world"),
        ("", ""),
        (None, ""),
        (7, "7"),
    ],
)
def test_spreadsheet_safe_cells(value, cell):
    assert spreadsheet_safe(value) == cell


def test_csv_lines_quote_what_csv_needs_quoted():
    text = "".join(csv_lines([["a", "b"], ['say "hi", then', "line\nbreak"]]))
    assert text.startswith("\ufeff")
    assert list(csv.reader(io.StringIO(text[1:]))) == [
        ["a", "b"],
        ['say "hi", then', "line\nbreak"],
    ]
