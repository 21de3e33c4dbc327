"""Demo data: one business unit ready to text a 200-record list (``manage.py seed_demo``).

Everything is keyed on natural keys (BU name, list name, external IDs, numbers) and only ever
created, never updated, so seeding twice leaves the database as the first run left it, and an
administrator's edits to the demo objects survive a re-seed. Records are generated from a fixed
random seed, so every database gets the same 200 people and numbers.

The generated numbers are valid US numbers (the import rules reject anything else), which means
some may belong to real people: the demo registration is pinned to the simulator backend so
starting the demo skill never reaches a real carrier, whatever ``SMS_BACKEND`` says.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

import phonenumbers
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from dnc.models import DncEntry, DncGroup
from messaging.models import MessageTemplate, SmsRegistration, TransportCode
from pcsms.models import BusinessUnit, Membership
from skills.models import (
    CallingList,
    Campaign,
    CustomField,
    Destination,
    FieldType,
    Record,
    Skill,
    TimeZoneSource,
)
from skills.services import skill_apply_defaults

BU_NAME = "Demo Contact Centre"
LIST_NAME = "Demo patients"
SKILL_NAME = "Demo reminders"
CAMPAIGN_NAME = "Spring reminders"
DNC_GROUP_NAME = "Default DNC"
REGISTRATION_NAME = "Demo 10DLC"
LONG_CODE = "+13124705821"
SHORT_CODE = "55123"
ADMIN_USERNAME = "admin"
OPERATOR_USERNAME = "demo-operator"
DEMO_PASSWORD = "pcsms-demo"
RECORD_COUNT = 200
RANDOM_SEED = 2026
SIMULATOR_BACKEND = "messaging.backends.simulator.SimulatorBackend"
DEMO_APPS = ("pcsms", "dnc", "messaging", "skills")

ALLOWED_ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
]

APPOINTMENT_TEMPLATE = (
    "Appointment reminder",
    "Hi {FirstName|there}, this is Demo Health Clinic reminding you of your appointment on "
    "{AppointmentDate}. Reply STOP to opt out.",
)
PAYMENT_TEMPLATE = (
    "Payment due",
    "Hello {FirstName} {LastName}, your balance is due. Questions? Call 1-800-555-0199. "
    "Reply STOP to opt out.",
)


@dataclass(frozen=True)
class City:
    name: str
    state: str
    zone: str
    area_codes: tuple[str, ...]
    zips: tuple[str, ...]
    weight: int


CITIES = (
    City(
        "New York",
        "NY",
        "America/New_York",
        ("212", "646", "917"),
        ("10001", "10002", "10003", "10009", "10011", "10016", "10019", "10023", "10025", "10128"),
        14,
    ),
    City(
        "Boston",
        "MA",
        "America/New_York",
        ("617", "857"),
        ("02108", "02109", "02113", "02114", "02115", "02116", "02118", "02127", "02130"),
        5,
    ),
    City(
        "Atlanta",
        "GA",
        "America/New_York",
        ("404", "678", "470"),
        ("30303", "30305", "30306", "30307", "30308", "30309", "30312", "30318", "30324"),
        5,
    ),
    City(
        "Miami",
        "FL",
        "America/New_York",
        ("305", "786"),
        ("33125", "33127", "33130", "33131", "33133", "33137", "33142", "33145", "33155"),
        5,
    ),
    City(
        "Chicago",
        "IL",
        "America/Chicago",
        ("312", "773", "872"),
        ("60601", "60605", "60607", "60610", "60614", "60616", "60618", "60622", "60657"),
        9,
    ),
    City(
        "Dallas",
        "TX",
        "America/Chicago",
        ("214", "469", "972"),
        ("75201", "75204", "75205", "75206", "75214", "75219", "75225", "75230", "75248"),
        6,
    ),
    City(
        "Houston",
        "TX",
        "America/Chicago",
        ("713", "281", "832"),
        ("77002", "77004", "77006", "77007", "77019", "77024", "77030", "77056", "77098"),
        7,
    ),
    City(
        "Denver",
        "CO",
        "America/Denver",
        ("303", "720"),
        ("80202", "80203", "80205", "80206", "80209", "80210", "80218", "80220", "80238"),
        5,
    ),
    City(
        "Salt Lake City",
        "UT",
        "America/Denver",
        ("801", "385"),
        ("84101", "84102", "84103", "84105", "84106", "84108", "84109", "84111", "84115"),
        3,
    ),
    City(
        "Phoenix",
        "AZ",
        "America/Phoenix",
        ("602", "480", "623"),
        ("85003", "85004", "85006", "85008", "85013", "85014", "85016", "85018", "85028"),
        6,
    ),
    City(
        "Los Angeles",
        "CA",
        "America/Los_Angeles",
        ("213", "310", "323"),
        ("90004", "90012", "90019", "90024", "90027", "90034", "90036", "90045", "90064"),
        11,
    ),
    City(
        "Seattle",
        "WA",
        "America/Los_Angeles",
        ("206",),
        ("98101", "98102", "98103", "98105", "98107", "98109", "98112", "98115", "98122"),
        5,
    ),
    City(
        "San Francisco",
        "CA",
        "America/Los_Angeles",
        ("415", "628"),
        ("94102", "94103", "94107", "94109", "94110", "94114", "94117", "94118", "94122"),
        5,
    ),
)
ZONE_OF_AREA_CODE = {code: city.zone for city in CITIES for code in city.area_codes}

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony",
    "Margaret", "Mark", "Sandra", "Carlos", "Maria", "Luis", "Sofia", "Jose", "Camila", "Wei",
    "Mei", "Hiroshi", "Yuki", "Raj", "Priya", "Ahmed", "Fatima", "Kwame", "Amara", "Dmitri",
    "Olga", "Liam", "Emma", "Noah", "Olivia", "Ethan", "Ava", "Mason", "Isabella", "Lucas", "Mia",
    "Diego", "Chloe",
)  # fmt: skip

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Chen", "Patel", "Kim", "O'Brien", "Murphy",
    "Cohen", "Okafor", "Tanaka", "Kowalski", "Haddad",
)  # fmt: skip

STREETS = (
    "Main St", "Oak St", "Maple Ave", "Park Ave", "Washington St", "Lincoln Blvd", "Cedar Ln",
    "Elm St", "Highland Ave", "Pine St", "Madison Ave", "Jefferson St", "Grand Ave", "River Rd",
    "Hillside Dr", "Franklin St", "Broadway", "Sunset Blvd", "Lake St", "Church St",
)  # fmt: skip

DEPARTMENTS = ("Primary care", "Cardiology", "Dermatology", "Pediatrics", "Physical therapy")


@dataclass(frozen=True)
class DemoPhone:
    e164: str
    zone: str


@dataclass(frozen=True)
class DemoRecord:
    external_id: str
    first_name: str
    last_name: str
    address: str
    city: str
    state: str
    zip_code: str
    time_zone: str
    time_zone_source: str
    priority: bool
    score: int
    customer1: str
    customer2: str
    appointment_in_days: int
    phones: tuple[DemoPhone, ...]

    def appointment_date(self, today: dt.date) -> dt.date:
        day = today + dt.timedelta(days=self.appointment_in_days)
        return day + dt.timedelta(days=1) if day.weekday() == 6 else day  # clinic shut Sundays


def _phone(rng: random.Random, area_code: str, taken: set[str]) -> DemoPhone:
    """A valid US number in ``area_code``: exchange 200-999 but not 555 or N11, any line."""
    while True:
        exchange = rng.randint(200, 999)
        line = rng.randint(0, 9999)
        if exchange == 555 or exchange % 100 == 11:
            continue
        e164 = f"+1{area_code}{exchange:03d}{line:04d}"
        if e164 in taken or not phonenumbers.is_valid_number(phonenumbers.parse(e164)):
            continue
        taken.add(e164)
        return DemoPhone(e164, ZONE_OF_AREA_CODE[area_code])


def generate_records(
    count: int = RECORD_COUNT, seed: int = RANDOM_SEED
) -> tuple[list[DemoRecord], random.Random, set[str]]:
    """The demo list, the same on every run; also the generator and numbers used, for more."""
    rng = random.Random(seed)
    taken: set[str] = {LONG_CODE}
    weights = [city.weight for city in CITIES]
    records = []
    for i in range(1, count + 1):
        city = rng.choices(CITIES, weights)[0]
        first_name = rng.choice(FIRST_NAMES)
        if i % 100 == 25:  # a couple without a first name show the {FirstName|there} fallback
            first_name = ""
        phones = [_phone(rng, rng.choice(city.area_codes), taken)]
        if rng.random() < 0.25:
            # A second number, usually local, sometimes a cell kept from another part of the
            # country: its own time zone is what the window check uses.
            other = city if rng.random() < 0.8 else rng.choice(CITIES)
            phones.append(_phone(rng, rng.choice(other.area_codes), taken))
        apartment = f", Apt {rng.randint(1, 30)}{rng.choice('ABCD')}" if rng.random() < 0.3 else ""
        records.append(
            DemoRecord(
                external_id=f"DEMO-{i:04d}",
                first_name=first_name,
                last_name=rng.choice(LAST_NAMES),
                address=f"{rng.randint(10, 9899)} {rng.choice(STREETS)}{apartment}",
                city=city.name,
                state=city.state,
                zip_code=rng.choice(city.zips),
                time_zone=city.zone,
                time_zone_source=(
                    TimeZoneSource.PHONE if rng.random() < 0.3 else TimeZoneSource.COLUMN
                ),
                priority=rng.random() < 0.1,
                score=rng.randint(1, 100),
                customer1=f"MRN-{rng.randint(100000, 999999)}",
                customer2=rng.choice(DEPARTMENTS),
                appointment_in_days=rng.randint(1, 28),
                phones=tuple(phones),
            )
        )
    return records, rng, taken


class DemoDataError(Exception):
    """The demo data did not pass the models' validation (a bug in the demo or a model)."""


