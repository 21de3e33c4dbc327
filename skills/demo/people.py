"""The demo's generated people: 200 patients spread over thirteen US cities by population, each
with one or two valid US numbers whose area code fixes their time zone, an address, a priority,
a score and an appointment within four weeks; about half also have an email address at
example.com, two of which start with "bounce" (the demo's SMTP sink refuses those). A fixed
random seed makes every database get the same people, numbers and addresses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
from dataclasses import dataclass

import phonenumbers

from skills.demo.constants import EMAIL_DOMAIN, LONG_CODE, RANDOM_SEED, RECORD_COUNT
from skills.models import TimeZoneSource


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
    email: str = ""  # lower case, as Destination holds it; empty: no address

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
    return _with_emails(records, seed), rng, taken


EMAIL_SHARE = 0.5  # of the records that get an address
BOUNCES = 2  # of those, how many the SMTP sink refuses (their address starts with "bounce")


def _with_emails(records: list[DemoRecord], seed: int) -> list[DemoRecord]:
    """About half the records with an address, from a generator of their own: the people,
    numbers and DNC entries drawn from the main one stay what they were before addresses."""
    rng = random.Random(f"{seed}-email")
    chosen = [i for i in range(len(records)) if rng.random() < EMAIL_SHARE]
    bounces = set(rng.sample(chosen, min(BOUNCES, len(chosen))))
    out = list(records)
    for i in chosen:
        record = records[i]
        name = ".".join(
            part
            for part in (_local(record.first_name), _local(record.last_name))
            if part  # a record without a first name has the last name alone
        )
        number = record.external_id.rsplit("-", 1)[-1]  # unique: DEMO-0042 gives 0042
        local = f"{name}.{number}" if name else f"patient.{number}"
        if i in bounces:
            local = f"bounce-{local}"
        out[i] = dataclasses.replace(record, email=f"{local}@{EMAIL_DOMAIN}")
    return out


def _local(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())
