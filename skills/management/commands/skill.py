"""``manage.py skill start|pause|stop|status NAME``: a skill's state from the command line."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from messaging.models import OutboundMessage
from skills.models import Record, Skill
from skills.selectors import skill_dashboard
from skills.services import SkillStateError, skill_pause, skill_start, skill_stop


class Command(BaseCommand):
    help = (
        "Start, pause, stop a skill, show its status (texts by status, records open), or its "
        "report (records by outcome, texts by status, rate, time left, opt-outs: the dashboard)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "pause", "stop", "status", "report"])
        parser.add_argument("name", help="The skill's name.")
        parser.add_argument(
            "--business-unit", required=True, help="Name of the business unit the skill is in."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, action, name, business_unit, **options):
        try:
            skill = Skill.objects.select_related("business_unit").get(
                name=name, business_unit__name=business_unit
            )
        except Skill.DoesNotExist:
            raise CommandError(f'No skill "{name}" in business unit "{business_unit}".') from None
        if action == "report":
            return self._report(skill, options)
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
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(f'Skill "{skill.name}" ({skill.business_unit.name}): {skill.state}')
        if withdrawn is not None:
            self.stdout.write(f"  {withdrawn} queued texts withdrawn")
        self.stdout.write(f"  records: {summary['records']} ({summary['records_final']} finalized)")
        for status, n in sorted(texts.items()):
            self.stdout.write(f"  texts {status}: {n}")

    def _report(self, skill: Skill, options) -> None:
        data = skill_dashboard(skill).as_json()
        if options["json"]:
            self.stdout.write(json.dumps({"skill": skill.name, **data}))
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
            f"  last 15 minutes: {data['rate']} texts a minute; time left: {data['eta_text']}; "
            f"opted out: {data['opted_out']:,}"
        )