@dataclass
class SeedReport:
    lines: list[str] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    records: int = 0
    admin_password_is_demo: bool = False
    operator_password_is_demo: bool = False
    admin_is_superuser: bool = True

    def part(self, label: str, created: bool, detail: str = "") -> None:
        state = "created" if created else "already present"
        self.lines.append(f"{label}: {state}{detail}")

    def count(self, key: str, n: int = 1) -> None:
        if n:
            self.created[key] = self.created.get(key, 0) + n

    @property
    def changed(self) -> bool:
        return bool(self.created)

    def as_dict(self) -> dict:
        return {
            "business_unit": BU_NAME,
            "calling_list": LIST_NAME,
            "records": self.records,
            "skill": SKILL_NAME,
            "created": self.created,
            "changed": self.changed,
            "admin": {
                "username": ADMIN_USERNAME,
                "password": DEMO_PASSWORD if self.admin_password_is_demo else None,
                "is_superuser": self.admin_is_superuser,
            },
            "operator": {
                "username": OPERATOR_USERNAME,
                "password": DEMO_PASSWORD if self.operator_password_is_demo else None,
            },
            "steps": self.lines,
        }


def _ensure(
    report: SeedReport, model: type[models.Model], lookup: dict, defaults: dict | None = None
) -> tuple[models.Model, bool]:
    """Get by natural key, or build, validate like the admin would, and save. Never updates."""
    obj = model._default_manager.filter(**lookup).first()
    if obj is not None:
        return obj, False
    obj = model(**lookup, **(defaults or {}))
    _validate(obj)
    obj.save()
    report.count(model._meta.model_name)
    return obj, True


