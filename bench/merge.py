"""How fast one core merges a 3-variable template into calling-list records.

Usage: ``.venv/bin/python bench/merge.py [--records N]`` (default 1,000,000). No Django needed.

The compiled template (``messaging.templating``) is timed on its sending path (``render_lower``,
records keyed in lowercase, as the sender builds them) and on ``render`` with mixed-case keys;
the baseline is what one would write first: ``re.sub`` with a lambda per record. Records are drawn
from a pool of 10,000 synthetic rows so that building a million dicts does not dominate the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from messaging.templating import parse  # noqa: E402 - needs the path above when run as a script

BODY = (
    "Hi {FirstName|there}, your appointment is on {AppointmentDate} at our {City} office. "
    "Reply STOP to opt out."
)
FIRST = ["Maria", "James", "Li", "Fatima", "Olu", "Ana", "", None, "  ", "Chen"]
CITIES = ["Austin", "Reno", "Tulsa", "Boise", "Miami", "Omaha", "Fresno", "Salem"]
POOL_SIZE = 10_000

# The naive merge, here only as the baseline (the product has one parser: messaging.templating).
NAIVE = re.compile(r"\{(\w+)(?:\|([^}]*))?\}")


def make_records(count: int, seed: int = 7) -> list[dict[str, object]]:
    """Rows shaped like a calling list's: system fields plus one custom date field."""
    rng = random.Random(seed)
    start = dt.date(2026, 1, 5)
    return [
        {
            "ExternalId": f"C{index:08d}",
            "FirstName": rng.choice(FIRST),
            "LastName": f"Name{index}",
            "City": rng.choice(CITIES),
            "State": "TX",
            "Zip": f"{rng.randint(10000, 99999)}",
            "PhoneNumber": f"+1512555{index % 10_000:04d}",
            "AppointmentDate": (start + dt.timedelta(days=index % 90)).isoformat(),
        }
        for index in range(count)
    ]


def naive_render(values: Mapping[str, object]) -> str:
    def replace(match: re.Match[str]) -> str:
        value = values.get(match.group(1).lower())
        text = "" if value is None else str(value)
        return text if text.strip() else (match.group(2) or "")

    return NAIVE.sub(replace, BODY)


def timed(render: Callable[[Mapping[str, object]], str], pool: list, total: int) -> float:
    """Seconds to render ``total`` records cycling through ``pool``."""
    rounds, rest = divmod(total, len(pool))
    started = time.perf_counter()
    for _ in range(rounds):
        for record in pool:
            render(record)
    for record in pool[:rest]:
        render(record)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    total = parser.parse_args().records

    mixed = make_records(min(POOL_SIZE, total))
    lower = [{key.lower(): value for key, value in record.items()} for record in mixed]
    template = parse(BODY)
    assert template.render_lower(lower[0]) == naive_render(lower[0])
    assert template.render(mixed[0]) == naive_render(lower[0])

    fast = timed(template.render_lower, lower, total)
    any_case = timed(template.render, mixed, total)
    naive = timed(naive_render, lower, total)

    def rate(seconds: float) -> float:
        return total / seconds

    print(
        f"merge: {total:,} records in {fast:.2f} s = {rate(fast):,.0f} records/s "
        f"(naive re.sub baseline: {rate(naive):,.0f} records/s, {naive / fast:.1f}x)"
    )
    print(
        f"merge (render, mixed-case keys): {total:,} records in {any_case:.2f} s = "
        f"{rate(any_case):,.0f} records/s ({naive / any_case:.1f}x the baseline)"
    )


if __name__ == "__main__":
    main()
