"""Calling-list import: formats, mapping, records and destinations, zones, IDs, the report.

Each test runs the real import (``upload_job_run``) on a small file, as the background task does.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from zipfile import ZipFile

import pytest
from django.core.files.base import ContentFile
from django.db import DEFAULT_DB_ALIAS, connections

import pcsms.rows
from pcsms.rows import FileError, base
from pcsms.rows import pieces as sheet_pieces
from skills.importing import commit, reading, streaming
from skills.importing.service import upload_job_preview, upload_job_run
from skills.models import CustomField, Destination, Record, UploadJob
from tests.factories import (
    AttemptFactory,
    CallingListFactory,
    CustomTimeZoneFactory,
    DestinationFactory,
    RecordFactory,
)

FIXTURES = Path(__file__).parent / "fixtures" / "import"


def make_job(calling_list, name: str, data: bytes | str | None = None, **options) -> UploadJob:
    if data is None:
        data = (FIXTURES / name).read_bytes()
    if isinstance(data, str):
        data = data.encode("utf-8")
    job = UploadJob(calling_list=calling_list, original_name=name, **options)
    job.file.save(name, ContentFile(data), save=False)
    job.save()
    return job


def queued_job(calling_list, name: str, data: str) -> UploadJob:
    """A job with its proposed mapping, queued: what the admin's Import button leaves."""
    job = make_job(calling_list, name, data)
    job.mapping = upload_job_preview(job=job).mapping
    job.status = UploadJob.Status.QUEUED
    job.save()
    return job


def run_import(
    calling_list,
    name: str,
    data: bytes | str | None = None,
    *,
    mapping: dict | None = None,
    changes: dict | None = None,
    workers: int = 1,
    **options,
) -> UploadJob:
    """Upload, take the proposed mapping (with ``changes``), run: what the admin page does."""
    job = make_job(calling_list, name, data, **options)
    if mapping is None:
        try:
            mapping = upload_job_preview(job=job).mapping
        except FileError:
            mapping = {}
    mapping = {**mapping, **(changes or {})}
    job.mapping = mapping
    job.status = UploadJob.Status.QUEUED
    job.save()
    result = upload_job_run(job_id=job.pk, workers=workers)
    assert result is not None
    return result


def report(job: UploadJob) -> list[dict[str, str]]:
    if not job.error_report:
        return []
    with job.error_report.open("rb") as handle:
        text = handle.read().decode("utf-8")
    assert text.startswith("\ufeff"), "Excel needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(text[1:])))


def records(calling_list) -> dict[str, Record]:
    return {r.external_id: r for r in Record.objects.filter(calling_list=calling_list)}


def numbers(record: Record) -> list[tuple[int, str, str, str]]:
    return [
        (d.position, d.source_field, d.phone_number, d.time_zone)
        for d in record.destinations.order_by("position")
    ]


@pytest.fixture
def calling_list(bu):
    return CallingListFactory(business_unit=bu, name="Patients")


# --- Formats ----------------------------------------------------------------------------------


def test_the_garbage_collector_is_back_on_after_an_import_ends_well_or_badly(calling_list):
    # The import holds the collector off while it reads (reading.read_rows): a worker that stayed
    # without it would keep every reference cycle it ever made.
    import gc

    assert gc.isenabled()
    run_import(calling_list, "basic.csv")
    assert gc.isenabled()
    failed = run_import(calling_list, "junk.csv")
    assert failed.status == UploadJob.Status.FAILED and gc.isenabled()


@pytest.mark.parametrize("name", ["basic.csv", "basic_bom.csv", "basic.txt", "basic.xlsx"])
def test_each_format_imports_the_same_records(calling_list, name):
    job = run_import(calling_list, name)

    assert job.status == UploadJob.Status.COMPLETED, job.message
    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (3, 2, 1)
    got = records(calling_list)
    assert set(got) == {"A1", "A2"}
    ada = got["A1"]
    # The BOM is not part of the first header: ExternalId was matched.
    assert (ada.first_name, ada.last_name, ada.zip_code) == ("Ada", "Lovelace", "60601")
    assert numbers(ada) == [
        (0, "PhoneNumber", "+13125550123", "America/Chicago"),
        (1, "SMSPhoneNumber", "+13125550124", "America/Chicago"),
    ]
    assert numbers(got["A2"]) == [(0, "PhoneNumber", "+12125550100", "America/New_York")]
    assert got["A2"].custom == {"VisitDate": "2027-01-02", "Balance": 3.0}
    assert [r["row"] for r in report(job)] == ["4"]


def test_xlsx_reads_only_the_first_sheet_and_numbers_typed_as_digits(calling_list):
    job = run_import(calling_list, "basic.xlsx")

    assert job.file_format == UploadJob.Format.XLSX
    # D3 holds the number 2125550100 (a float to the reader), not text.
    assert numbers(records(calling_list)["A2"])[0][2] == "+12125550100"
    assert not Record.objects.filter(external_id="not").exists()


def test_quoted_fields_with_commas_tabs_and_line_breaks(calling_list):
    data = (
        "ExternalId,Phone,Notes\r\n"
        'Q1,3125550123,"a, b\tc\nd \\ e"\r\n'
        'Q2,3125550124,"say ""hi"""\r\n'
    )
    job = run_import(calling_list, "quoted.csv", data)

    assert job.rows_valid == 2, report(job)
    got = records(calling_list)
    assert got["Q1"].custom == {"Notes": "a, b\tc\nd \\ e"}
    assert got["Q2"].custom == {"Notes": 'say "hi"'}


# --- File-level errors: one message, nothing imported --------------------------------------


