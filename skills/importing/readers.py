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
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
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


def as_rows(batch) -> Iterable[tuple[int, list]]:
    """A batch's (row number, cells): a list of them, or Lines / a SheetPiece to read first."""
    return batch if isinstance(batch, list) else batch.rows()


@dataclass
class Table:
    """A file opened for import: its header and a stream of (row number, cells)."""

    header: list[str]
    rows: Iterator[tuple[int, list]]
    total: int  # data rows (an estimate for text files with quoted line breaks)
    # (row number, column index) of formula cells without a saved result, XLSX only.
    formulas_without_value: set[tuple[int, int]] = field(default_factory=set)
    first_column: int = 0  # XLSX: the sheet column of the table's first column (0 = A)
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
                    if _has_formulas(tail + block):
                        found = True
                        break
                    tail = block[-4:]
            if not found:
                return set()
            with archive.open(part) as stream:
                return _formula_cells_without_value(stream)
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError):
        return set()


# A formula is an <f> element, maybe with attributes or a namespace prefix. The first pattern
# is a quick test every formula passes (a regular expression with no "<" to start from is
# ~7x quicker than looking for "<f" in XML, where "<" is everywhere: 0.7 ms for 2 MB here).
_MAYBE_FORMULA = re.compile(rb"f[\s>/]")
_FORMULA = re.compile(rb"<f[\s>/]")
_PREFIXED_FORMULA = re.compile(rb":f[\s>/]")


def _has_formulas(xml: bytes) -> bool:
    return _MAYBE_FORMULA.search(xml) is not None and (
        _FORMULA.search(xml) is not None or _PREFIXED_FORMULA.search(xml) is not None
    )


def _formula_cells_without_value(stream) -> set[tuple[int, int]]:
    missing = set()
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


def _open_xlsx(path: Path, head: bytes) -> Table:

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
    table = _open_xlsx_in_pieces(path)
    if table is not None:
        return table
    # The formula scan inflates the sheet a second time: it runs beside calamine's parse (both
    # release the GIL while they inflate and parse), not after it.
    scan = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlsx-formulas")
    formulas = scan.submit(formulas_without_value, path)
    scan.shutdown(wait=False)
    table = _open_xlsx_whole(path)
    table.formulas_without_value = _within(formulas.result(), table.first_column, len(table.header))
    return table


def _within(cells: set[tuple[int, int]], first_column: int, width: int) -> set[tuple[int, int]]:
    """(row, sheet column) -> (row, table column), for the table's columns only."""
    return {(row, col - first_column) for row, col in cells if 0 <= col - first_column < width}


def _calamine_error(exc: Exception, where: str = "") -> FileError:
    """calamine raises its own types for zip, XML and password errors."""
    name = type(exc).__name__
    if "Password" in name:
        return FileError("The workbook is password-protected: save a copy without it.")
    return FileError(f"The workbook could not be read{where} ({name}: {exc}).")


def _find_header(rows: Iterator[tuple[int, list]], sheet_name: str):
    """The first row that is not blank: (its number, its cells as text)."""
    for number, cells in rows:
        if any(str(c).strip() for c in cells if c is not None):
            return number, _header_cells(cells)
    raise FileError(f"The first sheet ('{sheet_name}') is empty.")


def _open_xlsx_whole(path: Path) -> Table:
    """The whole first sheet in one parse: for sheets that cannot be cut (see SheetPieces)."""
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
        if not workbook.sheet_names:
            raise FileError("The workbook has no sheets.")
        sheet = workbook.get_sheet_by_index(0)
    except FileError:
        raise
    except Exception as exc:
        raise _calamine_error(exc) from exc
    if sheet.height == 0:
        raise FileError(f"The first sheet ('{sheet.name}') is empty.")
    start_row, start_col = sheet.start or (0, 0)
    # iter_rows starts at the sheet's first row (blank ones included), at its first used column.
    numbered = enumerate(sheet.iter_rows(), start=1)
    header_number, header = _find_header(numbered, sheet.name)
    width = len(header)

    def rows() -> Iterator[tuple[int, list]]:
        for number, cells in numbered:
            yield number, cells[:width] if len(cells) > width else cells

    return Table(
        header=header,
        rows=rows(),
        total=max(start_row + sheet.height - header_number, 0),
        first_column=start_col,
        _closer=workbook.close,
    )


