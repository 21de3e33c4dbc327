"""Calling-list import of XLSX workbooks: row numbers, shared strings, sheets read in pieces,
formulas, wide sheets."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from zipfile import ZipFile

import pytest

import pcsms.rows
from pcsms.rows import base
from pcsms.rows import pieces as sheet_pieces
from skills.models import Record, UploadJob
from tests.factories import (
    CallingListFactory,
)
from tests.imports import numbers, records, report, run_import


@pytest.fixture
def calling_list(bu):
    return CallingListFactory(business_unit=bu, name="Patients")


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