FILE_ERRORS = [
    ("latin1.csv", None, "not UTF-8"),
    ("junk.csv", None, "not a text file"),
    ("empty.csv", None, "The file is empty"),
    ("header_only.csv", None, "no data rows"),
    ("notes.pdf", None, "not supported"),
    ("list.xls", b"\xd0\xcf\x11\xe0" + b"\0" * 100, "not supported"),
    ("csv_renamed.xlsx", None, "not an Excel workbook"),
    ("zipped.csv", (FIXTURES / "basic.xlsx").read_bytes(), "zipped file"),
    ("utf16.csv", "ExternalId,Phone\n".encode("utf-16"), "UTF-16"),
    ("semicolons.csv", "ExternalId;Phone\nX;3125550123\n", "separated by semicolons"),
    ("formulas_uncalculated.xlsx", None, "formulas without saved results"),
]


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_are_numbered_alike_before_and_after_the_first_quote(
    calling_list, monkeypatch, workers
):
    # Lines without quotes go to the readers as they are; from the first quote on the csv
    # module reads. Tiny blocks cut lines everywhere; CRLF, a blank line, a quoted line break.
    monkeypatch.setattr(base, "BLOCK", 50)
    monkeypatch.setattr(reading, "CHUNK_ROWS", 3)
    plain = [f"Q{i},312555{i:04d},Name{i}" for i in range(10)]
    plain[5] = "Q5,555-01,Bad"  # row 7
    after = [f"Q{i},312555{i:04d},Name{i}" for i in range(12, 18)]
    data = "\r\n".join(
        ["ID,Phone,FirstName", *plain, "", 'Q10,3125550010,"Ann\r\nMarie"', "Q11,555-01,Bad"]
        + after
    )  # the last line has no line break
    job = run_import(calling_list, "quotes.csv", data, workers=workers)

    assert (job.rows_valid, job.rows_invalid) == (16, 2)
    assert [e["row"] for e in report(job)] == ["7", "14"]
    got = records(calling_list)
    assert got["Q10"].first_name == "Ann\r\nMarie"
    assert got["Q17"].first_name == "Name17"
    assert got["Q9"].destinations.get().phone_number == "+13125550009"


@pytest.mark.parametrize(("name", "data", "expected"), FILE_ERRORS)
def test_a_bad_file_fails_with_one_clear_message_and_changes_nothing(
    calling_list, name, data, expected
):
    existing = RecordFactory(calling_list=calling_list, external_id="KEEP")
    job = run_import(calling_list, name, data)

    assert job.status == UploadJob.Status.FAILED
    assert expected in job.message
    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (0, 0, 0)
    assert list(Record.objects.filter(calling_list=calling_list)) == [existing]
    assert not CustomField.objects.filter(calling_list=calling_list).exists()
    assert not job.error_report


def test_no_phone_column_mapped_is_a_file_error(calling_list):
    job = run_import(calling_list, "basic.csv", changes={"Phone": "", "SMS": ""})

    assert job.status == UploadJob.Status.FAILED
    assert "No phone column is mapped" in job.message
    assert not Record.objects.exists()


def test_no_external_id_mapped_is_a_file_error(calling_list):
    job = run_import(calling_list, "basic.csv", changes={"ExternalId": {"field": ""}})

    assert job.status == UploadJob.Status.FAILED
    assert "No column is mapped to ExternalId" in job.message
    assert not Record.objects.exists()


def test_a_field_mapped_from_two_columns_is_refused(calling_list):
    job = run_import(calling_list, "basic.csv", changes={"SMS": {"field": "PhoneNumber"}})

    assert job.status == UploadJob.Status.FAILED
    assert "PhoneNumber is mapped from two columns" in job.message


def write_xlsx(path: Path, rows: dict[str, object]) -> None:
    """A workbook as openpyxl saves it (inline strings, typed cells), cells by reference."""
    from openpyxl import Workbook

    workbook = Workbook()
    for ref, value in rows.items():
        workbook.active[ref] = value
    workbook.save(path)


def test_xlsx_rows_are_numbered_as_excel_shows_them_when_the_sheet_starts_lower_down(
    calling_list, tmp_path
):
    # A title block above the list: the header is on row 3 and starts in column B.
    path = tmp_path / "offset.xlsx"
    write_xlsx(
        path,
        {
            "B3": "ExternalId",
            "C3": "Phone",
            "B4": "X1",
            "C4": "3125550101",
            "B5": "X2",
            "C5": "bad",
        },
    )
    job = run_import(calling_list, "offset.xlsx", path.read_bytes())

    assert (job.rows_valid, job.rows_invalid) == (1, 1)
    assert [e["row"] for e in report(job)] == ["5"]
    assert numbers(records(calling_list)["X1"])[0][2] == "+13125550101"


def sheet_in_pieces_rows() -> dict[str, object]:
    cells: dict[str, object] = {
        "A1": "ExternalId", "B1": "Phone", "C1": "FirstName", "D1": "Visit", "E1": "Score",
    }  # fmt: skip
    for n in range(2, 40):
        cells.update({f"A{n}": f"P{n}", f"B{n}": f"312555{n:04d}", f"C{n}": f"Name{n}"})
        cells[f"D{n}"] = dt.datetime(2027, 1, 1 + n % 28)  # a typed date cell
        cells[f"E{n}"] = n * 1.0  # a number cell
    for ref in ("A7", "B7", "C7", "D7", "E7"):  # a blank row
        del cells[ref]
    del cells["A12"]  # a row without an ID: its first cell is in column B
    cells["B30"] = "555-01"  # a bad number, far down
    return cells


def write_xlsx_shared(path: Path, rows: list[list[object]], first_row: int = 0) -> None:
    """A workbook as Excel saves it: every text once in the shared strings, cells by index."""
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    for n, row in enumerate(rows):
        sheet.write_row(first_row + n, 0, row)
    workbook.close()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("order", ["as Excel writes them", "newest first"])
def test_a_sheet_with_shared_strings_read_in_pieces(
    calling_list, tmp_path, monkeypatch, workers, order
):
    # Small pieces: the first one (read for the header with only the shared strings it uses)
    # and many more, each with its own workbook of the file's shared strings.
    monkeypatch.setattr(sheet_pieces, "XLSX_PIECE_BYTES", 4096)
    monkeypatch.setattr(sheet_pieces, "FIRST_PIECE_BYTES", 600)
    rows = [[], [], ["ExternalId", "Phone", "FirstName", "City"]]  # the header on row 3
    rows += [
        [f"S{n}", f"312555{n:04d}", f"Name{n}", ["Austin", "Boston"][n % 2]] for n in range(300)
    ]
    rows[150][1] = "555-01"  # a bad number, far down (row 151 of the sheet)
    path = tmp_path / "shared.xlsx"
    write_xlsx_shared(path, rows)
    from zipfile import ZipFile

    assert "xl/sharedStrings.xml" in ZipFile(path).namelist()
    if order == "newest first":
        # Strings numbered backwards, not as Excel numbers them: what a piece's last rows use
        # says little of what the piece needs (see the next test for a piece read again).
        path.write_bytes(reversed_shared_strings(path.read_bytes()))
    job = run_import(calling_list, "shared.xlsx", path.read_bytes(), workers=workers)

    assert job.status == UploadJob.Status.COMPLETED, job.message
    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (300, 299, 1)
    assert [e["row"] for e in report(job)] == ["151"]
    got = records(calling_list)
    assert (got["S0"].first_name, got["S0"].city) == ("Name0", "Austin")
    assert (got["S299"].first_name, got["S299"].city) == ("Name299", "Boston")
    assert numbers(got["S299"])[0][2] == "+13125550299"


