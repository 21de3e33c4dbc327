"""Rows of a file -> staged records, in plain Python with no database (it runs in worker
processes): typed values, phones in E.164 with their zones, the record's zone, and a report entry
for every row that is rejected or imported with a warning.

A staged row is a tuple in :data:`STAGE_COLUMNS` order followed by one (phone, source field,
zone) triple per phone column, filled in column order: the first number found is position 0.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import zoneinfo
from dataclasses import dataclass, field
from functools import cache

from pcsms.addresses import AddressError, normalise_email
from pcsms.rows import as_rows
from skills.importing.copytext import (
    SRC_COLUMN,
    SRC_DEFAULT,
    SRC_PHONE,
    SRC_ZIP,
    STRING,
    copy_escape,
    json_text,
)
from skills.importing.fastrow import compile_fast_row
from skills.importing.fields import PARSERS, SYSTEM_BY_NAME, BadValue, as_text
from skills.importing.mapping import ColumnPlan
from skills.importing.phones import PhoneNormaliser
from skills.importing.zones import ZoneResolver
from skills.models import FieldType

STAGE_COLUMNS = (
    ("row_no", "integer"),
    ("external_id", "text"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("address", "text"),
    ("city", "text"),
    ("state", "text"),
    ("zip_code", "text"),
    ("time_zone", "text"),
    ("time_zone_source", "text"),
    ("priority", "boolean"),
    ("score", "bigint"),
    ("customer1", "text"),
    ("customer2", "text"),
    ("expires_on", "date"),
    ("custom", "text"),
    ("n_phones", "integer"),
    ("flagged", "boolean"),
)
SLOT_COLUMNS = (("p", "text"), ("s", "text"), ("z", "text"))
_N_PHONES = [name for name, _ in STAGE_COLUMNS].index("n_phones")
_FLAGGED = _N_PHONES + 1
_FIRST_SLOT = len(STAGE_COLUMNS)
REJECTED = "rejected"
FORMULA_REASON = "Formula without a saved result"
WARNING = "imported with a warning"


def stage_columns(slots: int) -> list[tuple[str, str]]:
    cols = list(STAGE_COLUMNS)
    for i in range(slots):
        cols += [(f"{prefix}{i}", kind) for prefix, kind in SLOT_COLUMNS]
    return cols


@dataclass
class Settings:
    """Everything a worker needs to read rows: plain data, picklable, no database."""

    plan: list[ColumnPlan]
    region: str
    custom_zones: list[str]
    allowed_zones: list[str]
    business_unit: str
    default_zone: str  # "" unless the no-zone policy is "use the default zone"
    batch_expires: dt.date | None
    today: dt.date
    # "copy": COPY text of the stage's rows; "rows": tuples for executemany; "direct": rows for
    # the list's own tables (see Direct), which needs ``record_constants``.
    output: str = "copy"
    formulas_without_value: set[tuple[int, int]] = field(default_factory=set)
    # "direct" only: the COPY text of (calling_list_id, upload_job_id) and of (is_final,
    # final_reason, attempts), the same for every record of the import.
    record_constants: tuple[str, str] = ("", "")


@dataclass
class Direct:
    """A chunk's rows ready for the list's own tables, but for the record ids.

    The ids are drawn from the table's sequence by the writer (the only process holding a
    database connection), so each record line and each number line starts where its id goes:
    ``record_rows[i]`` is the COPY text after the id of the record of ``external_ids[i]``, and
    ``number_rows[j]`` the text after the record id of number j, whose record is
    ``number_owner[j]``. An ID repeated within the chunk is here once, from its first row
    (the later rows are rejected in the chunk's report). ``keys`` has a line (row number, ID
    as COPY text, flagged) per record: the writer reads it for the records it leaves out.
    """

    keys: str
    external_ids: list[str]
    record_rows: list[str]
    number_owner: list[int]
    number_rows: list[str]


@dataclass
class Chunk:
    """What one batch of rows became."""

    payload: object  # COPY text or a list of tuples
    rows: int = 0  # data rows read (blank rows are not counted)
    valid: int = 0
    invalid: int = 0
    flagged: int = 0
    entries: list[tuple[int, str, str, str]] = field(default_factory=list)  # the report
    formula_errors: int = 0
    fast: int = 0
    slow: int = 0


def _values(row: list, columns: list[ColumnPlan]) -> str:
    """The offending values, as ``Column='value'`` pairs, for the report."""
    parts = []
    for p in columns:
        raw = row[p.index] if p.index < len(row) else ""
        parts.append(f"{p.column}={as_text(raw)!r}")
    return "; ".join(parts)


# Short local names: the row loop below reads them for every cell.
_json = json_text
_STRING = STRING
_SRC_COLUMN, _SRC_ZIP, _SRC_PHONE, _SRC_DEFAULT = SRC_COLUMN, SRC_ZIP, SRC_PHONE, SRC_DEFAULT


def _custom_json(custom: dict) -> str:
    """``json.dumps`` for the usual custom values (plain text, numbers), ~5x quicker."""
    parts = []
    for key, value in custom.items():
        kind = type(value)
        if kind is str and value.isprintable() and '"' not in value and "\\" not in value:
            parts.append(f'"{key}":"{value}"')
        elif kind is int or kind is bool:
            parts.append(
                f'"{key}":{"true" if value is True else "false" if value is False else value}'
            )
        else:
            parts.append(f'"{key}":{_json(value)}')
    return "{" + ",".join(parts) + "}"


_STAGE_ORDER = [
    "FirstName",
    "LastName",
    "Address",
    "City",
    "State",
    "Zip",
]


_RECORD_TABS = _N_PHONES - 2


def _record_text(staged: list) -> str | None:
    """The record's values of a staged row as COPY text, None when one needs escaping.

    ``_copy_line`` written out for the record's columns (their types are known): the rows of
    a list rarely hold a tab, a line break or a backslash, so the check is on the whole line.
    """
    (ext, first, last, address, city, state, zip_code, zone, source, priority, score, c1, c2,
     expires, custom) = staged[1:_N_PHONES]  # fmt: skip
    nulls = 0
    if score is None:
        score, nulls = "\\N", 1
    if expires is None:
        expires, nulls = "\\N", nulls + 1
    text = (
        f"{ext}\t{first}\t{last}\t{address}\t{city}\t{state}\t{zip_code}\t{zone}\t{source}\t"
        f"{'t' if priority else 'f'}\t{score}\t{c1}\t{c2}\t{expires}\t{custom}"
    )
    if (
        text.count("\\") != nulls
        or "\n" in text
        or "\r" in text
        or text.count("\t") != _RECORD_TABS
    ):
        return None
    return text


class RowReader:
    """Reads rows of one file for one import; keeps caches (phone prefixes, zones, dates)."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.phones = PhoneNormaliser(settings.region)
        self.zones = ZoneResolver(settings.custom_zones)
        self.allowed = frozenset(settings.allowed_zones)
        plan = settings.plan
        # (index, field, type, max length) per system or custom column that is not a phone.
        self.system = [
            (p.index, p.field, _plain(p.field_type), SYSTEM_BY_NAME[p.field].max_length, p)
            for p in plan
            if not p.custom and not p.is_destination
        ]
        self.custom = [
            (p.index, p.field, _plain(p.field_type), p)
            for p in plan
            if p.custom and not p.is_destination
        ]
        # Phone and email columns: each cell becomes a destination, (value, its zone or None).
        self.phone_cols = [p for p in plan if p.is_destination]
        self.phone_specs = [
            (p.index, p.field, p, _email_cell if p.is_email else self.phones.normalise)
            for p in self.phone_cols
        ]
        self.has_email = any(p.is_email for p in plan)
        self.slots = len(self.phone_cols)
        self.by_field = {p.field: p for p in plan}
        self.width = max(p.index for p in plan) + 1
        self.missing_formula = settings.formulas_without_value
        self.mapped = list(plan)
        self._parsed: dict[tuple[str, str], object] = {}  # (type, text) -> value, bounded
        self._twins: dict[str, str] = {}
        self._escaped: dict[object, str] = {}  # column names and zones in COPY text
        self.tz_col = self.by_field.get("TimeZone")
        self.zip_col = self.by_field.get("Zip")
        self.exp_col = self.by_field.get("ExpirationDate")
        self.id_col = self.by_field["ExternalId"]
        self.no_zone_cols = [p for p in (self.tz_col, self.zip_col) if p] + self.phone_cols
        self.not_allowed_cols = [p for p in (self.tz_col,) if p] + self.phone_cols
        # The row reader written for this plan (None: the plan needs the generic one).
        # Email columns are read by the generic reader alone (fastrow writes phone columns).
        direct = settings.output == "direct" and not self.has_email
        self.fast_row = compile_fast_row(self) if direct else None

    def read_batch(self, batch) -> Chunk:
        """A batch as the file's reader hands it out (see ``readers.as_rows``)."""
        rows = as_rows(batch)
        # An XLSX piece knows its own formula cells without a saved result.
        self.missing_formula = (
            getattr(batch, "formulas_without_value", None) or self.s.formulas_without_value
        )
        return self.read(rows)

    def read(self, rows: list[tuple[int, list]]) -> Chunk:
        if self.s.output == "direct":
            return self._read_direct(rows)
        lines: list = []
        chunk = Chunk(payload=None)
        fast0, slow0 = self.phones.fast, self.phones.slow
        width = self.width
        for number, cells in rows:
            if len(cells) < width:
                cells = list(cells) + [""] * (width - len(cells))
            if _blank(cells):
                continue  # a blank row (often trailing): not a record, not an error
            chunk.rows += 1
            staged = self._generic(number, cells, chunk)
            if staged is not None:
                lines.append(staged)
        if self.s.output == "copy":
            chunk.payload = "".join([self._copy_line(staged) + "\n" for staged in lines])
        else:
            chunk.payload = lines
        chunk.fast = self.phones.fast - fast0
        chunk.slow = self.phones.slow - slow0
        return chunk

    def _generic(self, number: int, cells: list, chunk: Chunk) -> list | None:
        """The staged row, counted in ``chunk`` with its report entries; None if rejected."""
        try:
            staged, warnings = self._row(number, cells)
        except BadValue as exc:
            chunk.invalid += 1
            reason, columns = exc.args
            if reason.startswith(FORMULA_REASON):
                chunk.formula_errors += 1
            chunk.entries.append((number, REJECTED, reason, _values(cells, columns)))
            return None
        chunk.valid += 1
        if warnings:
            chunk.flagged += 1
            for reason, columns in warnings:
                chunk.entries.append((number, WARNING, reason, _values(cells, columns)))
        return staged

    def _read_direct(self, rows: list[tuple[int, list]]) -> Chunk:
        """Rows for the list's own tables (see Direct): plain rows through the reader written
        for the plan (fastrow), the others through the generic one."""
        chunk = Chunk(payload=None)
        fast0, slow0 = self.phones.fast, self.phones.slow
        width = self.width
        fast = self.fast_row if not self.missing_formula else None
        keys: list[str] = []
        external_ids: list[str] = []
        records: list[str] = []
        owners: list[int] = []
        numbers: list[str] = []
        first_row: dict[str, int] = {}  # ID -> the row that has it in this chunk
        head, tail = self.s.record_constants
        plain = 0  # rows the fast reader answered (counted here, not per row on the chunk)
        for number, cells in rows:
            if len(cells) < width:
                cells = list(cells) + [""] * (width - len(cells))
            # A row the fast reader answers has an ID: it is not blank.
            got = fast(cells) if fast is not None else None
            if got is not None:
                plain += 1
                external_id, record_line, lines = got
                flagged = False
                key = f"{number}\t{external_id}\tf\n"  # a plain row's ID needs no escaping
            else:
                if _blank(cells):
                    continue  # a blank row (often trailing): not a record, not an error
                chunk.rows += 1
                staged = self._generic(number, cells, chunk)
                if staged is None:
                    continue
                external_id, record_text, lines = self._direct_parts(staged)
                flagged = staged[_FLAGGED]
                record_line = f"\t{head}\t{record_text}\t{tail}\n"
                # The record's text starts with its ID, escaped: the key reuses it.
                escaped_id = record_text[: record_text.find("\t")]
                key = f"{number}\t{escaped_id}\t{'t' if flagged else 'f'}\n"
            kept = first_row.get(external_id)
            if kept is not None:  # the first row keeps the ID
                chunk.valid -= 1
                chunk.invalid += 1
                chunk.flagged -= flagged
                chunk.entries.append(repeated_id_entry(number, external_id, kept))
                continue
            first_row[external_id] = number
            keys.append(key)
            owner = len(external_ids)
            external_ids.append(external_id)
            records.append(record_line)
            for line in lines:
                owners.append(owner)
                numbers.append(line)
        chunk.rows += plain
        chunk.valid += plain
        chunk.payload = Direct("".join(keys), external_ids, records, owners, numbers)
        chunk.fast = self.phones.fast - fast0
        chunk.slow = self.phones.slow - slow0
        return chunk

    def _direct_parts(self, staged: list) -> tuple[str, str, list[str]]:
        """A staged row as (ID, record text, number lines): what fastrow's function gives."""
        record_text = _record_text(staged) or self._copy_line(staged[1:_N_PHONES])
        # Column names and zones repeat on every row: escaped once. E.164 needs no escaping.
        escaped = self._escaped
        lines = []
        at = _FIRST_SLOT
        for position in range(staged[_N_PHONES]):
            phone, source_field, zone = staged[at], staged[at + 1], staged[at + 2]
            at += 3
            source_text = escaped.get(source_field) or self._escape(source_field)
            zone_text = escaped.get(zone) or self._escape(zone)
            lines.append(f"\t{position}\t{source_text}\t{phone}\t{zone_text}\tf\t\t0\n")
        return staged[1], record_text, lines

    def _escape(self, value) -> str:
        text = self._escaped[value] = copy_escape(value)
        return text

    def _copy_line(self, staged: list) -> str:
        line = "\t".join(
            [
                v
                if type(v) is str
                else "\\N"
                if v is None
                else ("t" if v else "f")
                if type(v) is bool
                else str(v)
                for v in staged
            ]
        )
        # The only backslashes should be the NULL markers; anything else needs escaping.
        if (
            line.count("\\") != staged.count(None)
            or "\n" in line
            or "\r" in line
            or line.count("\t") != len(staged) - 1
        ):
            line = "\t".join([copy_escape(v) for v in staged])
        return line

    def _allowed_twin(self, zone: str) -> str:
        """An allowed zone that keeps the same clock, else the zone itself.

        phonenumbers names Juneau for a 907 number and Detroit for 313; a BU allowing
        America/Anchorage and America/New_York means those clocks, so they are stored as such.
        """
        try:
            return self._twins[zone]
        except KeyError:
            pass
        twin = zone
        clock = _clock(zone)
        if clock is not None:
            for candidate in sorted(self.allowed):
                if _clock(candidate) == clock:
                    twin = candidate
                    break
        self._twins[zone] = twin
        return twin

    def _parse(self, field_type: str, raw):
        """A typed value; text values are cached (lists repeat dates and flags a lot)."""
        if type(raw) is not str:
            return PARSERS[field_type](raw)
        key = (field_type, raw)
        try:
            return self._parsed[key]
        except KeyError:
            pass
        value = PARSERS[field_type](raw)
        if len(self._parsed) > 50_000:
            self._parsed.clear()
        self._parsed[key] = value
        return value

    def _fail(self, reason: str, *columns: ColumnPlan):
        raise BadValue(reason, list(columns))

    def _row(self, number: int, cells: list):
        s = self.s
        warnings: list[tuple[str, list[ColumnPlan]]] = []
        if self.missing_formula:
            for p in self.mapped:
                if (number, p.index) in self.missing_formula and as_text(cells[p.index]) == "":
                    self._fail(
                        f"{FORMULA_REASON} in cell {_cell_name(p.index)}{number} ({p.column}): "
                        "open the file in Excel and save it, or paste the values.",
                        p,
                    )
        values: dict[str, object] = {}
        for index, name, field_type, max_length, p in self.system:
            raw = cells[index]
            text = raw.strip() if type(raw) is str else as_text(raw)
            if not text:
                continue
            if field_type is _STRING:
                if name == "Zip" and type(raw) is not str and text.isdigit() and len(text) < 5:
                    text = text.zfill(5)  # a spreadsheet dropped the leading zero
                if max_length and len(text) > max_length:
                    self._fail(f"{name} is longer than {max_length} characters.", p)
                values[name] = text
            else:
                try:
                    values[name] = self._parse(field_type, text if type(raw) is str else raw)
                except BadValue as exc:
                    self._fail(f"{name} {text!r} {exc}.", p)
        external_id = values.get("ExternalId")
        if not external_id:
            self._fail("ExternalId is empty: every record needs one.", self.id_col)
        custom: dict[str, object] = {}
        for index, name, field_type, p in self.custom:
            raw = cells[index]
            text = raw.strip() if type(raw) is str else as_text(raw)
            if not text:
                continue
            if field_type is _STRING:
                custom[name] = text
                continue
            try:
                value = self._parse(field_type, text if type(raw) is str else raw)
            except BadValue as exc:
                self._fail(f"{name} {text!r} {exc}.", p)
            custom[name] = value.isoformat() if isinstance(value, dt.date) else value

        # Phones: every column in order; a bad number is dropped with a warning if another is good.
        found: list[tuple[str, str, str | None]] = []
        bad: list[ColumnPlan] = []
        for index, name, p, normalise in self.phone_specs:
            raw = cells[index]
            text = raw if type(raw) is str else as_text(raw)
            if not text or text.isspace():
                continue
            result = normalise(text)
            if result is None:
                bad.append(p)
            else:
                found.append((result[0], name, result[1]))
        if not found:
            what = "phone number or email address" if self.has_email else "phone number"
            if bad:
                names = ", ".join(
                    f"{p.field} {as_text(cells[p.index])!r} is not a valid "
                    + ("email address" if p.is_email else "number")
                    for p in bad
                )
                self._fail(f"No valid {what}: {names}.", *bad)
            columns = "phone and email columns" if self.has_email else "phone column"
            self._fail(f"No {what}: every {columns} is empty.", *self.phone_cols)
        for p in bad:
            kind = "email address" if p.is_email else "phone number"
            warnings.append(
                (
                    f"{p.field} {as_text(cells[p.index])!r} is not a valid {kind}; the "
                    "record was imported with its other destination(s).",
                    [p],
                )
            )

        # The record's zone: TimeZone column > zip > phone > the upload's default.
        zone, source = None, ""
        tz_text = values.pop("TimeZone", "")
        if tz_text:
            zone = self.zones.column(tz_text)
            if zone is None:
                self._fail(
                    f"TimeZone {tz_text!r} is not a time zone we know (use an IANA name such as "
                    "America/Chicago, an abbreviation such as CST, or one of the business "
                    "unit's custom zones).",
                    self.tz_col,
                )
            source = _SRC_COLUMN
        if zone is None and "Zip" in values:
            zone = self.zones.from_zip(values["Zip"])
            if zone:
                source = _SRC_ZIP
        if zone is None:
            for _, _, phone_zone in found:
                if phone_zone:
                    zone, source = phone_zone, _SRC_PHONE
                    break
        if zone is None:
            if not s.default_zone:
                self._fail(
                    "No time zone: no TimeZone value, and neither the Zip nor the phone numbers "
                    "tell the zone (choose a default zone for the upload to keep such records).",
                    *self.no_zone_cols,
                )
            zone, source = s.default_zone, _SRC_DEFAULT
        allowed = self.allowed
        if zone not in allowed:
            zone = self._allowed_twin(zone)
        outside = False  # a number's zone not allowed (a plain loop: this runs on every row)
        for item in found:
            if item[2] and item[2] not in allowed:
                outside = True
                break
        if outside:
            found = [(n, f, self._allowed_twin(z) if z else z) for n, f, z in found]
            outside = any(z and z not in allowed for _, _, z in found)
        if zone not in allowed or outside:
            not_allowed = sorted(
                {z for z in [zone, *(z for _, _, z in found)] if z and z not in allowed}
            )
            warnings.append(
                (
                    f"Time zone {', '.join(not_allowed)} is not allowed for business unit "
                    f"{s.business_unit}: it will not be texted there until the zone is allowed.",
                    self.not_allowed_cols,
                )
            )

        expires = values.get("ExpirationDate") or s.batch_expires
        if expires is not None and expires < s.today:
            warnings.append(
                (
                    f"Expires on {expires.isoformat()}, which is already past: the record will "
                    "not be texted.",
                    [self.exp_col] if self.exp_col else [],
                )
            )
        get = values.get
        staged = [number, external_id]
        staged += [get(name, "") for name in _STAGE_ORDER]
        staged += [
            zone,
            source,
            bool(get("Priority", False)),
            get("Score"),
            get("Customer1", ""),
            get("Customer2", ""),
            expires.isoformat() if expires else None,
            _custom_json(custom) if custom else "{}",
            len(found),
            bool(warnings),
        ]
        for phone, source_field, phone_zone in found:
            staged += (phone, source_field, phone_zone or zone)
        if len(found) < self.slots:
            staged += (None, None, None) * (self.slots - len(found))
        return staged, warnings


