"""Reading calling-list files: CSV (comma), TXT (tab) and XLSX (first sheet), UTF-8 with or
without a byte-order mark, a header row first.

Everything that makes a file unusable is found before any row is imported and raised as one
:class:`FileError` in plain words: wrong type, binary junk, bad encoding, empty file, no header.

XLSX formulas: cells keep the result Excel saved with the file, and python-calamine reads that
result. A file written by a program that never calculated its formulas has no saved results; those
cells are reported per row ("formula with no saved result"), and a file in which every row fails
that way is rejected as a whole (see ``service``). Columns without a header are ignored, so a
sheet with thousands of trailing empty (or stray) columns costs nothing per row beyond its width.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from pcsms.files import FORMATS, FileError, detect_format

__all__ = ["FORMATS", "FileError", "Table", "detect_format", "open_table"]

DELIMITERS = {"csv": ",", "txt": "\t"}
BLOCK = 1 << 20
MAX_FIELD = 1 << 20  # 1 MiB in one cell is not a calling list

csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))


@dataclass
class Lines:
    """Lines of a text file that hold no quote character: one row each, split where they are
    read (a reader process) rather than in the process that reads the file."""

    first: int  # the row number of lines[0]
    lines: list[str]
    delimiter: str

    def rows(self) -> list[tuple[int, list]]:
        number = self.first - 1
        out = []
        try:
            for cells in csv.reader(self.lines, delimiter=self.delimiter):
                number += 1
                out.append((number, cells))
        except csv.Error as exc:
            raise FileError(f"Row {number + 1} could not be read: {exc}.") from exc
        return out


def as_rows(batch: list[tuple[int, list]] | Lines) -> list[tuple[int, list]]:
    return batch.rows() if isinstance(batch, Lines) else batch


@dataclass
class Table:
    """A file opened for import: its header and a stream of (row number, cells)."""

    header: list[str]
    rows: Iterator[tuple[int, list]]
    total: int  # data rows (an estimate for text files with quoted line breaks)
    # (row number, column index) of formula cells without a saved result, XLSX only.
    formulas_without_value: set[tuple[int, int]] = field(default_factory=set)
    _closer: object = None
    _batches: object = None  # a quicker batches() of the file's own, if it has one

    def batches(self, size: int) -> Iterator[list[tuple[int, list]] | Lines]:
        """The rows in batches of about ``size``: lists of (row number, cells), or Lines."""
        if self._batches is not None:
            yield from self._batches(size)
            return
        batch: list[tuple[int, list]] = []
        for item in self.rows:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None


def open_table(path: str | Path, file_format: str) -> Table:
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
        return _open_xlsx(path, head)
    return _open_text(path, head, DELIMITERS[file_format], file_format)


# --- Text files ----------------------------------------------------------------------------------


def _check_text_head(head: bytes, file_format: str) -> None:
    kind = "CSV" if file_format == "csv" else "tab-separated text"
    if head.startswith(b"PK\x03\x04"):
        raise FileError(
            f"This is a zipped file (probably an Excel .xlsx workbook), not {kind}. Upload it "
            "with its .xlsx name, or save it as CSV UTF-8."
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileError(
            f"This is an old Excel (.xls) or other Office file, not {kind}. Save it as Excel "
            "Workbook (.xlsx) or CSV UTF-8 and upload that."
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileError(
            'The file is saved as UTF-16 ("Unicode text"). Save it as CSV UTF-8 and upload that.'
        )
    if head.startswith(b"%PDF"):
        raise FileError(f"This is a PDF document, not {kind}.")
    controls = sum(1 for b in head if b < 9 or 13 < b < 32 or b == 127)
    if b"\x00" in head or controls > len(head) // 100:
        raise FileError(
            f"This is not a text file (it holds binary data), so it cannot be read as {kind}."
        )


def _scan_text(path: Path) -> int:
    """Checks the whole file is UTF-8 without NUL bytes; returns the number of line breaks."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    lines = 1
    offset = 0
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            if b"\x00" in block:
                raise FileError("This is not a text file (it holds binary data).")
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                line = lines + block.count(b"\n", 0, exc.start)
                bad = block[exc.start : exc.start + 1].hex().upper()
                raise FileError(
                    f"The file is not UTF-8 text: byte 0x{bad} on line {line} (at byte "
                    f"{offset + exc.start}). It was probably saved as Windows-1252 or Latin-1; "
                    "save it as CSV UTF-8 and upload it again."
                ) from None
            lines += block.count(b"\n")
            offset += len(block)
            last = block[-1:]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise FileError(
                "The file is not UTF-8 text: it ends in the middle of a character. Save it as "
                "CSV UTF-8 and upload it again."
            ) from None
    return lines - 1 if last == b"\n" else lines


