"""``manage.py config export|apply``: the system's configuration as a TOML file."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from pcsms.commands import (
    JsonCommand,
    ProgressBar,
    business_units_named,
    progress_stream,
    write_json,
)
from skills.config import ConfigError, config_apply, config_export


class Command(JsonCommand):
    help = (
        "Export the configuration (business units, custom zones, DNC groups, transport codes, "
        "registrations, templates, campaigns, skills with their parameters) as TOML, or apply "
        "such a file: all of it or, on any error, nothing. See skills/config.py."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="Print (or write) the configuration as TOML.")
        export.add_argument(
            "--business-unit",
            action="append",
            dest="units",
            metavar="NAME",
            help="Only this business unit (repeatable). Default: all.",
        )
        export.add_argument("--output", "-o", help="Write to this file instead of stdout.")
        export.add_argument(
            "--json",
            action="store_true",
            help="Print one JSON object: the business units exported and the file written "
            '(or, without --output, the TOML text as its "toml" member).',
        )
        apply = sub.add_parser("apply", help="Apply a TOML file.")
        apply.add_argument("path", help="The TOML file.")
        apply.add_argument(
            "--dry-run", action="store_true", help="Check and count, then change nothing."
        )
        apply.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, action, **options):
        if action == "export":
            return self._export(options)
        return self._apply(options)

    def _export(self, options):
        units = business_units_named(options.get("units"))
        text = config_export(units)
        output = options.get("output")
        if output:
            Path(output).write_text(text, encoding="utf-8")
        if options.get("json"):
            summary = {
                "business_units": sorted(units.values_list("name", flat=True)),
                "output": output,
                "bytes": len(text.encode("utf-8")),
            }
            if not output:
                summary["toml"] = text
            write_json(self, summary)
        elif not output:
            self.stdout.write(text, ending="")

    def _apply(self, options):
        path = Path(options["path"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise CommandError(f"{path}: the file is saved as UTF-16; save it as UTF-8 TOML.")
        try:
            # utf-8-sig: Windows editors may start a UTF-8 file with a byte-order mark.
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CommandError(
                f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02X} at byte {exc.start:,}). "
                "A configuration file is TOML, as `manage.py config export` writes it."
            ) from None
        try:
            stream = progress_stream(self, options)
            bar = ProgressBar(stream, unit="parts") if stream else None
            try:
                result = config_apply(
                    text, dry_run=options["dry_run"], progress=bar.update if bar else None
                )
            finally:
                if bar:
                    bar.close()
        except ConfigError as exc:
            if options["json"]:
                write_json(self, {"applied": False, "errors": exc.errors})
            raise CommandError(
                f"{path}: nothing was applied ({len(exc.errors)} problem(s)):\n"
                + "\n".join(f"  {e}" for e in exc.errors)
            ) from None
        if options["json"]:
            write_json(self, {"applied": not result.dry_run, **result.as_json()})
            return
        verb = "Would apply" if result.dry_run else "Applied"
        parts = []
        for label, counter in (
            ("created", result.created),
            ("updated", result.updated),
            ("unchanged", result.unchanged),
        ):
            if counter:
                items = ", ".join(f"{n} {what}" for what, n in sorted(counter.items()))
                parts.append(f"{label}: {items}")
        self.stdout.write(f"{verb} {path}. " + ("; ".join(parts) or "Nothing in it.") + ".")
