"""Text files: CSV (comma) and TXT (tab), UTF-8 with or without a byte-order mark.

The whole file is checked to be UTF-8 text before the first row is handed on, so a file saved
in another encoding fails as a whole, naming the line of its first bad byte.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections.abc import Iterator
from pathlib import Path

from pcsms.files import FileError
from pcsms.rows import base
from pcsms.rows.base import Lines, Table, header_cells


def check_text_head(head: bytes, file_format: str) -> None:
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
    # A stray control character (a bell, an escape pasted from a terminal) is still text: only
    # many of them, or a NUL, mark binary data.
    controls = sum(1 for b in head if b < 9 or 13 < b < 32 or b == 127)
    if b"\x00" in head or controls > max(len(head) // 100, 8):
        raise FileError(
            f"This is not a text file (it holds binary data), so it cannot be read as {kind}."
        )


def scan_text(path: Path, newline: bytes = b"\n") -> int:
    """Checks the whole file is UTF-8 without NUL bytes; returns the number of lines (ended by
    ``newline``)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    lines = 1
    offset = 0
    with path.open("rb") as handle:
        while block := handle.read(base.BLOCK):
            if b"\x00" in block:
                raise FileError("This is not a text file (it holds binary data).")
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                line = lines + block.count(newline, 0, exc.start)
                bad = block[exc.start : exc.start + 1].hex().upper()
                raise FileError(
                    f"The file is not UTF-8 text: byte 0x{bad} on line {line} (at byte "
                    f"{offset + exc.start}). It was probably saved as Windows-1252 or Latin-1; "
                    "save it as CSV UTF-8 and upload it again."
                ) from None
            lines += block.count(newline)
            offset += len(block)
            last = block[-1:]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise FileError(
                "The file is not UTF-8 text: it ends in the middle of a character. Save it as "
                "CSV UTF-8 and upload it again."
            ) from None
    return lines - 1 if last == newline else lines


def _read_header(handle, reader, delimiter: str) -> list[str]:
    """The first row that is not blank, as names; the file is closed if there is none."""
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
    header = header_cells(first)
    if len(header) == 1:
        names = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "vertical bars"}
        for sep in ("\t", ";", "|", ","):
            if sep != delimiter and sep in header[0]:
                handle.close()
                raise FileError(
                    f"The header has only one column, and it contains {names[sep]}: the file "
                    f"seems to be separated by {names[sep]}, not {names[delimiter]}. Save it as "
                    "CSV UTF-8 (.csv, comma-separated) or as tab-separated text (.txt)."
                )
    return header


def open_text(
    path: Path, head: bytes, delimiter: str, file_format: str, *, header: bool = True
) -> Table:
    """A text file as a Table; ``header=False``: every row from the first, none a header."""
    check_text_head(head, file_format)
    # Lines ended by a carriage return alone (old Mac files, some exports): read with universal
    # newlines, so that every reader below sees "\n".
    cr_only = b"\r" in head and b"\n" not in head
    line_count = scan_text(path, b"\r" if cr_only else b"\n")
    newline = None if cr_only else ""
    handle = open(path, encoding="utf-8-sig", newline=newline)  # noqa: SIM115 - closed by Table
    reader = csv.reader(handle, delimiter=delimiter)
    names: list[str] = []
    if header:
        names = _read_header(handle, reader, delimiter)
    header_line = reader.line_num

    def rows() -> Iterator[tuple[int, list]]:
        # Row numbers count records as a spreadsheet shows them (a header is row 1).
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
        while piece := handle.read(base.BLOCK):
            text = pending + piece
            if '"' in text:
                if lines:
                    yield Lines(number - len(lines) + 1, lines, delimiter)
                yield from quoted_batches(text, handle, delimiter, number, size)
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
        header=names,
        rows=rows(),
        total=max(line_count - header_line, 0),
        _closer=handle.close,
        _batches=batches,
    )


def quoted_batches(
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
