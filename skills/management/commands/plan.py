"""``manage.py plan``: one planning pass in the foreground (what the minute tick does)."""

from __future__ import annotations

from django.core.management.base import CommandError

from pcsms.commands import JsonCommand, business_unit_named, one_named, write_json
from skills.models import Skill
from skills.planner import plan_tick


class Command(JsonCommand):
    help = (
        "Run one planning pass now: apply schedules, withdraw stale texts, settle outcomes, "
        "then queue the next few minutes of texts for every running skill (or one skill). "
        "The same pass the django-q2 schedule runs every minute."
    )

    def add_arguments(self, parser):
        parser.add_argument("--skill", help="Plan only this skill.")
        parser.add_argument(
            "--business-unit",
            help="Name of the skill's business unit; needed only when skills of several "
            "business units have that name.",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, skill=None, business_unit=None, **options):
        skills = None
        if business_unit and not skill:
            business_unit_named(business_unit)  # a misspelt name is an error, not "no skill"
            raise CommandError("--business-unit says where --skill is: give --skill too.")
        if skill:
            found = one_named(Skill.objects.all(), skill, business_unit, noun="skill")
            if found.state != Skill.State.RUNNING:
                raise CommandError(
                    f'Skill "{skill}" is {found.get_state_display().lower()}, not running: '
                    f'start it first (manage.py skill start "{skill}" '
                    f'--business-unit "{found.business_unit.name}").'
                )
            skills = [found]
        tick = plan_tick(skills=skills)
        if options["json"]:
            write_json(self, tick.as_dict())
            return
        for change in tick.schedule:
            self.stdout.write(f'Schedule: skill "{change["skill"]}" {change["action"]}')
        if not tick.skills:
            self.stdout.write("No running skill.")
        for result in tick.skills:
            self.stdout.write(
                f'Skill "{result.skill}" ({result.business_unit}): planned {result.planned} '
                f"texts ({result.cost} of {result.limit} units), looked at {result.scanned} "
                f"records, state {result.state or 'running'}"
            )
            if result.state in ("", "running") and not result.error:
                zones = ", ".join(result.zones_open) or "none (outside every zone's window)"
                self.stdout.write(f"  zones open now: {zones}")
            if result.stale_withdrawn:
                self.stdout.write(f"  stale texts withdrawn: {result.stale_withdrawn}")
            for reason, n in sorted(result.finalized.items()):
                self.stdout.write(f"  finalized {reason}: {n}")
            for reason, n in sorted(result.skipped.items()):
                self.stdout.write(f"  waiting ({reason}): {n}")
            if result.too_long:
                self.stdout.write("  too long (not sent): " + ", ".join(result.too_long))
            for warning in result.warnings:
                self.stdout.write(self.style.WARNING(f"  {warning}"))
            if result.completed:
                self.stdout.write(self.style.SUCCESS("  completed: every record is final"))
            if result.error:
                self.stdout.write(self.style.ERROR(f"  error: {result.error}"))
        self.stdout.write(f"{tick.planned} texts planned in {tick.seconds:.2f} s.")
