"""Writes skills/data/npa_states.txt: the US state (or territory) of every NANP area code.

A recipient whose record gives no state is presumed to live in the state of their number's area
code (docs/spec.md section 9), so the state rules (``SendingWindowPreset``) of every state apply
to them, not only those with their own area-code list (FL, OK). phonenumbers' geocoder names
the place of each area code and exchange ("Texas", or "Chicago, IL"); this script asks it for
every exchange of every area code and keeps the state most of them name, with the state codes
of the ``holidays`` library (the same codes the presets use).

Run it after upgrading phonenumbers (it takes ~30 s):

    .venv/bin/python scripts/build_npa_states.py
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import holidays  # noqa: E402
import phonenumbers  # noqa: E402
from phonenumbers import geocoder  # noqa: E402

OUT = ROOT / "skills" / "data" / "npa_states.txt"
NAMES = {name.lower(): code for name, code in holidays.US.subdivisions_aliases.items()}
NAMES["washington d.c."] = "DC"
CODES = set(holidays.US.subdivisions)


def state_of(description: str) -> str | None:
    """ "Texas" -> TX, "Chicago, IL" -> IL; None for anything else (Canada, "")."""
    text = description.strip()
    if "," in text:
        tail = text.rsplit(",", 1)[1].strip().upper()
        return tail if tail in CODES else None
    return NAMES.get(text.lower())


def main() -> None:
    rows = []
    for npa in range(200, 1000):
        votes: Counter[str] = Counter()
        for nxx in range(200, 1000):
            number = phonenumbers.parse(f"+1{npa}{nxx}0000")
            state = state_of(geocoder.description_for_number(number, "en"))
            if state:
                votes[state] += 1
        if votes:
            rows.append(f"{npa}\t{votes.most_common(1)[0][0]}")
    header = f"# phonenumbers {phonenumbers.__version__}: area code, state"
    OUT.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(rows)} area codes)")


if __name__ == "__main__":
    main()
