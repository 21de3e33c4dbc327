"""Faults at scale: worker processes killed with SIGKILL again and again while a flaky carrier
throttles 20% and errors 10% of requests. Prints duplicates (must be 0) and how every text
ended (sent, failed with a reason, or unknown for review; never still queued or in flight).

    .venv/bin/python bench/faults.py [--texts 2000] [--kills 10] [--workers 2] [--database-url ...]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import tempfile
import time
from pathlib import Path

import _harness as h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=50)
    h.database_url_option(parser, "pcsms_bench_faults")
    args = parser.parse_args()
    url = h.fresh_postgres(args.database_url)
    h.setup_django(h.bench_env(url))
    from messaging.models import MessageStatus, OutboundMessage

    codes = 4
    bu, registrations = h.make_codes(codes, args.rate, prefix=718)
    h.queue_messages(bu, registrations, args.texts // codes)
    log = Path(tempfile.gettempdir()) / "pcsms-bench-faults.jsonl"
    carrier, carrier_url = h.start_carrier(
        log, latency_ms=50, extra=["--throttle-rate", "0.2", "--fail-rate", "0.1", "--seed", "5"]
    )
    env = h.bench_env(url, carrier_url, SENDER_RECONCILE_AFTER="2")
    rng = random.Random(11)
    started = time.monotonic()
    kills = 0
    workers = h.start_workers(args.workers, env, "--until-idle")
    while kills < args.kills:
        time.sleep(rng.uniform(1.0, 4.0))
        victim = rng.choice(workers)
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
            kills += 1
        workers = [w for w in workers if w.poll() is None]
        workers += h.start_workers(args.workers - len(workers), env, "--until-idle")
    # Then let them finish; a dead holder's lease expires within seconds.
    pending = OutboundMessage.objects.filter(
        status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
    )
    deadline = time.monotonic() + 600
    while pending.exists() and time.monotonic() < deadline:
        workers = [w for w in workers if w.poll() is None]
        workers += h.start_workers(args.workers - len(workers), env, "--until-idle")
        time.sleep(2)
    h.stop(workers)
    h.stop([carrier])
    rows = h.read_log(log)
    duplicates = len(rows) - len({(r["to"], r["body"]) for r in rows})
    ended = collections.Counter(OutboundMessage.objects.values_list("status", flat=True))
    sent_bodies = set(
        OutboundMessage.objects.filter(status=MessageStatus.SENT).values_list("body", flat=True)
    )
    missing = sent_bodies ^ {r["body"] for r in rows}
    print(
        f"faults: {args.texts} texts on {codes} codes, {kills} SIGKILLs, carrier throttling 20% "
        f"and failing 10%, {time.monotonic() - started:.0f} s"
    )
    print(f"faults: carrier received {len(rows)}, duplicates {duplicates}")
    print(
        "faults: ended "
        + ", ".join(f"{k} {v}" for k, v in sorted(ended.items()))
        + f"; sent in our log but not at the carrier or the reverse: {len(missing)}"
    )


if __name__ == "__main__":
    main()
