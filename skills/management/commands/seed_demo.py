"""``manage.py seed_demo``: a demo business unit, ready to start texting and emailing, and its
logins."""

from __future__ import annotations

from django.core.management.base import CommandError

from pcsms.commands import JsonCommand, write_json
from skills import demo


class Command(JsonCommand):
    help = (
        f'Create demo data (idempotent): business unit "{demo.BU_NAME}" allowing the four '
        "mainland US zones and America/Phoenix; a default DNC group with a few entries (one "
        f"expired); a provisioned long code ({demo.LONG_CODE}, 5 msg/s) and short code "
        f"({demo.SHORT_CODE}, 100 msg/s); an SMS registration on the long code (pinned to the "
        "simulator backend); two active templates; a campaign; the calling list "
        f'"{demo.LIST_NAME}" with {demo.RECORD_COUNT} generated records (some with two numbers, '
        f"about half with an address at {demo.EMAIL_DOMAIN}, two of them bouncing); "
        f'the stopped skill "{demo.SKILL_NAME}", ready to start; for email, a postal address on '
        f"the business unit, the sender {demo.EMAIL_SENDER} with a registration pinned to "
        "Django's SMTP backend (make demo points EMAIL_URL at a local SMTP sink), an active "
        f'email template and the stopped skill "{demo.EMAIL_SKILL_NAME}" on the same list; '
        'a superuser "admin" and a '
        f'BU-scoped staff user "demo-operator", both with password "{demo.DEMO_PASSWORD}". '
        "Only missing parts are created: running it again changes nothing, and existing "
        "passwords are kept unless --reset-password is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help=f'Set the password of "admin" and "demo-operator" to "{demo.DEMO_PASSWORD}" '
            "even when the users already exist.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print a machine-readable summary instead."
        )

    def handle(self, *args, **options):
        try:
            report = demo.seed_demo(reset_password=options["reset_password"])
        except demo.DemoDataError as exc:
            raise CommandError(f"Demo data failed validation, nothing was saved: {exc}") from exc

        if options["json"]:
            write_json(self, report.as_dict(), indent=2)
            return
        if options["verbosity"] >= 1:
            for line in report.lines:
                self.stdout.write(f"  {line}")
        summary = (
            f'business unit "{demo.BU_NAME}", {report.records} records, skills '
            f'"{demo.SKILL_NAME}" and "{demo.EMAIL_SKILL_NAME}".'
        )
        if report.changed:
            self.stdout.write(self.style.SUCCESS(f"Demo data ready: {summary}"))
        else:
            self.stdout.write(self.style.SUCCESS(f"Demo data already present: {summary}"))

        admin = demo.ADMIN_USERNAME
        operator = demo.OPERATOR_USERNAME
        kept = "(existing password kept; --reset-password sets it to the demo one)"
        admin_login = (
            f"{admin} / {demo.DEMO_PASSWORD}"
            if report.admin_password_is_demo
            else f"{admin} {kept}"
        )
        operator_login = (
            f"{operator} / {demo.DEMO_PASSWORD}"
            if report.operator_password_is_demo
            else f"{operator} {kept}"
        )
        self.stdout.write(f"Admin login: {admin_login}   (BU-scoped operator: {operator_login})")
        if not report.admin_is_superuser:
            self.stderr.write(
                self.style.WARNING(f'User "{admin}" already existed and is not a superuser.')
            )
