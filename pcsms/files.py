"""What every file import shares (calling lists, DNC lists): the accepted types and the one
exception for a file that cannot be imported as a whole."""

from __future__ import annotations

from pathlib import Path

FORMATS = {".csv": "csv", ".txt": "txt", ".tsv": "txt", ".xlsx": "xlsx"}


class FileError(Exception):
    """The file as a whole cannot be imported; the message says why in plain words."""


def detect_format(name: str) -> str:
    """``csv``, ``txt`` or ``xlsx`` from the name, or a :class:`FileError` saying what to do."""
    suffix = Path(name or "").suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if suffix in (".xls", ".xlsm", ".xlsb", ".ods", ".numbers"):
        raise FileError(
            f"{suffix} files are not supported. Save the sheet as Excel Workbook (.xlsx) or "
            "CSV UTF-8 (.csv) and import that."
        )
    raise FileError(
        f"Files of type '{suffix or 'without an extension'}' are not supported: use a .csv "
        "(comma-separated), .txt (tab-separated) or .xlsx file."
    )