def _validate(obj: models.Model) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise DemoDataError(f"{obj._meta.verbose_name} {obj!s}: {exc.message_dict}") from exc


@transaction.atomic
def seed_demo(*, reset_password: bool = False, today: dt.date | None = None) -> SeedReport:
    """Create whatever part of the demo is missing, and say what was there already."""
    today = today or timezone.localdate()
    report = SeedReport()
    records, rng, taken = generate_records()

    bu, created = _ensure(
        report,
        BusinessUnit,
        {"name": BU_NAME},
        {
            "default_time_zone": "America/New_York",
            "allowed_time_zones": list(ALLOWED_ZONES),
            "business_name": "Demo Health Clinic",
            "support_contact": "support@example.com / 1-800-555-0199",
        },
    )
    report.part(f'Business unit "{BU_NAME}"', created)

    admin, operator = _seed_users(report, bu, reset_password)
    group = _seed_dnc(report, bu, records, rng, taken, admin, today)
    registration = _seed_sending(report, bu, today)
    # Before the templates: their validation knows {AppointmentDate} from the list's fields.
    calling_list = _seed_list(report, bu, records, today)
    appointment, _payment = _seed_templates(report, bu)
    campaign, created = _ensure(
        report,
        Campaign,
        {"business_unit": bu, "name": CAMPAIGN_NAME},
        {"description": "Appointment and billing reminders for the spring season."},
    )
    report.part(f'Campaign "{CAMPAIGN_NAME}"', created)

    skill, created = _ensure(
        report,
        Skill,
        {"business_unit": bu, "name": SKILL_NAME},
        {
            "campaign": campaign,
            "registration": registration,
            "template": appointment,
            "priority": 5,
            "state": Skill.State.STOPPED,
        },
    )
    # add() skips rows already linked, so a re-seed writes nothing here.
    for name, target in (
        ("calling_lists", calling_list),
        ("scrubbed_dnc_groups", group),
        ("contributing_dnc_groups", group),
    ):
        relation = getattr(skill, name)
        if not relation.filter(pk=target.pk).exists():
            relation.add(target)
            report.count(f"skill.{name}")
    # Fills only the parameter pages that are still empty.
    skill_apply_defaults(skill=skill)
    report.part(f'Skill "{SKILL_NAME}"', created, " (stopped, ready to start)")
    return report


