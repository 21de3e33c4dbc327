"""Email sending throughput to the local SMTP sink, next to SMS on the same setup.

4 email senders at 50 msg/s each (200 msg/s demanded) on PostgreSQL, ``manage.py dispatch``
worker processes sending for 60 s through Django's SMTP backend to the SMTP sink (aiosmtpd, run
in the bench's own process, which stamps when each message's SMTP transaction arrives). In the
same run, the baseline: as many SMS codes at the same pace, the same workers and seconds, to the
fake carrier (150 ms latency). Prints each channel's steady rate (first to last arrival, the
first 2 s and the last 1 s left out) and the ratio email / SMS, with the rate demanded; the
busiest sender's messages in any one-second window at arrival and at send time (the limit: the
pace); duplicates (none); the workers' CPU per message; the delay from send start to arrival,
and how late the sink's own event loop woke (its stamps are late by as much).

    .venv/bin/python bench/email_sending.py [--seconds 60] [--codes 4] [--rate 50] [--workers 2]
        [--latency-ms 150] [--database-url postgres://...]  (dropped and created afresh)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import tempfile
import time
from pathlib import Path

import _harness as h

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def _timed_sink():
    """The SMTP sink, keeping for every accepted message only its arrival, sender and
    recipient (a run accepts more than the sink's own ``keep``). A message's arrival is when
    its SMTP transaction reached the sink (its first RCPT, right after MAIL FROM), the
    counterpart of the moment a carrier receives a request; it is counted once its DATA is
    accepted."""
    from aiosmtpd.controller import Controller

    from messaging.fake_carrier import smtp_sink

    class Handler(smtp_sink._Handler):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
            if not hasattr(envelope, "arrived"):
                envelope.arrived = time.time()
            return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            answer = await super().handle_DATA(server, session, envelope)
            for to in envelope.rcpt_tos:
                self.sink.arrivals.append((envelope.arrived, envelope.mail_from, to))
            return answer

    class TimedSink(smtp_sink.SmtpSink):
        def __init__(self) -> None:
            super().__init__(port=h.free_port(), keep=1)
            self.arrivals: list[tuple[float, str, str]] = []
            self.loop_lag: list[float] = []

        def keep(self, received) -> None:
            with self._lock:
                self.count += 1

        def start(self) -> TimedSink:
            self._controller = Controller(Handler(self), hostname=self.host, port=self.port)
            self._controller.start()
            asyncio.run_coroutine_threadsafe(self._probe(), self._controller.loop)
            return self

        async def _probe(self) -> None:
            # How late the sink's own event loop wakes: arrival stamps are late by as much.
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.002)
                self.loop_lag.append(time.monotonic() - before - 0.002)

    return TimedSink()


def _make_email_codes(bu, count: int, rate: float):
    from django.utils import timezone

    from messaging.models import SmsRegistration, TransportCode

    bu.business_name = "Bench Mail"
    bu.postal_address = "1 Bench Street\nSpringfield, IL 62701"
    bu.save()
    registrations = []
    for i in range(count):
        code = TransportCode.objects.create(
            business_unit=bu,
            number=f"news{i + 1}@mail.bench.test",
            kind=TransportCode.Kind.EMAIL,
            messages_per_second=rate,
            provisioning_status=TransportCode.Provisioning.PROVISIONED,
            provisioned_on=timezone.localdate(),
        )
        registrations.append(
            SmsRegistration.objects.create(
                business_unit=bu,
                name=f"Bench mail {i}",
                transport_code=code,
                backend=SMTP_BACKEND,
            )
        )
    return registrations


def _email_fields(n: int) -> dict:
    """One queued email: an address, a subject, a plain and an HTML part."""
    return {
        "to": f"person{n}@example.com",
        "subject": f"Your appointment {n}",
        "body": f"Hi, this is bench email {n}.\nSee you soon.",
        "html_body": f"<p>Hi, this is bench email {n}.</p><p>See you soon.</p>",
        "encoding": "UTF-8",
        "source": "bench",
    }


def _our_send_times() -> tuple[dict[str, list[float]], dict[str, float]]:
    """Send-start times (``sent_at``) by sender, and by recipient."""
    from messaging.models import OutboundMessage

    by_code: dict[str, list[float]] = collections.defaultdict(list)
    by_to: dict[str, float] = {}
    for to, sent_at, code in OutboundMessage.objects.filter(sent_at__isnull=False).values_list(
        "to", "sent_at", "transport_code__number"
    ):
        by_code[code].append(sent_at.timestamp())
        by_to[to] = sent_at.timestamp()
    return by_code, by_to


def _run_workers(args, env: dict[str, str], others: list[int]) -> dict[str, float]:
    """The workers for ``--seconds``; their CPU (and ``others``') over the middle of the run."""
    workers = h.start_workers(args.workers, env, "--seconds", str(args.seconds))
    warm = min(10.0, args.seconds / 4)
    time.sleep(warm)
    meter = h.CpuMeter(workers=[w.pid for w in workers], receiver=others)
    metered = max(1.0, args.seconds - warm - 5)
    time.sleep(metered)
    cpu = meter.stop()
    cpu["from"], cpu["to"] = meter.wall_from, meter.wall_to
    time.sleep(max(0.0, args.seconds + 3 - metered - warm))
    h.stop(workers)
    return cpu


def _figures(arrivals: list[tuple[float, str, str]], queued: int, cpu: dict) -> dict:
    """``arrivals``: (time, sender, recipient) for everything the receiving end accepted."""
    times = sorted(t for t, _, _ in arrivals)
    steady = [t for t in times if times and times[0] + 2 <= t <= times[-1] - 1]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    by_code = collections.defaultdict(list)
    for t, sender, _ in arrivals:
        by_code[sender].append(t)
    worst = max((h.max_per_window(ts) for ts in by_code.values()), default=0)
    worst_steady = max(
        (
            h.max_per_window([t for t in ts if steady and steady[0] <= t <= steady[-1]])
            for ts in by_code.values()
        ),
        default=0,
    )
    ours, started = _our_send_times()
    lag = [t - started[to] for t, _, to in arrivals if to in started]
    in_meter = sum(1 for t in times if cpu["from"] <= t <= cpu["to"])
    return {
        "received": len(arrivals),
        "queued": queued,
        "rate": rate,
        "worst": worst,
        "worst_steady": worst_steady,
        "worst_ours": max((h.max_per_window(ts) for ts in ours.values()), default=0),
        "duplicates": len(arrivals) - len({to for _, _, to in arrivals}),
        "workers_ms": cpu["workers"] * 1000 / max(1, in_meter),
        "cpu": {k: cpu[k] / cpu["seconds"] for k in ("workers", "receiver", "postgres")},
        "lag": h.quantiles(lag),
    }


def _print(unit: str, where: str, receiver: str, f: dict, limit: float) -> None:
    print(
        f"email: {unit} {where}: {f['received']:,} of {f['queued']:,} queued accepted, "
        f"{f['rate']:,.1f} msg/s steady; busiest sender's max in any 1-s window "
        f"{f['worst']} at arrival ({f['worst_steady']} in the steady state) / "
        f"{f['worst_ours']} at send time (limit {limit:g}); duplicates {f['duplicates']}"
    )
    print(
        f"email: {unit}: CPU over the middle of the run: workers {f['cpu']['workers']:.2f} "
        f"cores, {receiver} {f['cpu']['receiver']:.2f}, postgres {f['cpu']['postgres']:.2f}; "
        f"workers {f['workers_ms']:.2f} ms per message; send start -> arrival "
        + ", ".join(f"{name} {value * 1000:,.0f} ms" for name, value in f["lag"].items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--codes", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=150, help="The fake carrier's.")
    h.database_url_option(parser, "pcsms_bench_email")
    args = parser.parse_args()
    demand = args.codes * args.rate
    print(
        f"email: {args.codes} senders x {args.rate:g} msg/s = {demand:g} msg/s demanded per "
        f"channel, {args.workers} worker process(es), {args.seconds:g} s, PostgreSQL; "
        f"SMS baseline to the fake carrier at {args.latency_ms:g} ms latency"
    )
    url = h.fresh_postgres(args.database_url)
    h.setup_django(h.bench_env(url))
    from messaging.models import OutboundMessage, SenderLease
    from pcsms.models import BusinessUnit

    # The sink runs here: what exists after start-up is left out of the garbage collector's
    # full collections, as the fake carrier and the workers do, so they pause it less.
    gc.freeze()

    per_code = int(args.rate * args.seconds * 1.1)

    # Email: the sink in this process, the workers' Django mail settings pointed at it.
    bu, _ = BusinessUnit.objects.get_or_create(name="Bench")
    registrations = _make_email_codes(bu, args.codes, args.rate)
    queued = h.queue_messages(bu, registrations, per_code, fields=_email_fields)
    with _timed_sink() as sink:
        env = h.bench_env(url, EMAIL_URL=f"smtp://127.0.0.1:{sink.port}")
        cpu = _run_workers(args, env, [os.getpid()])
    mail = _figures(list(sink.arrivals), queued, cpu)
    OutboundMessage.objects.all().delete()
    SenderLease.objects.all().delete()

    # SMS on the same setup: as many codes at the same pace, to the fake carrier.
    log = Path(tempfile.gettempdir()) / "pcsms-bench-email-sms.jsonl"
    bu, registrations = h.make_codes(args.codes, args.rate, prefix=646)
    queued = h.queue_messages(bu, registrations, per_code)
    carrier, carrier_url = h.start_carrier(log, latency_ms=args.latency_ms)
    try:
        cpu = _run_workers(args, h.bench_env(url, carrier_url), [carrier.pid])
    finally:
        h.stop([carrier])
    sms = _figures([(r["t"], r["from"], r["to"]) for r in h.read_log(log)], queued, cpu)

    _print("emails", "to the SMTP sink", "sink", mail, args.rate)
    _print("texts", "to the fake carrier", "carrier", sms, args.rate)
    print(
        "email: the sink's own event loop woke late by "
        + ", ".join(
            f"{name} {value * 1000:,.1f} ms" for name, value in h.quantiles(sink.loop_lag).items()
        )
        + " (its arrival stamps are late by as much; the carrier's are the kernel's)"
    )
    ratio = mail["rate"] / sms["rate"] if sms["rate"] else 0.0
    print(
        f"email: {mail['rate']:,.1f} emails/s vs {sms['rate']:,.1f} texts/s steady = "
        f"{ratio:.2f} x SMS ({demand:g} msg/s demanded on each)"
    )


if __name__ == "__main__":
    main()