def reversed_shared_strings(data: bytes) -> bytes:
    """The same workbook with its shared strings in reverse order (and its cells renumbered)."""
    import io
    import re
    from zipfile import ZipFile

    source = ZipFile(io.BytesIO(data))
    shared = source.read("xl/sharedStrings.xml")
    items = re.findall(rb"<si>.*?</si>", shared, re.S)
    total = len(items)
    head = shared[: shared.find(b"<si>")]
    reordered = head + b"".join(reversed(items)) + b"</sst>"
    sheet = re.sub(
        rb'(t="s"><v>)(\d+)(</v>)',
        lambda m: m[1] + str(total - 1 - int(m[2])).encode() + m[3],
        source.read("xl/worksheets/sheet1.xml"),
    )
    out = io.BytesIO()
    with ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "xl/sharedStrings.xml":
                content = reordered
            elif name == "xl/worksheets/sheet1.xml":
                content = sheet
            target.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize("reverse", [False, True])
def test_a_piece_carries_the_shared_strings_up_to_its_last_rows(tmp_path, monkeypatch, reverse):
    monkeypatch.setattr(sheet_pieces, "XLSX_PIECE_BYTES", 4096)
    path = tmp_path / "guess.xlsx"
    # Repeated texts in five more columns: a sheet several times its shared strings' size, so
    # several pieces. Reversed, only unique texts: every piece's last rows use its lowest
    # numbers.
    towns = [] if reverse else [f"Town{n}" for n in range(5)]
    rows = [["ExternalId", "Phone", *"ABCDE"[: len(towns)]]]
    rows += [[f"G{n}", f"+1312555{n:04d}", *towns] for n in range(400)]
    write_xlsx_shared(path, rows)
    if reverse:
        path.write_bytes(reversed_shared_strings(path.read_bytes()))
    table = pcsms.rows.open_table(path, "xlsx")
    try:
        pieces = [b for b in table.batches(0) if isinstance(b, sheet_pieces.SheetPiece)]
        assert len(pieces) >= (1 if reverse else 2)
        rows = [row for piece in pieces for row in piece.rows()]
        last = pieces[-1]
    finally:
        table.close()
    assert rows[-1] == (401, ["G399", "+13125550399", *towns])
    total = ZipFile(path).read("xl/sharedStrings.xml").count(b"<si>")
    if reverse:  # the guess was too few: read again with all of them
        assert last.shared_strings is None
    else:  # the guess held: fewer than all for every piece but the last ones
        assert all(p.shared_strings is not None for p in pieces)
        assert pieces[0].shared_strings < total / 2


def test_the_first_piece_reads_only_the_shared_strings_it_uses(tmp_path):
    path = tmp_path / "first.xlsx"
    rows = [["ExternalId", "Phone"]] + [[f"F{n}", f"Text {n}"] for n in range(50)]
    write_xlsx_shared(path, rows)
    from zipfile import ZipFile

    sheet = ZipFile(path).read("xl/worksheets/sheet1.xml")
    first = sheet[: sheet.find(b'<row r="3"')]  # the header and row 2
    needed = sheet_pieces._shared_strings_needed(first)
    assert needed == 4  # ExternalId, Phone, F0, Text 0
    shared = ZipFile(path).read("xl/sharedStrings.xml")
    cut = sheet_pieces._first_shared_strings(shared, needed)
    # The first strings as they are (a few more at most), and the part's closing tag.
    assert 4 <= cut.count(b"<si>") <= 10 and cut.endswith(b"</sst>")
    assert shared.startswith(cut[: cut.rfind(b"</si>")])
    for count in (1, 17, 60, 99):
        got = sheet_pieces._first_shared_strings(shared, count).count(b"<si>")
        assert count <= got <= count * 1.2 + 6
    assert sheet_pieces._first_shared_strings(shared, 10_000) == shared


def test_a_sheet_damaged_past_its_first_piece_is_a_file_error_and_changes_nothing(
    calling_list, tmp_path, monkeypatch
):
    import struct

    monkeypatch.setattr(sheet_pieces, "XLSX_PIECE_BYTES", 2048)
    monkeypatch.setattr(base, "BLOCK", 512)  # the header is read long before the end
    path = tmp_path / "damaged.xlsx"
    write_xlsx(path, sheet_in_pieces_rows())
    # The sheet's checksum no longer matches its data: zipfile sees it only at the end.
    data = bytearray(path.read_bytes())
    info = ZipFile(path).getinfo("xl/worksheets/sheet1.xml")
    wrong = struct.pack("<I", info.CRC ^ 0xFFFF)
    data[info.header_offset + 14 : info.header_offset + 18] = wrong
    entry = data.find(b"PK\x01\x02")
    while entry != -1:
        size = struct.unpack("<H", data[entry + 28 : entry + 30])[0]
        if data[entry + 46 : entry + 46 + size] == b"xl/worksheets/sheet1.xml":
            data[entry + 16 : entry + 20] = wrong
        entry = data.find(b"PK\x01\x02", entry + 4)
    job = run_import(calling_list, "damaged.xlsx", bytes(data), workers=2)

    assert job.status == UploadJob.Status.FAILED
    assert "The workbook is damaged" in job.message and "save it again" in job.message
    assert not Record.objects.filter(calling_list=calling_list).exists()