# --- XLSX in pieces -------------------------------------------------------------------------------

# About 3,600 rows of a typical list per piece; as large as the workbook's shared strings when
# they are larger, since each piece's parse reads them again (twice as large left two readers
# with three pieces of a 100,000-row Excel file: slower, measured in docs/performance.md).
XLSX_PIECE_BYTES = 2 << 20
FIRST_PIECE_BYTES = 128 << 10
_ROW_TAG = re.compile(rb"<row\b[^>]*>")
_ROW_NUMBER = re.compile(rb'\sr="(\d+)"')
_LAST_ROW = re.compile(rb'<dimension ref="[A-Z]+\d+:[A-Z]+(\d+)"')
_KEPT_PARTS = ("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/", "xl/styles")


@dataclass
class SheetPiece:
    """Consecutive rows of a sheet's XML, read by calamine where the rows are normalised.

    calamine parses a whole sheet before it gives the first row (0.8 s for 100,000 rows here),
    and in the process that feeds the database. Cut at row boundaries, the sheet is parsed
    piece by piece in the reader processes instead, beside the database's writes: each piece
    is a small workbook of the file's own parts (styles for dates, shared strings) and a sheet
    of the piece's rows, which keep their row numbers (every ``<row>`` has ``r="..."``, or the
    sheet is parsed whole).
    """

    path: str
    part: str
    xml: bytes  # the sheet's opening, the piece's rows, the closing tags
    # Of the table (the header's sheet): cells are shifted to it. None: the sheet's own
    # first column (the first piece), which rows() sets, with the sheet's name.
    first_column: int | None
    width: int
    # Set by rows(): (row, table column) of formula cells without a saved result.
    formulas_without_value: set[tuple[int, int]] = field(default_factory=set)
    # Only the first this many of the workbook's shared strings (None: all); see rows().
    shared_strings: int | None = None
    sheet_name: str = ""

    def rows(self) -> Iterable[tuple[int, list]]:
        from python_calamine import CalamineWorkbook

        guessed = False
        if self.shared_strings is None and _has_shared_strings(self.path, self.part):
            # Excel numbers the shared strings in the order they first appear, so a piece's
            # newest ones are in its last rows: the piece's workbook carries the strings up to
            # those (on average half of them, and each piece parses its own). A cell beyond
            # them makes calamine fail ("index not found"): then the piece is read with all.
            self.shared_strings = _shared_strings_needed(self.xml[-_TAIL_BYTES:])
            guessed = True
        while True:
            try:
                workbook = CalamineWorkbook.from_filelike(io.BytesIO(self._workbook()))
                sheet = workbook.get_sheet_by_index(0)
                start_row, start_col = sheet.start or (0, 0)
                if self.first_column is None:
                    self.first_column, self.sheet_name = start_col, sheet.name
                data = sheet.to_python(skip_empty_area=True)
                break
            except Exception as exc:
                if guessed:
                    guessed, self.shared_strings = False, None
                    continue
                first = _ROW_NUMBER.search(self.xml[self.xml.find(b"<row") :])
                where = f" near row {int(first[1]):,}" if first else ""
                raise _calamine_error(exc, where) from exc
        shift, width = start_col - self.first_column, self.width
        if _has_formulas(self.xml):
            try:
                cells = _formula_cells_without_value(io.BytesIO(self.xml))
            except ElementTree.ParseError:
                cells = set()  # calamine read it; a cell we cannot place keeps calamine's ""
            self.formulas_without_value = _within(cells, self.first_column, width)
        if shift == 0 and (not data or len(data[0]) <= width):
            # The common case: the piece's rows as they are (calamine's rows are all as wide
            # as the sheet), numbered as they come, without a tuple per row made up front.
            return zip(itertools.count(start_row + 1), data)
        out = []
        for number, cells in enumerate(data, start=start_row + 1):
            if shift > 0:
                cells = [""] * shift + cells
            elif shift < 0:
                cells = cells[-shift:]
            out.append((number, cells[:width] if len(cells) > width else cells))
        return out

    def _workbook(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, content, shared in _workbook_parts(self.path, self.part):
                if shared and self.shared_strings is not None:
                    content = _first_shared_strings(content, self.shared_strings)
                archive.writestr(name, content)
            archive.writestr(self.part, self.xml)
        return buffer.getvalue()


_TAIL_BYTES = 16 << 10  # the last rows of a piece, where its newest shared strings are


def _has_shared_strings(path: str, part: str) -> bool:
    return any(shared for _, _, shared in _workbook_parts(path, part))


_SHARED_STRING_CELL = re.compile(rb"<c\b[^>]*\bt=[\"']s[\"'][^>]*>\s*<v>\s*(\d+)\s*</v>")


def _shared_strings_needed(xml: bytes) -> int:
    """How many of the workbook's shared strings (the first ones) a piece's cells use."""
    return max((int(i) for i in _SHARED_STRING_CELL.findall(xml)), default=-1) + 1


def _first_shared_strings(content: bytes, count: int) -> bytes:
    """The shared-strings part with its first ``count`` strings, or a few more (all of them
    when it cannot be cut: no plain ``<si>`` elements, a prefix).

    A workbook written by Excel keeps every distinct text of the sheet there (6 MB for
    100,000 rows), which calamine reads for each piece before its first row: the first piece
    (read for the header while the readers wait) gets the strings it uses, the others those
    up to the ones their last rows use (see SheetPiece.rows).
    """
    last = content.rfind(b"</si>")
    if last == -1 or b"<si>" not in content[: 64 << 10]:
        return content
    total = content.count(b"<si>")  # "<" is escaped in text: only the elements
    if count >= total:
        return content
    # A cut where the strings before it are about ``count``, moved on until they are enough.
    first = content.find(b"<si>")
    position = first + (last - first) * count // total
    while True:
        end = content.find(b"</si>", position)
        if end == -1 or end >= last:
            return content
        end += len(b"</si>")
        if content.count(b"<si>", 0, end) >= count:
            return content[:end] + content[last + len(b"</si>") :]
        position = end + max((end * (count - content.count(b"<si>", 0, end))) // count, 1)


_parts_cache: dict[tuple[str, str], list[tuple[str, bytes, bool]]] = {}


def _workbook_parts(path: str, part: str) -> list[tuple[str, bytes, bool]]:
    """The parts a piece's workbook needs besides its sheet, read once per process:
    (name, content, whether it is the shared strings)."""
    key = (path, part)
    if key not in _parts_cache:
        _parts_cache.clear()  # one file at a time
        with zipfile.ZipFile(path) as archive:
            shared = _shared_strings_part(archive)
            _parts_cache[key] = [
                (name, archive.read(name), name == shared)
                for name in archive.namelist()
                if name.startswith(_KEPT_PARTS) or name == shared
            ]
    return _parts_cache[key]


def _shared_strings_part(archive: zipfile.ZipFile) -> str | None:
    try:
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))  # noqa: S314 (*)
    except (KeyError, ElementTree.ParseError):
        return None
    for rel in rels.findall("rel:Relationship", _NS):
        if rel.get("Type", "").endswith("/sharedStrings"):
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return None


