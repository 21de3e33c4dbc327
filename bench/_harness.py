"""Shared set-up for the sending benchmarks: a fresh PostgreSQL database, the fake carrier in
its own process, and worker processes running ``manage.py dispatch``.

Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_postgres(name: str) -> str:
    """Drop and create a database; returns its URL.

    ``name`` is a database name on the server ``BENCH_PG`` (default the local one), or a full
    ``postgres://`` URL (a bench's ``--database-url``), so benches run at once can keep apart.
    """
    if "://" in name:
        server, name = name.rsplit("/", 1)
    else:
        server = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    host = server.split("@", 1)[1].split(":")[0]
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        subprocess.run(
            ["psql", "-h", host, "-U", "postgres", "-q", "-c", sql],
            check=True,
            capture_output=True,
        )
    return f"{server}/{name}"


def database_url_option(parser, default_name: str) -> None:
    """``--database-url``: the PostgreSQL database a bench drops and creates afresh."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", default_name),
        help=f"postgres://... of a database to drop and recreate (default: {default_name}).",
    )


def bench_env(database_url: str, carrier_url: str = "", **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="pcsms.settings",
        DEBUG="false",
        SECRET_KEY="bench-only-secret",
        DATABASE_URL=database_url,
        SMS_BACKEND="messaging.backends.twilio.TwilioBackend",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_BASE_URL=carrier_url,
        PUBLIC_BASE_URL="http://127.0.0.1:9",  # callbacks go nowhere; the bench counts sends
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_carrier(log: Path, *, latency_ms: float, extra: list[str] | None = None):
    port = free_port()
    log.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            PYTHON,
            "manage.py",
            "fake_carrier",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--log",
            str(log),
            "--auth-token",
            AUTH_TOKEN,
            "--no-callbacks",  # the benches count sends; callbacks would only add noise
            *(extra or []),
        ],
        cwd=ROOT,
        env=bench_env("sqlite:///:memory:", DEBUG="true"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the fake carrier did not start")


def start_workers(n: int, env: dict[str, str], *args: str) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [PYTHON, "manage.py", "dispatch", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        for _ in range(n)
    ]


def stop(processes, sig=signal.SIGINT, timeout: float = 20) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, sig)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def read_log(log: Path) -> list[dict]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        row = json.loads(line)
        row["t"] = dt.datetime.fromisoformat(row["time"]).timestamp()
        rows.append(row)
    return rows


def make_codes(count: int, rate: float, *, prefix: int = 312):
    """A BU with ``count`` provisioned codes at ``rate`` msg/s, each with a registration."""
    from django.utils import timezone

    from messaging.models import SmsRegistration, TransportCode
    from pcsms.models import BusinessUnit

    bu, _ = BusinessUnit.objects.get_or_create(name="Bench")
    registrations = []
    for i in range(count):
        code, _ = TransportCode.objects.get_or_create(
            number=f"+1{prefix}{555 + i // 10000:03d}{i % 10000:04d}",
            defaults={
                "business_unit": bu,
                "kind": TransportCode.Kind.SHORT if rate > 10 else TransportCode.Kind.LONG,
                "messages_per_second": rate,
                "provisioning_status": TransportCode.Provisioning.PROVISIONED,
                "provisioned_on": timezone.localdate(),
            },
        )
        registration, _ = SmsRegistration.objects.get_or_create(
            business_unit=bu, name=f"Bench {i}", defaults={"transport_code": code}
        )
        registrations.append(registration)
    return bu, registrations


def queue_messages(
    bu, registrations, per_code: int, *, body: str = "Bench text {i}", fields=None
) -> int:
    """``per_code`` queued texts per registration; ``fields(n)``: the message's own fields
    instead of a text to +1415... (an email's address, subject and parts)."""
    from messaging.models import OutboundMessage

    rows = []
    n = 0
    for registration in registrations:
        for _ in range(per_code):
            own = (
                fields(n) if fields else {"to": f"+1415{2000000 + n:07d}", "body": body.format(i=n)}
            )
            rows.append(
                OutboundMessage(
                    business_unit=bu,
                    registration=registration,
                    transport_code_id=registration.transport_code_id,
                    segments=1,
                    **own,
                )
            )
            n += 1
    OutboundMessage.objects.bulk_create(rows, batch_size=5000)
    return n


def max_per_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best = left = 0
    for right, t in enumerate(times):
        while times[left] <= t - window:
            left += 1
        best = max(best, right - left + 1)
    return best


def send_times(rows: list[dict]) -> tuple[dict[str, list[float]], list[float]]:
    """Our send-start times by code (``sent_at``: when the sender started each carrier call),
    and for every text the carrier logged, how much later the carrier's clock stamped it."""
    from messaging.models import OutboundMessage

    ours: dict[str, list[float]] = {}
    started: dict[str, float] = {}
    for body, sent_at, code in OutboundMessage.objects.filter(sent_at__isnull=False).values_list(
        "body", "sent_at", "transport_code__number"
    ):
        ours.setdefault(code, []).append(sent_at.timestamp())
        started[body] = sent_at.timestamp()
    lag = [row["t"] - started[row["body"]] for row in rows if row["body"] in started]
    return ours, lag


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    pick = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
    out = {name: values[min(len(values) - 1, int(q * len(values)))] for name, q in pick.items()}
    out["max"] = values[-1]
    return out


def profile(process: subprocess.Popen, out: Path, *, seconds: float) -> subprocess.Popen:
    """Sample ``process`` with py-spy for ``seconds`` (collapsed stacks in ``out``).

    py-spy counts a thread waiting for the GIL (or in a C call that released it) as busy; with
    ``BENCH_PROFILE_GIL=1`` it samples only the thread holding the GIL: Python's own CPU."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(PYTHON).with_name("py-spy")
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(process.pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "50",
            "--nonblocking",
            "--threads",
            *(["--gil"] if os.environ.get("BENCH_PROFILE_GIL") else []),
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc; 0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by groups of processes between its start and :meth:`stop`, plus the
    PostgreSQL sessions of the Django database at the start (the workers' connections)."""

    def __init__(self, **groups: list[int]) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            groups["postgres"] = [row[0] for row in cursor.fetchall()]
        self.groups = groups
        self.start = {name: sum(map(cpu_seconds, pids)) for name, pids in groups.items()}
        self.mono = time.monotonic()
        self.wall_from = time.time()
        self.wall_to = 0.0

    def stop(self) -> dict[str, float]:
        used = {
            name: sum(map(cpu_seconds, pids)) - self.start[name]
            for name, pids in self.groups.items()
        }
        used["seconds"] = time.monotonic() - self.mono
        self.wall_to = time.time()
        return used


def noon_zone(now: dt.datetime) -> str:
    """An IANA zone where ``now`` is between 11:00 and 13:00 (POSIX names: Etc/GMT-5 is +5), so
    that records in it are inside their allowed hours whenever a bench runs."""
    offset = 12 - now.astimezone(dt.UTC).hour
    offset = offset - 24 if offset > 14 else offset + 24 if offset < -12 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def queued_upload(calling_list, path: Path, **fields):
    """An upload job of ``path`` with its proposed mapping, queued: what the admin's Import
    button leaves for a worker."""
    from django.core.files import File

    from skills.importing.service import upload_job_preview
    from skills.models import UploadJob

    job = UploadJob(calling_list=calling_list, original_name=path.name, **fields)
    with path.open("rb") as handle:
        job.file.save(path.name, File(handle), save=False)
    job.save()
    job.mapping = upload_job_preview(job=job).mapping
    job.status = UploadJob.Status.QUEUED
    job.save()
    return job
