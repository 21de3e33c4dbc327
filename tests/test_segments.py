"""SMS encoding and segment counts: what the carrier bills and what the sender paces by.

The randomized tests compare :func:`messaging.segments.analyse` with a reference that does what a
carrier does: encode to septets (or UTF-16 units), then cut into parts without splitting an escape
pair or a surrogate pair. ``hypothesis`` is not installed, so cases come from seeded loops.
"""

from __future__ import annotations

import random

import pytest

from messaging.segments import (
    GSM_BASIC,
    GSM_EXTENSION,
    LOOKALIKES,
    analyse,
    gsm_lookalikes,
    is_gsm,
    segment_count,
)

# Extension table codes from GSM 03.38, typed independently of the module under test.
EXTENSION_CODES = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
ESCAPE = 0x1B


def reference_gsm(text: str) -> tuple[int, int, int]:
    """(septets, parts, septets in the last part) by encoding and cutting like a carrier."""
    septets: list[int] = []
    for char in text:
        if char in EXTENSION_CODES:
            septets += [ESCAPE, EXTENSION_CODES[char]]
        else:
            septets.append(GSM_BASIC.index(char))
    if not septets:
        return 0, 0, 0
    if len(septets) <= 160:
        return len(septets), 1, len(septets)
    parts = []
    start = 0
    while start < len(septets):
        chunk = septets[start : start + 153]
        if chunk[-1] == ESCAPE:  # never end a part on the escape prefix
            chunk = chunk[:-1]
        parts.append(chunk)
        start += len(chunk)
    return len(septets), len(parts), len(parts[-1])


def reference_ucs2(text: str) -> tuple[int, int, int]:
    """(UTF-16 units, parts, units in the last part), never ending a part on a high surrogate."""
    data = text.encode("utf-16-le", "surrogatepass")
    units = [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]
    if len(units) <= 70:
        return len(units), 1, len(units)
    parts = []
    start = 0
    while start < len(units):
        chunk = units[start : start + 67]
        if 0xD800 <= chunk[-1] <= 0xDBFF:
            chunk = chunk[:-1]
        parts.append(chunk)
        start += len(chunk)
    return len(units), len(parts), len(parts[-1])


# --- The GSM 03.38 table itself --------------------------------------------------------------


def test_basic_table_has_the_standard_code_positions() -> None:
    assert len(GSM_BASIC) == 128
    for code, char in [
        (0x00, "@"),
        (0x01, "£"),
        (0x02, "$"),
        (0x09, "Ç"),
        (0x0A, "\n"),
        (0x0D, "\r"),
        (0x10, "Δ"),
        (0x11, "_"),
        (0x1B, "\x1b"),
        (0x1F, "É"),
        (0x24, "¤"),
        (0x40, "¡"),
        (0x5B, "Ä"),
        (0x5F, "§"),
        (0x60, "¿"),
        (0x7F, "à"),
    ]:
        assert GSM_BASIC[code] == char, hex(code)
    assert set(GSM_EXTENSION) == set(EXTENSION_CODES)


@pytest.mark.parametrize("char", ["`", "ç", "á", "ê", "’", "“", "\t", "\u00a0", "😀", "\x1b"])
def test_characters_outside_gsm_force_ucs2(char: str) -> None:
    info = analyse(f"Hello {char} there")
    assert info.encoding == "UCS-2"
    assert info.culprits == (char,)


def test_every_basic_and_extension_character_stays_gsm() -> None:
    text = GSM_BASIC.replace("\x1b", "") + GSM_EXTENSION
    info = analyse(text)
    assert info.encoding == "GSM-7"
    assert info.units == 127 + 2 * len(GSM_EXTENSION)
    assert info.culprits == ()


# --- GSM-7 boundaries --------------------------------------------------------------------------


def test_empty_text_is_zero_segments() -> None:
    info = analyse("")
    assert (info.encoding, info.characters, info.units, info.segments) == ("GSM-7", 0, 0, 0)
    assert info.remaining == 160
    assert segment_count("") == 0


@pytest.mark.parametrize(
    ("length", "segments", "per_segment", "remaining"),
    [(1, 1, 160, 159), (160, 1, 160, 0), (161, 2, 153, 145), (306, 2, 153, 0), (307, 3, 153, 152)],
)
def test_gsm_boundaries(length: int, segments: int, per_segment: int, remaining: int) -> None:
    info = analyse("a" * length)
    assert info.encoding == "GSM-7"
    assert (info.characters, info.units) == (length, length)
    assert (info.segments, info.per_segment, info.remaining) == (segments, per_segment, remaining)


@pytest.mark.parametrize("char", list(GSM_EXTENSION))
def test_each_extension_character_counts_two(char: str) -> None:
    info = analyse("x" + char)
    assert (info.encoding, info.characters, info.units) == ("GSM-7", 2, 3)


def test_eighty_euro_signs_fill_one_segment_and_eighty_one_need_two() -> None:
    assert (analyse("€" * 80).units, analyse("€" * 80).segments) == (160, 1)
    assert (analyse("€" * 81).units, analyse("€" * 81).segments) == (162, 2)


