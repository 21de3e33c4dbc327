"""Signed Twilio status callbacks per second through the real web stack.

gunicorn (production-like, ``pcsms.wsgi``) on 127.0.0.1 against a fresh PostgreSQL database
seeded with sent messages; an asyncio + aiohttp client posts signed StatusCallback requests
(``sent`` then ``delivered`` for each message, with our id in ``?m=`` as the sender's
StatusCallback URL carries it, plus a share of replayed ``delivered``) for ``--seconds``, as
fast as the server answers with ``--concurrency`` requests in flight. Prints callbacks/s and
latency percentiles, then checks the database: every answered callback kept as an event, every
message whose ``delivered`` was answered is delivered. Target: >= 800 callbacks/s.

    .venv/bin/python bench/callbacks.py [--seconds 25] [--workers 3] [--threads 4]
        [--worker-class gthread|sync] [--concurrency 48] [--messages 40000]

Nothing leaves 127.0.0.1. The client runs on the same machine and takes CPU from the server:
the figure is a floor for the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import _harness as h

STATUS_PATH = "/sms/twilio/status/"


def seed(count: int) -> list[tuple[int, str, str]]:
    """``count`` sent messages; returns (id, carrier sid, recipient) for each."""
    from django.utils import timezone

    from messaging.models import MessageStatus, OutboundMessage

    bu, registrations = h.make_codes(1, 100)
    registration = registrations[0]
    now = timezone.now()
    rows = [
        OutboundMessage(
            business_unit=bu,
            registration=registration,
            transport_code_id=registration.transport_code_id,
            to=f"+1415{2000000 + n:07d}",
            body=f"Bench text {n}",
            status=MessageStatus.SENT,
            carrier_sid=f"SM{n:032x}",
            carrier_status="queued",
            sent_at=now,
            claimed_at=now,
        )
        for n in range(count)
    ]
    OutboundMessage.objects.bulk_create(rows, batch_size=5000)
    return list(OutboundMessage.objects.order_by("id").values_list("id", "carrier_sid", "to"))


def requests_for(messages, base_url: str, replay_share: float) -> list[tuple[str, bytes, str]]:
    """(path, body, signature) per callback: sent then delivered per message, interleaved."""
    from messaging.backends.twilio import compute_signature

    rng = random.Random(7)
    out = []
    for index in range(0, len(messages), 50):
        chunk = messages[index : index + 50]
        for status in ("sent", "delivered"):
            for message_id, sid, to in chunk:
                params = {
                    "SmsSid": sid,
                    "SmsStatus": status,
                    "MessageStatus": status,
                    "To": to,
                    "MessageSid": sid,
                    "AccountSid": h.ACCOUNT_SID,
                    "From": "+13125550000",
                    "ApiVersion": "2010-04-01",
                }
                path = f"{STATUS_PATH}?m={message_id}"
                signature = compute_signature(base_url + path, params, h.AUTH_TOKEN)
                out.append((path, urlencode(params).encode(), signature))
                if status == "delivered" and rng.random() < replay_share:
                    out.append(out[-1])  # Twilio sends some callbacks twice
    return out


def start_gunicorn(env: dict, port: int, args) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "pcsms.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--backlog",
        "2048",
        "--access-logfile",
        "-" if args.access_log else "/dev/null",
        "--log-level",
        "warning",
    ]
    if args.worker_class == "gthread":
        command += ["--threads", str(args.threads), "--keep-alive", "30"]
    process = subprocess.Popen(
        command,
        cwd=h.ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=None if args.verbose else subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.1)
    h.stop([process])
    raise RuntimeError("gunicorn did not start")


async def drive(base_url: str, requests, seconds: float, concurrency: int, warmup: float):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    answered: list[int] = []  # indexes of requests answered 200
    position = 0
    measured_from = time.monotonic() + warmup
    deadline = measured_from + seconds

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal position
            while True:
                now = time.monotonic()
                if now >= deadline or position >= len(requests):
                    return
                index = position
                position += 1
                path, body, signature = requests[index]
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": signature,
                    "User-Agent": "TwilioProxy/1.1",
                }
                started = time.monotonic()
                try:
                    async with session.post(base_url + path, data=body, headers=headers) as r:
                        await r.read()
                        status = r.status
                except aiohttp.ClientError as exc:
                    status = type(exc).__name__
                finished = time.monotonic()
                if started >= measured_from and finished <= deadline:
                    latencies.append(finished - started)
                    statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    answered.append(index)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, answered


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="Measured seconds.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Unmeasured seconds first.")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes.")
    parser.add_argument("--threads", type=int, default=4, help="Threads per gthread worker.")
    parser.add_argument("--worker-class", choices=["gthread", "sync"], default="gthread")
    parser.add_argument("--concurrency", type=int, default=48, help="Requests in flight.")
    parser.add_argument("--messages", type=int, default=40_000, help="Sent messages seeded.")
    parser.add_argument("--replay-share", type=float, default=0.05, help="Replayed deliveries.")
    parser.add_argument("--access-log", action="store_true", help="gunicorn access log to stdout.")
    parser.add_argument("--verbose", action="store_true", help="Show gunicorn's errors.")
    args = parser.parse_args()

    port = h.free_port()
    base_url = f"http://127.0.0.1:{port}"
    database_url = h.fresh_postgres("pcsms_bench_callbacks")
    env = h.bench_env(
        database_url,
        PUBLIC_BASE_URL=base_url,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        CONN_MAX_AGE="60",
    )
    h.setup_django(env)
    print(f"seeding {args.messages} sent messages ...", flush=True)
    messages = seed(args.messages)
    requests = requests_for(messages, base_url, args.replay_share)
    from django.db import connection

    connection.close()  # the server's connections only, during the run

    server = start_gunicorn(env, port, args)
    try:
        print(
            f"gunicorn {args.worker_class} x{args.workers}"
            + (f" ({args.threads} threads)" if args.worker_class == "gthread" else "")
            + f", {args.concurrency} in flight, {os.cpu_count()} CPUs; "
            f"{args.warmup:.0f} s warm-up, then {args.seconds:.0f} s measured",
            flush=True,
        )
        latencies, statuses, answered = asyncio.run(
            drive(base_url, requests, args.seconds, args.concurrency, args.warmup)
        )
    finally:
        h.stop([server], timeout=10)

    from messaging.models import MessageEvent, MessageStatus, OutboundMessage

    measured = len(latencies)
    ok = statuses.get(200, 0)
    print(f"callbacks answered in the measured window: {measured} ({statuses})")
    print(f"callbacks/s:  {ok / args.seconds:,.0f}")
    print(
        "latency ms:   p50 {:.1f}  p95 {:.1f}  p99 {:.1f}  max {:.1f}".format(
            *(1000 * percentile(latencies, q) for q in (0.5, 0.95, 0.99, 1.0))
        )
    )
    events = MessageEvent.objects.filter(kind=MessageEvent.Kind.CALLBACK).count()
    delivered_asked = {
        requests[i][0] for i in answered if b"MessageStatus=delivered" in requests[i][1]
    }
    delivered = OutboundMessage.objects.filter(status=MessageStatus.DELIVERED).count()
    print(
        f"check: {len(answered)} answered 200 in all, {events} callback events kept; "
        f"{len(delivered_asked)} messages told delivered, {delivered} delivered in the database"
    )
    if events != len(answered) or delivered != len(delivered_asked):
        print("MISMATCH: a callback answered 200 was not applied", file=sys.stderr)
        sys.exit(1)
    Path(h.ROOT / "bench" / "out").mkdir(exist_ok=True)


if __name__ == "__main__":
    main()
