"""Time zones of imported records: a TimeZone column, else the ZIP code, else the phone number.

The column accepts IANA names (any case), the abbreviations of :mod:`pcsms.timezones` (EST, CST,
...), Windows zone names ("Eastern Standard Time") and the business unit's custom zones. ZIP codes
map through ``data/zip3_zones.csv`` (3-digit prefix -> zone; its header says where it comes from
and where it is approximate). Numbers give the zone of phonenumbers' geographic data (see
``phones``); a prefix that spans zones gives none rather than a guess.
"""

from __future__ import annotations

import csv
import re
from functools import cache
from pathlib import Path

from pcsms import timezones

ZIP3_FILE = Path(__file__).resolve().parent / "data" / "zip3_zones.csv"

WINDOWS_ZONES = {
    "EASTERN STANDARD TIME": "America/New_York",
    "US EASTERN STANDARD TIME": "America/Indiana/Indianapolis",
    "CENTRAL STANDARD TIME": "America/Chicago",
    "MOUNTAIN STANDARD TIME": "America/Denver",
    "US MOUNTAIN STANDARD TIME": "America/Phoenix",
    "PACIFIC STANDARD TIME": "America/Los_Angeles",
    "ALASKAN STANDARD TIME": "America/Anchorage",
    "HAWAIIAN STANDARD TIME": "Pacific/Honolulu",
    "ATLANTIC STANDARD TIME": "America/Halifax",
    "SA WESTERN STANDARD TIME": "America/Puerto_Rico",
}
# Old IANA links people still write; stored as the zone a BU's allowed list names.
LEGACY_LINKS = {
    "US/EASTERN": "America/New_York",
    "US/CENTRAL": "America/Chicago",
    "US/MOUNTAIN": "America/Denver",
    "US/ARIZONA": "America/Phoenix",
    "US/PACIFIC": "America/Los_Angeles",
    "US/ALASKA": "America/Anchorage",
    "US/HAWAII": "Pacific/Honolulu",
    "EST5EDT": "America/New_York",
    "CST6CDT": "America/Chicago",
    "MST7MDT": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
}
_ZIP_RE = re.compile(r"(\d{5})(?:[-\s]?\d{4})?|(\d{3,4})")


@cache
def zip3_zones() -> dict[str, str]:
    with ZIP3_FILE.open(encoding="utf-8") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        return {row["zip3"]: row["time_zone"] for row in csv.DictReader(lines)}


def zip5(raw: str) -> str | None:
    """The 5-digit ZIP code in a Zip value (``60601-1234``; ``2134`` from a spreadsheet that
    dropped the leading zero), or None for anything else (e.g. a Canadian postal code)."""
    match = _ZIP_RE.fullmatch(raw.strip())
    if match is None:
        return None
    return match[1] or match[2].zfill(5)


class ZoneResolver:
    """Reads TimeZone and Zip values for one business unit; caches what it has read."""

    def __init__(self, custom_zones: list[str] | tuple[str, ...] = ()):
        self.custom = {name.strip().upper(): name for name in custom_zones}
        self.zip3 = zip3_zones()
        self._column: dict[str, str | None] = {}
        self._zip: dict[str, str | None] = {}

    def column(self, raw: str) -> str | None:
        """The zone a TimeZone cell names, or None when it names none we know."""
        try:
            return self._column[raw]
        except KeyError:
            pass
        text = raw.strip()
        upper = text.upper()
        # Abbreviations before IANA names: "EST" is also a fixed-offset IANA zone without DST,
        # but in a calling list it means New York's clock.
        zone = (
            self.custom.get(upper)
            or timezones.ABBREVIATIONS.get(upper)
            or WINDOWS_ZONES.get(upper)
            or LEGACY_LINKS.get(upper)
        )
        if zone is None:
            zone = timezones.normalise_zone_name(text.replace(" ", "_"))
        self._column[raw] = zone
        return zone

    def from_zip(self, raw: str) -> str | None:
        try:  # lists repeat their ZIP codes: a bounded cache of answers
            return self._zip[raw]
        except KeyError:
            pass
        code = zip5(raw)
        zone = self.zip3.get(code[:3]) if code else None
        if len(self._zip) > 100_000:
            self._zip.clear()
        self._zip[raw] = zone
        return zone