def test_a_header_below_the_first_piece_is_still_found(calling_list, tmp_path, monkeypatch):
    monkeypatch.setattr(sheet_pieces, "XLSX_PIECE_BYTES", 1)  # the first piece is row 1 alone
    path = tmp_path / "low.xlsx"
    # Row 1 holds only a formatted blank cell: a row in the XML, blank to the reader.
    write_xlsx(path, {"A1": "", "A4": "ExternalId", "B4": "Phone", "A5": "L1", "B5": "555-01"})
    job = run_import(calling_list, "low.xlsx", path.read_bytes())

    assert job.status == UploadJob.Status.COMPLETED, job.message
    assert [e["row"] for e in report(job)] == ["5"]


@pytest.mark.parametrize("piece_bytes", [1, 10**9])  # a piece per row, or the whole sheet
def test_a_sheet_read_in_pieces_gives_what_one_parse_gives(
    calling_list, tmp_path, monkeypatch, piece_bytes
):
    monkeypatch.setattr(sheet_pieces, "XLSX_PIECE_BYTES", piece_bytes)
    path = tmp_path / "pieces.xlsx"
    write_xlsx(path, sheet_in_pieces_rows())
    job = run_import(calling_list, "pieces.xlsx", path.read_bytes(), workers=2)

    assert job.status == UploadJob.Status.COMPLETED, job.message
    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (37, 35, 2)
    rejected = {e["row"]: e["reason"] for e in report(job)}
    assert set(rejected) == {"12", "30"}
    assert "ExternalId is empty" in rejected["12"]
    assert "Phone='555-01'" in report(job)[1]["values"]
    got = records(calling_list)
    assert got["P13"].first_name == "Name13"
    assert (got["P13"].custom, got["P13"].score) == ({"Visit": "2027-01-14"}, 13)
    assert numbers(got["P39"])[0][2] == "+13125550039"


def test_xlsx_formulas_use_saved_results_and_reject_rows_without_one(calling_list):
    job = run_import(calling_list, "formulas.xlsx")

    assert job.status == UploadJob.Status.COMPLETED
    got = records(calling_list)
    assert {k: r.score for k, r in got.items()} == {"F2": 40, "F4": 80}
    [entry] = report(job)
    assert entry["row"] == "3"
    assert "Formula without a saved result in cell D3" in entry["reason"]


def test_xlsx_with_thousands_of_empty_columns_keeps_only_the_header_columns(calling_list):
    job = run_import(calling_list, "wide.xlsx")

    assert job.status == UploadJob.Status.COMPLETED, job.message
    assert job.rows_valid == 200
    assert set(job.mapping) == {"ExternalId", "PhoneNumber", "FirstName", "Zip"}


# --- Mapping: aliases and custom fields ------------------------------------------------------


def test_aliases_match_headers_whatever_their_case_spaces_and_underscores(calling_list):
    data = (
        "record,FNAME,Last_Name,sms number,Postal Code,time zone,exp,PRIORITY,score,"
        "customer1,Customer 2,Address,city,STATE\n"
        "R1,Ann,Lee,3125550123,60601,CST,2027-03-01,yes,7,c1,c2,1 Main St,Chicago,IL\n"
    )
    job = make_job(calling_list, "aliases.csv", data)
    mapping = upload_job_preview(job=job).mapping

    assert {column: spec["field"] for column, spec in mapping.items()} == {
        "record": "ExternalId",
        "FNAME": "FirstName",
        "Last_Name": "LastName",
        "sms number": "SMSPhoneNumber",
        "Postal Code": "Zip",
        "time zone": "TimeZone",
        "exp": "ExpirationDate",
        "PRIORITY": "Priority",
        "score": "Score",
        "customer1": "Customer1",
        "Customer 2": "Customer2",
        "Address": "Address",
        "city": "City",
        "STATE": "State",
    }
    job = run_import(calling_list, "aliases.csv", data)
    r = records(calling_list)["R1"]
    assert (r.first_name, r.last_name, r.state, r.city, r.customer2) == (
        "Ann",
        "Lee",
        "IL",
        "Chicago",
        "c2",
    )
    assert (r.priority, r.score, r.expires_on) == (True, 7, dt.date(2027, 3, 1))
    assert (r.time_zone, r.time_zone_source) == ("America/Chicago", "column")
    assert numbers(r) == [(0, "SMSPhoneNumber", "+13125550123", "America/Chicago")]


def test_unmatched_columns_become_typed_custom_fields(calling_list):
    data = (
        "ID,Phone,Appointment Date,Copay,Visits,Insured,Alt Phone,Doctor\n"
        "C1,3125550123,2026-12-01,12.50,3,yes,(646) 555-0100,Dr. Who\n"
        "C2,3125550124,01/15/2027,7,10,no,,Dr. No\n"
    )
    job = run_import(calling_list, "custom.csv", data)

    assert job.rows_valid == 2, report(job)
    fields = dict(
        CustomField.objects.filter(calling_list=calling_list).values_list("name", "field_type")
    )
    assert fields == {
        "AppointmentDate": "date",
        "Copay": "decimal",
        "Visits": "integer",
        "Insured": "boolean",
        "AltPhone": "phone",
        "Doctor": "string",
    }
    got = records(calling_list)
    assert got["C1"].custom == {
        "AppointmentDate": "2026-12-01",
        "Copay": 12.5,
        "Visits": 3,
        "Insured": True,
        "Doctor": "Dr. Who",
    }
    assert got["C2"].custom["AppointmentDate"] == "2027-01-15"
    # The custom phone field is a destination of its own, after the system one.
    assert numbers(got["C1"]) == [
        (0, "PhoneNumber", "+13125550123", "America/Chicago"),
        (1, "AltPhone", "+16465550100", "America/New_York"),
    ]


def test_the_user_can_change_a_custom_field_type_and_name(calling_list):
    data = "ID,Phone,Visits\nC1,3125550123,3\nC2,3125550124,many\n"
    job = run_import(
        calling_list,
        "custom.csv",
        data,
        changes={"Visits": {"field": "VisitNote", "type": "string"}},
    )

    assert job.rows_valid == 2
    assert records(calling_list)["C2"].custom == {"VisitNote": "many"}
    assert CustomField.objects.get(calling_list=calling_list).field_type == "string"


def test_a_value_that_is_not_of_its_fields_type_rejects_the_row(calling_list):
    data = "ID,Phone,Visits,Score\nC1,3125550123,3,5\nC2,3125550124,many,5\nC3,3125550125,4,high\n"
    job = run_import(
        calling_list, "custom.csv", data, changes={"Visits": {"field": "Visits", "type": "integer"}}
    )

    assert set(records(calling_list)) == {"C1"}
    assert [(e["row"], e["reason"]) for e in report(job)] == [
        ("3", "Visits 'many' is not a whole number."),
        ("4", "Score 'high' is not a whole number."),
    ]


