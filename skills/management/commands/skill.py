"""``manage.py skill start|pause|stop|status|report|forecast NAME``: a skill's state and what
holds its texts, its report and its forecast from the command line."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import CommandError
from django.db.models import Count

from messaging.models import OutboundMessage
from pcsms.commands import JsonCommand, one_named, write_json
from skills.diagnosis import skill_why
from skills.forecast import skill_forecast
from skills.models import Record, Skill
from skills.selectors import skill_dashboard
from skills.services import SkillStateError, skill_pause, skill_start, skill_stop
from skills.windows import schedule_zone


class Command(JsonCommand):
    help = (
        "Start, pause, stop a skill, show its status (texts by status, records open), or its "
        "report (records by outcome, texts by status, rate, time left, opt-outs: the dashboard), "
        "or its forecast (when it will finish, texts per day, what the forecast assumes)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "action", choices=["start", "pause", "stop", "status", "report", "forecast"]
        )
        parser.add_argument("name", help="The skill's name.")
        parser.add_argument(
            "--business-unit",
            help="Name of the business unit the skill is in; needed only when skills of several "
            "business units have that name.",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument(
            "--start",
            help="forecast: the moment it would start, ISO 8601 with its offset "
            "(e.g. 2026-12-08T09:00-06:00). Default: now.",
        )

    def handle(self, *args, action, name, business_unit, **options):
        skill = one_named(Skill.objects.all(), name, business_unit, noun="skill")
        if action == "report":
            return self._report(skill, options)
        if action == "forecast":
            return self._forecast(skill, options)
        withdrawn = None
        try:
            if action == "start":
                skill = skill_start(skill=skill)
            elif action == "pause":
                skill = skill_pause(skill=skill)
            elif action == "stop":
                skill, withdrawn = skill_stop(skill=skill)
        except SkillStateError as error:
            raise CommandError(error.message) from None
        texts = dict(
            OutboundMessage.objects.filter(attempt__skill=skill)
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        records = Record.objects.filter(calling_list__skills=skill)
        summary = {
            "skill": skill.name,
            "business_unit": skill.business_unit.name,
            "state": skill.state,
            "texts": texts,
            "records": records.count(),
            "records_final": records.filter(is_final=True).count(),
        }
        if withdrawn is not None:
            summary["withdrawn"] = withdrawn
        why = skill_why(skill)  # what holds its texts now (skills/diagnosis.py)
        summary["why"] = why.as_json()
        if options["json"]:
            write_json(self, summary)
            return
        self.stdout.write(f'Skill "{skill.name}" ({skill.business_unit.name}): {skill.state}')
        if withdrawn is not None:
            self.stdout.write(f"  {withdrawn} queued texts withdrawn")
        self.stdout.write(f"  records: {summary['records']} ({summary['records_final']} finalized)")
        for status, n in sorted(texts.items()):
            self.stdout.write(f"  texts {status}: {n}")
        self.stdout.write(f"  {why.headline}")
        for reason in why.reasons:
            self.stdout.write(f"    - {reason.text}")

    def _report(self, skill: Skill, options) -> None:
        data = skill_dashboard(skill).as_json()
        if options["json"]:
            write_json(self, {"skill": skill.name, **data})
            return
        write = self.stdout.write
        write(f'Skill "{skill.name}" ({skill.business_unit.name}): {", ".join(data["states"])}')
        write(
            f"  records: {data['records']:,}, finalized {data['finalized']:,} "
            f"({data['percent_done']}%), waiting for a text {data['waiting']:,}"
        )
        for reason, n in data["outcomes"]:
            write(f"    {reason}: {n:,}")
        write(f"  texts: {sum(n for _s, n in data['texts']):,}")
        for status, n in data["texts"]:
            write(f"    {status}: {n:,}")
        write(
            f"  last {data['rate_minutes']} min: {data['rate']} texts a minute; "
            f"time left: {data['eta_text']}; "
            f"opted out: {data['opted_out']:,}"
        )
        if data.get("forecast"):
            write(f"  {data['forecast']['summary']}")

    def _forecast(self, skill: Skill, options) -> None:
        start = None
        if options.get("start"):
            try:
                start = dt.datetime.fromisoformat(options["start"])
            except ValueError:
                raise CommandError(
                    f"--start {options['start']!r} is not an ISO 8601 time "
                    "(e.g. 2026-12-08T09:00-06:00)."
                ) from None
            if start.tzinfo is None:
                raise CommandError("--start needs its UTC offset (e.g. 2026-12-08T09:00-06:00).")
        forecast = skill_forecast(skill, now=start)
        if options["json"]:
            write_json(self, forecast.as_json())
            return
        write = self.stdout.write
        zone = schedule_zone(skill.business_unit)
        starts = forecast.starts_at.astimezone(zone)
        write(f'Forecast of skill "{skill.name}" ({skill.business_unit.name}), times in {zone}')
        write(f"  from {starts:%a %Y-%m-%d %H:%M}: {forecast.records:,} records to text")
        if forecast.finishes_at is None:
            write("  finishes: not within 60 days")
        else:
            write(
                f"  finishes: {forecast.finishes_at.astimezone(zone):%a %Y-%m-%d %H:%M} "
                f"(in {_duration(forecast.duration)}), {forecast.texts:,} texts"
            )
        write(f"  {'day':<16}{'texts':>10}{'done':>10}  hours")
        for day in forecast.days:
            hours = ""
            if day.first_text:
                hours = (
                    f"{day.first_text.astimezone(zone):%H:%M}-"
                    f"{day.last_text.astimezone(zone):%H:%M}"
                )
            write(f"  {day.day:%a %Y-%m-%d}  {day.texts:>10,}{day.finished:>10,}  {hours}")
        write("  assumes:")
        for words in forecast.assumptions:
            write(f"    - {words}")


def _duration(span: dt.timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    parts.append(f"{minutes} min")
    return " ".join(parts)
