"""The calling-list fields a file column can be mapped to, their aliases and value types.

System field names are docs/spec.md section 4's (also the templates' variables): ``{FirstName}``.
A column no alias matches becomes a custom field of the list, with a type guessed from its
values that the user can change on the mapping page.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from messaging.templating import RECORD_SYSTEM_FIELDS
from pcsms.addresses import AddressError, is_email, normalise_email
from pcsms.rows import as_text
from skills.importing.phones import PhoneNormaliser
from skills.models import FieldType


@dataclass(frozen=True)
class SystemField:
    """What the import adds to a name of the one vocabulary (templating.RECORD_SYSTEM_FIELDS)."""

    name: str  # the name in docs/spec.md section 4, as in templates
    field_type: str
    max_length: int | None = None
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in RECORD_SYSTEM_FIELDS:  # a typo here would import into nothing
            raise ValueError(f"{self.name!r} is not a record system field")

    @property
    def attribute(self) -> str:
        """The Record column ("" for phone and email fields: they become destinations)."""
        return RECORD_SYSTEM_FIELDS[self.name]


SYSTEM_FIELDS: tuple[SystemField, ...] = (
    SystemField(
        "ExternalId",
        FieldType.STRING,
        100,
        ("externalid", "id", "record", "recordid", "extid", "externalidentifier"),
    ),
    SystemField("FirstName", FieldType.STRING, 100, ("firstname", "fname", "first")),
    SystemField("LastName", FieldType.STRING, 100, ("lastname", "lname", "last")),
    SystemField(
        "PhoneNumber",
        FieldType.PHONE,
        None,
        ("phonenumber", "phone", "number", "phoneno", "telephone", "tel"),
    ),
    SystemField(
        "SMSPhoneNumber",
        FieldType.PHONE,
        None,
        ("smsphonenumber", "smsphone", "smsnumber", "sms", "mobile", "mobilephone", "cell"),
    ),
    SystemField(
        "Email",
        FieldType.EMAIL,
        None,
        ("email", "emailaddress", "mail", "mailaddress"),
    ),
    SystemField("Address", FieldType.STRING, 200, ("address", "address1", "street", "addr")),
    SystemField("City", FieldType.STRING, 100, ("city", "town")),
    SystemField("State", FieldType.STRING, 50, ("state", "province", "st")),
    SystemField(
        "Zip",
        FieldType.STRING,
        20,
        ("zip", "zipcode", "postal", "postalcode", "postcode"),
    ),
    SystemField("TimeZone", FieldType.STRING, 64, ("timezone", "tz", "zone")),
    SystemField(
        "ExpirationDate",
        FieldType.DATE,
        None,
        ("expirationdate", "exp", "expiration", "expires", "expiry", "expirydate", "expdate"),
    ),
    SystemField("Priority", FieldType.BOOLEAN, None, ("priority",)),
    SystemField("Score", FieldType.INTEGER, None, ("score",)),
    SystemField("Customer1", FieldType.STRING, 200, ("customer1",)),
    SystemField("Customer2", FieldType.STRING, 200, ("customer2",)),
)
SYSTEM_BY_NAME = {f.name: f for f in SYSTEM_FIELDS}
SYSTEM_BY_LOWER = {f.name.lower(): f for f in SYSTEM_FIELDS}
_ALIASES = {alias: f.name for f in SYSTEM_FIELDS for alias in f.aliases}
_PHONE_HINT = re.compile(r"phone|cell|mobile|tel|sms|fax|contact.?n", re.IGNORECASE)
CUSTOM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def header_key(header: str) -> str:
    """What aliases are compared on: case, spaces, underscores, dashes and dots ignored."""
    return re.sub(r"[\s_\-.]+", "", header).lower()


def system_field_for(header: str) -> str | None:
    return _ALIASES.get(header_key(header))


def custom_name_for(header: str) -> str:
    """A template-safe custom field name: ``Appointment date`` -> ``AppointmentDate``."""
    words = re.findall(r"[A-Za-z0-9]+", header)
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Column"
    if not re.match(r"[A-Za-z_]", name):
        name = "F" + name
    name = name[:64]
    if name.lower() in SYSTEM_BY_LOWER:
        name = (name + "_custom")[:64]
    return name


# --- Values --------------------------------------------------------------------------------------

TRUE_WORDS = frozenset({"true", "yes", "y", "t", "1", "x"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "0"})
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%Y/%m/%d", "%m-%d-%Y", "%d-%b-%Y", "%b %d %Y")
_INT_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+|[+-]?\d+")


class BadValue(ValueError):
    """A cell that does not hold a value of its field's type; the message is plain words."""


def parse_int(value) -> int:
    if isinstance(value, bool):
        raise BadValue("is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise BadValue("is not a whole number")
    text = as_text(value)
    if text.endswith(".0"):
        text = text[:-2]
    if not _INT_RE.fullmatch(text):
        raise BadValue("is not a whole number")
    number = int(text.replace(",", ""))
    if abs(number) > 2**53:
        raise BadValue("is too large")
    return number


def parse_decimal(value) -> float:
    if isinstance(value, bool):
        raise BadValue("is not a number")
    if isinstance(value, int | float):
        return float(value)
    text = as_text(value).replace(",", "").lstrip("$")
    try:
        number = float(text)
    except ValueError:
        raise BadValue("is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise BadValue("is not a number")
    return number


def parse_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = as_text(value)
    if "T" in text[:11] or " " in text[:11] and text[:4].isdigit():
        text = text[:10]
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise BadValue("is not a date (use YYYY-MM-DD or MM/DD/YYYY)")


def parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = as_text(value).lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise BadValue("is not yes/no (use yes, no, true, false, 1 or 0)")


PARSERS = {
    FieldType.INTEGER: parse_int,
    FieldType.DECIMAL: parse_decimal,
    FieldType.DATE: parse_date,
    FieldType.BOOLEAN: parse_bool,
}


def infer_type(header: str, values: list, region: str = "US") -> str:
    """A custom field's likely type from its first values (the user can change it)."""
    present = [v for v in values if as_text(v) != ""]
    if not present:
        return FieldType.STRING

    def all_parse(parser) -> bool:
        try:
            for v in present:
                parser(v)
        except ValueError:
            return False
        return True

    texts = [as_text(v).lower() for v in present]
    if all(t in TRUE_WORDS | FALSE_WORDS for t in texts) and not all(t in "01" for t in texts):
        return FieldType.BOOLEAN
    if all(is_email(t) for t in texts) and all(_email_or_none(t) for t in texts):
        return FieldType.EMAIL
    phones = PhoneNormaliser(region)
    phone_like = all(phones.normalise(as_text(v)) is not None for v in present)
    punctuated = any(re.search(r"[()\-+. ]", as_text(v)) for v in present)
    if phone_like and (punctuated or _PHONE_HINT.search(header)):
        return FieldType.PHONE
    if all_parse(parse_int):
        return FieldType.INTEGER
    if all_parse(parse_decimal):
        return FieldType.DECIMAL
    if all_parse(parse_date):
        return FieldType.DATE
    return FieldType.STRING


def _email_or_none(text: str) -> str | None:
    try:
        return normalise_email(text)
    except AddressError:
        return None
