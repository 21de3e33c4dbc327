"""What the demo texts and emails with: a provisioned long code (5 msg/s) and short code
(100 msg/s), an SMS registration on the long code pinned to the simulator backend so the demo
never reaches a real carrier, the two active message templates; and for email a provisioned
sender (its From address, 10 msg/s), its registration pinned to Django's SMTP backend (the demo
points EMAIL_URL at its local SMTP sink, and every demo address is at example.com) and an
active email template.
"""

from __future__ import annotations

import datetime as dt

from messaging.models import Channel, MessageTemplate, SmsRegistration, TransportCode
from pcsms.models import BusinessUnit
from skills.demo.constants import (
    APPOINTMENT_TEMPLATE,
    EMAIL_REGISTRATION_NAME,
    EMAIL_SENDER,
    EMAIL_TEMPLATE,
    LONG_CODE,
    PAYMENT_TEMPLATE,
    REGISTRATION_NAME,
    SHORT_CODE,
    SIMULATOR_BACKEND,
    SMTP_BACKEND,
)
from skills.demo.report import DemoDataError, SeedReport, _ensure


def _seed_sending(report: SeedReport, bu: BusinessUnit, today: dt.date) -> SmsRegistration:
    codes = {}
    for number, kind, rate, requested_days, provisioned_days, notes in (
        (
            LONG_CODE,
            TransportCode.Kind.LONG,
            "5",
            44,
            30,
            "Demo 10DLC number (the seed's long-code pace: 5 msg/s).",
        ),
        (
            SHORT_CODE,
            TransportCode.Kind.SHORT,
            "100",
            100,
            40,
            "Demo short code for high-volume campaigns.",
        ),
    ):
        code, created = _ensure(
            report,
            TransportCode,
            {"number": number},
            {
                "business_unit": bu,
                "kind": kind,
                "messages_per_second": rate,
                "provisioning_status": TransportCode.Provisioning.PROVISIONED,
                "requested_on": today - dt.timedelta(days=requested_days),
                "provisioned_on": today - dt.timedelta(days=provisioned_days),
                "notes": notes,
            },
        )
        if code.business_unit_id != bu.pk:
            raise DemoDataError(f"Transport code {number} belongs to another business unit.")
        rate = f"{code.messages_per_second:.2f}".rstrip("0").rstrip(".")
        report.part(f"Transport code {code}", created, f" ({rate} msg/s)")
        codes[kind] = code

    registration, created = _ensure(
        report,
        SmsRegistration,
        {"business_unit": bu, "name": REGISTRATION_NAME},
        {
            "transport_code": codes[TransportCode.Kind.LONG],
            "carrier_account": "default",
            # The list's numbers are valid and may be real: keep the demo off real carriers.
            "backend": SIMULATOR_BACKEND,
        },
    )
    report.part(f'SMS registration "{REGISTRATION_NAME}"', created, " (simulator backend)")
    return registration


def _seed_templates(report: SeedReport, bu: BusinessUnit):
    templates = []
    for name, body in (APPOINTMENT_TEMPLATE, PAYMENT_TEMPLATE):
        template, created = _ensure(
            report,
            MessageTemplate,
            {"business_unit": bu, "name": name},
            {"body": body, "is_active": True},
        )
        report.part(f'Message template "{name}"', created)
        templates.append(template)
    return templates


def _seed_email_sending(report: SeedReport, bu: BusinessUnit, today: dt.date) -> SmsRegistration:
    code, created = _ensure(
        report,
        TransportCode,
        {"number": EMAIL_SENDER},
        {
            "business_unit": bu,
            "kind": TransportCode.Kind.EMAIL,
            "messages_per_second": "10",
            "provisioning_status": TransportCode.Provisioning.PROVISIONED,
            "requested_on": today - dt.timedelta(days=14),
            "provisioned_on": today - dt.timedelta(days=10),
            "notes": "Demo email sender (the From address of the demo's emails).",
        },
    )
    if code.business_unit_id != bu.pk:
        raise DemoDataError(f"Transport code {EMAIL_SENDER} belongs to another business unit.")
    report.part(f"Email sender {code.number}", created, " (10 msg/s)")

    registration, created = _ensure(
        report,
        SmsRegistration,
        {"business_unit": bu, "name": EMAIL_REGISTRATION_NAME},
        {
            "transport_code": code,
            # SMTP, to the sink the demo runs (EMAIL_URL); the addresses are at example.com.
            "backend": SMTP_BACKEND,
        },
    )
    report.part(f'Email registration "{EMAIL_REGISTRATION_NAME}"', created, " (SMTP backend)")
    return registration


def _seed_email_template(report: SeedReport, bu: BusinessUnit) -> MessageTemplate:
    name, subject, body, html_body = EMAIL_TEMPLATE
    template, created = _ensure(
        report,
        MessageTemplate,
        {"business_unit": bu, "name": name},
        {
            "channel": Channel.EMAIL,
            "subject": subject,
            "body": body,
            "html_body": html_body,
            "is_active": True,
        },
    )
    report.part(f'Email template "{name}"', created)
    return template
