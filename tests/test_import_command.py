"""``manage.py import_list``: counts, JSON, exit codes, options."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command

from skills.importing.service import upload_job_run
from skills.models import CallingList, Record, UploadJob
from tests.factories import SkillFactory
from tests.test_import_service import FIXTURES


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_list", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_imports_into_a_new_list_and_reports_bad_rows(bu):
    out, _ = run(str(FIXTURES / "basic.csv"), "--business-unit", "Acme", "--list", "New list")

    calling_list = CallingList.objects.get(business_unit=bu, name="New list")
    assert calling_list.records.count() == 2
    assert "3 rows processed, 2 valid, 1 invalid" in out
    assert "row 4: rejected: No valid phone number" in out


def test_json_prints_one_object_with_counts_and_error_rows(bu):
    out, _ = run(str(FIXTURES / "basic.txt"), "--business-unit", "Acme", "--list", "L", "--json")

    result = json.loads(out)
    assert (result["processed"], result["valid"], result["invalid"]) == (3, 2, 1)
    assert result["errors"] == [
        {
            "row": 4,
            "outcome": "rejected",
            "reason": "No valid phone number: PhoneNumber '555' is not a valid number.",
            "values": "Phone='555'",
        }
    ]


def test_a_file_error_exits_non_zero_with_the_message_on_stderr(bu):
    with pytest.raises(SystemExit) as exit_info:
        run(str(FIXTURES / "latin1.csv"), "--business-unit", "Acme", "--list", "L")

    assert exit_info.value.code == 2
    assert not Record.objects.exists()
    job = UploadJob.objects.get()
    assert job.status == UploadJob.Status.FAILED and "not UTF-8" in job.message


def test_file_error_message_goes_to_stderr_and_json_to_stdout(bu, capsys):
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit):
        call_command(
            "import_list",
            str(FIXTURES / "junk.csv"),
            "--business-unit=Acme",
            "--list=L",
            "--json",
            stdout=out,
            stderr=err,
        )
    assert json.loads(out.getvalue())["status"] == "failed"
    assert "not a text file" in err.getvalue()


def test_wrong_arguments_are_command_errors(bu):
    with pytest.raises(CommandError, match="No business unit"):
        run(str(FIXTURES / "basic.csv"), "--business-unit", "Nope", "--list", "L")
    with pytest.raises(CommandError, match="not a time zone"):
        run(
            str(FIXTURES / "basic.csv"),
            "--business-unit=Acme",
            "--list=L",
            "--default-time-zone=Mars",
        )
    with pytest.raises(CommandError, match="No such file"):
        run("/nonexistent.csv", "--business-unit=Acme", "--list=L")


def test_map_default_zone_expiry_replace_and_skill(bu):
    skill = SkillFactory(business_unit=bu, name="Reminders")
    path = str(FIXTURES / "basic.csv")
    common = ["--business-unit=Acme", "--list=L", "--default-time-zone=America/Denver"]
    run(path, *common, "--map", "Visit Date=Appointment:string", "--map", "Balance=")
    skill.calling_lists.add(CallingList.objects.get(name="L"))
    out, _ = run(
        path,
        *common,
        "--replace",
        "--expires=2027-02-01",
        "--skill=Reminders",
        "--map",
        "First Name=Nickname",
        "--json",
    )

    result = json.loads(out)
    assert result["valid"] == 2 and result["invalid"] == 1
    a1 = Record.objects.get(external_id="A1")
    assert a1.custom == {"Appointment": "2026-12-01", "Nickname": "Ada"}
    assert a1.expires_on == dt.date(2027, 2, 1)
    assert Record.objects.count() == 2
    skill.refresh_from_db()
    assert skill.state == skill.State.RUNNING


def test_a_skill_that_cannot_start_is_reported_and_the_import_stands(bu):
    SkillFactory(business_unit=bu, name="Lonely")  # no calling list: it cannot start
    out, _ = run(str(FIXTURES / "basic.csv"), "--business-unit=Acme", "--list=L", "--skill=Lonely")

    assert Record.objects.count() == 2
    assert "the skill did not start" in out


def test_map_a_column_that_is_not_in_the_file(bu):
    with pytest.raises(SystemExit):
        run(str(FIXTURES / "basic.csv"), "--business-unit=Acme", "--list=L", "--map=Nope=X")
    assert UploadJob.objects.get().status == UploadJob.Status.FAILED


def test_upload_job_run_is_what_the_command_runs(bu):
    run(str(FIXTURES / "basic.csv"), "--business-unit=Acme", "--list=L")
    job = UploadJob.objects.get()

    assert job.status == UploadJob.Status.COMPLETED
    assert upload_job_run(job_id=job.pk) is None  # not queued any more: never imported twice


def test_the_progress_bar_redraws_one_line():
    from skills.management.commands.import_list import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(stream, width=10)
    bar.update(5, 10, "reading")
    bar.update(10, 10, "saving")
    bar.close()

    text = stream.getvalue()
    assert "\r[#####.....] 5 / 10 rows" in text and "saving..." in text
    assert "\n" not in text