def _seed_users(report: SeedReport, bu: BusinessUnit, reset_password: bool):
    User = get_user_model()
    users = []
    for username, superuser in ((ADMIN_USERNAME, True), (OPERATOR_USERNAME, False)):
        user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
        created = user is None
        if created:
            user = User(
                **{User.USERNAME_FIELD: username},
                email=f"{username}@example.com",
                is_staff=True,
                is_superuser=superuser,
            )
            user.set_password(DEMO_PASSWORD)
            _validate(user)
            user.save()
            report.count("user")
        reset = reset_password and not created and not user.check_password(DEMO_PASSWORD)
        if reset:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
            report.count("password_reset")
        detail = " (password reset)" if reset else ""
        report.part(f'User "{username}"', created, detail)
        users.append(user)
    admin, operator = users
    report.admin_is_superuser = admin.is_superuser
    report.admin_password_is_demo = admin.check_password(DEMO_PASSWORD)
    report.operator_password_is_demo = operator.check_password(DEMO_PASSWORD)

    membership, created = _ensure(
        report,
        Membership,
        {"user": operator, "business_unit": bu},
        {"role": Membership.Role.OPERATOR},
    )
    report.part(f'Membership of "{OPERATOR_USERNAME}" in "{BU_NAME}"', created)

    # Permissions normally exist after migrate; creating them is harmless when they do.
    for label in DEMO_APPS:
        create_permissions(apps.get_app_config(label), verbosity=0)
    missing = list(
        Permission.objects.filter(content_type__app_label__in=DEMO_APPS).exclude(
            pk__in=operator.user_permissions.values("pk")
        )
    )
    if missing:
        operator.user_permissions.add(*missing)
        report.count("permission", len(missing))
    report.part(
        f'Model permissions of "{OPERATOR_USERNAME}"',
        bool(missing),
        f" ({len(missing)} added)" if missing else "",
    )
    return admin, operator


def _seed_dnc(report, bu, records, rng, taken, admin, today) -> DncGroup:
    group = bu.dnc_groups.filter(is_default=True).first()
    created = False
    if group is None:
        group, created = _ensure(
            report,
            DncGroup,
            {"business_unit": bu, "name": DNC_GROUP_NAME},
            {"is_default": True, "description": "STOP replies and compliance entries."},
        )
    report.part(f'DNC group "{group.name}"', created)

    by_id = {r.external_id: r for r in records}
    now = timezone.now()
    # Three numbers of the list (two blocked, one whose entry has expired and no longer
    # blocks) and two from an imported suppression file that are not on the list.
    imported = [_phone(rng, code, taken).e164 for code in ("415", "646")]
    entries = [
        (
            by_id["DEMO-0007"].phones[0].e164,
            DncEntry.Source.MANUAL,
            "Patient asked at the front desk not to receive text messages.",
            None,
            45,
        ),
        (
            by_id["DEMO-0042"].phones[0].e164,
            DncEntry.Source.STOP_REPLY,
            f'Inbound "STOP" to {LONG_CODE} during an earlier campaign.',
            None,
            10,
        ),
        (
            by_id["DEMO-0099"].phones[0].e164,
            DncEntry.Source.MANUAL,
            "Temporary hold during a billing dispute (resolved; the entry has expired).",
            today - dt.timedelta(days=20),
            120,
        ),
        (
            imported[0],
            DncEntry.Source.FILE_IMPORT,
            "Imported from clinic-suppression-list.csv",
            None,
            90,
        ),
        (
            imported[1],
            DncEntry.Source.FILE_IMPORT,
            "Imported from clinic-suppression-list.csv",
            today + dt.timedelta(days=365),
            90,
        ),
    ]
    added = 0
    for number, source, evidence, expires_on, days_ago in entries:
        _entry, new = _ensure(
            report,
            DncEntry,
            {"group": group, "phone_number": number},
            {
                "source": source,
                "evidence": evidence,
                "expires_on": expires_on,
                "collected_at": now - dt.timedelta(days=days_ago),
                "added_by": admin if source == DncEntry.Source.MANUAL else None,
            },
        )
        added += new
    report.part(
        f'DNC entries in "{group.name}"',
        bool(added),
        f" ({added} added, {group.entries.count()} in the group)",
    )
    return group


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
