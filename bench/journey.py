"""The whole product, end to end, at production shape: an upload, five skills, until every record
is final.

Usage::

    .venv/bin/python bench/journey.py [--records 100000] [--codes 5] [--rate 100]
        [--workers 3] [--latency-ms 150] [--fail-rate 0.05] [--stop-rate 0.01]
        [--timeout 1800] [--database-url postgres://...] [--redis-url redis://...]
        [--kill [--kill-every 10]]

PostgreSQL (a fresh database, default ``pcsms_bench_journey``) and Redis (database 14 by
default, emptied) behind the repository's ``Procfile`` run by honcho: gunicorn and ``--workers``
django-q2 clusters. The fake carrier (its own process) answers after ``--latency-ms``, refuses
``--fail-rate`` of the requests with a 500 (not processed: the sender retries them), and posts
signed status callbacks back to gunicorn; ``--stop-rate`` of the recipients reply STOP.

A list of ``--records`` records (toll-free numbers, which take their record's zone: one where it
is around noon) is uploaded as a file through the upload job, which starts the first skill;
the other skills start when the import is done. Each of the ``--codes`` short codes at
``--rate`` texts/s has its skill, filtered to its share of the list (Customer1). It runs until
every skill has completed, then prints: the time to complete, texts/s, the busiest second of
each code at the carrier's clock against its limit, duplicates, texts outside the recipient's
allowed hours, texts after the recipient's STOP was stored, records not finalized, and the peak
RSS of each process. Zeros are required where the line says so.

``--kill``: hosts dying. Once the import is done, every ``--kill-every`` seconds one worker
process, picked at random, is killed with SIGKILL together with every process below it (as when
its host loses power) and started again; once, when about a third of the texts have gone,
PostgreSQL is restarted (``pg_ctlcluster ... restart``: every connection is cut). honcho stops
every process when one exits, so in this mode the bench starts the Procfile's ``worker`` line
itself, the same command honcho runs, one process group per worker. Still required: 0
duplicates, 0 lost (every record final and its text at the carrier).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import zoneinfo
from pathlib import Path

import _harness as h

ROOT = Path(__file__).resolve().parent.parent


def start_carrier(log: Path, args, web_url: str):
    """The fake carrier posting its callbacks to gunicorn (the harness's posts none)."""
    port = h.free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "fake_carrier", "--port", str(port)]
        + ["--latency-ms", str(args.latency_ms), "--fail-rate", str(args.fail_rate)]
        + ["--stop-rate", str(args.stop_rate), "--callback-base", web_url]
        + ["--log", str(log), "--auth-token", h.AUTH_TOKEN, "--seed", "7"],
        cwd=ROOT,
        env=h.bench_env("sqlite:///:memory:", DEBUG="true"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (honcho starts each of its processes in a group of
    its own, so a process group would miss them)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def peak_rss(pid: int) -> tuple[str, int]:
    """(command, VmHWM in MB) of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "", 0
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
    return command, kb // 1024


def procfile_command(name: str) -> str:
    """The Procfile's command line for ``name``, parsed as honcho parses it."""
    from honcho.environ import parse_procfile

    return parse_procfile((ROOT / "Procfile").read_text()).processes[name]


class Workers:
    """The Procfile's ``worker`` processes, each in a process group of its own, so that one can
    be killed whole (the cluster and its children) and started again."""

    def __init__(self, count: int, env: dict[str, str]) -> None:
        self.command = procfile_command("worker")
        self.env = env
        self.processes = [self._start() for _ in range(count)]
        self.kills = 0

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(
            self.command,
            shell=True,  # noqa: S602 - the repository's own Procfile line, as honcho runs it
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill_one(self, rng: random.Random) -> None:
        i = rng.randrange(len(self.processes))
        victim = self.processes[i]
        for pid in descendants(victim.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        victim.wait()
        self.kills += 1
        self.processes[i] = self._start()

    def pids(self) -> list[int]:
        return [pid for p in self.processes for pid in descendants(p.pid)]

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def restart_postgres() -> float:
    """Restart the local PostgreSQL cluster (every connection is cut); returns the seconds."""
    started = time.monotonic()
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def retrying(query):
    """Run a read of the bench's own; while PostgreSQL restarts, wait and try again."""
    from django.db import OperationalError, connection

    for _ in range(120):
        try:
            return query()
        except OperationalError:
            connection.close()
            time.sleep(0.5)
    return query()


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own server
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--codes", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--workers", type=int, default=3, help="qcluster processes")
    parser.add_argument("--latency-ms", type=float, default=150)
    parser.add_argument("--fail-rate", type=float, default=0.05)
    parser.add_argument("--stop-rate", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--kill", action="store_true", help="kill workers, restart PostgreSQL")
    parser.add_argument("--kill-every", type=float, default=10.0)
    h.database_url_option(parser, "pcsms_bench_journey")
    args = parser.parse_args()

    import redis

    redis.from_url(args.redis_url).flushdb()
    url = h.fresh_postgres(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="pcsms-journey-"))
    web_port = h.free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    log = work / "carrier.jsonl"
    carrier, carrier_url = start_carrier(log, args, web_url)
    env = h.bench_env(
        url,
        carrier_url,
        REDIS_URL=args.redis_url,
        PUBLIC_BASE_URL=web_url,
        MEDIA_ROOT=str(work / "media"),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        BIND=f"127.0.0.1:{web_port}",
        WEB_WORKERS="2",
        WEB_THREADS="12",
        Q_WORKERS="2",
        CONN_MAX_AGE="60",
        # A lost callback (the database restart of --kill) is looked up after a minute, not the
        # production default of ten, so that the run ends soon after its last text.
        RECEIPT_CHECK_AFTER="60",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    h.setup_django(env)

    from django.db import transaction
    from django.utils import timezone

    from dnc.models import DncEntry
    from messaging.models import MessageTemplate, OutboundMessage
    from skills.models import CallingList, FilterCondition, Record, Skill, UploadJob
    from skills.services import skill_apply_defaults, skill_start, upload_job_enqueue

    zone = h.noon_zone(timezone.now())
    bu, registrations = h.make_codes(args.codes, args.rate, prefix=800)
    bu.allowed_time_zones = [zone]
    bu.save()
    template = MessageTemplate.objects.create(
        business_unit=bu,
        name="Journey",
        body="Hi {FirstName}, see you soon. Reply STOP to end.",
        is_active=True,
    )
    calling_list = CallingList.objects.create(business_unit=bu, name="Journey list")
    skills = []
    for i, registration in enumerate(registrations):
        skill = Skill.objects.create(
            business_unit=bu,
            name=f"Journey {i}",
            registration=registration,
            template=template,
            filter_active=True,
        )
        skill_apply_defaults(skill=skill)
        skill.calling_lists.add(calling_list)
        FilterCondition.objects.create(skill=skill, field="Customer1", operator="eq", value=str(i))
        skills.append(skill)

    path = work / "list.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("ExternalId,SMSPhoneNumber,FirstName,TimeZone,Customer1\n")
        for n in range(args.records):
            handle.write(f"J{n},+1888{2000000 + n:07d},Name{n % 89},{zone},{n % args.codes}\n")
    job = h.queued_upload(calling_list, path, start_skill=skills[0])

    # honcho runs the Procfile: both lines, or (--kill) the web alone and the workers here.
    honcho = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "honcho"),
            "start",
            "-c",
            f"web=1,worker={0 if args.kill else args.workers}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    workers = Workers(args.workers, env) if args.kill else None
    rng = random.Random(11)
    peaks: dict[int, tuple[str, int]] = {}
    try:
        wait_http(f"{web_url}/healthz", 60)
        started = time.monotonic()
        with transaction.atomic():
            upload_job_enqueue(job=job)  # to Redis, as the admin's Import button queues it
        while True:
            job.refresh_from_db()
            if job.status not in (UploadJob.Status.QUEUED, UploadJob.Status.RUNNING):
                break
            time.sleep(1)
        imported = time.monotonic() - started
        print(f"journey: import: {job.rows_valid:,} records in {imported:.1f} s ({job.status})")
        for skill in skills[1:]:
            skill_start(skill=skill)
        deadline = started + args.timeout
        next_kill = time.monotonic() + args.kill_every
        restarted = None  # seconds PostgreSQL took to restart, once it has been
        while time.monotonic() < deadline:
            pids = [*descendants(honcho.pid), carrier.pid, *(workers.pids() if workers else [])]
            for pid in pids:
                peaks[pid] = max(peaks.get(pid, ("", 0)), peak_rss(pid), key=lambda p: p[1])
            states = set(
                retrying(
                    lambda: list(
                        Skill.objects.filter(pk__in=[s.pk for s in skills]).values_list(
                            "state", flat=True
                        )
                    )
                )
            )
            if states == {Skill.State.COMPLETED}:
                break
            if workers and time.monotonic() >= next_kill:
                workers.kill_one(rng)
                next_kill = time.monotonic() + args.kill_every
            if workers and restarted is None and log.exists():
                with log.open() as handle:
                    if sum(1 for _ in handle) >= args.records / 3:
                        restarted = restart_postgres()
            time.sleep(2)
        finished = time.monotonic() - started
    finally:
        if workers:
            workers.stop()
        for process in (honcho, carrier):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in (honcho, carrier):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    sent = h.read_log(log)  # every text the carrier accepted, stamped by its clock
    print(
        f"journey: {args.records:,} records, {args.codes} codes x {args.rate:g}/s, "
        f"{args.workers} worker processes, Redis broker, carrier {args.latency_ms:g} ms, "
        f"{args.fail_rate:.0%} refused, {args.stop_rate:.0%} reply STOP"
    )
    if workers:
        print(
            f"journey: --kill: {workers.kills} worker processes killed with SIGKILL and started "
            f"again (one every {args.kill_every:g} s); PostgreSQL restarted once"
            + (f" ({restarted:.1f} s)" if restarted is not None else " (NOT: too few texts)")
        )
    print(
        f"journey: completed in {finished:,.0f} s (timeout {args.timeout:,.0f} s)"
        if finished < args.timeout
        else f"journey: NOT completed within {args.timeout:,.0f} s"
    )
    if sent:
        span = max(r["t"] for r in sent) - min(r["t"] for r in sent)
        rate = len(sent) / max(span, 1)
        print(f"journey: {len(sent):,} texts accepted by the carrier, {rate:,.0f}/s")
    by_code = collections.defaultdict(list)
    for r in sent:
        by_code[r["from"]].append(r["t"])
    busiest_by_code = {code: h.max_per_window(times) for code, times in by_code.items()}
    busiest = max(busiest_by_code.values(), default=0)
    windows_over = sum(1 for n in busiest_by_code.values() if n > args.rate)
    print(
        f"journey: busiest second at the carrier's clock {busiest} (limit {args.rate:g}); "
        f"codes over the limit: {windows_over} (required 0)"
    )
    started_at = {
        sid: at.timestamp()
        for sid, at in OutboundMessage.objects.filter(sent_at__isnull=False).values_list(
            "carrier_sid", "sent_at"
        )
    }
    ours = collections.defaultdict(list)
    lag = []
    for r in sent:
        if r["sid"] in started_at:
            ours[r["from"]].append(started_at[r["sid"]])
            lag.append(r["t"] - started_at[r["sid"]])
    print(
        f"journey: busiest second at pcsms's clock (send starts) "
        f"{max((h.max_per_window(ts) for ts in ours.values()), default=0)}; "
        "send start -> carrier's clock: "
        + ", ".join(f"{name} {value * 1000:,.0f} ms" for name, value in h.quantiles(lag).items())
    )
    pairs = collections.Counter((r["to"], r["body"]) for r in sent)
    print(f"journey: duplicates {sum(n - 1 for n in pairs.values() if n > 1)} (required 0)")
    lost = args.records - len({r["to"] for r in sent})
    print(f"journey: records whose text never reached the carrier {lost:,} (required 0)")
    local = zoneinfo.ZoneInfo(zone)
    outside = sum(
        1
        for r in sent
        if not dt.time(8) <= dt.datetime.fromtimestamp(r["t"], local).time() < dt.time(21)
    )
    print(f"journey: texts outside the recipient's allowed hours {outside} (required 0)")
    stopped = {
        str(e.phone_number): e.created_at.timestamp()
        for e in DncEntry.objects.filter(group__business_unit=bu)
    }
    after_stop = sum(1 for r in sent if r["to"] in stopped and r["t"] > stopped[r["to"]])
    print(f"journey: STOPs stored {len(stopped):,}; texts after one {after_stop} (required 0)")
    open_records = Record.objects.filter(calling_list=calling_list, is_final=False).count()
    print(f"journey: records not finalized {open_records:,} (required 0)")
    texts = OutboundMessage.objects.count()
    print(f"journey: {texts:,} texts in the log")
    for command, mb in sorted(peaks.values(), key=lambda p: -p[1])[:12]:
        print(f"journey: peak RSS {mb:5,} MB  {command[:90]}")


if __name__ == "__main__":
    main()
