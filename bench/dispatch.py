"""End-to-end sending throughput against the fake carrier, next to the raw SDK ceiling.

20 transport codes at 100 msg/s each (2,000 msg/s demanded) on PostgreSQL, the fake carrier
answering after 150 ms, ``manage.py dispatch`` worker processes sending for 60 s. In the same
run, the raw ceiling: the async Twilio client straight at the same fake carrier, no database,
no pacing. Target: end-to-end >= 0.7 x the raw ceiling. Also checks the pace per code (never
more than 100 in any one-second window) and duplicates (none).

    .venv/bin/python bench/dispatch.py [--seconds 60] [--codes 20] [--rate 100] [--workers 2]
        [--database-url postgres://...]  (dropped and created afresh)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
from pathlib import Path

import _harness as h


async def _raw(carrier_url: str, seconds: float, concurrency: int) -> float:
    from twilio.rest import Client

    from messaging.backends.twilio import RewritingAsyncHttpClient

    http = RewritingAsyncHttpClient(
        base_url=carrier_url, concurrency=concurrency, connect_timeout=5, read_timeout=30
    )
    client = Client(h.ACCOUNT_SID, h.AUTH_TOKEN, http_client=http)
    sent = 0
    deadline = time.monotonic() + seconds

    async def worker(n: int) -> None:
        nonlocal sent
        i = 0
        while time.monotonic() < deadline:
            await client.messages.create_async(
                to=f"+1415{3000000 + n * 10000 + i:07d}", from_="+13125550000", body=f"raw {n} {i}"
            )
            sent += 1
            i += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.monotonic() - started
    await http.close()
    return sent / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--raw-seconds", type=float, default=15)
    parser.add_argument("--codes", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=150)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument(
        "--profile",
        default="",
        help="Directory: sample the first worker and the carrier with py-spy (if installed).",
    )
    h.database_url_option(parser, "pcsms_bench_dispatch")
    args = parser.parse_args()
    demand = args.codes * args.rate
    print(
        f"dispatch: {args.codes} codes x {args.rate:g} msg/s = {demand:g} msg/s demanded, "
        f"carrier latency {args.latency_ms:g} ms, {args.workers} worker process(es), PostgreSQL"
    )
    url = h.fresh_postgres(args.database_url)
    h.setup_django(h.bench_env(url))
    log = Path(tempfile.gettempdir()) / "pcsms-bench-dispatch.jsonl"

    carrier, carrier_url = h.start_carrier(log, latency_ms=args.latency_ms)
    try:
        raw = asyncio.run(_raw(carrier_url, args.raw_seconds, args.concurrency))
    finally:
        h.stop([carrier])
    print(
        f"dispatch: raw SDK ceiling (async client, {args.concurrency} in flight, no database): "
        f"{raw:,.0f} msg/s"
    )

    bu, registrations = h.make_codes(args.codes, args.rate, prefix=646)
    queued = h.queue_messages(bu, registrations, int(args.rate * args.seconds * 1.1))
    carrier, carrier_url = h.start_carrier(log, latency_ms=args.latency_ms)
    env = h.bench_env(url, carrier_url)
    workers = h.start_workers(args.workers, env, "--seconds", str(args.seconds))
    spies = []
    if args.profile:
        spies = [
            h.profile(process, Path(args.profile) / f"{name}.txt", seconds=args.seconds - 10)
            for name, process in (("worker", workers[0]), ("carrier", carrier))
        ]
    # CPU of each part over the middle of the run (the workers' start-up and end left out).
    time.sleep(min(10.0, args.seconds / 4))
    meter = h.CpuMeter(workers=[w.pid for w in workers], carrier=[carrier.pid])
    metered = max(1.0, args.seconds - min(10.0, args.seconds / 4) - 5)
    time.sleep(metered)
    cpu = meter.stop()
    time.sleep(args.seconds + 3 - metered - min(10.0, args.seconds / 4))
    h.stop(workers)
    h.stop([carrier])
    for spy in spies:
        spy.wait()

    rows = h.read_log(log)
    times = sorted(r["t"] for r in rows)
    # Steady state: from 2 s after the first text to 1 s before the last.
    steady = [t for t in times if times[0] + 2 <= t <= times[-1] - 1]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    by_code = collections.defaultdict(list)
    for row in rows:
        by_code[row["from"]].append(row["t"])
    worst = max((h.max_per_window(ts) for ts in by_code.values()), default=0)
    # The same over the steady state alone: while worker processes start and stop, their CPU
    # bursts starve the fake carrier on a machine with two cores, and its clock bunches arrivals.
    worst_steady = max(
        (
            h.max_per_window([t for t in ts if steady and steady[0] <= t <= steady[-1]])
            for ts in by_code.values()
        ),
        default=0,
    )
    duplicates = len(rows) - len({(r["to"], r["body"]) for r in rows})
    ours, lag = h.send_times(rows)
    print(
        f"dispatch: end to end: {len(rows):,} of {queued:,} queued texts sent, "
        f"{rate:,.0f} msg/s steady = {rate / raw:.2f} x the raw ceiling (target >= 0.70)"
    )
    print(
        f"dispatch: busiest code's max in any 1-s window {worst} at the carrier "
        f"({worst_steady} in the steady state) / "
        f"{max((h.max_per_window(ts) for ts in ours.values()), default=0)} at send time "
        f"(limit {args.rate:g}); duplicates {duplicates}"
    )
    in_meter = sum(1 for t in times if meter.wall_from <= t <= meter.wall_to)
    print(
        "dispatch: CPU over the middle "
        f"{cpu['seconds']:.0f} s: "
        + ", ".join(
            f"{name} {used / cpu['seconds']:.2f} cores"
            for name, used in cpu.items()
            if name != "seconds"
        )
        + f"; workers {cpu['workers'] * 1000 / max(1, in_meter):.2f} ms per text sent"
    )
    print(
        "dispatch: send start -> carrier's clock: "
        + ", ".join(f"{name} {value * 1000:,.0f} ms" for name, value in h.quantiles(lag).items())
    )


if __name__ == "__main__":
    main()
