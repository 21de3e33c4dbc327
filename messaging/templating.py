"""Message templates: the one parser behind validation, live preview and sending.

A template is SMS text with calling-list fields in braces::

    Hi {FirstName|there}, your appointment is on {AppointmentDate}. Reply STOP to opt out.

Rules (the admin help text and any JavaScript preview must follow these exactly):

- ``{Name}`` inserts the record's field ``Name``. Names use ASCII letters, digits and underscores
  and start with a letter or underscore. Lookup ignores case: ``{firstname}`` is ``FirstName``.
  Spaces just inside the braces are ignored: ``{ FirstName }`` is ``{FirstName}``.
- ``{Name|fallback}`` inserts ``fallback`` when the value is missing, None, empty or only
  whitespace. The fallback is plain text from the first ``|`` up to the closing ``}``, kept as
  written (spaces included); it may contain ``|`` but no brace of either kind, and no line break.
  Without a fallback an empty value inserts nothing.
- ``{{`` and ``}}`` write a literal ``{`` and ``}`` anywhere outside a variable.
- A variable never spans lines: a ``{`` with no ``}`` before the end of its line is unclosed.

Sending renders the same template for every record of a list, so :func:`parse` compiles the body
once into a specialised function; rendering then costs a few dictionary lookups and one join.
This module needs neither Django nor a database.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from html import escape as html_escape

__all__ = [
    "MAX_BODY_LENGTH",
    "EMAIL_SYSTEM_FIELDS",
    "PHONE_SYSTEM_FIELDS",
    "RECORD_SYSTEM_FIELDS",
    "SYSTEM_FIELDS",
    "CompiledTemplate",
    "TemplateProblem",
    "TemplateSyntaxError",
    "parse",
    "validate",
]

# Twilio refuses bodies longer than this (docs/spec.md section 5).
MAX_BODY_LENGTH = 1600

# The one vocabulary of a calling-list record's system fields, in the order templates list them:
# field name -> Record attribute. The two phone fields and Email have none: a record's numbers
# and addresses are its destinations, each remembering the column it came from. The import's table
# (skills/importing/fields.py) adds aliases, types and lengths to these names.
RECORD_SYSTEM_FIELDS: dict[str, str] = {
    "ExternalId": "external_id",
    "FirstName": "first_name",
    "LastName": "last_name",
    "Address": "address",
    "City": "city",
    "State": "state",
    "Zip": "zip_code",
    "TimeZone": "time_zone",
    "Priority": "priority",
    "Score": "score",
    "Customer1": "customer1",
    "Customer2": "customer2",
    "ExpirationDate": "expires_on",
    "PhoneNumber": "",
    "SMSPhoneNumber": "",
    "Email": "",
}
SYSTEM_FIELDS: tuple[str, ...] = tuple(RECORD_SYSTEM_FIELDS)  # the template variables
EMAIL_SYSTEM_FIELDS: tuple[str, ...] = ("Email",)
PHONE_SYSTEM_FIELDS: tuple[str, ...] = tuple(
    n for n, a in RECORD_SYSTEM_FIELDS.items() if not a and n not in EMAIL_SYSTEM_FIELDS
)


def _where(body: str, position: int) -> tuple[int, int]:
    """1-based (line, column) of ``position``: where an editor shows the cursor."""
    line = body.count("\n", 0, position) + 1
    column = position - body.rfind("\n", 0, position)
    return line, column


class TemplateSyntaxError(ValueError):
    """A malformed template body; carries where, so the admin page can highlight the spot."""

    def __init__(self, message: str, position: int, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """One reason a template cannot be saved, in words an administrator can act on.

    ``code`` is one of ``syntax``, ``unknown_field``, ``empty`` and ``too_long`` so that callers can
    group problems without parsing messages; ``position`` is None when the problem has no place.
    """

    message: str
    position: int | None = None
    line: int | None = None
    column: int | None = None
    code: str = "syntax"


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str  # as written, surrounding spaces removed
    fallback: str
    position: int  # index of the opening brace


def _scan(body: str) -> tuple[list[str | _Variable], list[TemplateSyntaxError]]:
    """Split ``body`` into literal runs and variables, collecting every syntax error.

    After an error the scanner carries on (a bad ``{`` is read as text) so that :func:`validate`
    can report all problems in one pass while :func:`parse` raises the first.
    """
    parts: list[str | _Variable] = []
    errors: list[TemplateSyntaxError] = []
    text: list[str] = []
    n = len(body)
    i = 0

    def error(what: str, position: int, advice: str) -> None:
        line, column = _where(body, position)
        message = f"{what} at position {position} (line {line}, column {column}): {advice}"
        errors.append(TemplateSyntaxError(message, position, line, column))

    while i < n:
        open_at = body.find("{", i)
        close_at = body.find("}", i)
        if open_at < 0:
            open_at = n
        if close_at < 0:
            close_at = n
        stop = min(open_at, close_at)
        if stop > i:
            text.append(body[i:stop])
            i = stop
            continue
        if body[i] == "}":
            if body.startswith("}", i + 1):
                text.append("}")
                i += 2
            else:
                error("Unmatched '}'", i, "write '}}' for a literal brace")
                i += 1
            continue
        if body.startswith("{", i + 1):
            text.append("{")
            i += 2
            continue
        # A variable: it ends at the first '}', and may not contain '{' or a line break.
        end = i + 1
        while end < n and body[end] not in "{}\n":
            end += 1
        if end >= n or body[end] != "}":
            error("Unclosed '{'", i, "add '}' or write '{{' for a literal brace")
            text.append("{")
            i += 1
            continue
        raw = body[i : end + 1]
        name, _, fallback = raw[1:-1].partition("|")
        name = name.strip()
        if not name:
            error(
                f"Empty variable {raw!r}",
                i,
                "put a field name inside, e.g. '{FirstName}', or write '{{' and '}}' for braces",
            )
        # ASCII isidentifier() is exactly [A-Za-z_][A-Za-z0-9_]*, without a regex.
        elif not (name.isascii() and name.isidentifier()):
            error(
                f"Invalid variable name {name!r}",
                i,
                "use letters, digits and underscores, starting with a letter or underscore",
            )
        else:
            if text:
                parts.append("".join(text))
                text = []
            parts.append(_Variable(name, fallback, i))
        i = end + 1
    if text:
        parts.append("".join(text))
    return parts, errors


def _to_text(value: object) -> str:
    """Text for a non-str field value: None is empty, dates are ISO 8601, the rest ``str()``."""
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.time):  # datetime is a date too
        return value.isoformat()
    return str(value)


def _fill(value: object, fallback: str) -> str:
    """Slow path of a render: a value that is not a non-blank str."""
    text = value if value.__class__ is str else _to_text(value)
    return text if text and not text.isspace() else fallback


# render_lower(values, *slot_keys): the optional keys say under which spelling each slot's
# field is stored in ``values``; by default the lowercase names.
_RenderFn = Callable[..., str]

# How many key layouts (tuple of a record's keys) one template remembers for render().
_LAYOUT_CACHE_SIZE = 64


def _compile(parts: list[str | _Variable], escape: Callable[[str], str] | None = None) -> _RenderFn:
    """Build one straight-line function for these parts (about twice as fast as a loop);
    ``escape`` is applied to every merged value (fallbacks too), never to the template's text.

    The generated source holds only generated identifiers (``_k0``, ``_f0``, ``_l0``...); every
    piece of template text reaches the function as a bound constant, never as code, so no body
    can inject anything.
    """
    namespace: dict[str, object] = {"_fill": _fill, "_escape": escape}
    params = ["values"]
    lines = ["    get = values.get"]
    pieces: list[str] = []
    for index, part in enumerate(parts):
        if isinstance(part, str):
            namespace[f"_l{index}"] = part
            pieces.append(f"_l{index}")
            continue
        v = f"v{index}"
        namespace[f"_k{index}"] = part.name.lower()
        namespace[f"_f{index}"] = part.fallback
        params.append(f"k{index}=_k{index}")
        lines += [
            f"    {v} = get(k{index})",
            # Fast path: a non-blank str is used as is; anything else goes through _fill.
            f"    if {v}.__class__ is not str or not {v} or {v}.isspace():",
            f"        {v} = _fill({v}, _f{index})",
        ]
        if escape is not None:
            lines.append(f"    {v} = _escape({v})")
        pieces.append(v)
    if not pieces:
        lines.append("    return ''")
    elif len(pieces) == 1:
        lines.append(f"    return {pieces[0]}")
    else:
        lines.append(f"    return ''.join(({', '.join(pieces)},))")
    source = f"def _render({', '.join(params)}):\n" + "\n".join(lines)
    exec(source, namespace)  # noqa: S102 - source built from generated identifiers only
    return namespace["_render"]  # type: ignore[return-value]


class CompiledTemplate:
    """A parsed body, ready to render many records; safe to share across threads.

    Its only mutable state is the cache of key layouts used by :meth:`render`, which is
    rebuilt on demand, so a lost update under concurrency costs a little time, never a wrong text.
    """

    __slots__ = ("body", "variables", "render_lower", "_slot_keys", "_layouts")

    body: str
    variables: tuple[str, ...]
    render_lower: _RenderFn

    def __init__(
        self, body: str, parts: list[str | _Variable], escape: Callable[[str], str] | None = None
    ) -> None:
        self.body = body
        seen: dict[str, str] = {}
        for part in parts:
            if isinstance(part, _Variable):
                seen.setdefault(part.name.lower(), part.name)
        # Unique case-insensitively, first spelling kept, in order of appearance.
        self.variables = tuple(seen.values())
        self._slot_keys = tuple(p.name.lower() for p in parts if isinstance(p, _Variable))
        self._layouts: dict[tuple[object, ...], tuple[object, ...]] = {}
        #: ``render_lower(values_lower)``: the fast path for callers whose keys are already
        #: lowercase (the sender builds such dicts once per record).
        self.render_lower = _compile(parts, escape)

    def render(self, values: Mapping[str, object]) -> str:
        """Merge ``values`` (keys in any case) into the body.

        Records of one list share a key layout, so the spelling of each field is worked out once
        per layout and remembered: no lowercased copy of every record.
        """
        layout = tuple(values)
        keys = self._layouts.get(layout)
        if keys is None:
            keys = self._spellings(layout)
        return self.render_lower(values, *keys)

    def _spellings(self, layout: tuple[object, ...]) -> tuple[object, ...]:
        """For each variable slot, the key it is stored under in records with this layout."""
        actual: dict[str, object] = {}
        for key in layout:
            actual.setdefault(str(key).lower(), key)
        # A field the record lacks keeps its lowercase name: not found, so the fallback applies.
        keys = tuple(actual.get(name, name) for name in self._slot_keys)
        if len(self._layouts) >= _LAYOUT_CACHE_SIZE:
            self._layouts.clear()
        self._layouts[layout] = keys
        return keys

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.body!r})"


@lru_cache(maxsize=512)
def parse(body: str, *, html: bool = False) -> CompiledTemplate:
    """Compile ``body``, raising :class:`TemplateSyntaxError` for the first syntax error.

    ``html=True``: an email's HTML body. Every merged value and fallback is HTML-escaped
    (``<``, ``>``, ``&`` and both quotes), so a record's field can never add markup or break
    out of an attribute; the template's own markup is kept as written.

    Cached because every worker merges the same few templates over and over.
    """
    parts, errors = _scan(body)
    if errors:
        raise errors[0]
    return CompiledTemplate(body, parts, escape=html_escape if html else None)


@dataclass(frozen=True, slots=True)
class Merged:
    """A template merged with one record: the text (an email's plain-text part) and, for an
    email, its subject and HTML part."""

    body: str
    subject: str = ""
    html_body: str = ""


class MessageParts:
    """A template's parts compiled once for a planning pass: the body, and for an email the
    subject (merged on one line: a field's line break must not end the header) and the HTML
    part (every merged value escaped)."""

    def __init__(self, body: str, subject: str = "", html_body: str = "") -> None:
        self.body = parse(body)
        self.subject = parse(subject) if subject else None
        self.html = parse(html_body, html=True) if html_body else None

    def render(self, values: Mapping[str, object]) -> Merged:
        return Merged(
            body=self.body.render(values),
            subject=" ".join(self.subject.render(values).split()) if self.subject else "",
            html_body=self.html.render(values) if self.html else "",
        )


def validate(
    body: str, known_fields: Iterable[str], max_length: int = MAX_BODY_LENGTH
) -> list[TemplateProblem]:
    """Every reason ``body`` cannot be saved, in body order (empty list when it is fine).

    ``known_fields`` are the names a template may use (usually :data:`SYSTEM_FIELDS` plus the
    list's custom fields); matching ignores case, and a near miss gets a suggestion.
    """
    problems: list[TemplateProblem] = []
    if not body or body.isspace():
        return [TemplateProblem("The message is empty: write the text to send.", code="empty")]

    parts, errors = _scan(body)
    problems.extend(
        TemplateProblem(e.message, e.position, e.line, e.column, code="syntax") for e in errors
    )

    canonical = {name.lower(): name for name in known_fields}
    for part in parts:
        if not isinstance(part, _Variable) or part.name.lower() in canonical:
            continue
        line, column = _where(body, part.position)
        message = (
            f"Unknown field {part.name!r} at position {part.position} "
            f"(line {line}, column {column})"
        )
        close = difflib.get_close_matches(part.name.lower(), list(canonical), n=1)
        if close:
            message += f": did you mean {canonical[close[0]]!r}?"
        else:
            message += ": it is neither a system field nor a custom field of the list"
        problems.append(TemplateProblem(message, part.position, line, column, "unknown_field"))

    if len(body) > max_length:
        line, column = _where(body, max_length)
        problems.append(
            TemplateProblem(
                f"The message is {len(body):,} characters; the limit is {max_length:,}. "
                f"Text from position {max_length} (line {line}, column {column}) is over.",
                max_length,
                line,
                column,
                "too_long",
            )
        )
    problems.sort(key=lambda p: (p.position is None, p.position or 0))
    return problems
