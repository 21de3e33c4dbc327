"""Importing numbers into a DNC group, and exporting a group, as CSV/TXT/XLSX.

Columns: the phone number (or email address) and, optionally, an expire date, found by their
header (``phone``, ``phone number``, ``number``, ``mobile``, ``cell``, ``email``...; ``expire
date``, ``expires``, ``expiry``, ``expiration``...; any case or punctuation). A file without a
header whose first cell is a phone number or address is read as phone, expire date. Other columns
are ignored (so an export imports back). A cell with an @ is an email address, checked and
stored as ``pcsms.addresses`` says.

The rules of calling-list uploads:

* numbers are read in the BU's phone region and stored E.164;
* **a bad row never stops the file**: it is left out and reported (row number as the
  spreadsheet shows it, reason, the row's values) in a downloadable CSV;
* **a bad file changes nothing**: wrong type, not UTF-8, binary, empty, no phone column: one
  plain :class:`FileError` before anything is written. Rows are all read and checked first, then
  written in one transaction.

A number already in the group keeps its entry (a STOP, manual or carrier entry is never relabelled
by a file), except an expired entry, which blocks again as a file import, and an earlier file
import, whose expire date the new file sets.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
from django.db import transaction
from django.utils import timezone

from dnc.models import DncEntry, DncGroup
from pcsms.addresses import AddressError, is_email, normalise_email
from pcsms.csvexport import csv_lines
from pcsms.rows import FORMATS, FileError, as_text, detect_format, open_table

__all__ = ["FORMATS", "FileError", "dnc_import", "export_csv_lines"]

PHONE_HEADERS = frozenset(
    {
        "phone",
        "phonenumber",
        "phoneno",
        "phonenum",
        "number",
        "mobile",
        "mobilenumber",
        "mobilephone",
        "cell",
        "cellphone",
        "cellnumber",
        "msisdn",
        "telephone",
        # An email suppression list: the same column, holding addresses.
        "email",
        "emailaddress",
        "mail",
        "tel",
        "sms",
        "smsphonenumber",
        "smsnumber",
        "e164",
        "wireless",
        "dncnumber",
    }
)
EXPIRE_HEADERS = frozenset(
    {
        "expiredate",
        "expire",
        "expires",
        "expireson",
        "expiry",
        "expirydate",
        "expiration",
        "expirationdate",
        "expiresat",
        "expdate",
        "validuntil",
        "until",
        "enddate",
    }
)
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%Y/%m/%d", "%d %b %Y", "%b %d %Y", "%d-%b-%Y")
REPORT_HEADER = ["row", "outcome", "reason", "values"]
SHOWN_ERRORS = 20
WRITE_BATCH = 2000
PROGRESS_ROWS = 5000  # rows read between two progress reports

# (rows done, rows total, phase): what a command's progress bar draws (pcsms/commands.py).
Progress = Callable[[int, int, str], None]


@dataclass
class ImportResult:
    file_name: str
    rows: int = 0  # data rows read (blank rows not counted)
    valid: int = 0
    invalid: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0  # already in the group, kept as they were
    repeated: int = 0  # the same number again later in the file (the last row counts)
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # the first few
    report: bytes | None = None  # the error report (UTF-8 CSV with BOM), if any row was bad

    def as_dict(self) -> dict:
        return {
            "file": self.file_name,
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "repeated": self.repeated,
            "errors": [{"row": r, "reason": why, "values": v} for r, why, v in self.errors],
        }


# --- reading -----------------------------------------------------------------------------------


def _header_key(value) -> str:
    return re.sub(r"[^a-z0-9]", "", as_text(value).lower())


# --- checking a row ----------------------------------------------------------------------------


def parse_phone(value, region: str) -> str | None:
    """The cell as a stored entry: E.164, or a normalised email address; None if it is neither."""
    text = as_text(value)
    if not text:
        return None
    if is_email(text):
        try:
            return normalise_email(text)
        except AddressError:
            return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_date(value) -> dt.date | None:
    """An expire date cell: a spreadsheet date, or text in ISO, US (m/d/y) or "31 Dec 2026"."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = as_text(value)
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(text)


