"""The reader written for a column plan (fastrow) reads every row as the generic reader does.

Both readers get the same generated rows, plain ones and every kind of odd one (bad and missing
values, numbers from spreadsheet cells, zones the business unit does not allow, text that needs
escaping, repeated IDs, past expiry dates, typed custom fields), and must give the same COPY
text, the same counts and the same report, row for row. The generated function answers only
plain rows; the test also checks it does answer those, or it would prove nothing.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from skills.importing.mapping import build_plan
from skills.importing.normalise import RowReader, Settings

HEADER = [
    "ExternalId", "FirstName", "LastName", "PhoneNumber", "SMSPhoneNumber", "Address", "City",
    "State", "Zip", "TimeZone", "ExpirationDate", "Priority", "Score", "Customer1", "Customer2",
    "Visits", "Balance", "Member", "Appointment", "Note", "Alt",
]  # fmt: skip
MAPPING = {
    **{name: name for name in HEADER[:15]},
    "Visits": {"field": "Visits", "type": "integer"},
    "Balance": {"field": "Balance", "type": "decimal"},
    "Member": {"field": "Member", "type": "boolean"},
    "Appointment": {"field": "Appointment", "type": "date"},
    "Note": {"field": "Note", "type": "string"},
    "Alt": {"field": "Alt", "type": "phone"},
}
TODAY = dt.date(2026, 11, 30)


def settings(**overrides) -> Settings:
    values = {
        "plan": build_plan(HEADER, MAPPING),
        "region": "US",
        "custom_zones": ["Head Office"],
        "allowed_zones": [
            "America/New_York",
            "America/Chicago",
            "America/Denver",
            "America/Los_Angeles",
            "America/Anchorage",
        ],  # fmt: skip
        "business_unit": "Sales",
        "default_zone": "",
        "batch_expires": None,
        "today": TODAY,
        "output": "direct",
        "record_constants": ("7\t9", "f\t\t0"),
    }
    values.update(overrides)
    return Settings(**values)


def plain_row(rng: random.Random, index: int) -> list:
    npa = rng.choice(["312", "212", "415", "303", "617", "907"])
    return [
        f"C{index:06d}",
        rng.choice(["Maria", "  James ", "Li", "Zoë"]),
        rng.choice(["Garcia", "Smith", ""]),
        rng.choice(
            [
                f"({npa}) 555-{index % 10000:04d}",
                f"{npa}-555-{index % 10000:04d}",
                f"+1{npa}555{index % 10000:04d}",
                f"{npa}555{index % 10000:04d}",
            ]
        ),
        rng.choice(["", "", f"2125550{index % 1000:03d}"]),
        f"{index} Main St",
        rng.choice(["Chicago", "Boston", ""]),
        rng.choice(["IL", "MA", ""]),
        rng.choice(["60601", "02117", "", "99501"]),
        rng.choice(["", "", "EST", "America/Chicago", "Head Office"]),
        rng.choice(["", "2027-03-01", "03/02/2027"]),
        rng.choice(["", "yes", "no", "1"]),
        rng.choice(["", "7", "1,250"]),
        rng.choice(["", "gold"]),
        rng.choice(["", "north"]),
        rng.choice(["", "3", "12"]),
        rng.choice(["", "12.50", "$7"]),
        rng.choice(["", "true", "N"]),
        rng.choice(["", "2027-01-04", "1/5/2027"]),
        rng.choice(["", "call after 5", "VIP"]),
        rng.choice(["", "", "(646) 555-0199"]),
    ]


ODD_VALUES = {
    0: ["", "   ", "x" * 101, "C000001", "tab\there", "back\\slash", 12345.0, 7],
    1: ["x" * 101, "new\nline", "cr\rhere", None, 3.5],
    3: ["555-01", "", "   ", 3125550123.0, 3125550123, "+44 20 7946 0958", "12", None],
    4: ["555", "+1 212 555 0100", 2125550100.0],
    8: [2117.0, "x" * 21, "ABCDE", "9"],
    9: ["Mars/Olympus", "America/Juneau", "Europe/Paris", "PST", "  est "],
    10: ["31/31/2027", "2020-01-01", dt.datetime(2027, 5, 1), 46000.0],
    11: ["maybe", True, 1.0, 2],
    12: ["ten", "1.5", 9.0, True, "99999999999999999999"],
    15: ["many", 4.0, "2.5"],
    16: ["lots", 3, "1e400"],
    17: ["sometimes", 0.0, False],
    18: ["soon", dt.date(2027, 2, 2), 45000.0],
    19: ['say "hi"', "back\\slash", "bell\x07", 12.0],
    20: ["bad", 6465550199.0],
}


def odd_row(rng: random.Random, index: int) -> list:
    row = plain_row(rng, index)
    for column in rng.sample(sorted(ODD_VALUES), rng.randint(1, 3)):
        row[column] = rng.choice(ODD_VALUES[column])
    return row


def rows_of_every_kind(count: int, seed: int) -> list[tuple[int, list]]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        row = odd_row(rng, index) if rng.random() < 0.4 else plain_row(rng, index)
        if rng.random() < 0.03:
            row = row[: rng.randint(1, len(row))]  # a short row (CSV)
        if rng.random() < 0.02:
            row = [""] * len(row)  # a blank row
        rows.append((index + 2, row))
    return rows


def generic_reader(s: Settings) -> RowReader:
    reader = RowReader(s)
    reader.fast_row = None
    return reader


def outputs(chunk):
    d = chunk.payload
    return (
        d.keys,
        d.external_ids,
        d.record_rows,
        d.number_owner,
        d.number_rows,
        chunk.rows,
        chunk.valid,
        chunk.invalid,
        chunk.flagged,
        chunk.formula_errors,
        chunk.entries,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"default_zone": "America/Denver"},
        {"batch_expires": dt.date(2027, 6, 1)},
        {"batch_expires": dt.date(2020, 6, 1), "default_zone": "America/New_York"},
        {"allowed_zones": ["America/New_York"]},
        {"region": "GB"},
    ],
    ids=["plain", "default-zone", "batch-expiry", "past-batch-expiry", "one-zone", "region-GB"],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_reader_gives_what_the_generic_reader_gives(overrides, seed):
    s = settings(**overrides)
    rows = rows_of_every_kind(1500, seed)
    fast = RowReader(s)
    assert fast.fast_row is not None, "the plan should get a reader of its own"
    chunks = [fast.read(rows[i : i + 500]) for i in range(0, len(rows), 500)]
    generic = generic_reader(s)
    expected = [generic.read(rows[i : i + 500]) for i in range(0, len(rows), 500)]
    for got, want in zip(chunks, expected, strict=True):
        assert outputs(got) == outputs(want)


def test_the_fast_reader_answers_plain_rows_and_declines_odd_ones():
    reader = RowReader(settings(default_zone="America/New_York"))
    rng = random.Random(5)
    plain = [plain_row(rng, i) for i in range(300)]
    answered = [reader.fast_row(row) for row in plain]
    # Plain rows whose zone is allowed are answered; 907 numbers (Juneau, a twin of Anchorage)
    # and some others may go the generic way, but most must not.
    assert sum(a is not None for a in answered) > 200
    external_id, line, numbers = next(a for a in answered if a is not None)
    assert line.startswith(f"\t7\t9\t{external_id}\t") and line.endswith("\n")
    assert numbers and numbers[0].startswith("\t0\t")
    # Each odd value alone sends the row to the generic reader (or reads the same, as the
    # equivalence test checks); an empty ID, a bad number and text to escape always do.
    row = plain[0][:]
    row[0] = ""
    assert reader.fast_row(row) is None
    row = plain[0][:]
    row[3] = "555-01"
    assert reader.fast_row(row) is None
    row = plain[0][:]
    row[1] = "tab\there"
    assert reader.fast_row(row) is None


def test_a_past_expiry_or_a_zone_not_allowed_goes_the_generic_way_with_its_warning():
    s = settings(allowed_zones=["America/Chicago"])
    reader = RowReader(s)
    row = plain_row(random.Random(1), 1)
    row[3], row[4], row[20] = "(312) 555-0100", "", ""
    row[8], row[9], row[10] = "60601", "", "2020-01-01"
    assert reader.fast_row(row) is None
    chunk = reader.read([(2, row)])
    assert chunk.flagged == 1
    assert "already past" in chunk.entries[0][2]
    row[10], row[9] = "", "EST"
    chunk = reader.read([(3, row)])
    assert chunk.flagged == 1 and "not allowed" in chunk.entries[0][2]
