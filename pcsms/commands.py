"""What the management commands share so that they read alike to an operator: finding the
business unit (``--business-unit`` may be left out when the name given already says which),
one JSON document on stdout for ``--json``, and a progress line on a terminal.

Only ``pcsms`` is imported here: the commands of every app use it (skills > messaging > dnc >
pcsms, see ``[tool.importlinter]`` in pyproject.toml).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Model, QuerySet

from pcsms.models import BusinessUnit

# Enough names for an operator to recognise theirs; beyond that the list helps nobody.
LISTED = 20


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:LISTED])
    return shown + (", ..." if len(names) > LISTED else "")


def business_unit_list() -> str:
    """``business units: 'Acme', 'Globex'`` (or that there is none), for an error message."""
    names = list(BusinessUnit.objects.order_by("name").values_list("name", flat=True))
    return f"business units: {_names(names)}" if names else "there is no business unit yet"


def business_unit_named(name: str) -> BusinessUnit:
    """The business unit of that name, or an error that lists the ones there are."""
    bu = BusinessUnit.objects.filter(name=name).first()
    if bu is None:
        raise CommandError(f"No business unit named {name!r} ({business_unit_list()}).")
    return bu


def business_units_named(names: list[str] | None) -> QuerySet[BusinessUnit]:
    """The business units named (all of them when none is): a filter such as ``evidence``'s
    and ``config export``'s, where leaving ``--business-unit`` out means every one."""
    units = BusinessUnit.objects.all()
    if not names:
        return units
    units = units.filter(name__in=names)
    missing = sorted(set(names) - set(units.values_list("name", flat=True)))
    if missing:
        raise CommandError(
            f"No business unit named {', '.join(map(repr, missing))} ({business_unit_list()})."
        )
    return units


def only_business_unit(context: str = "") -> BusinessUnit:
    """The business unit when there is just one; otherwise an error asking for
    ``--business-unit`` (``context`` says what could not tell, e.g. a new list's name)."""
    units = list(BusinessUnit.objects.order_by("name")[: LISTED + 1])
    if len(units) == 1:
        return units[0]
    if not units:
        problem = "there is no business unit yet"
    else:
        names = _names([u.name for u in units])
        problem = f"there are several business units ({names}): give --business-unit"
    message = f"{context}; {problem}." if context else f"{problem[0].upper()}{problem[1:]}."
    raise CommandError(message)


def find_named(
    queryset: QuerySet, name: str, business_unit: str | None, *, plural: str
) -> tuple[Model | None, BusinessUnit | None]:
    """The row of ``queryset`` (a model with ``name`` and ``business_unit``) of that name, in
    ``business_unit`` if given, with that business unit; ``(None, the unit given or None)``
    when there is no such row. Errors: no such business unit (listing them), or several
    business units with a row of that name and none given (listing them)."""
    rows = queryset.select_related("business_unit").filter(name=name)
    if business_unit:
        bu = business_unit_named(business_unit)
        return rows.filter(business_unit=bu).first(), bu
    found = list(rows.order_by("business_unit__name")[: LISTED + 1])
    if len(found) > 1:
        raise several_business_units(plural, name, found)
    return (found[0], found[0].business_unit) if found else (None, None)


def one_named(
    queryset: QuerySet,
    name: str,
    business_unit: str | None,
    *,
    noun: str,
    plural: str | None = None,
) -> Model:
    """:func:`find_named`, where there must be one (``manage.py skill``, ``plan --skill``)."""
    row, bu = find_named(queryset, name, business_unit, plural=plural or f"{noun}s")
    if row is None:
        where = f" in business unit {bu.name!r}" if bu else ""
        raise CommandError(f"No {noun} {name!r}{where}.")
    return row


def several_business_units(plural: str, name: str, found: list[Model]) -> CommandError:
    units = _names([row.business_unit.name for row in found])
    return CommandError(
        f"{plural[0].upper()}{plural[1:]} named {name!r} are in several business units "
        f"({units}): give --business-unit."
    )


# --- --json ------------------------------------------------------------------------------------


def write_json(command: BaseCommand, data: Any, *, indent: int | None = None) -> None:
    """The one JSON document a ``--json`` run prints: nothing else goes to stdout."""
    command.stdout.write(json.dumps(data, indent=indent, default=str))
    command._json_written = True


class JsonCommand(BaseCommand):
    """A command with ``--json``: a run that fails prints one JSON document too, so a script
    that reads stdout always gets one.

    A failure of the command itself (a ``CommandError``) prints ``{"error": ...}`` unless the
    command already printed its own document (``write_json``); a bad argument on the command
    line prints ``{"error": ..., "usage": ...}`` and exits 2, as argparse does. The message
    still goes to stderr, and the exit status is the same, with or without ``--json``.
    """

    _json_written = False
    _json_argv = False

    def run_from_argv(self, argv):
        self._json_argv = "--json" in argv[2:]
        return super().run_from_argv(argv)

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        for each in _parsers(parser):
            each.error = self._parser_error(each)
        return parser

    def _parser_error(self, parser):
        plain = parser.error

        def error(message):
            if self._json_argv and parser.called_from_command_line:
                usage = parser.format_usage().strip()
                sys.stdout.write(json.dumps({"error": message, "usage": usage}) + "\n")
                sys.stdout.flush()
            plain(message)

        return error

    def execute(self, *args, **options):
        self._json_written = False
        try:
            return super().execute(*args, **options)
        except CommandError as exc:
            if options.get("json") and not self._json_written:
                write_json(self, {"error": str(exc)})
            raise


def _parsers(parser: argparse.ArgumentParser):
    """The parser and its subcommands' parsers (``manage.py skill status``, ``config apply``)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


# --- progress on a terminal --------------------------------------------------------------------


class _Raw:
    """A command's stdout without the newline Django's wrapper adds to every write."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


def progress_stream(command: BaseCommand, options: dict):
    """Where to draw progress: the command's stdout when it is a terminal, else ``None``
    (a pipe, a log, a test or ``--json`` wants only the result)."""
    if options.get("json") or not command.stdout.isatty():
        return None
    return _Raw(command.stdout)


class ProgressBar:
    """A one-line progress bar, redrawn in place with ``\\r``."""

    def __init__(self, stream, width: int = 30, unit: str = "rows"):
        self.stream = stream
        self.width = width
        self.unit = unit
        self.drawn = 0

    def update(self, done: int, total: int, phase: str = "", *, label: str = "") -> None:
        total = max(total, done, 1)
        filled = int(self.width * done / total)
        if not label:
            label = "saving..." if phase == "saving" else f"{done:,} / {total:,} {self.unit}"
        line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {label}"
        # Pad over the end of a longer line drawn before.
        self.stream.write(line.ljust(self.drawn))
        self.drawn = max(self.drawn, len(line))
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r" + " " * max(self.drawn, self.width + 40) + "\r")
        self.stream.flush()
