"""Writes skills/importing/data/nanp_prefixes.txt: validity and zone of every NPA-NXX.

The import's phone fast path answers a North American number from its first six digits (see
skills/importing/phones.py); this table holds those answers for all 640,000 area code +
exchange pairs, as phonenumbers gives them, so an import does not ask phonenumbers again for
each new prefix (~25 us each: a 100k-row list meets ~20,000 prefixes per reader process).

Run it after upgrading phonenumbers (it takes ~20 s):

    .venv/bin/python scripts/build_nanp_prefixes.py

The file names the phonenumbers version it was made with; with any other version installed
the import ignores it and asks phonenumbers as before (tests/test_import_phones.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import phonenumbers  # noqa: E402

from skills.importing.phones import (  # noqa: E402
    PREFIX_FILE,
    encode_prefix_row,
    lookup_nanp,
    nanp_key_depth,
)


def main() -> None:
    zones: list[str] = []
    rows = []
    for npa in range(200, 1000):
        answers = []
        for nxx in range(200, 1000):
            national = f"{npa}{nxx}0000"
            if nanp_key_depth(national) != 6:
                answers.append(None)  # decided by more digits: asked at import time
                continue
            answers.append(lookup_nanp(national))
        rows.append(f"{npa}\t{encode_prefix_row(answers, zones)}")
    lines = [f"# phonenumbers {phonenumbers.__version__}", "\t".join(zones), *rows]
    PREFIX_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {PREFIX_FILE} ({len(zones)} zones)")


if __name__ == "__main__":
    main()