# --- Phones ------------------------------------------------------------------------------------


def test_several_phone_columns_give_destinations_in_column_order(calling_list):
    data = (
        "ID,Home,PhoneNumber,SMS,Work\n"
        "P1,3125550101,3125550102,3125550103,3125550104\n"
        "P2,,3125550202,,3125550204\n"
    )
    job = run_import(
        calling_list,
        "phones.csv",
        data,
        changes={
            "Home": {"field": "Home", "type": "phone"},
            "Work": {"field": "Work", "type": "phone"},
        },
    )

    got = records(calling_list)
    assert [(p, s, n) for p, s, n, _ in numbers(got["P1"])] == [
        (0, "Home", "+13125550101"),
        (1, "PhoneNumber", "+13125550102"),
        (2, "SMSPhoneNumber", "+13125550103"),
        (3, "Work", "+13125550104"),
    ]
    assert [(p, s, n) for p, s, n, _ in numbers(got["P2"])] == [
        (0, "PhoneNumber", "+13125550202"),
        (1, "Work", "+13125550204"),
    ]
    assert job.rows_flagged == 0


def test_a_bad_second_number_is_dropped_with_a_warning(calling_list):
    data = "ID,Phone,SMS\nW1,3125550101,12345\nW2,12345,\n"
    job = run_import(calling_list, "phones.csv", data)

    assert (job.rows_valid, job.rows_invalid, job.rows_flagged) == (1, 1, 1)
    assert numbers(records(calling_list)["W1"]) == [
        (0, "PhoneNumber", "+13125550101", "America/Chicago")
    ]
    assert [(e["row"], e["outcome"], e["values"]) for e in report(job)] == [
        ("2", "imported with a warning", "SMS='12345'"),
        ("3", "rejected", "Phone='12345'"),
    ]


def test_numbers_are_read_with_the_business_units_region(calling_list, bu):
    bu.phone_region = "GB"
    bu.allowed_time_zones = ["Europe/London"]
    bu.save()
    data = "ID,Phone\nG1,020 7946 0018\nG2,+1 312 555 0123\nG3,07400 123456\n"
    job = run_import(calling_list, "uk.csv", data)

    got = records(calling_list)
    assert numbers(got["G1"]) == [(0, "PhoneNumber", "+442079460018", "Europe/London")]
    assert numbers(got["G2"])[0][2] == "+13125550123"
    assert got["G3"].destinations.get().phone_number == "+447400123456"
    assert job.rows_flagged == 1  # G2's Chicago zone is not allowed for this BU


# --- Time zones --------------------------------------------------------------------------------


def test_time_zone_sources_in_order_column_zip_phone(calling_list, bu):
    CustomTimeZoneFactory(business_unit=bu, name="Plant Time", utc_offset_minutes=-300)
    bu.allowed_time_zones = [*bu.allowed_time_zones, "Plant Time"]
    bu.save()
    data = (
        "ID,Phone,Zip,TimeZone\n"
        "Z1,2125550100,60601,America/Denver\n"  # the column wins over zip and phone
        "Z2,2125550100,60601,pst\n"  # abbreviations, any case
        "Z3,2125550100,60601,plant time\n"  # the BU's custom zone
        "Z4,2125550100,98101,\n"  # zip (Seattle) over phone (New York)
        "Z5,2125550100,,\n"  # phone
        "Z6,2125550100,2134,\n"  # a zip that lost its leading zero
        "Z7,2125550100,60601,Eastern Standard Time\n"  # a Windows zone name
    )
    job = run_import(calling_list, "zones.csv", data)

    assert job.rows_invalid == 0, report(job)
    got = records(calling_list)
    assert {k: (r.time_zone, r.time_zone_source) for k, r in got.items()} == {
        "Z1": ("America/Denver", "column"),
        "Z2": ("America/Los_Angeles", "column"),
        "Z3": ("Plant Time", "column"),
        "Z4": ("America/Los_Angeles", "zip"),
        "Z5": ("America/New_York", "phone"),
        "Z6": ("America/New_York", "zip"),
        "Z7": ("America/New_York", "column"),
    }
    # Each destination keeps the zone of its own number.
    assert numbers(got["Z1"])[0][3] == "America/New_York"


def test_an_unknown_time_zone_value_rejects_the_row(calling_list):
    job = run_import(calling_list, "zones.csv", "ID,Phone,TZ\nU1,3125550123,Mars/Base\n")

    assert job.rows_invalid == 1
    assert "TimeZone 'Mars/Base' is not a time zone we know" in report(job)[0]["reason"]


def test_no_zone_rejects_the_row_or_takes_the_uploads_default(calling_list, bu):
    # 800 numbers are not geographic; 999 is not a ZIP prefix in the data.
    data = "ID,Phone,Zip\nN1,8005550199,99999x\nN2,3125550123,\n"
    rejected = run_import(calling_list, "nozone.csv", data)

    assert (rejected.rows_valid, rejected.rows_invalid) == (1, 1)
    assert report(rejected)[0]["reason"].startswith("No time zone")
    assert set(records(calling_list)) == {"N2"}

    other = CallingListFactory(business_unit=bu)
    kept = run_import(
        other,
        "nozone.csv",
        data,
        no_zone_policy=UploadJob.NoZonePolicy.DEFAULT,
        default_time_zone="America/Phoenix",
    )
    assert (kept.rows_valid, kept.rows_invalid) == (2, 0)
    n1 = records(other)["N1"]
    assert (n1.time_zone, n1.time_zone_source) == ("America/Phoenix", "default")
    assert numbers(n1)[0][3] == "America/Phoenix"


def test_zones_the_business_unit_does_not_allow_are_flagged_not_rejected(calling_list, bu):
    bu.allowed_time_zones = ["America/Chicago"]
    bu.save()
    job = run_import(calling_list, "zones.csv", "ID,Phone\nF1,3125550123\nF2,2125550100\n")

    assert (job.rows_valid, job.rows_invalid, job.rows_flagged) == (2, 0, 1)
    [entry] = report(job)
    assert entry["row"] == "3" and entry["outcome"] == "imported with a warning"
    assert "America/New_York is not allowed for business unit Acme" in entry["reason"]