def _header_cells(raw: list) -> list[str]:
    from skills.importing.fields import as_text

    cells = [as_text(c) for c in raw]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def _open_text(path: Path, head: bytes, delimiter: str, file_format: str) -> Table:
    _check_text_head(head, file_format)
    line_count = _scan_text(path)
    handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by Table
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        first = next(reader, None)
        while first is not None and not any(c.strip() for c in first):
            first = next(reader, None)
    except csv.Error as exc:
        handle.close()
        raise FileError(f"The header row could not be read: {exc}.") from exc
    if first is None:
        handle.close()
        raise FileError("The file holds no header row (it is blank).")
    header = _header_cells(first)
    if len(header) == 1:
        names = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "vertical bars"}
        for sep in ("\t", ";", "|", ","):
            if sep != delimiter and sep in header[0]:
                raise FileError(
                    f"The header has only one column, and it contains {names[sep]}: the file "
                    f"seems to be separated by {names[sep]}, not {names[delimiter]}. Save it as "
                    "CSV UTF-8 (.csv, comma-separated) or as tab-separated text (.txt)."
                )
    header_line = reader.line_num

    def rows() -> Iterator[tuple[int, list]]:
        # Row numbers count records as a spreadsheet shows them (the header is row 1).
        number = header_line
        try:
            for cells in reader:
                number += 1
                yield number, cells
        except csv.Error as exc:
            raise FileError(f"Row {number + 1} could not be read: {exc}.") from exc

    def batches(size: int) -> Iterator[list[tuple[int, list]] | Lines]:
        # Until the first quote character, a line is a row: lines go out as they are. From
        # there on the csv module reads (a quoted field may hold line breaks or delimiters).
        number = header_line  # rows handed out so far, the header's included
        lines: list[str] = []
        pending = ""
        while piece := handle.read(BLOCK):
            text = pending + piece
            if '"' in text:
                if lines:
                    yield Lines(number - len(lines) + 1, lines, delimiter)
                yield from _quoted_batches(text, handle, delimiter, number, size)
                return
            cut = text.rfind("\n") + 1
            pending = text[cut:]
            parts = text[:cut].split("\n")
            parts.pop()  # the empty string after the last line break
            lines.extend(parts)
            number += len(parts)
            while len(lines) >= size:
                yield Lines(number - len(lines) + 1, lines[:size], delimiter)
                lines = lines[size:]
        if pending:
            lines.append(pending)
            number += 1
        if lines:
            yield Lines(number - len(lines) + 1, lines, delimiter)

    return Table(
        header=header,
        rows=rows(),
        total=max(line_count - header_line, 0),
        _closer=handle.close,
        _batches=batches,
    )


def _quoted_batches(
    text: str, handle, delimiter: str, number: int, size: int
) -> Iterator[list[tuple[int, list]]]:
    """Rows read by the csv module from ``text`` on, then the rest of ``handle``."""
    reader = csv.reader(itertools.chain(io.StringIO(text), handle), delimiter=delimiter)
    batch: list[tuple[int, list]] = []
    try:
        for cells in reader:
            number += 1
            batch.append((number, cells))
            if len(batch) >= size:
                yield batch
                batch = []
    except csv.Error as exc:
        raise FileError(f"Row {number + 1} could not be read: {exc}.") from exc
    if batch:
        yield batch


# --- XLSX ---------------------------------------------------------------------------------------

_NS = {
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


def _first_sheet_part(archive: zipfile.ZipFile) -> str | None:
    try:
        workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))  # noqa: S314 (*)
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))  # noqa: S314
    except (KeyError, ElementTree.ParseError):
        return None
    sheet = workbook.find("m:sheets/m:sheet", _NS)
    if sheet is None:
        return None
    rel_id = sheet.get(f"{{{_NS['r']}}}id")
    for rel in rels.findall("rel:Relationship", _NS):
        if rel.get("Id") == rel_id:
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return None


def formulas_without_value(path: Path) -> set[tuple[int, int]]:
    """(row number, 0-based column) of formula cells that have no saved result.

    A quick byte scan first: most files have no formulas and are never parsed twice.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            part = _first_sheet_part(archive)
            if part is None or part not in archive.namelist():
                return set()
            with archive.open(part) as stream:
                found = False
                tail = b""
                while block := stream.read(BLOCK):
                    if b"<f>" in tail + block or b"<f " in tail + block or b":f>" in tail + block:
                        found = True
                        break
                    tail = block[-4:]
            if not found:
                return set()
            missing = set()
            with archive.open(part) as stream:
                for _, element in ElementTree.iterparse(stream):  # noqa: S314
                    if element.tag != f"{{{_NS['m']}}}c":
                        continue
                    formula = element.find("m:f", _NS)
                    if formula is not None:
                        value = element.find("m:v", _NS)
                        inline = element.find("m:is", _NS)
                        if (value is None or value.text is None) and inline is None:
                            match = _CELL_REF.fullmatch(element.get("r", ""))
                            if match:
                                missing.add((int(match[2]), _column_index(match[1])))
                    element.clear()
            return missing
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError):
        return set()


def _open_xlsx(path: Path, head: bytes) -> Table:
    from python_calamine import CalamineWorkbook

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
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        if not workbook.sheet_names:
            raise FileError("The workbook has no sheets.")
        sheet = workbook.get_sheet_by_index(0)
    except FileError:
        raise
    except Exception as exc:  # calamine raises its own types for zip, XML and password errors
        name = type(exc).__name__
        if "Password" in name:
            raise FileError("The workbook is password-protected: save a copy without it.") from exc
        raise FileError(f"The workbook could not be read ({name}: {exc}).") from exc
    if sheet.height == 0:
        raise FileError(f"The first sheet ('{sheet.name}') is empty.")
    start_row, start_col = sheet.start or (0, 0)
    iterator = iter(sheet.iter_rows())
    header_number = start_row + 1
    first = next(iterator, None)
    while first is not None and not any(str(c).strip() for c in first if c is not None):
        first = next(iterator, None)
        header_number += 1
    if first is None:
        raise FileError(f"The first sheet ('{sheet.name}') is empty.")
    header = _header_cells(first)
    width = len(header)
    missing = {
        (row, col - start_col)
        for row, col in formulas_without_value(path)
        if 0 <= col - start_col < width
    }

    def rows() -> Iterator[tuple[int, list]]:
        number = header_number
        for cells in iterator:
            number += 1
            yield number, cells[:width] if len(cells) > width else cells

    return Table(
        header=header,
        rows=rows(),
        total=max(sheet.height - (header_number - start_row), 0),
        formulas_without_value=missing,
        _closer=workbook.close,
    )
