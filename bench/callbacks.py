"""Signed Twilio status callbacks per second through the real web stack.

gunicorn (production-like, ``pcsms.wsgi``) on 127.0.0.1 against a fresh PostgreSQL database
seeded with texts a running skill planned and the carrier accepted (records, numbers,
``Attempt`` rows, source ``skill:<id>``), so that every receipt also records the skill's outcome
as in production. An asyncio + aiohttp client posts signed StatusCallback requests (``sent``
then a receipt for each message: ``delivered``, or ``undelivered`` 30003 for ``--fail-share``
of them; our id in ``?m=`` as the sender's StatusCallback URL carries it; a share of receipts
replayed) for ``--seconds``, as fast as the server answers with ``--concurrency`` requests in
flight. Prints callbacks/s and latency percentiles, then checks the database: every answered
callback kept as an event, every message applied, every delivered text's attempt and record
recorded, and the failures applied by the planner's sweep. Target: >= 800 callbacks/s.

    .venv/bin/python bench/callbacks.py [--seconds 25] [--workers 4] [--threads 12]
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


def seed(count: int) -> tuple[list[tuple[int, str, str]], int]:
    """``count`` texts a running skill planned and the carrier accepted, as the planner and
    the sender leave them: a record and its number per text, the message (source
    ``skill:<id>``) and its ``Attempt``, so every receipt goes through the skills' outcome
    listener as in production. Returns (id, carrier sid, recipient) per message and the skill id.
    """
    from django.utils import timezone

    from messaging.models import MessageStatus, MessageTemplate, OutboundMessage
    from skills.models import Attempt, CallingList, Destination, Record, Skill
    from skills.services import skill_apply_defaults

    bu, registrations = h.make_codes(1, 100)
    registration = registrations[0]
    now = timezone.now()
    template = MessageTemplate.objects.create(
        business_unit=bu,
        name="Bench",
        body="Hi {FirstName|there}. Reply STOP to opt out.",
        is_active=True,
    )
    skill = Skill.objects.create(
        business_unit=bu,
        name="Bench skill",
        registration=registration,
        template=template,
        state=Skill.State.RUNNING,
        state_changed_at=now,
    )
    skill_apply_defaults(skill=skill)
    calling_list = CallingList.objects.create(business_unit=bu, name="Bench list")
    skill.calling_lists.add(calling_list)
    records = Record.objects.bulk_create(
        (
            Record(
                calling_list=calling_list,
                external_id=f"B{n:07d}",
                first_name="Ada",
                time_zone="America/Chicago",
                attempts=1,
                last_attempt_at=now,
            )
            for n in range(count)
        ),
        batch_size=5000,
    )
    destinations = Destination.objects.bulk_create(
        (
            Destination(
                record=record,
                position=0,
                source_field="SMSPhoneNumber",
                phone_number=f"+1415{2000000 + n:07d}",
                time_zone="America/Chicago",
                attempts=1,
            )
            for n, record in enumerate(records)
        ),
        batch_size=5000,
    )
    messages = OutboundMessage.objects.bulk_create(
        (
            OutboundMessage(
                business_unit=bu,
                registration=registration,
                transport_code_id=registration.transport_code_id,
                to=destination.phone_number,
                body=f"Hi Ada. Reply STOP to opt out. {n}",
                idempotency_key=f"bench:{n}",
                source=f"skill:{skill.id}",
                status=MessageStatus.SENT,
                carrier_sid=f"SM{n:032x}",
                carrier_status="queued",
                sent_at=now,
                claimed_at=now,
            )
            for n, destination in enumerate(destinations)
        ),
        batch_size=5000,
    )
    Attempt.objects.bulk_create(
        (
            Attempt(skill=skill, record=d.record, destination=d, message=m)
            for d, m in zip(destinations, messages, strict=True)
        ),
        batch_size=5000,
    )
    rows = OutboundMessage.objects.order_by("id").values_list("id", "carrier_sid", "to")
    return list(rows), skill.id


def requests_for(
    messages, base_url: str, replay_share: float, fail_share: float
) -> list[tuple[str, bytes, str]]:
    """(path, body, signature) per callback: sent then a receipt per message, interleaved in
    chunks of 50. The receipt is ``delivered``, or for ``fail_share`` of the messages
    ``undelivered`` with 30003 (unreachable handset: a transient failure, retried later)."""
    from messaging.backends.twilio import compute_signature

    rng = random.Random(7)
    out = []
    for index in range(0, len(messages), 50):
        chunk = messages[index : index + 50]
        for status in ("sent", "receipt"):
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
                if status == "receipt":
                    failed = rng.random() < fail_share
                    params["SmsStatus"] = params["MessageStatus"] = (
                        "undelivered" if failed else "delivered"
                    )
                    if failed:
                        params["ErrorCode"] = "30003"
                path = f"{STATUS_PATH}?m={message_id}"
                signature = compute_signature(base_url + path, params, h.AUTH_TOKEN)
                out.append((path, urlencode(params).encode(), signature))
                if status == "receipt" and rng.random() < replay_share:
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
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes.")
    parser.add_argument("--threads", type=int, default=12, help="Threads per gthread worker.")
    parser.add_argument("--worker-class", choices=["gthread", "sync"], default="gthread")
    parser.add_argument("--concurrency", type=int, default=48, help="Requests in flight.")
    parser.add_argument("--messages", type=int, default=40_000, help="Sent messages seeded.")
    parser.add_argument("--replay-share", type=float, default=0.05, help="Replayed receipts.")
    parser.add_argument(
        "--fail-share", type=float, default=0.03, help="Receipts 'undelivered' (30003)."
    )
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
    print(f"seeding {args.messages} texts a running skill planned and sent ...", flush=True)
    messages, skill_id = seed(args.messages)
    requests = requests_for(messages, base_url, args.replay_share, args.fail_share)
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
    if not check(requests, answered, skill_id):
        print("MISMATCH: a callback answered 200 was not applied", file=sys.stderr)
        sys.exit(1)


def check(requests, answered: list[int], skill_id: int) -> bool:
    """Every callback answered 200 kept as an event and applied: message status, and for the
    skill's texts the attempt's outcome and the record (final "delivered", or open again after
    a transient failure)."""
    from messaging.models import MessageEvent, MessageStatus, OutboundMessage
    from skills.models import Attempt, FinalReason, OutcomeClass, Record, Skill
    from skills.outcomes import outcomes_settle

    events = MessageEvent.objects.filter(kind=MessageEvent.Kind.CALLBACK).count()
    told = {}
    for i in answered:
        path, body, _signature = requests[i]
        for status in ("delivered", "undelivered"):
            if f"MessageStatus={status}".encode() in body:
                told[path] = status
    told_delivered = sum(1 for s in told.values() if s == "delivered")
    told_failed = len(told) - told_delivered
    delivered = OutboundMessage.objects.filter(status=MessageStatus.DELIVERED).count()
    failed = OutboundMessage.objects.filter(status=MessageStatus.UNDELIVERED).count()
    attempts = Attempt.objects.filter(skill_id=skill_id)
    recorded = attempts.exclude(outcome="").count()
    attempts_delivered = attempts.filter(outcome=OutcomeClass.DELIVERED).count()
    final = Record.objects.filter(is_final=True, final_reason=FinalReason.DELIVERED).count()
    print(
        f"check: {len(answered)} answered 200 in all, {events} callback events kept; "
        f"{told_delivered} messages told delivered, {delivered} delivered in the database; "
        f"{told_failed} told undelivered, {failed} undelivered"
    )
    print(
        f"skill outcomes recorded by the callbacks: {recorded} "
        f"({100 * recorded / max(1, len(answered)):.0f}% of the callbacks answered): "
        f"{attempts_delivered} delivered, {final} records final 'delivered'"
    )
    # Transient failures of a running skill wait for the planner's next pass (every minute).
    started = time.monotonic()
    settled = outcomes_settle(skill=Skill.objects.get(pk=skill_id))
    attempts_failed = attempts.filter(outcome=OutcomeClass.TRANSIENT).count()
    exhausted = Record.objects.filter(final_reason=FinalReason.EXHAUSTED).count()
    print(
        f"then the planner's sweep (outcomes_settle): {settled} failures applied in "
        f"{time.monotonic() - started:.1f} s: {attempts_failed} transient, {exhausted} records "
        "final 'exhausted' (the default cadence texts each number once)"
    )
    return (
        events == len(answered)
        and delivered == told_delivered == attempts_delivered == final
        and failed == told_failed == attempts_failed
    )


if __name__ == "__main__":
    main()