def _email_cell(text: str) -> tuple[str, None] | None:
    """An email column's cell as a destination: the normalised address, no zone of its own."""
    try:
        return normalise_email(text), None
    except AddressError:
        return None


@cache
def _clock(zone: str) -> tuple | None:
    """A zone's UTC offsets through this year and next (None for custom or unknown zones)."""
    if not zone or "/" not in zone:
        return None
    try:
        info = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    year = dt.date.today().year
    instants = [
        dt.datetime(y, m, 15, 12, tzinfo=dt.UTC) for y in (year, year + 1) for m in (1, 4, 7, 10)
    ]
    return tuple(i.astimezone(info).utcoffset() for i in instants)


def repeated_id_entry(number: int, external_id: str, kept: int) -> tuple[int, str, str, str]:
    """The report's entry for a row whose ID an earlier row of the file has (append mode)."""
    return (
        number,
        REJECTED,
        f"ExternalId {external_id!r} is repeated: row {kept} already has it (IDs must be unique "
        "in a list; choose Replace to let later rows update it).",
        f"ExternalId={external_id!r}",
    )


def _blank(cells: list) -> bool:
    try:
        return not "".join(cells).strip()
    except TypeError:  # spreadsheet cells: numbers, dates, None
        return not any(as_text(c) for c in cells)


