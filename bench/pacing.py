"""Pacing across worker processes: one long code at 5 msg/s for 60 s with 1, 2 and 4 workers.

Prints, per run, the maximum number of texts in any one-second window (the rule: never more
than 5) at our send times (when each carrier call started) and, beside it, at the times the fake
carrier received them (which adds loopback and scheduling jitter), and the mean rate at the
carrier (target: at least 4.9/s). Workers are real ``manage.py dispatch`` processes on
PostgreSQL; the lease keeps them to one sender for the code, so more workers must not mean more
texts per second.

    .venv/bin/python bench/pacing.py [--seconds 60] [--workers 1 2 4] [--database-url ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _harness as h


def run(url: str, workers: int, seconds: float, rate: float) -> dict:
    from messaging.models import OutboundMessage, SenderLease

    log = Path(tempfile.gettempdir()) / "pcsms-bench-pacing.jsonl"
    carrier, carrier_url = h.start_carrier(log, latency_ms=50)
    env = h.bench_env(url, carrier_url)
    OutboundMessage.objects.all().delete()
    SenderLease.objects.all().delete()
    bu, registrations = h.make_codes(1, rate)
    h.queue_messages(bu, registrations, int(rate * seconds * 1.5))
    processes = h.start_workers(workers, env, "--seconds", str(seconds))
    time.sleep(seconds + 5)
    h.stop(processes)
    h.stop([carrier])
    rows = h.read_log(log)
    times = sorted(r["t"] for r in rows)
    # Ignore the first and last second: workers start and stop there.
    start, end = times[0], times[-1]
    steady = [t for t in times if start + 1 <= t <= end - 1]
    mean = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    duplicates = len(rows) - len({(r["to"], r["body"]) for r in rows})
    ours = [
        t.timestamp()
        for t in OutboundMessage.objects.filter(sent_at__isnull=False).values_list(
            "sent_at", flat=True
        )
    ]
    return {
        "ours_max_window": h.max_per_window(ours),
        "workers": workers,
        "sent": len(rows),
        "max_window": h.max_per_window(times),
        "mean": mean,
        "duplicates": duplicates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    h.database_url_option(parser, "pcsms_bench_pacing")
    args = parser.parse_args()
    print(f"pacing: one code at {args.rate:g} msg/s, {args.seconds:g} s per run, PostgreSQL")
    url = h.fresh_postgres(args.database_url)
    h.setup_django(h.bench_env(url))
    for workers in args.workers:
        r = run(url, workers, args.seconds, args.rate)
        # The rule binds our send times; the carrier's arrival times add loopback and
        # scheduling jitter, shown beside them for honesty.
        verdict = (
            "ok" if r["ours_max_window"] <= args.rate and r["mean"] >= args.rate * 0.98 else "MISS"
        )
        print(
            f"pacing: {r['workers']} worker process(es): {r['sent']} sent, max in any 1-s window "
            f"{r['max_window']} at the carrier / {r['ours_max_window']} at send time "
            f"(limit {args.rate:g}), mean {r['mean']:.2f} msg/s "
            f"(target >= {args.rate * 0.98:.2f}), duplicates {r['duplicates']}  [{verdict}]"
        )


if __name__ == "__main__":
    main()