def test_extension_pair_straddling_a_boundary_moves_to_the_next_part() -> None:
    # 306 septets would fit two parts exactly, but the escape pair at septets 153-154 cannot be
    # split: part one holds 152, part two 153, and the last 'a' needs a third part.
    text = "a" * 152 + "€" + "a" * 152
    info = analyse(text)
    assert info.units == 306
    assert info.segments == 3
    assert info.remaining == 152
    # Without the straddle the same size is two parts.
    assert analyse("a" * 151 + "€" + "a" * 153).segments == 2


# --- UCS-2 boundaries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments", "remaining"),
    [(70, 1, 0), (71, 2, 63), (134, 2, 0), (135, 3, 66)],
)
def test_ucs2_boundaries(length: int, segments: int, remaining: int) -> None:
    info = analyse("ж" * length)
    assert (info.encoding, info.units, info.segments, info.remaining) == (
        "UCS-2",
        length,
        segments,
        remaining,
    )
    assert info.culprits == ("ж",)


def test_emoji_counts_two_units() -> None:
    info = analyse("😀")
    assert (info.encoding, info.characters, info.units, info.segments) == ("UCS-2", 1, 2, 1)
    assert analyse("😀" * 35).segments == 1
    assert analyse("😀" * 36).segments == 2


def test_surrogate_pair_straddling_a_boundary_moves_to_the_next_part() -> None:
    # 134 units would fit two parts, but the emoji at units 67-68 cannot be split.
    info = analyse("ж" * 66 + "😀" * 34)
    assert info.units == 134
    assert info.segments == 3


def test_one_curly_quote_switches_a_gsm_text_to_ucs2() -> None:
    gsm = "Hi Maria, your appointment is tomorrow at 10:00. Reply STOP to opt out."
    assert analyse(gsm).encoding == "GSM-7"
    info = analyse(gsm.replace("your", "you’re"))
    assert info.encoding == "UCS-2"
    assert info.culprits == ("’",)
    assert info.per_segment == 67 and info.segments == 2


def test_culprits_are_unique_in_first_appearance_order() -> None:
    assert analyse("“hi” – ‘you’ “again”").culprits == ("“", "”", "–", "‘", "’")


# --- Look-alikes ------------------------------------------------------------------------------


def test_lookalikes_turn_a_pasted_text_into_gsm() -> None:
    pasted = "Don’t miss “your” visit — at 10\u00a0am…\u200b • Café Ça ç á"
    assert analyse(pasted).encoding == "UCS-2"
    fixed = gsm_lookalikes(pasted)
    assert fixed == 'Don\'t miss "your" visit - at 10 am... - Café Ça c a'
    info = analyse(fixed)
    assert info.encoding == "GSM-7"
    assert info.segments == 1


def test_lookalikes_leave_characters_without_a_lookalike() -> None:
    fixed = gsm_lookalikes("See you ’soon’ 😀")
    assert fixed == "See you 'soon' 😀"
    assert analyse(fixed).culprits == ("😀",)


def test_lookalike_table_maps_only_non_gsm_characters_to_gsm_text() -> None:
    assert len(LOOKALIKES) > 100
    for char, replacement in LOOKALIKES.items():
        assert not is_gsm(char), char
        assert is_gsm(replacement), (char, replacement)


# --- Randomized comparison with the reference -------------------------------------------------

GSM_POOL = "aAzZ09 .,!?@£$¥èéÇ\nÅΔ_ÆßÉ¤§¿àäöñü" + GSM_EXTENSION
UCS2_POOL = GSM_POOL + "жщ’“—ç😀🎉𝄞中"


def random_text(rng: random.Random, pool: str) -> str:
    # Lengths cluster near the part boundaries, where off-by-one mistakes live.
    length = rng.choice([rng.randint(0, 400), rng.randint(150, 170), rng.randint(60, 80)])
    extension_share = rng.random() / 3
    return "".join(
        rng.choice(GSM_EXTENSION) if rng.random() < extension_share else rng.choice(pool)
        for _ in range(length)
    )


@pytest.mark.parametrize("seed", range(5))
def test_gsm_counts_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        text = random_text(rng, GSM_POOL)
        info = analyse(text)
        units, parts, last = reference_gsm(text)
        assert info.encoding == "GSM-7"
        assert (info.units, info.segments) == (units, parts), text
        if parts:
            assert info.remaining == info.per_segment - last
            assert info.per_segment == (160 if parts == 1 else 153)


@pytest.mark.parametrize("seed", range(5))
def test_ucs2_counts_match_the_reference(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(400):
        text = random_text(rng, UCS2_POOL) + rng.choice("жщ’😀")
        info = analyse(text)
        units, parts, last = reference_ucs2(text)
        assert info.encoding == "UCS-2"
        assert info.characters == len(text)
        assert (info.units, info.segments) == (units, parts), text
        assert info.remaining == info.per_segment - last
        assert set(info.culprits) == {c for c in text if not is_gsm(c)}
        assert segment_count(text) == parts
