"""The demo's email channel. ``manage.py seed_demo``: addresses on about half the demo list
(two bouncing), the business unit's postal address, an email sender pinned to SMTP, an active
email template and a stopped email skill that validates and can start; seeding again changes
nothing, and a demo seeded before it had email gets the missing parts; the demo's email skill
sends through Django's SMTP backend to the SMTP sink. ``scripts/demo.py`` (``make demo``): the
sink runs beside the web server and the worker, which get ``EMAIL_URL`` pointing at it."""

from __future__ import annotations

import contextlib
import datetime as dt
import mailbox
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest
import time_machine

from messaging.fake_carrier.smtp_sink import SmtpSink
from messaging.models import Channel, MessageStatus, OutboundMessage
from messaging.sender import CodeSender
from pcsms.addresses import normalise_email
from pcsms.models import BusinessUnit
from skills import demo
from skills.diagnosis import start_problems
from skills.models import Destination, Record, Skill
from skills.services import skill_start
from tests.processes import ROOT, process_env, wait_for


def demo_skills() -> tuple[Skill, Skill]:
    bu = BusinessUnit.objects.get(name=demo.BU_NAME)
    return bu.skills.get(name=demo.SKILL_NAME), bu.skills.get(name=demo.EMAIL_SKILL_NAME)


def email_destinations():
    return Destination.objects.filter(
        record__calling_list__name=demo.LIST_NAME, source_field="Email"
    )


def test_seed_demo_adds_an_email_skill_ready_to_start(db):
    report = demo.seed_demo()

    sms, email = demo_skills()
    for skill in (sms, email):
        skill.full_clean()
        assert skill.state == Skill.State.STOPPED
        assert start_problems(skill) == []
    assert email.channel == Channel.EMAIL
    assert email.receipt_mode == Skill.ReceiptMode.SENT  # SMTP gives no delivery receipt
    assert list(email.cadence_steps.values_list("phone_field", flat=True)) == ["Email"]
    assert set(email.calling_lists.all()) == set(sms.calling_lists.all())
    assert set(email.scrubbed_dnc_groups.all()) == set(sms.scrubbed_dnc_groups.all())

    registration = email.registration
    registration.full_clean()
    assert registration.backend == demo.SMTP_BACKEND
    code = registration.transport_code
    code.full_clean()
    assert (code.number, code.channel, code.can_send) == (demo.EMAIL_SENDER, Channel.EMAIL, True)
    template = email.template
    template.full_clean()
    assert template.is_active and template.channel == Channel.EMAIL
    assert "{FirstName|there}" in template.subject and template.html_body
    assert email.business_unit.postal_address == demo.POSTAL_ADDRESS
    assert sms.registration.backend == demo.SIMULATOR_BACKEND  # the texts stay simulated

    addresses = list(email_destinations().values_list("phone_number", flat=True))
    assert 0.3 * demo.RECORD_COUNT < len(addresses) < 0.7 * demo.RECORD_COUNT
    assert len(set(addresses)) == len(addresses)
    # Every address is at the reserved example.com, as stored (normalised), and two bounce.
    assert all(a.endswith("@example.com") and normalise_email(a) == a for a in addresses)
    assert len([a for a in addresses if a.startswith("bounce")]) == 2
    # After the record's numbers.
    for destination in email_destinations().select_related("record"):
        numbers = destination.record.destinations.exclude(pk=destination.pk)
        assert all(n.position < destination.position for n in numbers)
    assert report.as_dict()["email_skill"] == demo.EMAIL_SKILL_NAME


def test_the_addresses_are_the_same_on_every_run_and_leave_the_people_as_they_were():
    first, _rng, _taken = demo.generate_records()
    again, _rng, _taken = demo.generate_records()

    assert first == again
    with_email = [r for r in first if r.email]
    assert with_email and len(with_email) < len(first)


def test_seeding_again_changes_nothing(db):
    demo.seed_demo()
    before = sorted(email_destinations().values_list("record__external_id", "phone_number"))

    report = demo.seed_demo()

    assert not report.changed, report.created
    assert sorted(email_destinations().values_list("record__external_id", "phone_number")) == (
        before
    )


def test_a_demo_seeded_before_email_gets_its_addresses_and_postal_address(db):
    demo.seed_demo()
    before = sorted(email_destinations().values_list("record__external_id", "phone_number"))
    email_destinations().delete()
    BusinessUnit.objects.filter(name=demo.BU_NAME).update(postal_address="")

    report = demo.seed_demo()

    assert report.created == {
        "destination": len(before),
        "businessunit.postal_address": 1,
    }
    assert sorted(email_destinations().values_list("record__external_id", "phone_number")) == (
        before
    )
    assert any(f"{len(before)} email addresses added" in line for line in report.lines)
    _sms, email = demo_skills()
    assert start_problems(email) == []


