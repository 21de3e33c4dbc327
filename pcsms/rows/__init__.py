"""The one row reader of pcsms: calling lists and DNC files, as CSV (comma), TXT (tab) and XLSX
(first sheet), UTF-8 with or without a byte-order mark.

``open_table(path, file_format)`` opens a file as a :class:`Table`: its header (the first row
that is not blank) and its rows as (row number as the spreadsheet shows it, cells).
``header=False`` is the header-less mode, for DNC files that may be a bare column of numbers:
every row from the first comes out, and the caller decides what the first one is.

Everything that makes a file unusable is found before any row is handed on and raised as one
:class:`FileError` in plain words: wrong type, binary junk, bad encoding, empty file, no header.
Columns without a header are left out of each row, so a sheet with thousands of trailing empty
(or stray) columns costs nothing per row beyond its width.

The modules: ``base`` (Table, Lines, cells as text), ``text``, ``xlsx`` (whole sheets and the
formula scan) and ``pieces`` (large sheets cut for reader processes).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pcsms.files import FORMATS, FileError, detect_format
from pcsms.rows.base import DELIMITERS, Lines, Table, as_rows, as_text, header_cells
from pcsms.rows.pieces import SheetPiece, open_xlsx_in_pieces
from pcsms.rows.text import open_text
from pcsms.rows.xlsx import check_inflation, formulas_without_value, open_xlsx_whole, within

__all__ = [
    "FORMATS",
    "FileError",
    "Lines",
    "SheetPiece",
    "Table",
    "as_rows",
    "as_text",
    "detect_format",
    "header_cells",
    "open_table",
]


def open_table(path: str | Path, file_format: str, *, header: bool = True) -> Table:
    """The file as a Table; ``header=False``: every row, none taken as the header."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FileError(f"The file could not be opened: {exc.strerror}.") from exc
    if size == 0:
        raise FileError("The file is empty.")
    with path.open("rb") as handle:
        head = handle.read(8192)
    if file_format == "xlsx":
        return _open_xlsx(path, head, header=header)
    return open_text(path, head, DELIMITERS[file_format], file_format, header=header)


def _open_xlsx(path: Path, head: bytes, *, header: bool) -> Table:
    if not head.startswith(b"PK\x03\x04"):
        if head.startswith(b"\xd0\xcf\x11\xe0"):
            raise FileError(
                "This is an old Excel (.xls) file saved with an .xlsx name. Open it in Excel and "
                "save it as Excel Workbook (.xlsx)."
            )
        raise FileError(
            "This is not an Excel workbook (an .xlsx file is a zip archive; this one is not). "
            "If it is a CSV file, upload it with a .csv name."
        )
    check_inflation(path)
    if not header:  # the files without a header are short lists of numbers: read them whole
        return open_xlsx_whole(path, header=False)
    table = open_xlsx_in_pieces(path)
    if table is not None:
        return table
    # The formula scan inflates the sheet a second time: it runs beside calamine's parse (both
    # release the GIL while they inflate and parse), not after it.
    scan = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlsx-formulas")
    formulas = scan.submit(formulas_without_value, path)
    scan.shutdown(wait=False)
    table = open_xlsx_whole(path)
    table.formulas_without_value = within(formulas.result(), table.first_column, len(table.header))
    return table
