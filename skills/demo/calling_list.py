"""The demo's calling list: the list, its ``AppointmentDate`` field, and the generated people as
records with their numbers and email addresses as destinations. Records missing from the list
are added, records already there are left as they are, but for an ``Email`` destination given
to a demo record that has none (a list seeded before the demo had an email skill).
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Max

from pcsms.models import BusinessUnit
from skills.demo.constants import LIST_NAME
from skills.demo.people import DemoRecord
from skills.demo.report import SeedReport, _ensure, _validate
from skills.models import CallingList, CustomField, Destination, FieldType, Record

EMAIL_FIELD = "Email"  # the system field an email skill's default cadence reads


def _seed_list(
    report: SeedReport, bu: BusinessUnit, records: list[DemoRecord], today: dt.date
) -> CallingList:
    calling_list, created = _ensure(
        report,
        CallingList,
        {"business_unit": bu, "name": LIST_NAME},
        {"description": "Generated patients across the US mainland zones (seed_demo)."},
    )
    _ensure(
        report,
        CustomField,
        {"calling_list": calling_list, "name": "AppointmentDate"},
        {"field_type": FieldType.DATE, "position": 0},
    )

    present = set(calling_list.records.values_list("external_id", flat=True))
    missing = [r for r in records if r.external_id not in present]
    if missing:
        rows = [
            Record(
                calling_list=calling_list,
                external_id=r.external_id,
                first_name=r.first_name,
                last_name=r.last_name,
                address=r.address,
                city=r.city,
                state=r.state,
                zip_code=r.zip_code,
                time_zone=r.time_zone,
                time_zone_source=r.time_zone_source,
                priority=r.priority,
                score=r.score,
                customer1=r.customer1,
                customer2=r.customer2,
                custom={"AppointmentDate": r.appointment_date(today).isoformat()},
            )
            for r in missing
        ]
        for row in rows:
            _validate(row)
        Record.objects.bulk_create(rows)
        # Re-read the ids: not every backend returns them from bulk_create.
        ids = dict(
            calling_list.records.filter(
                external_id__in=[r.external_id for r in missing]
            ).values_list("external_id", "id")
        )
        destinations = [
            Destination(
                record_id=ids[r.external_id],
                position=position,
                source_field="SMSPhoneNumber" if position == 0 else "PhoneNumber",
                phone_number=phone.e164,
                time_zone=phone.zone,
            )
            for r in missing
            for position, phone in enumerate(r.phones)
        ]
        for destination in destinations:
            _validate(destination)
        Destination.objects.bulk_create(destinations)
        report.count("record", len(rows))
        report.count("destination", len(destinations))
    added_emails = _seed_emails(
        report, calling_list, records, fresh={r.external_id for r in missing}
    )
    report.records = calling_list.records.count()
    emails = Destination.objects.filter(
        record__calling_list=calling_list, source_field=EMAIL_FIELD
    ).count()
    if created or not (missing or added_emails):
        detail = f" ({report.records} records, {emails} with an email address)"
    else:
        added = []
        if missing:
            added.append(f"{len(missing)} missing records added")
        if added_emails:
            added.append(f"{added_emails} email addresses added")
        detail = f"; {', '.join(added)} ({report.records} records, {emails} with an email address)"
    report.part(f'Calling list "{LIST_NAME}"', created, detail)
    return calling_list


def _seed_emails(
    report: SeedReport, calling_list: CallingList, records: list[DemoRecord], fresh: set[str]
) -> int:
    """An ``Email`` destination, after the numbers, for each demo record that should have one
    and has none; how many were added beyond the records created just now."""
    wanted = {r.external_id: r.email for r in records if r.email}
    rows = list(
        calling_list.records.filter(external_id__in=wanted).annotate(
            last_position=Max("destinations__position")
        )
    )
    have = set(
        Destination.objects.filter(
            record__calling_list=calling_list, source_field=EMAIL_FIELD
        ).values_list("record_id", flat=True)
    )
    destinations = [
        Destination(
            record_id=row.id,
            position=0 if row.last_position is None else row.last_position + 1,
            source_field=EMAIL_FIELD,
            phone_number=wanted[row.external_id],
        )
        for row in rows
        if row.id not in have
    ]
    for destination in destinations:
        _validate(destination)
    Destination.objects.bulk_create(destinations)
    report.count("destination", len(destinations))
    external_ids = {row.id: row.external_id for row in rows}
    return sum(1 for d in destinations if external_ids[d.record_id] not in fresh)
