"""What a destination is: a phone number in E.164 or an email address, each normalised once.

Everything that keys on "the number" (DNC entries, the planner's scrub, frequency caps, holds,
evidence, the outbound message's ``to``) keys on this one normalised text, so an address is
suppressed, capped and traced exactly as a number is (docs/email.md).
"""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email


class AddressError(ValueError):
    """The value is neither a valid number nor a valid email address; the message says why."""


def is_email(value: str) -> bool:
    """A stored destination is an address when it has an @ (an E.164 number never has)."""
    return "@" in (value or "")


def normalise_email(raw: str) -> str:
    """The address as stored: checked by ``email-validator`` (syntax only, no DNS look-up, so an
    import never waits on the network), its domain in IDNA-aware lower case and, because mail
    providers treat the local part without regard to case and a suppression must match however
    the CRM wrote it, the whole address lower-cased."""
    text = (raw or "").strip()
    if not text:
        raise AddressError("The email address is empty.")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise AddressError(f"'{text}' is not a valid email address: {error}") from None
    return checked.normalized.lower()


def normalise_phone(raw: str, region: str = "US") -> str:
    text = (raw or "").strip()
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise AddressError(f"'{text}' is not a valid phone number.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise(raw: str, region: str = "US") -> str:
    """A number or an address, whichever ``raw`` is (the DNC entry's field takes both)."""
    return normalise_email(raw) if is_email(raw) else normalise_phone(raw, region)
