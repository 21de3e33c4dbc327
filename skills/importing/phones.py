"""Phone numbers to E.164, fast, with exactly the answers ``phonenumbers`` gives.

``phonenumbers.parse`` + ``is_valid_number`` cost ~40 us a number here (about 23k/s on one core),
which alone would take a million-row list past its time budget. Most calling-list numbers are
North American and written in a handful of ways (``(312) 555-0123``, ``312-555-0123``,
``3125550123``, ``+13125550123``, ``1-312-555-0123``), so :class:`PhoneNormaliser` reads those with
one strict regex and looks up validity and time zone in a cache keyed by the number's leading
digits; anything else goes through ``phonenumbers.parse``.

The cache is exact, not a heuristic: :func:`nanp_key_depth` reads phonenumbers' own metadata
(every pattern that decides validity or region for country code 1, and the longest time-zone
prefix) and finds how many leading digits of a 10-digit national number those patterns can look
at. With the metadata shipped today that is 6 (area code + exchange, "NPA-NXX"), 7 for the
Barbados and Jamaica area codes; a metadata release that looks deeper makes the key longer.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import zoneinfo
from functools import cache
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat
from phonenumbers import timezone as pn_timezone
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

try:  # Python 3.11+: the parser moved under re.
    import re._constants as sre_constants
    import re._parser as sre_parse
except ImportError:  # pragma: no cover
    import sre_constants
    import sre_parse

logger = logging.getLogger(__name__)

NANP_REGIONS = frozenset(COUNTRY_CODE_TO_REGION_CODE[1])
# Every NPA-NXX's answer, made by scripts/build_nanp_prefixes.py (see prefix_answer).
PREFIX_FILE = Path(__file__).resolve().parent / "data" / "nanp_prefixes.txt"
_INVALID, _ASK, _ZONE_BASE = "-", "!", 0x30
UNKNOWN_ZONE = "Etc/Unknown"

# Optional country code (+1 / 1 / +1-), then NPA and NXX (first digit 2-9 both), then the line.
FAST_RE = re.compile(
    r"\s*(\+?1[\s.\-]?)?(?:\(([2-9]\d\d)\)|([2-9]\d\d))[\s.\-]?([2-9]\d\d)[\s.\-]?(\d{4})\s*"
)

_DESC_NAMES = (
    "general_desc",
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)
_INF = 10**6
_DIGIT_SETS = ({(sre_constants.CATEGORY, sre_constants.CATEGORY_DIGIT)},)


def _is_any_digit(op, arg) -> bool:
    """True for ``\\d`` or ``[0-9]``: an item that does not look at which digit it is."""
    if op is not sre_constants.IN:
        return False
    items = set(arg)
    if items in _DIGIT_SETS:
        return True
    return items == {(sre_constants.RANGE, (ord("0"), ord("9")))}


def _depth(seq, offset: int | None) -> tuple[int, int | None]:
    """(positions the sequence constrains, offset after it); offset None once widths vary."""
    depth = 0
    for op, arg in seq:
        if op is sre_constants.AT:
            continue
        if op in (sre_constants.LITERAL, sre_constants.NOT_LITERAL) or (
            op is sre_constants.IN and not _is_any_digit(op, arg)
        ):
            if offset is None:
                return _INF, None
            depth = max(depth, offset + 1)
            offset += 1
        elif op is sre_constants.IN:
            offset = None if offset is None else offset + 1
        elif op is sre_constants.SUBPATTERN:
            sub_depth, offset = _depth(arg[-1], offset)
            depth = max(depth, sub_depth)
        elif op is sre_constants.BRANCH:
            ends = set()
            for alternative in arg[1]:
                sub_depth, end = _depth(alternative, offset)
                depth = max(depth, sub_depth)
                ends.add(end)
            offset = ends.pop() if len(ends) == 1 else None
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            low, high, sub = arg
            if all(_is_any_digit(o, a) for o, a in sub):
                width = len(sub)
                if offset is not None and low == high:
                    offset += low * width
                else:
                    offset = None
                continue
            for _ in range(low if low == high else 0):
                sub_depth, offset = _depth(sub, offset)
                depth = max(depth, sub_depth)
            if low != high:
                return _INF, None
        else:
            return _INF, None
        if depth >= _INF:
            return _INF, None
    return depth, offset


def pattern_depth(pattern: str) -> int:
    """How many leading characters a metadata pattern can distinguish (``_INF``: unknown)."""
    return _depth(sre_parse.parse(pattern), 0)[0]


def _region_depth(metadata) -> int:
    depth = 0
    for name in _DESC_NAMES:
        desc = getattr(metadata, name, None)
        if desc is not None and desc.national_number_pattern:
            depth = max(depth, pattern_depth(desc.national_number_pattern))
    return depth


@cache
def nanp_key_rules() -> tuple[int, int, tuple[tuple[re.Pattern, int], ...]]:
    """How many leading national digits decide validity, region and zone of a +1 number.

    phonenumbers picks the region of a +1 number by each territory's ``leading_digits`` (area
    codes, at most 4 digits), else by the US/CA patterns; then validity uses that region's
    patterns, and the zone comes from prefixes of at most 7 characters ("1" + NPA + NXX).
    Returns (digits that choose the territory, the key depth when no territory matches,
    (territory leading-digit regex, key depth for it), ...).
    """
    # Here, not at the top: the zone table is large, and only this builder (run once per
    # process, cached) reads it directly.
    from phonenumbers import tzdata

    base = max((len(k) - 1 for k in tzdata.TIMEZONE_DATA if k.startswith("1")), default=0)
    choose = 0
    territories = []
    for region in sorted(NANP_REGIONS):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        if metadata.leading_digits:
            choose = max(choose, pattern_depth(metadata.leading_digits))
            territories.append((re.compile(metadata.leading_digits), _region_depth(metadata)))
        # Every territory's patterns are tried on numbers that no leading digits claim.
        base = max(base, _region_depth(metadata) if not metadata.leading_digits else 0)
    return choose, max(base, choose), tuple(territories)


def nanp_key_depth(national: str) -> int:
    """Key length for one 10-digit national number (see :func:`nanp_key_rules`)."""
    _, base, territories = nanp_key_rules()
    depth = base
    for pattern, territory_depth in territories:
        if pattern.match(national):
            depth = max(depth, territory_depth)
    return depth


def zone_of(zones: tuple[str, ...] | list[str]) -> str | None:
    """One IANA zone for a number, or None when the number has none or spans zones.

    Several names that keep the same clock (a UK mobile: Guernsey, Isle of Man, Jersey, London)
    are one zone; the main one is chosen. Clocks that differ (Boise and Los Angeles) give None:
    a guess could text someone an hour early.
    """
    zones = tuple(zones)
    if len(zones) == 1:
        return None if zones[0] == UNKNOWN_ZONE else zones[0]
    return _same_clock(zones)


@cache
def _same_clock(zones: tuple[str, ...]) -> str | None:
    if not zones or UNKNOWN_ZONE in zones:
        return None
    year = dt.date.today().year
    instants = [dt.datetime(year, month, 15, 12, tzinfo=dt.UTC) for month in (1, 4, 7, 10)]
    try:
        clocks = {
            tuple(i.astimezone(zoneinfo.ZoneInfo(z)).utcoffset() for i in instants) for z in zones
        }
    except zoneinfo.ZoneInfoNotFoundError:
        return None
    if len(clocks) != 1:
        return None
    preferred = [z for z in zones if z in MAIN_ZONES]
    return preferred[0] if preferred else zones[0]


# The zone named for a clock that several names share (phonenumbers lists them all).
MAIN_ZONES = frozenset(
    {
        "Europe/London",
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
        "America/Phoenix",
        "America/Anchorage",
        "Pacific/Honolulu",
        "Europe/Paris",
        "Europe/Berlin",
        "Australia/Sydney",
    }
)


class PhoneNormaliser:
    """Reads phone numbers written for ``region`` into (E.164, zone) or None when invalid.

    One instance per import (per worker process): it keeps the prefix cache and the counts.
    """

    def __init__(self, region: str = "US"):
        self.region = (region or "US").upper()
        self.region_is_nanp = self.region in NANP_REGIONS
        self.choose = nanp_key_rules()[0]
        self._depth: dict[str, int] = {}  # leading digits that choose the territory -> depth
        self._prefix: dict[str, tuple[bool, str | None]] = {}
        self._six: dict[str, tuple[bool, str | None]] = {}  # see _answer
        self._slow_answers: dict[str, tuple[str, str | None] | None] = {}  # see _slow
        self.fast = 0
        self.slow = 0

    def normalise(self, raw) -> tuple[str, str | None] | None:
        """``(e164, zone)`` for a valid number, ``None`` for anything else."""
        if not isinstance(raw, str):
            raw = _number_to_text(raw)
        national = _plain_national(raw) if self.region_is_nanp else None
        if national is not None:
            self.fast += 1
            cached = self._six.get(national[:6])  # _answer's first step, without its call
            if cached is None:
                return self._answer(national)
            return ("+1" + national, cached[1]) if cached[0] else None
        match = FAST_RE.fullmatch(raw)
        if match is not None:
            prefix = match.group(1)
            if self.region_is_nanp or (prefix is not None and "+" in prefix):
                self.fast += 1
                national = (match.group(2) or match.group(3)) + match.group(4) + match.group(5)
                return self._answer(national)
        return self._slow(raw)

    def _answer(self, national: str) -> tuple[str, str | None] | None:
        """A 10-digit NANP national number (NPA and NXX starting 2-9) from the prefix cache."""
        # Nearly every number is decided by its first six digits (area code and exchange):
        # their answer is kept under them, one look-up per number.
        six = national[:6]
        cached = self._six.get(six)
        if cached is None:
            head = national[: self.choose]
            depth = self._depth.get(head)
            if depth is None:
                depth = self._depth[head] = nanp_key_depth(national)
            key = national[:depth]
            cached = self._prefix.get(key)
            if cached is None:
                cached = prefix_answer(key) or lookup_nanp(national)
                self._prefix[key] = cached
            if depth <= 6:
                self._six[six] = cached
        valid, zone = cached
        return ("+1" + national, zone) if valid else None

    def _slow(self, raw: str) -> tuple[str, str | None] | None:
        # Lists repeat their odd values ("n/a", one office number): each is parsed once.
        try:
            return self._slow_answers[raw]
        except KeyError:
            pass
        answer = self._slow_answers[raw] = self._parse(raw)
        if len(self._slow_answers) > 10_000:
            self._slow_answers.clear()
        return answer

    def _parse(self, raw: str) -> tuple[str, str | None] | None:
        self.slow += 1
        try:
            parsed = phonenumbers.parse(raw, self.region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(parsed):
            return None
        e164 = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
        return e164, zone_of(pn_timezone.time_zones_for_number(parsed))


def _plain_national(raw: str) -> str | None:
    """The national number of the commonest ways a list writes one (``3125550123``,
    ``(312) 555-0123``, ``312-555-0123``, ``+13125550123``), by slicing: a quicker reading of
    what FAST_RE reads (None: let the regex decide)."""
    size = len(raw)
    if size == 10:
        national = raw
    elif size == 12:
        if raw[0] == "+":
            if raw[1] != "1":
                return None
            national = raw[2:]
        elif raw[3] == "-" and raw[7] == "-":
            national = raw[:3] + raw[4:7] + raw[8:]
        else:
            return None
    elif size == 14 and raw[0] == "(" and raw[4] == ")" and raw[5] == " " and raw[9] == "-":
        national = raw[1:4] + raw[6:9] + raw[10:]
    else:
        return None
    if national.isdigit() and national.isascii() and national[0] > "1" and national[3] > "1":
        return national
    return None


def lookup_nanp(national: str) -> tuple[bool, str | None]:
    number = PhoneNumber(country_code=1, national_number=int(national))
    if not phonenumbers.is_valid_number(number):
        return False, None
    return True, zone_of(pn_timezone.time_zones_for_number(number))


def encode_prefix_row(answers: list[tuple[bool, str | None] | None], zones: list[str]) -> str:
    """One area code's line of the prefix file: a character per exchange 200-999.

    ``-``: invalid; ``!``: not in the file (more digits decide); else a zone of ``zones``
    (appended to as new ones appear; "" is a valid number without a zone).
    """
    out = []
    for answer in answers:
        if answer is None:
            out.append(_ASK)
        elif not answer[0]:
            out.append(_INVALID)
        else:
            zone = answer[1] or ""
            if zone not in zones:
                zones.append(zone)
            out.append(chr(_ZONE_BASE + zones.index(zone)))
    return "".join(out)


@cache
def _prefix_table() -> tuple[dict[str, str], list[str]] | None:
    """The prefix file, if it was made with the phonenumbers installed (else its answers
    could differ from the library's, and every prefix is asked as before)."""
    try:
        lines = PREFIX_FILE.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if not lines or lines[0] != f"# phonenumbers {phonenumbers.__version__}":
        logger.info(
            "%s is not for phonenumbers %s: not used", PREFIX_FILE, phonenumbers.__version__
        )
        return None
    zones = lines[1].split("\t")
    return dict(line.split("\t", 1) for line in lines[2:]), zones


def prefix_answer(key: str) -> tuple[bool, str | None] | None:
    """(valid, zone) of a six-digit NPA-NXX key from the prefix file; None: ask phonenumbers."""
    table = _prefix_table()
    if table is None or len(key) != 6:
        return None
    rows, zones = table
    row = rows.get(key[:3])
    if row is None:
        return None
    code = row[int(key[3:]) - 200]
    if code == _ASK:
        return None
    if code == _INVALID:
        return False, None
    return True, zones[ord(code) - _ZONE_BASE] or None


def _number_to_text(value) -> str:
    """Spreadsheet cells hold numbers as floats (3125550123.0): read them as digits."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def reference_normalise(raw: str, region: str = "US") -> tuple[str, str | None] | None:
    """The slow, obvious reading, for tests and the naive baseline: parse every number."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return (
        phonenumbers.format_number(parsed, PhoneNumberFormat.E164),
        zone_of(pn_timezone.time_zones_for_number(parsed)),
    )
