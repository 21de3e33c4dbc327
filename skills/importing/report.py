"""The error report: one CSV line per rejected or flagged row, in row order.

Entries arrive in two sorted streams (rows read in order, then the set-wide checks such as
repeated IDs, found in the database) and are spilled to temporary files so that a file whose
every row is bad does not hold a million entries in memory.
"""

from __future__ import annotations

import csv
import heapq
import io
import tempfile
from collections.abc import Iterable, Iterator

HEADER = ["row", "outcome", "reason", "values"]
# Excel shows at most 32,767 characters in a cell: a longer reason or row (a 1 MB cell) is cut
# there, saying how long it was, so that the report still opens and reads back.
MAX_REPORT_CELL = 32_000


def _cell(text: str) -> str:
    if len(text) <= MAX_REPORT_CELL:
        return text
    return f"{text[:MAX_REPORT_CELL]}... ({len(text):,} characters in all)"


class EntrySpool:
    """Report entries (row, outcome, reason, values), appended in row order, kept on disk."""

    def __init__(self):
        self.file = tempfile.TemporaryFile(mode="w+", encoding="utf-8", newline="")  # noqa: SIM115
        self.writer = csv.writer(self.file)
        self.count = 0

    def extend(self, entries: Iterable[tuple[int, str, str, str]]) -> None:
        for row, outcome, reason, values in entries:
            self.writer.writerow((row, outcome, _cell(reason), _cell(values)))
            self.count += 1

    def __iter__(self) -> Iterator[tuple[int, str, str, str]]:
        self.file.flush()
        self.file.seek(0)
        for row, outcome, reason, values in csv.reader(self.file):
            yield int(row), outcome, reason, values

    def close(self) -> None:
        self.file.close()


def write_report(*spools: EntrySpool):
    """The merged report in a temporary file (UTF-8 CSV with a BOM, for Excel), or None."""
    if not any(s.count for s in spools):
        return None
    binary = tempfile.TemporaryFile()  # noqa: SIM115 - the caller saves and closes it
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow(HEADER)
    writer.writerows(heapq.merge(*spools, key=lambda entry: entry[0]))
    text.flush()
    text.detach()
    binary.seek(0)
    return binary
