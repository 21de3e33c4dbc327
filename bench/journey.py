"""The whole product, end to end, at production shape: an upload, five skills, until every record
is final.

Usage::

    .venv/bin/python bench/journey.py [--records 100000] [--codes 5] [--rate 100]
        [--workers 3] [--latency-ms 150] [--fail-rate 0.05] [--stop-rate 0.01]
        [--timeout 1800] [--database-url postgres://...] [--redis-url redis://...]

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
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
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

    honcho = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "honcho"),
            "start",
            "-c",
            f"web=1,worker={args.workers}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
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
        while time.monotonic() < deadline:
            for pid in [*descendants(honcho.pid), carrier.pid]:
                peaks[pid] = max(peaks.get(pid, ("", 0)), peak_rss(pid), key=lambda p: p[1])
            states = set(
                Skill.objects.filter(pk__in=[s.pk for s in skills]).values_list("state", flat=True)
            )
            if states == {Skill.State.COMPLETED}:
                break
            time.sleep(2)
        finished = time.monotonic() - started
    finally:
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
    pairs = collections.Counter((r["to"], r["body"]) for r in sent)
    print(f"journey: duplicates {sum(n - 1 for n in pairs.values() if n > 1)} (required 0)")
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