# --- External IDs, append and replace, expiration ------------------------------------------


def test_a_repeated_id_in_the_file_is_an_error_row_when_appending(calling_list):
    data = "ID,Phone,FirstName\nD1,3125550101,First\nD2,3125550102,Other\nD1,3125550103,Again\n"
    job = run_import(calling_list, "dups.csv", data)

    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (3, 2, 1)
    assert records(calling_list)["D1"].first_name == "First"
    [entry] = report(job)
    assert (entry["row"], entry["outcome"]) == ("4", "rejected")
    assert "row 2 already has it" in entry["reason"]


def test_appending_an_id_the_list_already_has_is_an_error_row(calling_list):
    RecordFactory(calling_list=calling_list, external_id="E1", first_name="Old")
    job = run_import(
        calling_list, "append.csv", "ID,Phone,FirstName\nE1,3125550101,New\nE2,3125550102,Two\n"
    )

    assert (job.rows_valid, job.rows_invalid) == (1, 1)
    assert records(calling_list)["E1"].first_name == "Old"
    assert "already in the list" in report(job)[0]["reason"]


# Chunks of 3 rows. On PostgreSQL the rows go straight into the list's tables chunk by chunk,
# so a repeat of an earlier chunk's ID must be left out before it is written, and the numbers
# of the rows after it must still go to their own records. A one-byte filter makes every ID
# look like a repeat (every ID is looked up); the real one looks up almost none.
@pytest.mark.parametrize("filter_bits", [8, streaming.StreamWriter.FILTER_BITS])
@pytest.mark.parametrize("had_records", [False, True])
def test_repeated_ids_across_chunks_keep_each_number_with_its_own_record(
    calling_list, monkeypatch, filter_bits, had_records
):
    monkeypatch.setattr(reading, "CHUNK_ROWS", 3)
    monkeypatch.setattr(streaming.StreamWriter, "FILTER_BITS", filter_bits)
    if had_records:
        RecordFactory(calling_list=calling_list, external_id="OLD", first_name="Old")
    data = (
        "ID,Phone,SMS,FirstName\n"
        "A,3125550101,3125550201,Ann\n"  # row 2, chunk 1
        "B,3125550102,,Bo\n"
        "A,3125550103,,again in its own chunk\n"
        "C,3125550104,3125550204,Cy\n"  # row 5, chunk 2
        "B,3125550105,3125550205,a later chunk\n"
        "OLD,3125550106,,in the list before\n"
        "D,3125550107,3125550207,Di\n"  # row 8, chunk 3
        "D,3125550108,,twice in one chunk\n"
        "E,3125550109,,Ed\n"
        "OLD,3125550110,,old again\n"  # row 11, chunk 4
        "X\\Y,3125550112,,a backslash\n"
        "E,3125550113,555-01,a warning and a repeat\n"
        "X\\Y,3125550114,,the backslash again\n"  # row 14, chunk 5
    )
    job = run_import(calling_list, "repeats.csv", data)

    got = records(calling_list)
    assert set(got) == {"A", "B", "C", "D", "E", "OLD", "X\\Y"}
    assert got["OLD"].first_name == ("Old" if had_records else "in the list before")
    assert [n[2] for n in numbers(got["A"])] == ["+13125550101", "+13125550201"]
    assert [n[2] for n in numbers(got["B"])] == ["+13125550102"]
    assert [n[2] for n in numbers(got["C"])] == ["+13125550104", "+13125550204"]
    assert [n[2] for n in numbers(got["D"])] == ["+13125550107", "+13125550207"]
    assert [n[2] for n in numbers(got["E"])] == ["+13125550109"]
    rejected = {e["row"]: e["reason"] for e in report(job)}
    expected = {"4", "6", "9", "11", "13", "14"} | ({"7"} if had_records else set())
    assert set(rejected) == expected
    assert "row 2 already has it" in rejected["4"]
    assert "row 8 already has it" in rejected["9"]
    if had_records:
        assert "already in the list" in rejected["7"]
    # A later repeat names the first row with the ID, whether it was written or rejected.
    assert "row 7 already has it" in rejected["11"]
    assert "row 10 already has it" in rejected["13"]
    assert "row 12 already has it" in rejected["14"]
    assert [e["outcome"] for e in report(job) if e["row"] == "13"] == [
        "imported with a warning",
        "rejected",
    ]
    assert (job.rows_valid, job.rows_invalid) == (13 - len(expected), len(expected))
    assert job.rows_flagged == 0  # the row with the warning was rejected after all
    assert Destination.objects.filter(record__calling_list=calling_list).count() == 9 + (
        0 if had_records else 1
    )


def test_tabs_backslashes_and_line_breaks_in_values_arrive_unchanged(calling_list):
    data = 'ID,Phone,FirstName,Notes\nT1,3125550101,"a\tb","C:\\dir\\n ""x""\r\nnext"\n'
    run_import(calling_list, "escapes.csv", data)

    record = records(calling_list)["T1"]
    assert record.first_name == "a\tb"
    assert record.custom["Notes"] == 'C:\\dir\\n "x"\r\nnext'


def test_replace_updates_existing_records_and_keeps_their_history(calling_list):
    old = RecordFactory(calling_list=calling_list, external_id="R1", first_name="Old", city="Keep")
    same = DestinationFactory(record=old, position=0, phone_number="+13125550101")
    AttemptFactory(record=old, destination=same, skill__business_unit=calling_list.business_unit)
    Destination.objects.filter(pk=same.pk).update(attempts=2)
    gone = DestinationFactory(record=old, position=1, phone_number="+13125550199")
    data = "ID,Phone,FirstName\nR1,3125550101,New\nR2,3125550102,Two\nR2,3125550103,Last\n"
    job = run_import(calling_list, "replace.csv", data, mode=UploadJob.Mode.REPLACE)

    assert (job.rows_valid, job.rows_invalid) == (3, 0)
    got = records(calling_list)
    assert got["R1"].pk == old.pk
    assert (got["R1"].first_name, got["R1"].city) == ("New", "Keep")  # unmapped fields stay
    assert got["R1"].upload_job_id == job.pk
    # The unchanged number keeps its attempts; the number no longer given is removed.
    assert list(got["R1"].destinations.values_list("phone_number", "attempts")) == [
        ("+13125550101", 2)
    ]
    assert not Destination.objects.filter(pk=gone.pk).exists()
    # A repeated ID: the later row's values win.
    assert got["R2"].first_name == "Last"
    assert numbers(got["R2"])[0][2] == "+13125550103"
    assert "appears again on row 4" in report(job)[0]["reason"]


