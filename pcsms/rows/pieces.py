"""XLSX in pieces: the first sheet cut at row boundaries, each piece parsed by a reader process.

calamine parses a whole sheet before it gives the first row; cut into pieces, a large sheet is
parsed beside the database's writes instead (docs/performance.md measures it). A sheet that
cannot be cut safely is read whole (``xlsx.open_xlsx_whole``).
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from python_calamine import CalamineWorkbook

from pcsms.files import FileError
from pcsms.rows import base
from pcsms.rows.base import Table, as_rows
from pcsms.rows.xlsx import (
    NS,
    calamine_error,
    find_header,
    first_sheet_part,
    formula_cells_without_value,
    has_formulas,
    within,
)

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
                raise calamine_error(exc, where) from exc
        shift, width = start_col - self.first_column, self.width
        if has_formulas(self.xml):
            try:
                cells = formula_cells_without_value(io.BytesIO(self.xml))
            except ElementTree.ParseError:
                cells = set()  # calamine read it; a cell we cannot place keeps calamine's ""
            self.formulas_without_value = within(cells, self.first_column, width)
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
    for rel in rels.findall("rel:Relationship", NS):
        if rel.get("Type", "").endswith("/sharedStrings"):
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return None


def open_xlsx_in_pieces(path: Path) -> Table | None:
    """The first sheet as pieces (see SheetPiece), or None when it cannot be cut safely."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return None  # the whole parse says what is wrong
    try:
        part = first_sheet_part(archive)
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
        header_number, header = find_header(head_rows, head.sheet_name)
    except FileError:  # no header in the first piece, or a piece calamine cannot read: the
        stream.close()  # whole parse finds the header further down, or says what is wrong
        archive.close()
        return None
    first_column = head.first_column
    width = len(header)
    head_formulas = within(
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
        block = stream.read(base.BLOCK)
        if not block or len(buffer) > 16 * base.BLOCK:
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
            block = stream.read(base.BLOCK)
