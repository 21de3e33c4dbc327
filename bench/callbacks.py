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
DATABASE = "pcsms_bench_callbacks"


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


class CpuMeter:
    """CPU seconds used by the server (gunicorn workers, PostgreSQL backends) and this client
    over the measured window: the cost per callback, which other load on the machine changes
    far less than it changes callbacks/s."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.used = {"gunicorn": 0.0, "postgres": 0.0, "client": 0.0}

    def start(self) -> None:
        self.workers, self.backends = _server_pids(self.master)
        self.begin = self._read()

    def stop(self) -> None:
        end = self._read()
        self.used = {k: end[k] - self.begin[k] for k in end}

    def _read(self) -> dict[str, float]:
        return {
            "gunicorn": sum(_cpu_seconds(p) for p in self.workers),
            "postgres": sum(_cpu_seconds(p) for p in self.backends),
            "client": time.process_time(),
        }


async def drive(base_url, requests, seconds: float, concurrency: int, warmup: float, cpu=None):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    answered: list[int] = []  # indexes of requests answered 200
    position = 0
    measured_from = time.monotonic() + warmup
    deadline = measured_from + seconds

    async def meter() -> None:
        await asyncio.sleep(max(0.0, measured_from - time.monotonic()))
        if cpu:
            await asyncio.to_thread(cpu.start)  # Django's database access is not for the loop
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        if cpu:
            cpu.stop()

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

        await asyncio.gather(meter(), *(worker() for _ in range(concurrency)))
    return latencies, statuses, answered


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_pids(master: int) -> tuple[list[int], list[int]]:
    """gunicorn's workers and the PostgreSQL backends serving the bench database."""
    from django.db import connection

    workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    from django.db import DatabaseError

    backends = []
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            backends = [row[0] for row in cursor.fetchall()]
    except DatabaseError as exc:  # e.g. the server's connection slots are all taken
        print(f"(database sessions not metered: {exc})".strip(), flush=True)
    finally:
        connection.close()
    return [int(p) for p in workers.stdout.split()], backends


async def floor(base_url: str, seconds: float, concurrency: int) -> float:
    """Requests/s of the same stack with no work: GET on the status URL (405, no database)."""
    import aiohttp

    answered = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal answered
            while time.monotonic() < deadline:
                async with session.get(base_url + STATUS_PATH) as response:
                    await response.read()
                    answered += response.status == 405

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered / seconds


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
    parser.add_argument(
        "--floor-seconds",
        type=float,
        default=8.0,
        help="Then this long of requests that do no work (the stack's ceiling here).",
    )
    args = parser.parse_args()

    port = h.free_port()
    base_url = f"http://127.0.0.1:{port}"
    database_url = h.fresh_postgres(DATABASE)
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
        cpu = CpuMeter(server.pid)
        latencies, statuses, answered = asyncio.run(
            drive(base_url, requests, args.seconds, args.concurrency, args.warmup, cpu)
        )
        no_work = asyncio.run(floor(base_url, args.floor_seconds, args.concurrency))
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
    if ok:
        per = {k: 1000 * v / ok for k, v in cpu.used.items()}
        total = sum(per.values())
        print(
            "CPU ms per callback: gunicorn {gunicorn:.2f}, postgres {postgres:.2f}, "
            "client {client:.2f}".format(**per)
            + f"; total {total:.2f} -> {2000 / total:,.0f}/s if 2 CPUs were all ours"
            + f" ({len(cpu.workers)} workers, {len(cpu.backends)} database sessions metered)"
        )
    print(f"same server, requests doing no work (GET -> 405, no database): {no_work:,.0f}/s")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
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


if __name__ == "__main__":
    main()
