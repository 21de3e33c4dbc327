"""``manage.py evidence NUMBER``: everything pcsms did with a number, and why, for a dispute."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import CommandError

from pcsms.commands import JsonCommand, business_units_named
from skills.evidence import (
    NotANumber,
    evidence_csv,
    evidence_json,
    evidence_pdf,
    normalise_number,
    number_evidence,
)


class Command(JsonCommand):
    help = (
        "The evidence of one number: every text sent to it with each status change, every reply, "
        "every DNC entry and its source, every rule that held a text back and when. Printed as "
        "a timeline, or written as JSON, CSV or PDF."
    )

    def add_arguments(self, parser):
        parser.add_argument("number", help="The phone number, any format (US if no +).")
        form = parser.add_mutually_exclusive_group()
        form.add_argument("--json", action="store_const", const="json", dest="form")
        form.add_argument("--csv", action="store_const", const="csv", dest="form")
        form.add_argument("--pdf", action="store_const", const="pdf", dest="form")
        parser.add_argument(
            "--business-unit",
            action="append",
            dest="units",
            help="Only this business unit (repeat; default: all).",
        )
        parser.add_argument("--output", "-o", help="Write to this file (a PDF needs one).")

    def handle(self, *args, number, form=None, units=None, output=None, **options):
        try:
            number = normalise_number(number)
        except NotANumber as exc:
            raise CommandError(str(exc)) from exc
        business_units = business_units_named(units)
        evidence = number_evidence(number, business_units)
        if form == "pdf":
            if not output:
                raise CommandError("A PDF needs --output FILE.")
            with open(output, "wb") as handle:
                handle.write(evidence_pdf(evidence))
            self.stderr.write(f"wrote {output} ({len(evidence.timeline)} events)")
            return
        if form == "json":
            content = evidence_json(evidence) + "\n"
        elif form == "csv":
            content = evidence_csv(evidence)
        else:
            lines = [f"Evidence for {number} ({', '.join(evidence.business_units) or '-'})"]
            for e in evidence.timeline:
                lines.append(
                    f"{e.at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC  {e.business_unit}  {e.what}"
                )
                if e.detail:
                    lines.append(f"    {e.detail}")
            if not evidence.timeline:
                lines.append("Nothing on record for this number.")
            content = "\n".join(lines) + "\n"
        if output:
            with open(output, "w", encoding="utf-8", newline="") as handle:
                handle.write(content)
            self.stderr.write(f"wrote {output} ({len(evidence.timeline)} events)")
        else:
            self.stdout.write(content, ending="")
