"""A row reader written for one import's column plan: the common row in a third of the time.

``RowReader._row`` reads any row of any plan: it loops over the plan's columns, dispatches on
each field's type, gathers a dict of values and a staged list, which ``RowReader._direct`` then
turns into COPY text. For a 100,000-row sheet that generic work is ~1.3 CPU-s, the largest part
of the import that is ours (calamine and PostgreSQL take about as much each). Most rows of a
list are plain: text cells, valid numbers, a zone the business unit allows, nothing to escape.
This module writes, once per import, a function for exactly the plan's columns that reads such a
row straight into its COPY text, and answers ``None`` for any row that is not plain (a bad or
missing value, a warning to report, a non-text cell, text that needs escaping): the generic
reader then reads that row, so every error, warning and edge case keeps one implementation.

tests/test_import_fastrow.py checks that both readers give the same output, row for row, on
generated rows of every kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skills.importing import copytext as n
from skills.importing.fields import CUSTOM_NAME_RE, PARSERS, BadValue, as_text

if TYPE_CHECKING:  # pragma: no cover
    from skills.importing.normalise import RowReader

# Record fields the generated code reads as text, in the record line's order (normalise's
# ``_record_text``): ExternalId first, then these, then the zone and the typed fields.
_TEXT_FIELDS = ("FirstName", "LastName", "Address", "City", "State", "Zip")
_CACHE_LIMIT = 50_000


def compile_fast_row(reader: RowReader):
    """``fast(cells) -> (external_id, record_line, number_lines) | None`` for the reader's plan.

    ``record_line`` is the record's COPY line after its id (what ``RowReader._read_direct``
    makes of ``_record_text``), ``number_lines`` the destinations' lines after their record id.
    """
    s = reader.s
    env = {
        "BadValue": BadValue,
        "normalise_phone": reader.phones.normalise,
        "tz_column": reader.zones.column,
        "from_zip": reader.zones.from_zip,
        "allowed": reader.allowed,
        "twin": reader._allowed_twin,
        "escape": n.copy_escape,
        "parsed": reader._parsed,
        "as_text": as_text,
        "iso": {},  # a date's text -> its ISO text
        "number_ends": {},  # a zone -> the end of a number's line
        "json_text": n.json_text,
        "NULL": "\\N",
        "TAB": "\t",
        "BACKSLASH": "\\",
        "NEWLINE": "\n",
        "RETURN": "\r",
        "NUMBER_TAIL": "\tf\t\t0\n",
        "PARSERS": PARSERS,
        "today": s.today,
        "batch_expires": s.batch_expires,
        "default_zone": s.default_zone,
        "SRC_COLUMN": n.SRC_COLUMN,
        "SRC_ZIP": n.SRC_ZIP,
        "SRC_PHONE": n.SRC_PHONE,
        "SRC_DEFAULT": n.SRC_DEFAULT,
        "CACHE_LIMIT": _CACHE_LIMIT,
    }
    lines = ["def fast(cells):"]
    emit = lines.append

    def read_cell(index: int, var: str) -> None:
        """``var``: the cell as the generic reader's text; ``raw_var``: the cell itself."""
        emit(f"    raw_{var} = cells[{index}]")
        emit(f"    {var} = raw_{var}.strip() if type(raw_{var}) is str else as_text(raw_{var})")

    def typed(var: str, field_type: str, out: str, indent: str) -> None:
        """``out``: the typed value of the cell read into ``var`` (text values cached, as in
        RowReader._parse); a value that is not of the type: the generic reader."""
        emit(f"{indent}if type(raw_{var}) is str:")
        emit(f"{indent}    {out} = parsed.get(({field_type!r}, {var}))")
        emit(f"{indent}    if {out} is None:")
        emit(f"{indent}        try:")
        emit(f"{indent}            {out} = PARSERS[{field_type!r}]({var})")
        emit(f"{indent}        except BadValue:")
        emit(f"{indent}            return None")
        emit(f"{indent}        if len(parsed) > CACHE_LIMIT: parsed.clear()")
        emit(f"{indent}        parsed[({field_type!r}, {var})] = {out}")
        emit(f"{indent}else:")
        emit(f"{indent}    try:")
        emit(f"{indent}        {out} = PARSERS[{field_type!r}](raw_{var})")
        emit(f"{indent}    except BadValue:")
        emit(f"{indent}        return None")

    # System fields that are not phones, in plan order: a later column of the same field
    # wins when it has a value, as in the generic reader.
    system: dict[str, str] = {}
    for _index, name, field_type, _max_length, _p in reader.system:
        system[name] = "text" if field_type is n.STRING else field_type
    for name, kind in system.items():
        emit(f"    f_{name} = ''" if kind == "text" else f"    x_{name} = None")
    if "ExternalId" not in system or system["ExternalId"] != "text":
        return None
    for index, name, field_type, max_length, _p in reader.system:
        var = f"v{index}"
        read_cell(index, var)
        emit(f"    if {var}:")
        if field_type is n.STRING:
            if name == "Zip":  # a number cell's lost leading zero: the generic reader
                emit(f"        if type(raw_{var}) is not str: return None")
            if max_length:
                emit(f"        if len({var}) > {max_length}: return None")
            emit(f"        f_{name} = {var}")
        else:
            typed(var, field_type, f"x_{name}", "        ")
    emit("    if not f_ExternalId: return None")
    # Custom fields: their JSON, in plan order, present values only (normalise._custom_json).
    if reader.custom:
        emit("    custom = []")
    for index, name, field_type, _p in reader.custom:
        if not CUSTOM_NAME_RE.fullmatch(name):
            return None  # a name the generated code could not quote: the generic reader
        var = f"c{index}"
        read_cell(index, var)
        emit(f"    if {var}:")
        key = f'\'"{name}":'
        if field_type is n.STRING:
            emit(f"        if not {var}.isprintable() or '\"' in {var} or '\\\\' in {var}:")
            emit("            return None")
            emit(f"        custom.append({key}\"' + {var} + '\"')")
            continue
        if field_type == "date":  # the ISO text, cached by the cell's text
            emit(f"        if type(raw_{var}) is str:")
            emit(f"            j = iso.get({var})")
            emit("            if j is None:")
            emit("                try:")
            emit(f"                    j = PARSERS['date']({var}).isoformat()")
            emit("                except BadValue:")
            emit("                    return None")
            emit("                if len(iso) > CACHE_LIMIT: iso.clear()")
            emit(f"                iso[{var}] = j")
            emit("        else:")
            emit("            try:")
            emit(f"                j = PARSERS['date'](raw_{var}).isoformat()")
            emit("            except BadValue:")
            emit("                return None")
            emit(f"        custom.append({key}\"' + j + '\"')")
            continue
        typed(var, field_type, "j", "        ")
        if field_type in ("integer", "boolean"):
            emit(
                f"        custom.append({key}' + ('true' if j is True else 'false' if j is False "
                "else str(j)))"
            )
        else:
            emit(f"        custom.append({key}' + json_text(j))")
    # Phones, in column order; a bad number means a warning or an error: the generic reader.
    emit("    found = []")
    for k, (index, name, _p, _normalise) in enumerate(reader.phone_specs):
        # The line's start for each position this column's number can take.
        starts = tuple(f"\t{position}\t{n.copy_escape(name)}\t" for position in range(k + 1))
        env[f"STARTS_{index}"] = starts
        var = f"p{index}"
        emit(f"    {var} = cells[{index}]")
        emit(f"    if type({var}) is not str: {var} = as_text({var})")
        emit(f"    if {var} and not {var}.isspace():")
        emit(f"        r = normalise_phone({var})")
        emit("        if r is None: return None")
        emit(f"        found.append((r[0], STARTS_{index}[len(found)], r[1]))")
    emit("    if not found: return None")
    # The record's zone: TimeZone column > zip > phone > the upload's default.
    emit("    zone = None")
    emit("    source = ''")
    if "TimeZone" in system:
        emit("    if f_TimeZone:")
        emit("        zone = tz_column(f_TimeZone)")
        emit("        if zone is None: return None")
        emit("        source = SRC_COLUMN")
    if "Zip" in system:
        emit("    if zone is None and f_Zip:")
        emit("        zone = from_zip(f_Zip)")
        emit("        if zone: source = SRC_ZIP")
    emit("    if zone is None:")
    emit("        for item in found:")
    emit("            if item[2]:")
    emit("                zone = item[2]")
    emit("                source = SRC_PHONE")
    emit("                break")
    emit("        else:")
    emit("            if not default_zone: return None")
    emit("            zone = default_zone")
    emit("            source = SRC_DEFAULT")
    # A zone the business unit does not allow is a warning (or needs the numbers' zones
    # mapped to allowed twins): the generic reader.
    emit("    if zone not in allowed:")
    emit("        zone = twin(zone)")
    emit("        if zone not in allowed: return None")
    emit("    for item in found:")
    emit("        if item[2] and item[2] not in allowed: return None")
    # Expiry: a date already past is a warning.
    if "ExpirationDate" in system:
        emit("    expires = x_ExpirationDate or batch_expires")
    else:
        emit("    expires = batch_expires")
    emit("    if expires is not None:")
    emit("        if expires < today: return None")
    emit("        expires = expires.isoformat()")
    emit("    else:")
    emit("        expires = NULL")
    priority = "('t' if x_Priority else 'f')" if "Priority" in system else "'f'"
    score = "(NULL if x_Score is None else str(x_Score))" if "Score" in system else "NULL"
    custom = "('{' + ','.join(custom) + '}')" if reader.custom else "'{}'"

    def text_of(name: str) -> str:
        return f"f_{name}" if name in system else "''"

    parts = ["f_ExternalId", *(text_of(f) for f in _TEXT_FIELDS), "zone", "source", priority,
             score, text_of("Customer1"), text_of("Customer2"), "expires", custom]  # fmt: skip
    # The whole line after the record's id: the import's constant columns around the values.
    head, tail = s.record_constants
    if "\\" in head + tail or "\n" in head + tail or "\r" in head + tail:
        return None  # (they never do: numbers and a timestamp)
    env["HEAD"], env["TAIL"] = head, tail
    tabs = len(parts) + 2 + head.count("\t") + tail.count("\t")  # 3 more items
    emit("    text = TAB.join(('', HEAD, " + ", ".join(parts) + ", TAIL))")
    # Nothing the user wrote may need escaping: the only backslashes are the NULL markers.
    nulls = "(x_Score is None)" if "Score" in system else "1"
    emit(f"    if (text.count(BACKSLASH) != {nulls} + (expires is NULL) or NEWLINE in text")
    emit(f"            or RETURN in text or text.count(TAB) != {tabs}):")
    emit("        return None")
    emit("    numbers = []")
    emit("    for phone, start, phone_zone in found:")
    emit("        phone_zone = phone_zone or zone")
    emit("        end = number_ends.get(phone_zone)")
    emit("        if end is None:")
    emit("            end = number_ends[phone_zone] = TAB + escape(phone_zone) + NUMBER_TAIL")
    emit("        numbers.append(start + phone + end)")
    emit("    return f_ExternalId, text + NEWLINE, numbers")
    source = "\n".join(lines) + "\n"
    namespace = dict(env)
    exec(compile(source, "<pcsms fast row>", "exec"), namespace)  # noqa: S102 (our own code)
    fast = namespace["fast"]
    fast.source = source
    return fast