def _open_xlsx_in_pieces(path: Path) -> Table | None:
    """The first sheet as pieces (see SheetPiece), or None when it cannot be cut safely."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return None  # the whole parse says what is wrong
    try:
        part = _first_sheet_part(archive)
        if part is None or part not in archive.namelist():
            return None
        shared = _shared_strings_part(archive)
        shared_size = archive.getinfo(shared).file_size if shared in archive.namelist() else 0
        stream = archive.open(part)
    except (KeyError, RuntimeError, zipfile.BadZipFile, NotImplementedError, OSError):
        archive.close()
        return None
    piece_bytes = max(XLSX_PIECE_BYTES, shared_size)
    # The first piece is read here, for the header, while the readers wait: small (with the
    # shared strings it uses only). The next ones grow to full size, so the readers and the
    # database have work sooner, unless each must read many shared strings.
    ramp = 2 * shared_size <= XLSX_PIECE_BYTES
    pieces = _cut_sheet(stream, piece_bytes, min(piece_bytes, FIRST_PIECE_BYTES), ramp=ramp)
    try:
        opening, closing, first, last_row = next(pieces)
    except (StopIteration, ValueError, zipfile.BadZipFile, OSError, EOFError):
        first = None
    if first is None:
        stream.close()
        archive.close()
        return None
    head = SheetPiece(str(path), part, opening + first + closing, None, 1 << 20)
    if shared_size:
        head.shared_strings = _shared_strings_needed(first)
    try:
        head_rows = iter(head.rows())
        header_number, header = _find_header(head_rows, head.sheet_name)
    except FileError:  # no header in the first piece, or a piece calamine cannot read: the
        stream.close()  # whole parse finds the header further down, or says what is wrong
        archive.close()
        return None
    first_column = head.first_column
    width = len(header)
    head_formulas = _within(
        {(row, col + first_column) for row, col in head.formulas_without_value}, first_column, width
    )
    rest = [(n, c[:width] if len(c) > width else c) for n, c in head_rows]
    if last_row:
        total = last_row - header_number
    else:  # no dimension: an estimate from the first piece's bytes per row
        per_row = max(len(first) / max(len(rest) + 1, 1), 1)
        total = int(archive.getinfo(part).file_size / per_row)

    def batches(size: int) -> Iterator[list[tuple[int, list]] | SheetPiece]:
        if rest:
            yield rest
        try:
            for rows in pieces:
                yield SheetPiece(str(path), part, opening + rows + closing, first_column, width)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            # The sheet is inflated as it is read: a damaged archive shows only now (a wrong
            # checksum at its end, a stream cut short).
            raise FileError(
                f"The workbook is damaged and could not be read to its end ({exc}): open it "
                "in Excel, save it again and upload that copy."
            ) from exc

    def rows() -> Iterator[tuple[int, list]]:
        for batch in batches(0):
            yield from as_rows(batch)

    def close() -> None:
        pieces.close()
        stream.close()
        archive.close()

    return Table(
        header=header,
        rows=rows(),
        total=max(total, 0),
        formulas_without_value=head_formulas,
        first_column=first_column,
        _closer=close,
        _batches=batches,
    )


def _cut_sheet(
    stream, piece_bytes: int, first_bytes: int | None = None, *, ramp: bool = True
) -> Iterator:
    """Cuts a sheet's XML at row boundaries, reading it block by block: the first piece at
    about ``first_bytes``, each next one twice the last (``ramp``) up to ``piece_bytes``.

    Yields (opening, closing, the first piece's rows, the dimension's last row or None) first,
    then the rows of each further piece. The first item's rows are None when the sheet cannot
    be cut safely: no plain ``<sheetData>``, a row without its number, or CDATA (where a
    ``<row`` could be text).
    """
    buffer = b""
    while (start := buffer.find(b"<sheetData>")) == -1:
        block = stream.read(BLOCK)
        if not block or len(buffer) > 16 * BLOCK:
            yield b"", b"", None, None
            return
        buffer += block
    opening, buffer = buffer[: start + len(b"<sheetData>")], buffer[start + len(b"<sheetData>") :]
    root = re.search(rb"<([A-Za-z_][\w.-]*:)?worksheet\b", opening)
    if root is None or b"<![CDATA[" in opening:
        yield b"", b"", None, None
        return
    closing = b"</sheetData></" + (root[1] or b"") + b"worksheet>"
    last = _LAST_ROW.search(opening)
    # A piece has its own extent, not the sheet's.
    opening = re.sub(rb"<dimension\b[^>]*/>", b"", opening)
    first = True
    cut_at = first_bytes or piece_bytes
    block, buffer = buffer, b""
    ended = False
    while True:
        if not ended:
            if block:
                buffer += block
                end = buffer.find(b"</sheetData>", max(len(buffer) - len(block) - 12, 0))
                if end != -1:
                    buffer, ended = buffer[:end], True
                if b"<![CDATA[" in block:
                    cut_at = 1 << 62  # from here on, the rest of the sheet is one piece
            else:
                ended = True
        while True:
            cut = buffer.find(b"<row ", cut_at) if len(buffer) > cut_at else -1
            if cut == -1 and ended and buffer.strip():
                cut = len(buffer)
            if cut == -1:
                break
            rows, buffer = buffer[:cut], buffer[cut:]
            cut_at = min(cut_at * 2 if ramp else piece_bytes, max(piece_bytes, cut_at))
            if first:
                first = False
                tags = _ROW_TAG.findall(rows)
                if not tags or not all(_ROW_NUMBER.search(tag) for tag in tags):
                    yield b"", b"", None, None
                    return
                yield opening, closing, rows, int(last[1]) if last else None
            else:
                yield rows
            if not buffer:
                break
        if ended and not buffer.strip():
            if first:  # no rows at all
                yield b"", b"", None, None
            return
        if not ended:
            block = stream.read(BLOCK)
