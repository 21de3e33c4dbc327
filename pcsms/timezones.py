"""Time zones: the IANA database (through ``zoneinfo``) plus a business unit's custom zones.

A custom zone is a base UTC offset that either never moves or follows the daylight-saving rule
of an IANA zone ("DST like America/New_York"). It can be used anywhere an IANA name can: zone
fields store a name, and :func:`resolve_zone` turns a name into a ``tzinfo`` for a given BU.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import cache

# Abbreviations people put in calling lists. They name a region's clock, not a fixed offset,
# so "EST" in July still means New York's local time.
ABBREVIATIONS = {
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "ET": "America/New_York",
    "EASTERN": "America/New_York",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "CT": "America/Chicago",
    "CENTRAL": "America/Chicago",
    "MST": "America/Denver",
    "MDT": "America/Denver",
    "MT": "America/Denver",
    "MOUNTAIN": "America/Denver",
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "PT": "America/Los_Angeles",
    "PACIFIC": "America/Los_Angeles",
    "AKST": "America/Anchorage",
    "AKDT": "America/Anchorage",
    "HST": "Pacific/Honolulu",
    "AZ": "America/Phoenix",
}

# The four mainland US zones plus Alaska, Hawaii and Arizona (no DST): the usual allowed set.
US_ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
]


@cache
def iana_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_iana_zone(name: str) -> bool:
    return name in iana_zone_names()


@cache
def iana_zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


class CustomZoneInfo(dt.tzinfo):
    """A fixed base offset, optionally shifted by the DST of an IANA zone."""

    def __init__(self, name: str, base_offset_minutes: int, dst_like: str | None = None):
        self.name = name
        self.base = dt.timedelta(minutes=base_offset_minutes)
        self.dst_like = iana_zone(dst_like) if dst_like else None

    def _dst_at_utc(self, utc_naive: dt.datetime) -> dt.timedelta:
        if self.dst_like is None:
            return dt.timedelta(0)
        aware = utc_naive.replace(tzinfo=dt.UTC).astimezone(self.dst_like)
        return aware.dst() or dt.timedelta(0)

    def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
        return self.base + self.dst(when)

    def dst(self, when: dt.datetime | None) -> dt.timedelta:
        if when is None or self.dst_like is None:
            return dt.timedelta(0)
        # Local wall time -> approximate UTC with the base offset; DST switches happen at night,
        # far from the windows that matter for sending, so the approximation is safe.
        return self._dst_at_utc(when.replace(tzinfo=None) - self.base)

    def fromutc(self, when: dt.datetime) -> dt.datetime:
        utc_naive = when.replace(tzinfo=None)
        return (utc_naive + self.base + self._dst_at_utc(utc_naive)).replace(tzinfo=self)

    def tzname(self, when: dt.datetime | None) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"CustomZoneInfo({self.name!r})"


def normalise_zone_name(raw: str) -> str | None:
    """An IANA name for what a user typed (exact name, any case, or a common abbreviation)."""
    value = (raw or "").strip()
    if not value:
        return None
    # Abbreviations first: "EST" is also a legacy IANA zone, but a fixed UTC-5 with no daylight
    # saving, which is not what a list that says "EST" means.
    upper = value.upper()
    if upper in ABBREVIATIONS:
        return ABBREVIATIONS[upper]
    if is_iana_zone(value):
        return value
    for name in iana_zone_names():
        if name.upper() == upper:
            return name
    return None


def resolve_zone(name: str, business_unit=None) -> dt.tzinfo | None:
    """The ``tzinfo`` for a zone name: IANA, abbreviation, or one of the BU's custom zones."""
    iana = normalise_zone_name(name)
    if iana:
        return iana_zone(iana)
    if business_unit is not None:
        custom = business_unit.custom_time_zones.filter(name__iexact=(name or "").strip()).first()
        if custom:
            return custom.tzinfo()
    return None
