"""The evidence of a number (skills.evidence): its page in the admin and ``manage.py evidence``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zoneinfo
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from messaging.models import MessageStatus
from messaging.services import inbound_receive
from skills.planner import plan_skill
from tests.factories import MembershipFactory, UserFactory
from tests.test_outcomes import hand_over, report
from tests.test_planner import add_record, make_skill

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
AUSTIN = "+15125550199"
EVIDENCE = "admin:skills_rulehold_evidence"


@pytest.fixture
def story(bu, other_bu):
    """A Texas number's story in ``bu``: held on a Sunday morning by Texas's noon start, texted
    at noon and delivered, then a STOP reply that puts it on the DNC group. ``other_bu`` texted
    the same number too."""
    skill = make_skill(bu, name="Renewals")
    add_record(skill, phones=[("SMSPhoneNumber", AUSTIN)], state="TX", external_id="C-77")
    sunday = dt.datetime(2026, 11, 1, 10, 0, tzinfo=CHICAGO)
    assert plan_skill(skill=skill, now=sunday).planned == 0
    assert plan_skill(skill=skill, now=sunday.replace(hour=12)).planned == 1
    message = hand_over(skill)[0]
    report(message, "delivered")
    code = skill.registration.transport_code
    inbound_receive(
        carrier_sid="SM" + "7" * 32, from_number=AUSTIN, to_number=code.number, body="STOP"
    )
    theirs = make_skill(other_bu, name="Their skill")
    add_record(theirs, phones=[("SMSPhoneNumber", AUSTIN)], state="IL")
    assert plan_skill(skill=theirs, now=sunday.replace(hour=12)).planned == 1
    return skill


def test_the_command_gives_every_text_reply_entry_and_hold_as_json(story):
    out = StringIO()
    call_command("evidence", "(512) 555-0199", "--json", "--business-unit", "Acme", stdout=out)
    data = json.loads(out.getvalue())
    assert data["number"] == AUSTIN and data["business_units"] == ["Acme"]
    [text] = data["texts"]
    assert (text["skill"], text["record"], text["status"]) == ("Renewals", "C-77", "Delivered")
    assert "Reply STOP to opt out" in text["body"]
    assert [e["status"] for e in text["events"] if e["status"]][-1] == MessageStatus.DELIVERED
    [reply] = data["replies"]
    assert reply["body"] == "STOP" and reply["read_as"] == "Opt-out"
    [entry] = data["dnc_entries"]
    assert entry["source"] == "STOP reply" and "STOP" in entry["evidence"]
    [hold] = data["holds"]
    assert hold["rule"] == "TX: Sunday hours 12:00-21:00" and hold["record"] == "C-77"
    assert hold["held_until"] == "2026-11-01T18:00:00+00:00"
    kinds = [e["kind"] for e in data["timeline"]]
    assert kinds.index("hold") < kinds.index("text") < kinds.index("reply")
    assert [e["at"] for e in data["timeline"]] == sorted(e["at"] for e in data["timeline"])


def test_without_a_business_unit_the_command_covers_them_all(story):
    out = StringIO()
    call_command("evidence", AUSTIN, "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["business_units"] == ["Acme", "Globex"]
    assert {t["skill"] for t in data["texts"]} == {"Renewals", "Their skill"}


def test_the_csv_and_the_pdf_for_a_dispute(story, tmp_path):
    out = StringIO()
    call_command("evidence", AUSTIN, "--csv", "--business-unit", "Acme", stdout=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["at (UTC)", "business unit", "kind", "what", "detail", "reference"]
    assert any(r[2] == "hold" and r[3] == "Held back: TX: Sunday hours 12:00-21:00" for r in rows)
    assert any(r[2] == "dnc" and "STOP reply" in r[3] for r in rows)

    target = tmp_path / "evidence.pdf"
    call_command("evidence", AUSTIN, "--pdf", "-o", str(target), stderr=StringIO())
    content = target.read_bytes()
    assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
    assert b"/Type /Page" in content


def test_a_bad_number_or_unit_is_refused_by_name(db):
    with pytest.raises(CommandError, match="'call me' is not a phone number"):
        call_command("evidence", "call me")
    with pytest.raises(CommandError, match="No business unit named 'Nope'"):
        call_command("evidence", AUSTIN, "--business-unit", "Nope")
    with pytest.raises(CommandError, match="A PDF needs --output"):
        call_command("evidence", AUSTIN, "--pdf")


def test_the_page_shows_a_members_business_units_only(client, story, staff_member, other_bu):
    client.force_login(staff_member)
    page = client.get(reverse(EVIDENCE), {"number": "512-555-0199"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Held back: TX: Sunday hours 12:00-21:00" in html
    assert "Reply read as opt-out" in html and "Renewals" in html
    assert "Their skill" not in html and "Globex" not in html
    download = client.get(reverse(EVIDENCE), {"number": AUSTIN, "format": "json"})
    assert download["Content-Disposition"] == 'attachment; filename="evidence-15125550199.json"'
    assert json.loads(download.content)["business_units"] == ["Acme"]
    pdf = client.get(reverse(EVIDENCE), {"number": AUSTIN, "format": "pdf"})
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")

    outsider = UserFactory(username="outsider", is_staff=True)
    outsider.user_permissions.set(staff_member.user_permissions.all())
    MembershipFactory(user=outsider, business_unit=other_bu)
    client.force_login(outsider)
    theirs = client.get(reverse(EVIDENCE), {"number": AUSTIN}).content.decode()
    assert "Renewals" not in theirs and "Held back" not in theirs
    assert "Their skill" in theirs


def test_the_page_says_why_a_number_cannot_be_read(client, staff_member):
    client.force_login(staff_member)
    page = client.get(reverse(EVIDENCE), {"number": "12"})
    assert page.status_code == 200
    assert "is not a possible phone number" in page.content.decode()
