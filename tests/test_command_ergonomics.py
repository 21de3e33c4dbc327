"""The management commands as an operator meets them (pcsms/commands.py): ``--business-unit``
only when the name given does not say which, errors that list the business units, ``--json``
as one parseable document, and a progress line only on a terminal."""

from __future__ import annotations

import gc
import io
import json
import re
import sys
import tomllib

import pytest
from django.core.management import CommandError, call_command

from dnc.models import DncEntry, DncGroup
from messaging.sender import SenderStats
from skills.config import config_apply
from skills.models import CallingList, Record
from tests.factories import (
    CallingListFactory,
    DncEntryFactory,
    DncGroupFactory,
    SkillFactory,
)
from tests.test_config import CONFIG
from tests.test_import_service import FIXTURES
from tests.test_planner import add_record, make_skill

BASIC = str(FIXTURES / "basic.csv")
BOTH = "('Acme', 'Globex')"


class Terminal(io.StringIO):
    """Stdout as a terminal would be: the commands draw their progress on it."""

    def isatty(self) -> bool:
        return True


def run(name: str, *args, stdout: io.StringIO | None = None) -> str:
    out = stdout if stdout is not None else io.StringIO()
    call_command(name, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def numbers_file(tmp_path, text: str = "phone\n3125550123\nnope\n"):
    path = tmp_path / "numbers.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- import_list -------------------------------------------------------------------------------


def test_import_list_finds_the_business_unit_from_the_list(bu, other_bu):
    theirs = CallingListFactory(business_unit=other_bu, name="Flu")

    out = run("import_list", BASIC, "--list", "Flu")

    assert "2 valid" in out
    assert Record.objects.filter(calling_list=theirs).count() == 2


def test_import_list_new_list_goes_to_the_only_business_unit(bu):
    run("import_list", BASIC, "--list", "New list")

    assert CallingList.objects.get(name="New list").business_unit == bu


def test_import_list_new_list_goes_to_the_business_unit_of_its_skill(bu, other_bu):
    SkillFactory(business_unit=other_bu, name="Reminders")

    run("import_list", BASIC, "--list", "New list", "--skill", "Reminders")

    assert CallingList.objects.get(name="New list").business_unit == other_bu


def test_import_list_asks_for_the_business_unit_when_it_cannot_tell(bu, other_bu):
    CallingListFactory(business_unit=bu, name="Flu")
    CallingListFactory(business_unit=other_bu, name="Flu")

    with pytest.raises(CommandError) as ambiguous:
        run("import_list", BASIC, "--list", "Flu")
    assert str(ambiguous.value) == (
        f"Calling lists named 'Flu' are in several business units {BOTH}: give --business-unit."
    )
    with pytest.raises(CommandError) as new:
        run("import_list", BASIC, "--list", "New list")
    assert str(new.value) == (
        f"Calling list 'New list' is new; there are several business units {BOTH}: "
        "give --business-unit."
    )
    with pytest.raises(CommandError) as unknown:
        run("import_list", BASIC, "--list", "Flu", "--business-unit", "Initech")
    assert str(unknown.value) == f"No business unit named 'Initech' (business units: {BOTH[1:]}."
    assert not Record.objects.exists()

    run("import_list", BASIC, "--list", "Flu", "--business-unit", "Globex")
    assert Record.objects.get(external_id="A1").calling_list.business_unit == other_bu


def test_import_list_json_holds_the_counts(bu):
    data = json.loads(run("import_list", BASIC, "--list", "L", "--json", stdout=Terminal()))

    assert (data["processed"], data["valid"], data["invalid"]) == (3, 2, 1)
    assert data["errors"][0]["row"] == 4


def test_import_list_draws_a_progress_bar_only_on_a_terminal(bu):
    on_terminal = run("import_list", BASIC, "--list", "L", stdout=Terminal())
    piped = run("import_list", BASIC, "--list", "L2")

    assert "\r[" in on_terminal and "rows" in on_terminal
    assert "3 rows processed" in on_terminal.rsplit("\r", 1)[-1], "the bar is wiped first"
    assert "\r" not in piped and "3 rows processed" in piped


# --- import_dnc / export_dnc -------------------------------------------------------------------


def test_import_dnc_finds_the_business_unit_from_the_group(bu, other_bu, tmp_path):
    theirs = DncGroupFactory(business_unit=other_bu, name="Do not text")

    out = run("import_dnc", numbers_file(tmp_path), "--group", "Do not text")

    assert "Globex / Do not text" in out and "1 added" in out
    assert theirs.entries.count() == 1


def test_import_dnc_asks_for_the_business_unit_when_it_cannot_tell(bu, other_bu, tmp_path):
    DncGroupFactory(business_unit=bu, name="Do not text")
    DncGroupFactory(business_unit=other_bu, name="Do not text")
    path = numbers_file(tmp_path)

    with pytest.raises(CommandError) as ambiguous:
        run("import_dnc", path, "--group", "Do not text")
    assert str(ambiguous.value) == (
        f"DNC groups named 'Do not text' are in several business units {BOTH}: "
        "give --business-unit."
    )
    with pytest.raises(CommandError) as new:
        run("import_dnc", path, "--group", "Fresh", "--create-group")
    assert str(new.value) == (
        f"No DNC group 'Fresh' yet; there are several business units {BOTH}: give --business-unit."
    )
    with pytest.raises(CommandError, match=r"No business unit named 'Initech' \(business units"):
        run("import_dnc", path, "--group", "Do not text", "--business-unit", "Initech")
    assert not DncEntry.objects.exists()


def test_import_dnc_creates_a_group_in_the_only_business_unit(bu, tmp_path):
    with pytest.raises(CommandError, match="No DNC group 'Fresh' .add --create-group"):
        run("import_dnc", numbers_file(tmp_path), "--group", "Fresh")

    run("import_dnc", numbers_file(tmp_path), "--group", "Fresh", "--create-group")

    assert DncGroup.objects.get(name="Fresh").business_unit == bu


def test_import_dnc_json_and_its_progress_line(bu, tmp_path):
    DncGroupFactory(business_unit=bu, name="Do not text")
    path = numbers_file(tmp_path)

    data = json.loads(
        run("import_dnc", path, "--group", "Do not text", "--json", stdout=Terminal())
    )
    assert (data["added"], data["invalid"], data["business_unit"]) == (1, 1, "Acme")

    piped = run("import_dnc", path, "--group", "Do not text")
    assert "\r" not in piped and "1 already there" in piped

    # 12,000 numbers: the bar counts the rows read out of the file's, then says it saves.
    big = numbers_file(
        tmp_path, "phone\n" + "".join(f"312557{n:04d}\n312556{n:04d}\n" for n in range(6000))
    )
    on_terminal = run("import_dnc", big, "--group", "Do not text", stdout=Terminal())
    assert "] 5,000 / 12,000 rows" in on_terminal and "] 10,000 / 12,000 rows" in on_terminal
    assert "] saving..." in on_terminal
    assert on_terminal.rsplit("\r", 1)[-1].startswith("numbers.csv -> Acme / Do not text")
    assert "12000 rows, 12000 added" in on_terminal


def test_export_dnc_without_business_unit_and_its_json_summary(bu, other_bu, tmp_path):
    group = DncGroupFactory(business_unit=other_bu, name="Do not text")
    DncEntryFactory(group=group, phone_number="+13125550123")
    DncEntryFactory(group=group, phone_number="+13125550124")

    assert "+13125550123" in run("export_dnc", "--group", "Do not text")

    target = tmp_path / "out.csv"
    data = json.loads(run("export_dnc", "--group", "Do not text", "-o", str(target), "--json"))
    assert data == {
        "group": "Do not text",
        "business_unit": "Globex",
        "entries": 2,
        "output": str(target),
    }
    assert "+13125550124" in target.read_text(encoding="utf-8-sig")
    with pytest.raises(CommandError, match="give --output FILE"):
        run("export_dnc", "--group", "Do not text", "--json")

    DncGroupFactory(business_unit=bu, name="Do not text")
    with pytest.raises(CommandError, match=rf"in several business units \{BOTH[:-1]}\)"):
        run("export_dnc", "--group", "Do not text")


# --- evidence, config --------------------------------------------------------------------------


def test_evidence_names_the_business_units_there_are(bu, other_bu):
    with pytest.raises(CommandError) as unknown:
        run("evidence", "+13125550123", "--business-unit", "Initech")
    assert str(unknown.value) == f"No business unit named 'Initech' (business units: {BOTH[1:]}."

    data = json.loads(run("evidence", "+13125550123", "--json"))
    assert data["business_units"] == ["Acme", "Globex"] and data["timeline"] == []


def test_config_export_json(db, tmp_path):
    config_apply(CONFIG)

    printed = json.loads(run("config", "export", "--json"))
    assert printed["business_units"] == ["Northwind"] and printed["output"] is None
    assert tomllib.loads(printed["toml"])["business_units"][0]["name"] == "Northwind"

    target = tmp_path / "site.toml"
    written = json.loads(run("config", "export", "-o", str(target), "--json"))
    assert written["output"] == str(target) and "toml" not in written
    assert written["bytes"] == len(target.read_bytes())

    with pytest.raises(CommandError, match=r"No business unit named 'X' \(business units: 'N"):
        run("config", "export", "--business-unit", "X")


def test_config_apply_shows_progress_only_on_a_terminal(db, tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(CONFIG, encoding="utf-8")

    on_terminal = run("config", "apply", str(path), "--dry-run", stdout=Terminal())
    piped = run("config", "apply", str(path), "--dry-run")
    data = json.loads(run("config", "apply", str(path), "--json", stdout=Terminal()))

    assert "] business unit Northwind" in on_terminal and "] saving..." in on_terminal
    assert on_terminal.rsplit("\r", 1)[-1].startswith("Would apply")
    assert "\r" not in piped and piped.startswith("Would apply")
    assert data["applied"] is True and data["created"]["skills"] == 1


# --- plan, dispatch, state_holidays, seed_demo -------------------------------------------------


def test_plan_finds_the_skill_without_business_unit(bu, other_bu):
    skill = make_skill(bu, name="Flu shots")
    add_record(skill)

    data = json.loads(run("plan", "--skill", "Flu shots", "--json"))
    assert [s["skill"] for s in data["skills"]] == ["Flu shots"]
    assert data["planned"] == sum(s["planned"] for s in data["skills"])

    make_skill(other_bu, name="Flu shots")
    with pytest.raises(CommandError) as ambiguous:
        run("plan", "--skill", "Flu shots")
    assert str(ambiguous.value) == (
        f"Skills named 'Flu shots' are in several business units {BOTH}: give --business-unit."
    )
    with pytest.raises(CommandError, match="give --skill too"):
        run("plan", "--business-unit", "Acme")
    assert "Flu shots" in run("plan", "--skill", "Flu shots", "--business-unit", "Globex")


@pytest.fixture
def dispatch_process():
    """``dispatch`` tunes the interpreter for pacing (switch interval, frozen objects):
    put it back for the tests that follow."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    gc.unfreeze()


def test_dispatch_until_idle_json_and_its_bar(db, dispatch_process):
    data = json.loads(run("dispatch", "--until-idle", "--json", stdout=Terminal()))
    assert {"sent", "failed", "retried", "withdrawn", "unknown", "seconds"} <= set(data)
    assert data["sent"] == 0

    on_terminal = run("dispatch", "--until-idle", stdout=Terminal())
    piped = run("dispatch", "--until-idle")
    assert "\r[" in on_terminal and "queued 0" in on_terminal
    assert "\r" not in piped and piped.startswith("Sent 0, failed 0")


def test_dispatch_bar_counts_texts_done_out_of_done_and_queued(db, dispatch_process, monkeypatch):
    class Sent3:
        """A dispatcher that has sent 3 texts when it reports (none is queued)."""

        def __init__(self, *, on_tick, **_options):
            self.on_tick = on_tick
            self.stats = SenderStats(sent=3, failed=1)
            self.threads = {}

        def run(self):
            self.on_tick(self)
            return self.stats

    monkeypatch.setattr("messaging.management.commands.dispatch.Dispatcher", Sent3)

    on_terminal = run("dispatch", "--until-idle", stdout=Terminal())
    data = json.loads(run("dispatch", "--until-idle", "--json"))

    assert "\r[####################]" in on_terminal and "sent        3" in on_terminal
    last = on_terminal.splitlines()[-1]
    assert re.fullmatch(r"Sent 3, failed 1, retried 0, withdrawn 0, unknown 0 in [\d.]+ s\.", last)
    assert (data["sent"], data["failed"]) == (3, 1)


def test_state_holidays_json(db):
    data = json.loads(run("state_holidays", "--years", "1", "--state", "AL", "--json"))

    assert len(set(data["years"])) == 1 and set(data["added"]) <= {"AL"}


def test_seed_demo_json(db):
    data = json.loads(run("seed_demo", "--json"))

    assert data["business_unit"] and data["records"] > 0 and data["created"]
    assert data["admin"]["username"] == "admin"


# --- errors under --json -----------------------------------------------------------------------


def from_command_line(capsys, *argv) -> tuple[int, str, str]:
    """``manage.py *argv`` as a shell runs it: (exit status, stdout, stderr)."""
    from django.core.management import ManagementUtility
    from django.db import connections

    # A command run so closes the connections at its end: the test's database must outlive it.
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as ended:
        patch.setattr(connections, "close_all", lambda: None)
        ManagementUtility(["manage.py", *argv]).execute()
    printed = capsys.readouterr()
    return ended.value.code, printed.out, printed.err


def test_a_bad_argument_under_json_prints_json(db, capsys):
    status, out, err = from_command_line(capsys, "state_holidays", "--json", "--years", "many")

    assert status == 2
    data = json.loads(out)
    assert data["error"] == "argument --years: invalid int value: 'many'"
    assert data["usage"].startswith("usage: manage.py state_holidays")
    assert "invalid int value" in err  # still said on stderr, as without --json

    status, out, err = from_command_line(capsys, "skill", "status", "--json")
    assert status == 2
    assert json.loads(out)["error"] == "the following arguments are required: name"
    assert json.loads(out)["usage"].startswith("usage: manage.py skill")

    status, out, err = from_command_line(capsys, "config", "apply", "--json")  # a subcommand
    assert status == 2 and json.loads(out)["usage"].startswith("usage: manage.py config apply")

    status, out, err = from_command_line(capsys, "state_holidays", "--years", "many")
    assert status == 2 and out == "" and "invalid int value" in err


def test_a_failed_command_under_json_prints_one_json_document(bu, other_bu, capsys):
    status, out, err = from_command_line(capsys, "skill", "status", "Nope", "--json")
    assert status == 1
    assert json.loads(out) == {"error": "No skill 'Nope'."}
    assert "CommandError: No skill 'Nope'." in err

    # A command that prints its own document on failure prints only that one.
    workbook = str(FIXTURES / "basic.xlsx")
    status, out, _err = from_command_line(
        capsys, "import_dnc", workbook, "--group", "x", "--create-group", "--json"
    )
    assert status == 1 and "error" in json.loads(out)