def _plan(
    table, region: str, errors, progress: Progress | None = None
) -> tuple[dict, ImportResult]:
    """Read every row: {E.164 or address: expiry} and the counts, errors spooled."""
    rows: Iterator[tuple[int, list]] = table.rows
    result = ImportResult(file_name="")
    wanted: dict[str, dt.date | None] = {}
    phone_col = expire_col = None
    today = timezone.localdate()
    header_rows = 0
    for number, cells in rows:
        if not any(as_text(c) for c in cells):
            continue
        if phone_col is None:
            keys = [_header_key(c) for c in cells]
            phone_col = next((i for i, k in enumerate(keys) if k in PHONE_HEADERS), None)
            expire_col = next((i for i, k in enumerate(keys) if k in EXPIRE_HEADERS), None)
            if phone_col is not None:
                header_rows = 1  # table.total counted it: the file was opened without a header
                continue  # the header row
            if parse_phone(cells[0], region) is None:
                raise FileError(
                    "No phone number column: name one 'phone number' (or phone, number, "
                    "mobile, cell), optionally with an 'expire date' column, or give a file "
                    "whose first column holds phone numbers."
                )
            phone_col, expire_col = 0, (1 if len(cells) > 1 else None)
        result.rows += 1
        if progress is not None and result.rows % PROGRESS_ROWS == 0:
            progress(result.rows, max(table.total - header_rows, result.rows), "reading")

        def bad(reason: str, row_number: int = number, row_cells: list = cells) -> None:
            values = " | ".join(as_text(c) for c in row_cells)
            errors.writerow([row_number, "rejected", reason, values])
            result.invalid += 1
            if len(result.errors) < SHOWN_ERRORS:
                result.errors.append((row_number, reason, values))

        raw_phone = cells[phone_col] if phone_col < len(cells) else ""
        phone = parse_phone(raw_phone, region)
        if phone is None:
            text = as_text(raw_phone)
            bad(
                "no phone number"
                if not text
                else "not a valid email address"
                if is_email(text)
                else f"not a valid phone number (read in region {region})"
            )
            continue
        expires = None
        raw_date = cells[expire_col] if expire_col is not None and expire_col < len(cells) else ""
        if as_text(raw_date):
            try:
                expires = parse_date(raw_date)
            except ValueError:
                bad("the expire date is not a date (use 2026-12-31 or 12/31/2026)")
                continue
            if expires < today:
                bad("the expire date is in the past")
                continue
        if phone in wanted:
            result.repeated += 1
        wanted[phone] = expires
        result.valid += 1
    if phone_col is None:
        raise FileError("The file has no rows.")
    if not result.rows:
        raise FileError("The file has a header but no rows of numbers.")
    return wanted, result


# --- writing -----------------------------------------------------------------------------------


def dnc_import(
    *,
    group: DncGroup,
    path: str | Path,
    file_name: str = "",
    added_by=None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a file of numbers into ``group`` (see the module docstring); ``progress`` is
    told the rows read as it goes, then that the numbers are being saved."""
    file_name = file_name or Path(path).name
    file_format = detect_format(file_name)
    region = group.business_unit.phone_region or "US"
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", newline="") as spool:
        errors = csv.writer(spool)
        # Header-less: the first row may be a header or already a number (see _plan).
        table = open_table(path, file_format, header=False)
        try:
            wanted, result = _plan(table, region, errors, progress)
        finally:
            table.close()
        result.file_name = file_name
        if result.invalid:
            spool.seek(0)
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(REPORT_HEADER)
            out.write(spool.read())
            result.report = out.getvalue().encode("utf-8-sig")
    who = f" by {added_by}" if added_by is not None else ""
    evidence = f"file import: {file_name}{who}"
    now = timezone.now()
    today = timezone.localdate()
    numbers = list(wanted)
    if progress is not None:
        progress(result.rows, result.rows, "saving")
    with transaction.atomic():
        # (id, source, expiry) of the numbers already in the group.
        existing: dict[str, tuple[int, str, dt.date | None]] = {}
        for start in range(0, len(numbers), WRITE_BATCH):
            chunk = numbers[start : start + WRITE_BATCH]
            rows = DncEntry.objects.filter(group=group, phone_number__in=chunk).values_list(
                "phone_number", "id", "source", "expires_on"
            )
            for e164, *rest in rows:
                existing[e164] = tuple(rest)
        new, changed = [], []
        for e164, expires in wanted.items():
            found = existing.get(e164)
            if found is None:
                new.append(
                    DncEntry(
                        group=group,
                        phone_number=e164,
                        expires_on=expires,
                        collected_at=now,
                        source=DncEntry.Source.FILE_IMPORT,
                        evidence=evidence,
                        added_by=added_by,
                    )
                )
                continue
            entry_id, source, old_expiry = found
            expired = old_expiry is not None and old_expiry < today
            if expired or (source == DncEntry.Source.FILE_IMPORT and old_expiry != expires):
                changed.append(
                    DncEntry(
                        id=entry_id,
                        source=DncEntry.Source.FILE_IMPORT if expired else source,
                        expires_on=expires,
                        evidence=evidence,
                    )
                )
            else:
                result.unchanged += 1
        DncEntry.objects.bulk_create(new, batch_size=WRITE_BATCH)
        DncEntry.objects.bulk_update(
            changed, ["source", "expires_on", "evidence"], batch_size=WRITE_BATCH
        )
    result.added, result.updated = len(new), len(changed)
    return result


def export_rows(groups) -> Iterator[list[str]]:
    """The CSV rows of an export: a header, then one row per entry, oldest first."""
    yield ["phone number", "expire date", "source", "date collected", "group"]
    entries = (
        DncEntry.objects.filter(group__in=groups)
        .order_by("group_id", "id")
        .values_list("phone_number", "expires_on", "source", "collected_at", "group__name")
    )
    for phone, expires, source, collected, group_name in entries.iterator(chunk_size=5000):
        yield [
            str(phone),
            expires.isoformat() if expires else "",
            source,
            timezone.localtime(collected).strftime("%Y-%m-%d %H:%M:%S"),
            group_name,
        ]


def export_csv_lines(groups) -> Iterator[str]:
    """The export as CSV text, line by line (for a streaming response or a file)."""
    return csv_lines(export_rows(groups))