def test_replace_keeps_a_texted_number_that_is_gone_as_final(calling_list):
    old = RecordFactory(calling_list=calling_list, external_id="R1")
    DestinationFactory(record=old, position=0, phone_number="+13125550101")
    texted = DestinationFactory(record=old, position=1, phone_number="+13125550199")
    AttemptFactory(record=old, destination=texted, skill__business_unit=calling_list.business_unit)
    run_import(
        calling_list, "replace.csv", "ID,Phone\nR1,3125550101\n", mode=UploadJob.Mode.REPLACE
    )

    texted.refresh_from_db()
    assert texted.is_final and texted.final_reason.startswith("Removed by upload")


def test_batch_expiration_is_overridden_by_an_expiration_column(calling_list):
    data = "ID,Phone,ExpirationDate\nX1,3125550101,2027-06-30\nX2,3125550102,\n"
    job = run_import(calling_list, "exp.csv", data, expires_on=dt.date(2027, 1, 31))

    got = records(calling_list)
    assert got["X1"].expires_on == dt.date(2027, 6, 30)
    assert got["X2"].expires_on == dt.date(2027, 1, 31)
    assert job.rows_flagged == 0


def test_an_expiration_in_the_past_is_flagged(calling_list):
    job = run_import(calling_list, "exp.csv", "ID,Phone,exp\nX1,3125550101,2020-01-01\n")

    assert (job.rows_valid, job.rows_flagged) == (1, 1)
    assert "already past" in report(job)[0]["reason"]


# --- The report, blank rows, counts --------------------------------------------------------


def test_the_report_lists_bad_rows_with_number_reason_and_values(calling_list):
    data = "ID,Phone,FirstName\nB1,3125550101,Ok\n,3125550102,NoId\n\n,,\nB3,,Nobody\nB4,abc,Bad\n"
    job = run_import(calling_list, "bad.csv", data)

    # Blank lines are not rows; numbering follows the file as a spreadsheet shows it.
    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (4, 1, 3)
    assert report(job) == [
        {
            "row": "3",
            "outcome": "rejected",
            "reason": "ExternalId is empty: every record needs one.",
            "values": "ID=''",
        },
        {
            "row": "6",
            "outcome": "rejected",
            "reason": "No phone number: every phone column is empty.",
            "values": "Phone=''",
        },
        {
            "row": "7",
            "outcome": "rejected",
            "reason": "No valid phone number: PhoneNumber 'abc' is not a valid number.",
            "values": "Phone='abc'",
        },
    ]


def test_a_job_runs_once(calling_list):
    job = run_import(calling_list, "basic.csv")

    assert upload_job_run(job_id=job.pk) is None
    assert Record.objects.filter(calling_list=calling_list).count() == 2


def test_worker_processes_give_the_same_result(calling_list, monkeypatch):
    monkeypatch.setattr(reading, "CHUNK_ROWS", 7)
    rows = "\n".join(f"M{i},312555{i:04d},Name{i}" for i in range(100))
    data = f"ID,Phone,FirstName\n{rows}\nM5,3125550005,dup\nM200,12,bad\n"
    job = run_import(calling_list, "pool.csv", data, workers=2)

    assert (job.rows_processed, job.rows_valid, job.rows_invalid) == (102, 100, 2)
    assert [e["row"] for e in report(job)] == ["102", "103"]
    assert records(calling_list)["M42"].destinations.get().phone_number == "+13125550042"


# --- Cancelled or failed: nothing half-imported ---------------------------------------------


def test_a_cancelled_import_leaves_nothing(calling_list, monkeypatch):
    monkeypatch.setattr(reading, "CHUNK_ROWS", 10)
    monkeypatch.setattr(reading, "PROGRESS_SECONDS", 0)
    rows = "\n".join(f"K{i},312555{i:04d}" for i in range(100))
    job = queued_job(calling_list, "cancel.csv", f"ID,Phone\n{rows}\n")
    seen = []

    def press_cancel(done, total, phase):
        seen.append(done)
        if done >= 30:  # the user presses Cancel while rows are being read
            UploadJob.objects.filter(pk=job.pk).update(cancel_requested=True)

    job = upload_job_run(job_id=job.pk, progress=press_cancel)

    assert job.status == UploadJob.Status.CANCELLED
    assert "nothing was imported" in job.message
    assert seen[0] < 100
    assert not Record.objects.filter(calling_list=calling_list).exists()
    assert not CustomField.objects.filter(calling_list=calling_list).exists()


@pytest.mark.django_db(transaction=True)
def test_the_admin_sees_progress_and_can_cancel_while_rows_are_written(monkeypatch):
    """The admin's requests come on other connections: they must see the counts move and
    their Cancel must stop the import, though the records go in inside one transaction."""
    calling_list = CallingListFactory(name="Progress")
    monkeypatch.setattr(reading, "CHUNK_ROWS", 10)
    monkeypatch.setattr(reading, "PROGRESS_SECONDS", 0)
    rows = "\n".join(f"P{i},312555{i:04d}" for i in range(200))
    job = queued_job(calling_list, "progress.csv", f"ID,Phone\n{rows}\n")
    seen = []

    def admin_request(done, total, phase):
        other = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with other.cursor() as cursor:
                table = UploadJob._meta.db_table
                cursor.execute(
                    f"SELECT status, rows_processed FROM {table} WHERE id = %s",  # noqa: S608
                    [job.pk],
                )
                seen.append(cursor.fetchone())
                if done >= 60:  # the user presses Cancel
                    cursor.execute(
                        f"UPDATE {table} SET cancel_requested = %s WHERE id = %s",  # noqa: S608
                        [True, job.pk],
                    )
        finally:
            other.close()

    job = upload_job_run(job_id=job.pk, progress=admin_request)

    assert job.status == UploadJob.Status.CANCELLED
    assert ("running", 50) in seen  # counts committed while the import ran
    assert not Record.objects.filter(calling_list=calling_list).exists()
    assert not Destination.objects.filter(record__calling_list=calling_list).exists()


