"""Demo data: one business unit ready to text a 200-record list and email the half of it
that has an address (``manage.py seed_demo``).

Everything is keyed on natural keys (BU name, list name, external IDs, numbers) and only ever
created, never updated, so seeding twice leaves the database as the first run left it, and an
administrator's edits to the demo objects survive a re-seed. Records are generated from a fixed
random seed, so every database gets the same 200 people and numbers.

The generated numbers are valid US numbers (the import rules reject anything else), which means
some may belong to real people: the demo registration is pinned to the simulator backend so
starting the demo skill never reaches a real carrier, whatever ``SMS_BACKEND`` says. The email
skill's registration is pinned to Django's SMTP backend, which ``make demo`` points at a local
SMTP sink (``EMAIL_URL``), and every demo address is at example.com (reserved, RFC 2606), so no
email can reach a real person either.

The package: ``constants`` (the natural keys, logins and templates' text), ``people`` (the
generated patients and their numbers), ``report`` (create-if-missing and the seed report),
``accounts`` (logins, membership, permissions), ``compliance`` (the DNC group and entries),
``sending`` (codes, registrations, templates, the email sender), ``calling_list`` (the list,
its records and destinations) and ``seed`` (``seed_demo``, which puts them together).
"""

from skills.demo.constants import (
    ADMIN_USERNAME,
    ALLOWED_ZONES,
    APPOINTMENT_TEMPLATE,
    BU_NAME,
    CAMPAIGN_NAME,
    DEMO_APPS,
    DEMO_PASSWORD,
    DNC_GROUP_NAME,
    EMAIL_DOMAIN,
    EMAIL_REGISTRATION_NAME,
    EMAIL_SENDER,
    EMAIL_SKILL_NAME,
    EMAIL_TEMPLATE,
    LIST_NAME,
    LONG_CODE,
    OPERATOR_USERNAME,
    PAYMENT_TEMPLATE,
    POSTAL_ADDRESS,
    RANDOM_SEED,
    RECORD_COUNT,
    REGISTRATION_NAME,
    SHORT_CODE,
    SIMULATOR_BACKEND,
    SKILL_NAME,
    SMTP_BACKEND,
)
from skills.demo.people import (
    CITIES,
    DEPARTMENTS,
    FIRST_NAMES,
    LAST_NAMES,
    STREETS,
    ZONE_OF_AREA_CODE,
    City,
    DemoPhone,
    DemoRecord,
    generate_records,
)
from skills.demo.report import DemoDataError, SeedReport
from skills.demo.seed import seed_demo

__all__ = [
    "ADMIN_USERNAME",
    "ALLOWED_ZONES",
    "APPOINTMENT_TEMPLATE",
    "BU_NAME",
    "CAMPAIGN_NAME",
    "CITIES",
    "DEMO_APPS",
    "DEMO_PASSWORD",
    "DEPARTMENTS",
    "DNC_GROUP_NAME",
    "EMAIL_DOMAIN",
    "EMAIL_REGISTRATION_NAME",
    "EMAIL_SENDER",
    "EMAIL_SKILL_NAME",
    "EMAIL_TEMPLATE",
    "FIRST_NAMES",
    "LAST_NAMES",
    "LIST_NAME",
    "LONG_CODE",
    "OPERATOR_USERNAME",
    "PAYMENT_TEMPLATE",
    "POSTAL_ADDRESS",
    "RANDOM_SEED",
    "RECORD_COUNT",
    "REGISTRATION_NAME",
    "SHORT_CODE",
    "SIMULATOR_BACKEND",
    "SKILL_NAME",
    "SMTP_BACKEND",
    "STREETS",
    "ZONE_OF_AREA_CODE",
    "City",
    "DemoDataError",
    "DemoPhone",
    "DemoRecord",
    "SeedReport",
    "generate_records",
    "seed_demo",
]
