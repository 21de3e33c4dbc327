"""The bad-input corpus (tests/data/bad_inputs, made by scripts/make_bad_inputs.py) through every
door a file comes in by: ``import_list``, ``import_dnc``, ``config apply`` and the admin's upload.

Each file gets a correct import, with its bad rows reported, or one clear message and a non-zero
exit; never a traceback, never a half-imported list or group. The zip bomb is refused before
anything inflates it.
"""

from __future__ import annotations

import io
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from dnc.models import DncEntry
from skills.models import Record, UploadJob
from tests.factories import CallingListFactory, DncGroupFactory, RecordFactory
from tests.processes import ROOT, process_env

CORPUS = Path(__file__).parent / "data" / "bad_inputs"
FILES = sorted(p.name for p in CORPUS.iterdir())
TOML = [name for name in FILES if name.endswith(".toml")]

NOT_TEXT = "This is not a text file"
NOT_SUPPORTED = "are not supported"
# A fragment of the one message each file that cannot be imported gets from import_list; any
# other file imports (its bad rows reported).
LIST_REFUSED = {
    "empty.csv": "The file is empty.",
    "header_only.csv": "header row but no data rows",
    "blank_lines_only.csv": "no header row",
    "binary_junk.csv": NOT_TEXT,
    "nul_bytes.csv": NOT_TEXT,
    "utf16_bom.csv": "UTF-16",
    "latin1.csv": "not UTF-8 text: byte 0xEB on line 2",
    "no_phone_column.csv": "No phone column is mapped",
    "no_id_column.csv": "No column is mapped to ExternalId",
    "semicolons.csv": "separated by semicolons",
    "tab_separated_named_csv.csv": "separated by tabs",
    "no_extension": NOT_SUPPORTED,
    "old_excel.xls": NOT_SUPPORTED,
    "document.pdf": NOT_SUPPORTED,
    "old_excel_named_xlsx.xlsx": "old Excel (.xls) file saved with an .xlsx name",
    "csv_named_xlsx.xlsx": "not an Excel workbook",
    "xlsx_named_csv.csv": "zipped file",
    "truncated.xlsx": "The workbook could not be read",
    "empty_sheet.xlsx": "is empty",
    "formulas_without_results.xlsx": "formulas without saved results",
    "zip_bomb.xlsx": "would unpack to 400.0 MB",
    "ten_thousand_columns.csv": "The header row has 10,002 columns",
    **dict.fromkeys(TOML, NOT_SUPPORTED),
}
# The DNC import reads files without a header too; its own messages where they differ.
DNC_REFUSED = {
    **LIST_REFUSED,
    "blank_lines_only.csv": "The file has no rows",
    "header_only.csv": "no rows of numbers",
    "no_phone_column.csv": "No phone number column",
    "semicolons.csv": "No phone number column",
    "tab_separated_named_csv.csv": "No phone number column",
    "formulas_without_results.xlsx": None,  # its rows are reported: no phone number in them
    "no_id_column.csv": None,  # a DNC file needs no ID
    "ten_thousand_columns.csv": None,  # it reads the phone column and ignores the rest
}
DNC_REFUSED = {name: text for name, text in DNC_REFUSED.items() if text}
# What ``config apply --dry-run`` says of the configuration files (any other file: not TOML).
CONFIG_MESSAGES = {
    "config_empty.toml": "no [[business_units]] tables",
    "config_no_units.toml": "no [[business_units]] tables",
    "config_not_toml.toml": "not valid TOML",
    "config_binary.toml": "not UTF-8 text (byte 0x80 at byte 128)",
    "config_utf16.toml": "saved as UTF-16",
    "config_unknown_field.toml": "unknown key 'colour'",
    "config_wrong_types.toml": "business_units[0]",
    "config_unknown_zone.toml": "Unknown time zone(s): Mars/Olympus",
}
CONFIG_APPLIES = {"config_with_bom.toml"}


def test_the_corpus_has_what_the_checks_name():
    named = set(LIST_REFUSED) | set(CONFIG_MESSAGES) | CONFIG_APPLIES
    assert named <= set(FILES)
    assert len(FILES) >= 30


@pytest.fixture
def existing(bu):
    """What is there before: a list with a record, a DNC group with an entry."""
    calling_list = CallingListFactory(business_unit=bu, name="L")
    RecordFactory(calling_list=calling_list, external_id="KEEP")
    group = DncGroupFactory(business_unit=bu, name="G")
    DncEntry.objects.create(group=group, phone_number="+13125550199")
    return calling_list, group


