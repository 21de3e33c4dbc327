"""Exact SMS encoding and segment accounting (3GPP TS 23.038 / GSM 03.38).

Carriers bill and pace by *segment*, not by message, so the sender charges each text its segment
count against the transport code's per-second budget, and the template page shows the same figures
live. The rules (docs/spec.md section 5):

- A text made only of GSM 03.38 characters is sent as GSM-7: 160 septets in one part, 153 per part
  when split (the other 7 carry the concatenation header). Extension characters (``^{}\\[~]|€``
  and form feed) are sent as escape + character and cost 2 septets.
- One character outside that set switches the whole text to UCS-2: 70 UTF-16 code units in one
  part, 67 per part; a character beyond the Basic Multilingual Plane (most emoji) costs 2 units.
- A part never ends in the middle of a character: an escape pair or surrogate pair that would
  straddle a part boundary moves whole to the next part, which can add a part.

Choices: the empty text has 0 segments (nothing is sent; Twilio's counter says 1, but no message
is ever sent empty). ``U+001B`` typed into a text is not GSM: its slot is the escape prefix, and
sending it bare would corrupt the next character, so it forces UCS-2.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = [
    "GSM_BASIC",
    "GSM_EXTENSION",
    "LOOKALIKES",
    "SegmentInfo",
    "analyse",
    "gsm_lookalikes",
    "is_gsm",
    "segment_count",
]

# The basic table in code order 0x00-0x7F; 0x1B is the escape to the extension table, written here
# as U+001B only to keep positions right (it is removed from the encodable set below).
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Reached through the escape, so each costs 2 septets.
GSM_EXTENSION = "\f^{}\\[~]|€"

_ESCAPE = "\x1b"
_BASIC_SET = frozenset(GSM_BASIC) - {_ESCAPE}
_EXTENSION_SET = frozenset(GSM_EXTENSION)
_GSM_SET = _BASIC_SET | _EXTENSION_SET

GSM_SINGLE, GSM_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a text travels: its encoding, size in that encoding, and the parts it becomes.

    ``units`` are GSM-7 septets or UTF-16 code units; ``per_segment`` is the capacity of each part
    at this length (160/70 for a single part, 153/67 once split) and ``remaining`` the units still
    free in the last part, so the page can say "12 left before another segment".
    """

    encoding: str  # "GSM-7" or "UCS-2"
    characters: int
    units: int
    segments: int
    culprits: tuple[str, ...]  # characters that forced UCS-2, first appearance order
    per_segment: int
    remaining: int


def is_gsm(text: str) -> bool:
    """True when ``text`` can travel as GSM-7."""
    return _GSM_SET.issuperset(text)


def _split(weights: list[int], capacity: int) -> tuple[int, int]:
    """(parts, units in the last part) when indivisible items of 1 or 2 units fill parts in order.

    Greedy filling is optimal here because parts must hold consecutive characters.
    """
    parts, used = 1, 0
    for weight in weights:
        if used + weight > capacity:
            parts += 1
            used = 0
        used += weight
    return parts, used


def analyse(text: str) -> SegmentInfo:
    """Encoding, sizes and exact segment count of ``text`` as a carrier will send it."""
    characters = len(text)
    if is_gsm(text):
        extension = sum(text.count(char) for char in GSM_EXTENSION)
        units = characters + extension
        if units <= GSM_SINGLE:
            segments = 1 if units else 0
            return SegmentInfo(
                "GSM-7", characters, units, segments, (), GSM_SINGLE, GSM_SINGLE - units
            )
        if extension:
            weights = [2 if char in _EXTENSION_SET else 1 for char in text]
            segments, last = _split(weights, GSM_MULTI)
        else:
            segments, last = -(-units // GSM_MULTI), (units - 1) % GSM_MULTI + 1
        return SegmentInfo("GSM-7", characters, units, segments, (), GSM_MULTI, GSM_MULTI - last)

    culprits = tuple(char for char in dict.fromkeys(text) if char not in _GSM_SET)
    # surrogatepass: a lone surrogate still occupies one unit rather than raising.
    units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    if units <= UCS2_SINGLE:
        return SegmentInfo(
            "UCS-2", characters, units, 1, culprits, UCS2_SINGLE, UCS2_SINGLE - units
        )
    if units != characters:
        weights = [2 if ord(char) > 0xFFFF else 1 for char in text]
        segments, last = _split(weights, UCS2_MULTI)
    else:
        segments, last = -(-units // UCS2_MULTI), (units - 1) % UCS2_MULTI + 1
    return SegmentInfo(
        "UCS-2", characters, units, segments, culprits, UCS2_MULTI, UCS2_MULTI - last
    )


def segment_count(text: str) -> int:
    """Segments ``text`` costs: what the sender charges against the pace."""
    return analyse(text).segments


def _build_lookalikes() -> dict[str, str]:
    """Non-GSM characters people paste from word processors, mapped to GSM text that reads alike.

    Hand-written punctuation and spaces first, then every Latin letter from U+00C0 to U+024F whose
    accent-free base is GSM (``á`` -> ``a``), leaving letters GSM already has (``é``, ``Ç``) alone.
    """
    table: dict[str, str] = {}
    for chars, replacement in (
        ("\u2018\u2019\u201a\u201b\u2032\u00b4\u0060", "'"),  # curly singles, prime, accents
        ("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),  # curly doubles, guillemets
        ("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),  # hyphens, dashes, minus
        ("\u2022\u2023\u2043\u25e6\u00b7", "-"),  # bullets, middle dot
        ("\u2026", "..."),
        ("\t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009", " "),
        ("\u200a\u202f\u205f\u3000", " "),  # more Unicode spaces
        ("\u200b\u2060\ufeff\u00ad", ""),  # invisible: zero-width space, BOM, soft hyphen
        ("\u2028\u2029\u0085", "\n"),  # Unicode line and paragraph separators
        ("\u00d7", "x"),
        ("\u00f7", "/"),
        ("\u2122", "TM"),
        ("\u00a9", "(c)"),
        ("\u00ae", "(R)"),
        ("\u0153", "oe"),
        ("\u0152", "OE"),
        ("\u0131", "i"),  # dotless i
        ("\u0142", "l"),
        ("\u0141", "L"),
        ("\u0111\u00f0", "d"),
        ("\u0110\u00d0", "D"),
        ("\u00fe", "th"),
        ("\u00de", "Th"),
    ):
        for char in chars:
            table[char] = replacement
    for code in range(0x00C0, 0x0250):
        char = chr(code)
        if char in _GSM_SET or char in table:
            continue
        base, *marks = unicodedata.normalize("NFD", char)
        if (
            marks
            and base in _BASIC_SET
            and base.isalpha()
            and all(map(unicodedata.combining, marks))
        ):
            table[char] = base
    return table


#: Character -> GSM replacement; plain data so the template page's JavaScript can use the same map.
LOOKALIKES: dict[str, str] = _build_lookalikes()
_LOOKALIKE_TABLE = str.maketrans(LOOKALIKES)


def gsm_lookalikes(text: str) -> str:
    """``text`` with common non-GSM characters replaced by GSM look-alikes.

    This turns a pasted "smart" text back into GSM-7, often halving its segments. Characters
    with no look-alike (emoji, CJK...) stay, so the result may still be UCS-2: see :func:`analyse`.
    """
    return text.translate(_LOOKALIKE_TABLE)
