"""The one row reader (pcsms.rows): a header row first, or every row from the first."""

from __future__ import annotations

import openpyxl
import pytest

from pcsms.rows import FileError, open_table


def rows_of(path, file_format, **kwargs):
    table = open_table(path, file_format, **kwargs)
    try:
        return table.header, list(table.rows), table.total
    finally:
        table.close()


def test_a_header_row_is_the_first_row_that_is_not_blank(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("\n,,\nID,Phone,,\nA1,3125550123\n")

    header, rows, total = rows_of(path, "csv")

    assert header == ["ID", "Phone"]
    assert rows == [(4, ["A1", "3125550123"])]
    assert total == 1


def test_header_less_text_gives_every_row_from_the_first(tmp_path):
    path = tmp_path / "numbers.txt"
    path.write_text("3125550123\t2027-06-30\n\n3125550124\n")

    header, rows, total = rows_of(path, "txt", header=False)

    assert header == []
    assert rows == [(1, ["3125550123", "2027-06-30"]), (2, []), (3, ["3125550124"])]
    assert total == 3


def test_header_less_rows_are_numbered_as_a_spreadsheet_shows_them(tmp_path):
    # A quoted line break is one row: the next row is row 2, not line 3.
    path = tmp_path / "numbers.csv"
    path.write_text('3125550123,"a note\nover two lines"\n3125550124,x\n')

    _, rows, _ = rows_of(path, "csv", header=False)

    assert [number for number, _ in rows] == [1, 2]
    assert rows[0][1] == ["3125550123", "a note\nover two lines"]


def test_header_less_xlsx_keeps_every_row_and_every_column(tmp_path):
    path = tmp_path / "numbers.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([3125550123, "2027-06-30"])
    sheet.append([])
    sheet.append([3125550124, None, "a third column"])
    book.save(path)

    header, rows, _ = rows_of(path, "xlsx", header=False)

    assert header == []
    assert [number for number, _ in rows] == [1, 2, 3]
    assert rows[0][1][0] == 3125550123
    assert rows[2][1][2] == "a third column"  # no header to cut the row to


def test_with_a_header_an_xlsx_row_is_cut_to_the_headers_width(tmp_path):
    path = tmp_path / "list.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["ID", "Phone"])
    sheet.append(["A1", "3125550123", "stray"])
    book.save(path)

    header, rows, _ = rows_of(path, "xlsx")

    assert header == ["ID", "Phone"]
    assert rows == [(2, ["A1", "3125550123"])]


@pytest.mark.parametrize("header", [True, False])
def test_a_bad_file_is_refused_the_same_way_with_or_without_a_header(tmp_path, header):
    path = tmp_path / "list.csv"
    path.write_bytes(b"3125550123\n3125550124\n\xe9t\xe9\n")

    with pytest.raises(FileError, match=r"not UTF-8 text: byte 0xE9 on line 3"):
        open_table(path, "csv", header=header)


def test_a_blank_file_has_no_header_but_may_be_read_header_less(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n\n")

    with pytest.raises(FileError, match="no header row"):
        open_table(path, "csv")
    _, rows, _ = rows_of(path, "csv", header=False)
    assert rows == [(1, []), (2, [])]