@pytest.mark.parametrize("name", FILES)
def test_import_list(existing, name):
    calling_list, _ = existing
    out, err = io.StringIO(), io.StringIO()
    args = ["--business-unit=Acme", "--list=L", "--default-time-zone=America/Chicago"]
    try:
        call_command("import_list", str(CORPUS / name), *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    if name in LIST_REFUSED:
        assert code == 2
        assert LIST_REFUSED[name] in err.getvalue()
        assert list(calling_list.records.values_list("external_id", flat=True)) == ["KEEP"]
        # Refused by its name, no job; refused by its content, a failed job saying why.
        assert not UploadJob.objects.exclude(status=UploadJob.Status.FAILED).exists()
    else:
        job = UploadJob.objects.get()
        assert code == 0, err.getvalue()
        assert job.status == UploadJob.Status.COMPLETED
        assert job.rows_processed == job.rows_valid + job.rows_invalid > 0
        assert calling_list.records.count() == 1 + job.rows_valid
        assert f"{job.rows_processed:,} rows processed" in out.getvalue()


@pytest.mark.parametrize("name", FILES)
def test_import_dnc(existing, name):
    _, group = existing
    out = io.StringIO()
    args = ["--business-unit=Acme", "--group=G"]
    if name in DNC_REFUSED:
        with pytest.raises(CommandError, match="Nothing was imported") as raised:
            call_command("import_dnc", str(CORPUS / name), *args, stdout=out)
        assert DNC_REFUSED[name] in str(raised.value)
        assert list(group.entries.values_list("phone_number", flat=True)) == ["+13125550199"]
    else:
        call_command("import_dnc", str(CORPUS / name), *args, stdout=out)
        assert " rows, " in out.getvalue() and "rejected" in out.getvalue()


@pytest.mark.parametrize("name", FILES)
def test_config_apply(existing, name):
    before = (Record.objects.count(), DncEntry.objects.count())
    if name in CONFIG_APPLIES:
        out = io.StringIO()
        call_command("config", "apply", str(CORPUS / name), "--dry-run", stdout=out)
        assert out.getvalue().startswith("Would apply")
        return
    with pytest.raises(CommandError, match="nothing was applied|not UTF-8|UTF-16") as raised:
        call_command("config", "apply", str(CORPUS / name))
    assert CONFIG_MESSAGES.get(name, "") in str(raised.value)
    assert (Record.objects.count(), DncEntry.objects.count()) == before


@pytest.mark.parametrize("name", [n for n in FILES if n not in TOML])
def test_the_admin_upload_answers_every_file_without_a_server_error(
    client, staff_member, existing, name, django_capture_on_commit_callbacks
):
    calling_list, _ = existing
    client.force_login(staff_member)
    data = (CORPUS / name).read_bytes()
    response = client.post(
        reverse("admin:skills_uploadjob_add"),
        {
            "calling_list": calling_list.pk,
            "file": SimpleUploadedFile(name, data),
            "mode": "append",
            "no_zone_policy": "default",
            "default_time_zone": "America/Chicago",
            "expires_on": "",
        },
    )
    assert response.status_code in (200, 302)
    if response.status_code == 200:  # the form again, saying what is wrong with the file
        assert response.context["adminform"].form.errors
        assert not UploadJob.objects.exists()
        return
    page = client.get(response["Location"])
    assert page.status_code in (200, 302)
    if page.status_code == 200 and "rows" in page.context:  # the mapping page: import it
        rows = page.context["rows"]
        form = {}
        for row in rows:
            i = row["index"]
            form.update(
                {
                    f"field_{i}": row["choice"],
                    f"name_{i}": row["custom_name"],
                    f"type_{i}": row["type"],
                }
            )
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post(response["Location"], form)
        assert answer.status_code in (200, 302)
    job = UploadJob.objects.get()
    change = client.get(reverse("admin:skills_uploadjob_change", args=[job.pk]))
    assert change.status_code == 200
    if job.status != UploadJob.Status.COMPLETED:
        assert list(calling_list.records.values_list("external_id", flat=True)) == ["KEEP"]


HOSTILE = [
    "zip_bomb.xlsx",
    "one_megabyte_cell.csv",
    "ten_thousand_cells_in_a_row.csv",
    "ten_thousand_columns.csv",
    "binary_junk.csv",
    "unclosed_quote.csv",
    "truncated.xlsx",
]
MEMORY_LIMIT = 768 << 20  # address space of the whole process: Django, the readers, the file


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_file_is_handled_in_bounded_memory_by_the_command(bu, name):
    CallingListFactory(business_unit=bu, name="L")
    result = subprocess.run(
        [sys.executable, "manage.py", "import_list", str(CORPUS / name), "--business-unit=Acme"]
        + ["--list=L", "--default-time-zone=America/Chicago"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        preexec_fn=_limit_memory,
        timeout=120,  # a guard against a hang, not a measure of speed
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == (2 if name in LIST_REFUSED else 0), result.stderr[-3000:]


@pytest.mark.parametrize("name", [n for n in FILES if n not in TOML])
def test_the_dnc_admin_import_answers_every_file_without_a_server_error(
    client, staff_member, existing, name
):
    _, group = existing
    client.force_login(staff_member)
    url = reverse("admin:dnc_dncgroup_import", args=[group.pk])
    data = (CORPUS / name).read_bytes()
    response = client.post(url, {"file": SimpleUploadedFile(name, data)})
    assert response.status_code == 200
    if name in DNC_REFUSED:
        assert response.context["form"].errors["file"]  # the page says why
        assert list(group.entries.values_list("phone_number", flat=True)) == ["+13125550199"]
    else:
        assert response.context["result"].rows > 0