@pytest.mark.django_db(transaction=True)
def test_a_job_deleted_while_it_runs_leaves_no_records_behind(monkeypatch):
    calling_list = CallingListFactory(name="Deleted job")
    monkeypatch.setattr(reading, "CHUNK_ROWS", 10)
    monkeypatch.setattr(reading, "PROGRESS_SECONDS", 0)
    rows = "\n".join(f"D{i},312555{i:04d}" for i in range(50))
    job = queued_job(calling_list, "deleted.csv", f"ID,Phone\nD-1,3125559999\n{rows}\n")

    def admin_deletes_the_job(done, total, phase):
        if done >= 30:  # on its own connection, as an admin request would
            other = connections.create_connection(DEFAULT_DB_ALIAS)
            try:
                with other.cursor() as cursor:
                    table = UploadJob._meta.db_table
                    cursor.execute(f"DELETE FROM {table} WHERE id = %s", [job.pk])  # noqa: S608
            finally:
                other.close()

    assert upload_job_run(job_id=job.pk, progress=admin_deletes_the_job) is None
    assert not Record.objects.filter(calling_list=calling_list).exists()


@pytest.mark.parametrize("how", ["page", "bulk action"])
def test_deleting_a_list_deletes_its_records_and_numbers(calling_list, how):
    from skills.models import CallingList

    run_import(calling_list, "gone.csv", "ID,Phone\nG1,3125550101\nG2,3125550102\n")
    list_id = calling_list.pk
    if how == "page":
        calling_list.delete()
    else:
        CallingList.objects.filter(pk=list_id).delete()

    assert not CallingList.objects.filter(pk=list_id).exists()
    assert not Record.objects.filter(calling_list_id=list_id).exists()
    assert not Destination.objects.filter(record__calling_list_id=list_id).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connections[DEFAULT_DB_ALIAS].vendor != "postgresql",
    reason="needs row locks and a database shared by threads (PostgreSQL)",
)
def test_a_list_deleted_while_an_import_writes_into_it_leaves_no_orphan_records(monkeypatch):
    """Records have no database foreign key to their list: the delete must wait for the import
    to commit and then take its records too, neither hanging nor leaving them behind."""
    import threading
    import time

    from skills.models import CallingList

    calling_list = CallingListFactory(name="Deleted list")
    list_id = calling_list.pk
    monkeypatch.setattr(reading, "CHUNK_ROWS", 10)
    monkeypatch.setattr(reading, "PROGRESS_SECONDS", 0)
    rows = "\n".join(f"L{i},312555{i:04d}" for i in range(60))
    job = queued_job(calling_list, "deleted-list.csv", f"ID,Phone\n{rows}\n")
    deleter: list[threading.Thread] = []
    errors: list[BaseException] = []

    def admin_deletes_the_list():
        try:
            # Without the list lock first, the delete and the import wait for each other
            # (the delete holds the job's row, the import's progress writes want it): a
            # deadlock PostgreSQL cannot see, as one side waits in Python. Bounded here.
            with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                cursor.execute("SET lock_timeout = '10s'")
            CallingList.objects.filter(pk=list_id).delete()  # the admin's bulk delete action
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connections.close_all()

    def waiting_sessions() -> int:
        other = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with other.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return cursor.fetchone()[0]
        finally:
            other.close()

    def progress(done, total, phase):
        if done >= 30 and not deleter:  # rows are going in; the user deletes the list
            deleter.append(threading.Thread(target=admin_deletes_the_list))
            deleter[0].start()
            deadline = time.monotonic() + 20
            # Let the import commit only once the delete is waiting for the list's lock.
            while waiting_sessions() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)

    upload_job_run(job_id=job.pk, progress=progress)
    deleter[0].join(30)

    assert not errors
    assert not CallingList.objects.filter(pk=list_id).exists()
    assert not Record.objects.filter(calling_list_id=list_id).exists()
    assert not Destination.objects.filter(record__calling_list_id=list_id).exists()


def test_a_job_cancelled_before_it_runs_never_runs(calling_list):
    job = make_job(calling_list, "basic.csv", status=UploadJob.Status.QUEUED, cancel_requested=True)

    assert upload_job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == UploadJob.Status.CANCELLED
    assert not Record.objects.exists()


def test_a_failure_while_saving_leaves_nothing(calling_list, monkeypatch):
    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(commit, "write_report", broken)  # after the records went in
    job = run_import(calling_list, "custom.csv", "ID,Phone,Extra\nC1,3125550123,x\n")

    assert job.status == UploadJob.Status.FAILED
    assert "disk full" in job.message and "nothing was imported" in job.message
    assert not Record.objects.filter(calling_list=calling_list).exists()
    assert not CustomField.objects.filter(calling_list=calling_list).exists()


def test_a_task_stopped_by_its_time_limit_fails_clearly_and_leaves_nothing(
    calling_list, monkeypatch
):
    from django_q.exceptions import TimeoutException

    def time_is_up(*args):  # django-q2 raises this in the task when its limit strikes
        raise TimeoutException("Task exceeded maximum timeout value (300 seconds)")

    monkeypatch.setattr(commit, "finish", time_is_up)  # after the records went in
    job = queued_job(calling_list, "big.csv", "ID,Phone\nT1,3125550123\n")

    with pytest.raises(SystemExit):
        upload_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == UploadJob.Status.FAILED  # not "running" for ever
    assert "time limit" in job.message and "nothing was imported" in job.message
    assert "manage.py import_list" in job.message
    assert not Record.objects.filter(calling_list=calling_list).exists()


def test_a_zone_with_the_same_clock_as_an_allowed_zone_is_stored_as_that_zone(calling_list, bu):
    bu.allowed_time_zones = ["America/Anchorage", "America/New_York"]
    bu.save()
    # phonenumbers names America/Juneau for 907 and America/Detroit for 313 numbers.
    job = run_import(calling_list, "twins.csv", "ID,Phone\nJ1,9072495703\nJ2,3135550123\n")

    got = records(calling_list)
    assert (got["J1"].time_zone, got["J2"].time_zone) == ("America/Anchorage", "America/New_York")
    assert job.rows_flagged == 0
