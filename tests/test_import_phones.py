"""The phone fast path gives exactly what phonenumbers gives, for any number and region."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from skills.importing import phones
from skills.importing.phones import (
    PhoneNormaliser,
    lookup_nanp,
    nanp_key_depth,
    nanp_key_rules,
    pattern_depth,
    prefix_answer,
    reference_normalise,
    zone_of,
)

FORMATS = [
    "({a}) {b}-{c}",
    "{a}-{b}-{c}",
    "{a}{b}{c}",
    "+1{a}{b}{c}",
    "1-{a}-{b}-{c}",
    "{a}.{b}.{c}",
    "+1 ({a}) {b} {c}",
    " 1 {a} {b} {c} ",
    "{a} {b} {c} x12",  # an extension: the slow path
    "001 {a} {b} {c}",  # an international prefix: the slow path
]


def random_numbers(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        c = f"{rng.randint(0, 9999):04d}"
        out.append(rng.choice(FORMATS).format(a=a, b=b, c=c))
    return out


@pytest.mark.parametrize("region", ["US", "CA", "PR", "GB", "DE"])
def test_fast_path_equals_phonenumbers_on_a_random_sample(region):
    normaliser = PhoneNormaliser(region)
    sample = random_numbers(6000, seed=sum(map(ord, region)))
    # Numbers of every NANP territory with its own area codes, where patterns look deeper.
    rng = random.Random(3)
    for npa in (246, 876, 658, 441, 809, 787, 340, 671, 684, 868):
        sample += [f"+1{npa}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}" for _ in range(50)]
    sample += ["", "abc", "+", "555", "3125550123456", "+44 20 7946 0018", "(312) 555-O123"]

    got = [normaliser.normalise(raw) for raw in sample]
    expected = [reference_normalise(raw, region) for raw in sample]

    mismatches = [(raw, g, e) for raw, g, e in zip(sample, got, expected, strict=True) if g != e]
    assert mismatches == []
    if region in ("US", "CA"):
        assert normaliser.fast > 4000, "the common formats take the fast path"
    assert any(r is not None for r in got) and any(r is None for r in got)


def test_cache_keys_are_as_deep_as_the_metadata_needs():
    choose, base, territories = nanp_key_rules()

    assert choose >= 3  # area codes choose the territory
    assert base >= 6  # NPA-NXX decides validity and zone in the US and Canada
    assert nanp_key_depth("3125550123") == base
    # Barbados fixed lines are told apart by the 7th digit: its numbers get longer keys.
    assert nanp_key_depth("2462345678") >= 7
    assert pattern_depth(r"[2-9]\d{9}") == 1
    assert pattern_depth(r"52(?:3(?:[2-46-9][02-9]\d|5(?:[02-46-9]\d|5[0-46-9])))\d{4}") == 6
    assert pattern_depth(r"\d+5") > 10  # unknowable positions: no caching by prefix


def test_same_clock_zones_are_one_zone_and_different_clocks_none():
    assert zone_of(("Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey", "Europe/London")) == (
        "Europe/London"
    )
    assert zone_of(("America/Boise", "America/Los_Angeles")) is None
    assert zone_of(("Etc/Unknown",)) is None


def test_spreadsheet_numbers_read_as_digits():
    normaliser = PhoneNormaliser("US")

    assert normaliser.normalise(3125550123.0) == ("+13125550123", "America/Chicago")
    assert normaliser.normalise(13125550123) == ("+13125550123", "America/Chicago")
    assert phonenumbers.is_valid_number(phonenumbers.parse("+13125550123"))


# --- The prefix file (scripts/build_nanp_prefixes.py) ----------------------------------------


def test_the_prefix_file_gives_what_phonenumbers_gives():
    rng = random.Random(17)
    keys = [f"{rng.randint(200, 999)}{rng.randint(200, 999)}" for _ in range(4000)]
    keys += [f"{npa}{nxx}" for npa in (212, 246, 876, 907, 808, 787) for nxx in (200, 555, 999)]
    asked = 0
    for key in keys:
        answer = prefix_answer(key)
        if answer is None:  # decided by more digits: the file must not answer for it
            assert nanp_key_depth(key + "0000") > 6, key
            asked += 1
            continue
        assert answer == lookup_nanp(key + "0000"), key
    assert asked < len(keys) / 50, "the file answers for almost every prefix"


def test_an_import_asks_phonenumbers_only_for_prefixes_the_file_does_not_answer(monkeypatch):
    calls = []

    def counting(national):
        calls.append(national)
        return lookup_nanp(national)

    monkeypatch.setattr(phones, "lookup_nanp", counting)
    normaliser = PhoneNormaliser("US")

    assert normaliser.normalise("(312) 555-0123") == ("+13125550123", "America/Chicago")
    assert normaliser.normalise("212-200-0000") == reference_normalise("212-200-0000")
    assert calls == []
    normaliser.normalise("+1 246 234 5678")  # Barbados: its 7th digit decides
    assert calls == ["2462345678"]


def test_a_prefix_file_made_with_another_phonenumbers_is_not_used(monkeypatch, tmp_path):
    stale = tmp_path / "nanp_prefixes.txt"
    # It would call every 312 number invalid: a wrong answer the import must never give.
    stale.write_text("# phonenumbers 1.0.0\n\n312\t" + "-" * 800 + "\n", encoding="utf-8")
    monkeypatch.setattr(phones, "PREFIX_FILE", stale)
    phones._prefix_table.cache_clear()
    try:
        assert prefix_answer("312555") is None
        assert PhoneNormaliser("US").normalise("(312) 555-0123") == (
            "+13125550123",
            "America/Chicago",
        )
    finally:
        phones._prefix_table.cache_clear()
