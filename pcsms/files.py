"""What every file import shares (calling lists, DNC lists): the accepted types, the size
limit and the one exception for a file that cannot be imported as a whole."""

from __future__ import annotations

import math
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

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


MB = 1024 * 1024


def _megabytes(size: int) -> str:
    # Rounded up, so a file just over the limit never reads as the limit itself.
    tenths = math.ceil(size * 10 / MB)
    return f"{tenths // 10:,}" if tenths % 10 == 0 else f"{tenths / 10:,.1f}"


def validate_upload_size(upload) -> None:
    """A form validator: refuse an uploaded file over ``MAX_UPLOAD_MB``, naming both sizes."""
    limit = settings.MAX_UPLOAD_MB
    if upload is not None and upload.size > limit * MB:
        raise ValidationError(
            f"{Path(upload.name).name} is {_megabytes(upload.size)} MB; the largest file "
            f"accepted is {limit:,} MB. Split it into smaller files and upload them one "
            "after the other.",
            code="file_too_large",
        )