# A Tuesday at 17:00 UTC: every zone the demo allows is inside its hours.
TUESDAY_AFTERNOON = dt.datetime(2026, 3, 10, 17, 0, tzinfo=dt.UTC)


@pytest.mark.django_db(transaction=True)
def test_the_demo_email_skill_sends_to_the_smtp_sink(settings):
    with time_machine.travel(TUESDAY_AFTERNOON, tick=True), SmtpSink() as sink:
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
        settings.SENDER_RELEASE_QUIET = 0
        demo.seed_demo()
        # A few people with an address, one of them bouncing, keep the test short.
        kept = list(
            email_destinations()
            .exclude(phone_number__startswith="bounce")
            .order_by("record__external_id")
            .values_list("record_id", flat=True)[:3]
        ) + [email_destinations().filter(phone_number__startswith="bounce").first().record_id]
        Record.objects.filter(calling_list__name=demo.LIST_NAME).exclude(id__in=kept).delete()
        _sms, email = demo_skills()

        skill_start(skill=email)
        CodeSender(email.registration.transport_code_id, idle_exit=0, concurrency=0).run_inline()

        addresses = set(email_destinations().values_list("phone_number", flat=True))
        bounce = next(a for a in addresses if a.startswith("bounce"))
        assert sorted(r.to[0] for r in sink.received) == sorted(addresses - {bounce})
        mail = sink.received[0]
        assert mail.header("From") == demo.EMAIL_SENDER
        assert mail.subject.startswith("Hi ") and "your appointment is on" in mail.subject
        assert "100 Example Avenue, Suite 200, Springfield, IL 62701" in mail.part("text/plain")
        assert "<b>Demo Health Clinic</b>" in mail.part("text/html")
        refused = OutboundMessage.objects.get(to=bounce)
        assert (refused.status, refused.error_code) == (MessageStatus.FAILED, "bounced")
        assert set(OutboundMessage.objects.exclude(to=bounce).values_list("status", flat=True)) == {
            MessageStatus.SENT
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> dict[str, dict[str, str]]:
    """The supervisor's children (Linux /proc), by the manage.py command each runs: its
    environment."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
        raw = Path(f"/proc/{child}/environ").read_bytes().decode(errors="replace")
        env = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
        found[argv[argv.index("manage.py") + 1]] = env
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
@pytest.mark.django_db(transaction=True)
def test_demo_script_runs_the_smtp_sink_and_points_web_and_worker_at_it(tmp_path):
    port, smtp_port = free_port(), free_port()
    mbox = tmp_path / "demo-mail.mbox"
    demo_script = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            sys.executable,
            "scripts/demo.py",
            f"--port={port}",
            f"--smtp-port={smtp_port}",
            f"--mbox={mbox}",
        ],
        cwd=ROOT,
        env=process_env(EMAIL_URL="smtp://mail.invalid:25"),  # overridden: always the sink
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode().rstrip() for line in demo_script.stdout),
        daemon=True,
    )
    reader.start()
    try:
        up = f"[mail] SMTP sink listening on smtp://127.0.0.1:{smtp_port}"
        wait_for(lambda: up in lines, 60, demo_script, lambda: "\n".join(lines[-20:]))
        wait_for(
            lambda: any(line.startswith("  Demo emails:") for line in lines),
            60,
            demo_script,
            lambda: "\n".join(lines[-20:]),
        )
        assert (
            f"  Demo emails: sent to the SMTP sink at smtp://127.0.0.1:{smtp_port}, kept in {mbox}"
            in lines
        )

        children = children_of(demo_script.pid)
        assert set(children) == {"runserver", "qcluster", "smtp_sink"}
        for command in ("runserver", "qcluster"):
            assert children[command]["EMAIL_URL"] == f"smtp://127.0.0.1:{smtp_port}"

        message = EmailMessage()
        message["From"], message["To"] = demo.EMAIL_SENDER, "ada@example.com"
        message["Subject"] = "Hello"
        message.set_content("Hi Ada")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            smtp.send_message(message)
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail(demo.EMAIL_SENDER, ["bounce-bob@example.com"], message.as_bytes())
        assert [m["To"] for m in mailbox.mbox(mbox)] == ["ada@example.com"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(demo_script.pid, signal.SIGINT)  # as Ctrl-C: it stops its children
        try:
            code = demo_script.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo_script.pid, signal.SIGKILL)
            demo_script.wait()
            raise
        finally:
            reader.join(timeout=5)
            demo_script.stdout.close()
            demo_script.stderr.close()
    assert code == 0, "\n".join(lines[-20:])
    assert "[mail] 1 email(s) received" in lines and lines[-1] == "[demo] stopped."
