"""Column -> field mapping: the proposal made from a file's header, and its validation.

A mapping is stored on the upload job as ``{column: {"field": name, "type": type}}`` (the type
only matters for custom fields; "" as the field ignores the column). The command line's
``--map COLUMN=FIELD`` gives the short form ``{column: field}``, which is accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass

from messaging.templating import PHONE_SYSTEM_FIELDS
from pcsms.rows import FileError
from skills.importing.fields import (
    CUSTOM_NAME_RE,
    SYSTEM_BY_LOWER,
    SYSTEM_BY_NAME,
    custom_name_for,
    infer_type,
    system_field_for,
)
from skills.models import FieldType

IGNORE = ""


class MappingError(FileError):
    """The mapping cannot import the file (e.g. no phone column); nothing is imported."""


@dataclass(frozen=True)
class ColumnPlan:
    index: int  # position in the file's row
    column: str  # the header as shown to the user
    field: str  # system field name or custom field name
    custom: bool
    field_type: str

    @property
    def is_phone(self) -> bool:
        return self.field_type == FieldType.PHONE

    @property
    def is_email(self) -> bool:
        return self.field_type == FieldType.EMAIL

    @property
    def is_destination(self) -> bool:
        """A phone or email column: its values become the record's destinations."""
        return self.field_type in (FieldType.PHONE, FieldType.EMAIL)


# Columns of one calling list: the system fields and a generous number of custom ones. A file
# much wider is a spreadsheet of something else (and its mapping page would not fit in one
# form: Django refuses a POST of more than DATA_UPLOAD_MAX_NUMBER_FIELDS, 1,000, fields).
MAX_COLUMNS = 250


def column_names(header: list[str]) -> list[str]:
    """Unique, non-empty names for the header's columns (blank or repeated headers renamed);
    a :class:`FileError` for a header of more than ``MAX_COLUMNS`` columns."""
    if len(header) > MAX_COLUMNS:
        raise FileError(
            f"The header row has {len(header):,} columns; a calling list has at most "
            f"{MAX_COLUMNS:,}. Delete the columns that are not needed and upload it again."
        )
    names: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(header):
        base = raw.strip() or f"(column {index + 1})"
        name, n = base, 2
        while name.lower() in seen:
            name, n = f"{base} ({n})", n + 1
        seen.add(name.lower())
        names.append(name)
    return names


def propose_mapping(
    header: list[str],
    sample_rows: list[list],
    existing_types: dict[str, str] | None = None,
    region: str = "US",
) -> dict[str, dict[str, str]]:
    """The mapping the admin page starts from: aliases first, then custom fields by type."""
    existing_types = existing_types or {}
    existing_lower = {name.lower(): name for name in existing_types}
    mapping: dict[str, dict[str, str]] = {}
    used: set[str] = set()
    names = column_names(header)
    for index, name in enumerate(names):
        values = [row[index] if index < len(row) else "" for row in sample_rows]
        if not header[index].strip():
            mapping[name] = {"field": IGNORE, "type": FieldType.STRING}
            continue
        system = system_field_for(header[index])
        if system and system not in used:
            used.add(system)
            mapping[name] = {"field": system, "type": SYSTEM_BY_NAME[system].field_type}
            continue
        custom = existing_lower.get(custom_name_for(header[index]).lower())
        if custom is None:
            custom = custom_name_for(header[index])
            field_type = infer_type(header[index], values, region)
        else:
            field_type = existing_types[custom]
        while custom.lower() in used:
            custom = f"{custom}_2"[:64]
        used.add(custom.lower())
        mapping[name] = {"field": custom, "type": field_type}
    return mapping


def remember_mapping(proposed: dict, previous: dict) -> dict:
    """The proposal, with the choices of the list's last import for the same column names.

    A system field the last import gave to a column keeps going there; a column the proposal
    had matched to it instead becomes a custom field again.
    """
    result = dict(proposed)
    claimed: dict[str, str] = {}
    for column in proposed:
        spec = previous.get(column)
        if spec is None:
            continue
        spec = spec if isinstance(spec, dict) else {"field": spec}
        result[column] = {"field": spec.get("field") or IGNORE, "type": spec.get("type") or ""}
        if spec.get("field"):
            claimed[spec["field"].lower()] = column
    for column, spec in result.items():
        owner = claimed.get((spec.get("field") or "").lower())
        if owner is not None and owner != column:
            result[column] = {"field": custom_name_for(column), "type": FieldType.STRING}
    return result


