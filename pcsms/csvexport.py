"""CSV downloads: streamed row by row, UTF-8 with a byte-order mark, safe to open in Excel.

Exports can hold hundreds of thousands of rows (a skill's texts), so they are written as the
database hands rows over, never built in memory. Excel reads a UTF-8 file as its local code
page unless it starts with a byte-order mark, and it runs a cell that starts with ``=``, ``+``,
``-`` or ``@`` as a formula: a text whose body came from an uploaded list could do that on the
compliance officer's machine (CSV injection), so such cells get a leading apostrophe. Numbers
written as numbers (``-3``, ``+13125550123``) are left alone.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse

# A cell a spreadsheet would evaluate, but not a plain number such as an E.164 phone number.
_FORMULA_START = re.compile(r"^(?:[=@\t\r]|[+-](?![\d.]+$))")


def spreadsheet_safe(value: object) -> str:
    """``value`` as CSV cell text that a spreadsheet shows as text, not as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if _FORMULA_START.match(text) else text


class _Echo:
    """A file-like object whose write() returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """The rows (a header first) as CSV text, line by line, every cell spreadsheet-safe."""
    writer = csv.writer(_Echo())
    yield "\ufeff"
    for row in rows:
        yield writer.writerow([spreadsheet_safe(value) for value in row])


def csv_download(rows: Iterable[Sequence[object]], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
