"""Importing numbers into a DNC group and exporting it: the service and the commands."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import openpyxl
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from dnc.importing import FileError, dnc_import
from dnc.models import DncEntry
from tests.factories import BusinessUnitFactory, DncEntryFactory, DncGroupFactory

NEXT_YEAR = timezone.localdate().year + 1


@pytest.fixture
def group(db):
    bu = BusinessUnitFactory(name="Acme")
    return DncGroupFactory(business_unit=bu, name="Do not text")


def write(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def numbers(group) -> dict[str, dt.date | None]:
    return {str(e.phone_number): e.expires_on for e in group.entries.all()}


def test_csv_with_aliased_headers_any_phone_format_and_dates(group, tmp_path):
    path = write(
        tmp_path,
        "dnc.csv",
        "Name,Mobile Number,Expiration Date\n"
        f"Ada,(312) 555-0123,{NEXT_YEAR}-12-31\n"
        f"Bob,312.555.0124,12/31/{NEXT_YEAR}\n"
        "Cy,+1 312 555 0125,\n",
        encoding="utf-8-sig",
    )
    result = dnc_import(group=group, path=path)
    assert (result.rows, result.valid, result.added, result.invalid) == (3, 3, 3, 0)
    assert result.report is None
    assert numbers(group) == {
        "+13125550123": dt.date(NEXT_YEAR, 12, 31),
        "+13125550124": dt.date(NEXT_YEAR, 12, 31),
        "+13125550125": None,
    }
    entry = group.entries.get(phone_number="+13125550125")
    assert entry.source == DncEntry.Source.FILE_IMPORT
    assert entry.evidence == "file import: dnc.csv"


def test_bad_rows_are_reported_and_never_stop_the_file(group, tmp_path):
    path = write(
        tmp_path,
        "dnc.csv",
        "phone,expire date\n"
        "3125550123,\n"
        "not a number,\n"
        ",2027-01-01\n"
        "3125550124,someday\n"
        "3125550125,2001-01-01\n"
        "\n"
        "3125550126,\n",
    )
    result = dnc_import(group=group, path=path)
    assert (result.rows, result.valid, result.invalid, result.added) == (6, 2, 4, 2)
    assert set(numbers(group)) == {"+13125550123", "+13125550126"}
    report = list(csv.reader(io.StringIO(result.report.decode("utf-8-sig"))))
    assert report[0] == ["row", "outcome", "reason", "values"]
    assert [(r[0], r[2]) for r in report[1:]] == [
        ("3", "not a valid phone number (read in region US)"),
        ("4", "no phone number"),
        ("5", "the expire date is not a date (use 2026-12-31 or 12/31/2026)"),
        ("6", "the expire date is in the past"),
    ]
    assert report[4][3] == "3125550125 | 2001-01-01"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("dnc.pdf", b"%PDF-1.4", "not supported"),
        ("dnc.xls", b"\xd0\xcf\x11\xe0", "not supported"),
        ("dnc.csv", b"", "empty"),
        ("dnc.csv", b"PK\x03\x04zipped", "zipped"),
        ("dnc.csv", "phone\n3125550123\n".encode("utf-16"), "UTF-16"),
        ("dnc.csv", b"phone\n3125550123\n\xff\xfe\xfa bad\n", "not UTF-8"),
        ("dnc.csv", b"name,city\nAda,Chicago\n", "No phone number column"),
        ("dnc.csv", b"phone,expire date\n", "no rows"),
        ("dnc.xlsx", b"PK\x03\x04 not really a workbook", "could not be read"),
    ],
)
def test_a_bad_file_changes_nothing(group, tmp_path, name, content, message):
    DncEntryFactory(group=group, phone_number="+13125550199")
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileError, match=message):
        dnc_import(group=group, path=path, file_name=name)
    assert list(numbers(group)) == ["+13125550199"]


def test_a_headerless_list_of_numbers(group, tmp_path):
    path = write(tmp_path, "list.txt", f"3125550123\t{NEXT_YEAR}-06-30\n3125550124\n")
    result = dnc_import(group=group, path=path)
    assert result.added == 2
    assert numbers(group)["+13125550123"] == dt.date(NEXT_YEAR, 6, 30)


def test_xlsx_with_numeric_phone_cells_and_date_cells(group, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Phone Number", "Expire Date"])
    sheet.append([3125550123, dt.datetime(NEXT_YEAR, 1, 15)])
    sheet.append(["(312) 555-0124", None])
    sheet.append(["bad", None])
    path = tmp_path / "dnc.xlsx"
    book.save(path)
    result = dnc_import(group=group, path=path)
    assert (result.added, result.invalid) == (2, 1)
    assert numbers(group) == {"+13125550123": dt.date(NEXT_YEAR, 1, 15), "+13125550124": None}


def test_a_headerless_xlsx_of_numbers_keeps_its_first_row(group, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([3125550123, dt.datetime(NEXT_YEAR, 3, 1)])
    sheet.append([])
    sheet.append(["not a number", None])
    sheet.append([3125550124])
    path = tmp_path / "numbers.xlsx"
    book.save(path)
    result = dnc_import(group=group, path=path)
    assert (result.added, result.invalid) == (2, 1)
    assert numbers(group) == {"+13125550123": dt.date(NEXT_YEAR, 3, 1), "+13125550124": None}
    # The bad row is named as the spreadsheet numbers it, blank row included.
    assert result.errors == [(3, "not a valid phone number (read in region US)", "not a number | ")]


def test_a_file_in_another_encoding_names_the_line_of_its_first_bad_byte(group, tmp_path):
    path = write(tmp_path, "dnc.csv", "phone,note\n3125550123,ok\n3125550124,caf\u00e9\n", "cp1252")
    with pytest.raises(FileError, match="byte 0xE9 on line 3.*Windows-1252"):
        dnc_import(group=group, path=path)
    assert numbers(group) == {}


def test_numbers_are_read_in_the_bus_region(db, tmp_path):
    group = DncGroupFactory(business_unit=BusinessUnitFactory(phone_region="GB"))
    path = write(tmp_path, "dnc.csv", "phone\n020 7946 0018\n07911 123456\n")
    assert dnc_import(group=group, path=path).added == 2
    assert set(numbers(group)) == {"+442079460018", "+447911123456"}


def test_existing_entries_keep_their_source_expired_ones_block_again(group, tmp_path):
    DncEntryFactory(group=group, phone_number="+13125550123", source=DncEntry.Source.STOP_REPLY)
    DncEntryFactory(
        group=group,
        phone_number="+13125550124",
        source=DncEntry.Source.MANUAL,
        collected_at=timezone.now() - dt.timedelta(days=400),
        expires_on=timezone.localdate() - dt.timedelta(days=5),
    )
    DncEntryFactory(group=group, phone_number="+13125550125", source=DncEntry.Source.FILE_IMPORT)
    path = write(
        tmp_path,
        "dnc.csv",
        f"phone,expires\n3125550123,{NEXT_YEAR}-01-01\n3125550124,\n"
        f"3125550125,{NEXT_YEAR}-02-02\n3125550125,{NEXT_YEAR}-03-03\n",
    )
    result = dnc_import(group=group, path=path)
    assert (result.added, result.updated, result.unchanged, result.repeated) == (0, 2, 1, 1)
    entries = {str(e.phone_number): e for e in group.entries.all()}
    assert entries["+13125550123"].source == DncEntry.Source.STOP_REPLY
    assert entries["+13125550123"].expires_on is None  # a STOP is never shortened by a file
    assert entries["+13125550124"].source == DncEntry.Source.FILE_IMPORT
    assert entries["+13125550124"].expires_on is None
    assert entries["+13125550125"].expires_on == dt.date(NEXT_YEAR, 3, 3)  # the last row


# --- the commands -------------------------------------------------------------------------------


def test_import_dnc_command_json_and_error_report(group, tmp_path):
    path = write(tmp_path, "dnc.csv", "phone\n3125550123\nnope\n")
    out = io.StringIO()
    errors = tmp_path / "errors.csv"
    call_command(
        "import_dnc",
        str(path),
        "--group",
        "Do not text",
        "--business-unit",
        "Acme",
        "--json",
        "--errors",
        str(errors),
        stdout=out,
    )
    data = json.loads(out.getvalue())
    assert (data["added"], data["invalid"], data["group"]) == (1, 1, "Do not text")
    assert data["errors"] == [{"row": 3, "reason": data["errors"][0]["reason"], "values": "nope"}]
    assert "not a valid phone number" in errors.read_text(encoding="utf-8-sig")


def test_import_dnc_command_bad_file_and_unknown_group(group, tmp_path):
    path = write(tmp_path, "dnc.csv", "name\nAda\n")
    with pytest.raises(CommandError, match="No phone number column.*Nothing was imported"):
        call_command("import_dnc", str(path), "--group", "Do not text", "--business-unit", "Acme")
    with pytest.raises(CommandError, match="No DNC group 'Nope'"):
        call_command("import_dnc", str(path), "--group", "Nope", "--business-unit", "Acme")
    good = write(tmp_path, "ok.csv", "phone\n3125550123\n")
    out = io.StringIO()
    call_command(
        "import_dnc",
        str(good),
        "--group",
        "New group",
        "--business-unit",
        "Acme",
        "--create-group",
        stdout=out,
    )
    assert "1 added" in out.getvalue()
    assert group.business_unit.dnc_groups.get(name="New group").entries.count() == 1


def test_export_dnc_command_round_trips_through_import(group, tmp_path):
    DncEntryFactory(
        group=group,
        phone_number="+13125550123",
        expires_on=dt.date(NEXT_YEAR, 5, 1),
        source=DncEntry.Source.STOP_REPLY,
    )
    DncEntryFactory(group=group, phone_number="+13125550124")
    out = tmp_path / "export.csv"
    call_command("export_dnc", "--group", "Do not text", "--business-unit", "Acme", "-o", str(out))
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["phone number", "expire date", "source", "date collected", "group"]
    assert sorted((r[0], r[1], r[2]) for r in rows[1:]) == [
        ("+13125550123", f"{NEXT_YEAR}-05-01", "stop_reply"),
        ("+13125550124", "", "manual"),
    ]
    # ...and into another group.
    other = DncGroupFactory(business_unit=group.business_unit)
    assert dnc_import(group=other, path=out).added == 2
    assert numbers(other) == numbers(group)

    stdout = io.StringIO()
    call_command("export_dnc", "--group", "Do not text", "--business-unit", "Acme", stdout=stdout)
    assert stdout.getvalue().startswith("phone number,expire date")
    with pytest.raises(CommandError):
        call_command("export_dnc", "--group", "Nope", "--business-unit", "Acme")
