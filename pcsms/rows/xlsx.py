"""XLSX workbooks: the first sheet, read by python-calamine, and the formulas Excel left unsaved.

Cells keep the result Excel saved with the file, which calamine reads. A file written by a
program that never calculated its formulas has no saved results: ``formulas_without_value``
finds those cells, so that the import can report them per row.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

from python_calamine import CalamineWorkbook

from pcsms.files import FileError
from pcsms.rows import base
from pcsms.rows.base import Table, header_cells

NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "rel": "http://schemas.openxmlformats.org/package/2006/relationships",
}
_CELL_REF = re.compile(r"([A-Z]+)(\d+)")


def _column_index(letters: str) -> int:
    index = 0
    for char in letters:
        index = index * 26 + ord(char) - 64
    return index - 1


# (*) ElementTree never fetches external entities, and the bundled expat (>= 2.4.1) caps entity
# expansion, so a hostile workbook cannot make these parses read files or blow up memory.


def first_sheet_part(archive: zipfile.ZipFile) -> str | None:
    try:
        workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))  # noqa: S314 (*)
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))  # noqa: S314
    except (KeyError, ElementTree.ParseError):
        return None
    sheet = workbook.find("m:sheets/m:sheet", NS)
    if sheet is None:
        return None
    rel_id = sheet.get(f"{{{NS['r']}}}id")
    for rel in rels.findall("rel:Relationship", NS):
        if rel.get("Id") == rel_id:
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return None


# What a workbook's parts may inflate to. Excel's own files inflate 5-10 times, a sheet of rows
# that repeat one another up to ~50 times; a part past both bounds is a zip bomb, refused before
# anything parses it (the parsers would hold it all in memory).
MAX_INFLATION = 200
INFLATION_CHECKED_ABOVE = 64 << 20  # a part smaller than this cannot hurt, whatever its ratio
MAX_WORKBOOK_BYTES = 4 << 30  # all parts inflated: far past a million-row sheet (~150 MB)


def check_inflation(path: Path) -> None:
    """A :class:`FileError` for a workbook that would inflate far past any sheet of rows."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return  # the parse says what is wrong with it
    with archive:
        parts = archive.infolist()
    total = sum(info.file_size for info in parts)
    for info in parts:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > INFLATION_CHECKED_ABOVE and ratio > MAX_INFLATION:
            raise FileError(
                f"The workbook would unpack to {_megabytes(info.file_size)} from "
                f"{_megabytes(info.compress_size)} ({ratio:,.0f} times its size), which no "
                "sheet of rows does, so it is refused unread. Open it in Excel and save it "
                "again, or save it as CSV UTF-8."
            )
    if total > MAX_WORKBOOK_BYTES:
        raise FileError(
            f"The workbook would unpack to {_megabytes(total)}: too large to import. Split it "
            "into smaller files, or save it as CSV UTF-8."
        )


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MB"


def formulas_without_value(path: Path) -> set[tuple[int, int]]:
    """(row number, 0-based column) of formula cells that have no saved result.

    A quick byte scan first: most files have no formulas and are never parsed twice.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            part = first_sheet_part(archive)
            if part is None or part not in archive.namelist():
                return set()
            with archive.open(part) as stream:
                found = False
                tail = b""
                while block := stream.read(base.BLOCK):
                    if has_formulas(tail + block):
                        found = True
                        break
                    tail = block[-4:]
            if not found:
                return set()
            with archive.open(part) as stream:
                return formula_cells_without_value(stream)
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError):
        return set()


# A formula is an <f> element, maybe with attributes or a namespace prefix. The first pattern
# is a quick test every formula passes (a regular expression with no "<" to start from is
# ~7x quicker than looking for "<f" in XML, where "<" is everywhere: 0.7 ms for 2 MB here).
_MAYBE_FORMULA = re.compile(rb"f[\s>/]")
_FORMULA = re.compile(rb"<f[\s>/]")
_PREFIXED_FORMULA = re.compile(rb":f[\s>/]")


def has_formulas(xml: bytes) -> bool:
    return _MAYBE_FORMULA.search(xml) is not None and (
        _FORMULA.search(xml) is not None or _PREFIXED_FORMULA.search(xml) is not None
    )


def formula_cells_without_value(stream) -> set[tuple[int, int]]:
    missing = set()
    for _, element in ElementTree.iterparse(stream):  # noqa: S314
        if element.tag != f"{{{NS['m']}}}c":
            continue
        formula = element.find("m:f", NS)
        if formula is not None:
            value = element.find("m:v", NS)
            inline = element.find("m:is", NS)
            if (value is None or value.text is None) and inline is None:
                match = _CELL_REF.fullmatch(element.get("r", ""))
                if match:
                    missing.add((int(match[2]), _column_index(match[1])))
        element.clear()
    return missing


def within(cells: set[tuple[int, int]], first_column: int, width: int) -> set[tuple[int, int]]:
    """(row, sheet column) -> (row, table column), for the table's columns only."""
    return {(row, col - first_column) for row, col in cells if 0 <= col - first_column < width}


def calamine_error(exc: Exception, where: str = "") -> FileError:
    """calamine raises its own types for zip, XML and password errors."""
    name = type(exc).__name__
    if "Password" in name:
        return FileError("The workbook is password-protected: save a copy without it.")
    return FileError(f"The workbook could not be read{where} ({name}: {exc}).")


def find_header(rows: Iterator[tuple[int, list]], sheet_name: str):
    """The first row that is not blank: (its number, its cells as text)."""
    for number, cells in rows:
        if any(str(c).strip() for c in cells if c is not None):
            return number, header_cells(cells)
    raise FileError(f"The first sheet ('{sheet_name}') is empty.")


def open_xlsx_whole(path: Path, *, header: bool = True) -> Table:
    """The whole first sheet in one parse: for sheets that cannot be cut (see pieces), and for
    files without a header (``header=False``: every row from the first)."""
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        if not workbook.sheet_names:
            raise FileError("The workbook has no sheets.")
        sheet = workbook.get_sheet_by_index(0)
    except FileError:
        raise
    except Exception as exc:
        raise calamine_error(exc) from exc
    if sheet.height == 0:
        raise FileError(f"The first sheet ('{sheet.name}') is empty.")
    start_row, start_col = sheet.start or (0, 0)
    # iter_rows starts at the sheet's first row (blank ones included), at its first used column.
    numbered = enumerate(sheet.iter_rows(), start=1)
    if header:
        header_number, names = find_header(numbered, sheet.name)
        width = len(names)
    else:
        header_number, names, width = 0, [], None

    def rows() -> Iterator[tuple[int, list]]:
        for number, cells in numbered:
            yield number, cells[:width] if width is not None and len(cells) > width else cells

    return Table(
        header=names,
        rows=rows(),
        total=max(start_row + sheet.height - header_number, 0),
        first_column=start_col,
        _closer=workbook.close,
    )
