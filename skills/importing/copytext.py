"""The text both row readers write for PostgreSQL's COPY: escaping, compact JSON and the enum
values as plain strings.

The generic reader (``normalise.RowReader``) and the one compiled per column plan
(``fastrow``) must write byte-identical lines; both take these from here, so neither imports
the other's module at run time.
"""

from __future__ import annotations

import json

from skills.models import FieldType, TimeZoneSource

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_escape(value) -> str:
    """A value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_COPY_ESCAPES)
    return text


json_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# Plain strings, not the enums: enum attribute access costs more than the rest of a field.
STRING = str(FieldType.STRING)
SRC_COLUMN, SRC_ZIP = str(TimeZoneSource.COLUMN.value), str(TimeZoneSource.ZIP.value)
SRC_PHONE, SRC_DEFAULT = str(TimeZoneSource.PHONE.value), str(TimeZoneSource.DEFAULT.value)
