"""The pieces every reader shares: a file opened as a :class:`Table` of (row number, cells), the
batches readers hand on (:class:`Lines` of text, or lists of rows), and a cell as text."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pcsms.files import FileError

DELIMITERS = {"csv": ",", "txt": "\t"}
BLOCK = 1 << 20  # bytes read at a time
MAX_FIELD = 1 << 20  # 1 MiB in one cell is not a list of people or numbers

csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))


def as_text(value) -> str:
    """A cell as text: spreadsheet numbers that are whole read as ``12``, not ``12.0``."""
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def header_cells(raw: list) -> list[str]:
    """A header row's names, without the empty cells at its end."""
    cells = [as_text(c) for c in raw]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


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

    header: list[str]  # empty when the file was opened without a header row
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
