"""The demo's calling list: the list, its ``AppointmentDate`` field, and the generated people as
records with their numbers as destinations. Records missing from the list are added, records
already there are left as they are.
"""

from __future__ import annotations

import datetime as dt

from pcsms.models import BusinessUnit
from skills.demo.constants import LIST_NAME
from skills.demo.people import DemoRecord
from skills.demo.report import SeedReport, _ensure, _validate
from skills.models import CallingList, CustomField, Destination, FieldType, Record


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
    report.records = calling_list.records.count()
    if created or not missing:
        detail = f" ({report.records} records)"
    else:
        detail = f"; {len(missing)} missing records added ({report.records} records)"
    report.part(f'Calling list "{LIST_NAME}"', created, detail)
    return calling_list