def build_plan(
    header: list[str], mapping: dict, *, existing_types: dict[str, str] | None = None
) -> list[ColumnPlan]:
    """The columns to import, in file order; raises :class:`MappingError` in plain words."""
    existing_types = existing_types or {}
    names = column_names(header)
    known = {name.lower(): (index, name) for index, name in enumerate(names)}
    problems: list[str] = []
    chosen: dict[int, tuple[str, str | None]] = {}
    for column, spec in (mapping or {}).items():
        found = known.get(str(column).strip().lower())
        if found is None:
            problems.append(f"The file has no column '{column}'.")
            continue
        if isinstance(spec, dict):
            chosen[found[0]] = (str(spec.get("field") or "").strip(), spec.get("type"))
        else:
            chosen[found[0]] = (str(spec or "").strip(), None)
    plan: list[ColumnPlan] = []
    used: dict[str, str] = {}
    for index, name in enumerate(names):
        if index in chosen:
            field, wanted_type = chosen[index]
        elif not mapping and header[index].strip():
            field, wanted_type = system_field_for(header[index]) or "", None
        else:
            field, wanted_type = IGNORE, None
        if field in ("", "-"):
            continue
        system = SYSTEM_BY_NAME.get(field) or SYSTEM_BY_LOWER.get(field.lower())
        if system is not None:
            field, custom, field_type = system.name, False, system.field_type
        else:
            if not CUSTOM_NAME_RE.fullmatch(field) or len(field) > 64:
                problems.append(
                    f"'{field}' (column '{name}') is not a usable field name: start with a "
                    "letter and use letters, digits and underscores only."
                )
                continue
            custom = True
            field_type = wanted_type or existing_types.get(field) or FieldType.STRING
            if field_type not in FieldType.values:
                problems.append(f"'{field_type}' is not a field type (column '{name}').")
                continue
        if field.lower() in used:
            problems.append(
                f"{field} is mapped from two columns ('{used[field.lower()]}' and '{name}'): "
                "map one of them to another field or ignore it."
            )
            continue
        used[field.lower()] = name
        plan.append(ColumnPlan(index, name, field, custom, field_type))
    if not any(p.field == "ExternalId" for p in plan):
        problems.append(
            "No column is mapped to ExternalId: every record needs an ID that is unique in the "
            "list (a column named ExternalId, ID or Record is found by itself)."
        )
    if not any(p.is_destination for p in plan):
        problems.append(
            "No phone column is mapped: map a column to PhoneNumber or SMSPhoneNumber (or Email "
            "for email skills), or give a custom field the type 'Phone number' or 'Email "
            "address' (columns named Phone, Number, SMS or Email are found by themselves)."
        )
    if problems:
        raise MappingError(" ".join(problems))
    return plan


def phone_columns(plan: list[ColumnPlan]) -> list[ColumnPlan]:
    """The phone and email columns in file order: destination positions follow it."""
    return [p for p in plan if p.is_destination]


def mapping_from_plan(plan: list[ColumnPlan], header: list[str]) -> dict[str, dict[str, str]]:
    """The stored form of a plan: every column, ignored ones with an empty field."""
    by_index = {p.index: p for p in plan}
    result = {}
    for index, name in enumerate(column_names(header)):
        p = by_index.get(index)
        result[name] = (
            {"field": p.field, "type": p.field_type}
            if p
            else {"field": IGNORE, "type": FieldType.STRING}
        )
    return result


__all__ = [
    "IGNORE",
    "PHONE_SYSTEM_FIELDS",
    "ColumnPlan",
    "MappingError",
    "build_plan",
    "column_names",
    "mapping_from_plan",
    "phone_columns",
    "propose_mapping",
    "remember_mapping",
]