def _plain(field_type) -> str:
    """The field type as the very string object ``_STRING`` is, so ``is`` compares it."""
    value = str(field_type.value if isinstance(field_type, FieldType) else field_type)
    return _STRING if value == _STRING else value


def _cell_name(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


# --- Worker processes ---------------------------------------------------------------------------

_reader: RowReader | None = None


def init_worker(settings: Settings) -> None:
    global _reader
    # The importing process's database session writes while these read: on a machine that
    # runs both, it is the slower of the two and must not wait for a core.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(5)
    _reader = RowReader(settings)
    # A reader makes rows and strings, garbage without cycles that reference counting frees
    # as it goes. The collector's passes found nothing but cost ~7% of a reader's CPU: each
    # chunk's live rows scanned again and again, and, in full passes, the heap forked from
    # the importing process (measured, docs/performance.md). What exists now is frozen and
    # the collector runs once every COLLECT_EVERY chunks only, to bound what a cycle could
    # hold.
    gc.freeze()
    gc.disable()


COLLECT_EVERY = 64
_chunks_read = 0


def read_chunk(rows) -> Chunk:
    """A batch of rows: (row number, cells) pairs, or Lines / a SheetPiece to read first."""
    global _chunks_read
    assert _reader is not None, "init_worker was not called"
    _chunks_read += 1
    if _chunks_read % COLLECT_EVERY == 0:
        gc.collect()
    return _reader.read_batch(rows)
