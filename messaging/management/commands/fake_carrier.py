"""``manage.py fake_carrier``: a local Twilio-compatible carrier for demos and load tests."""

from __future__ import annotations

import gc
import json
import signal
import time

from django.conf import settings
from django.core.management.base import CommandError

from messaging.fake_carrier import FakeCarrier
from pcsms.commands import JsonCommand


def _rate(value: str) -> float:
    rate = float(value)
    if not 0 <= rate <= 1:
        raise ValueError(value)
    return rate


class Command(JsonCommand):
    help = (
        "Run a local HTTP server that answers the Twilio Messages API like Twilio (201 with an "
        "SM... sid; 400 21211 invalid To, 21610 unsubscribed; 429 20429 at --throttle-rate; "
        "500 at --fail-rate), records every accepted message, and posts signed status "
        "callbacks (and STOP replies at --stop-rate) back. Point the Twilio backend at it with "
        "TWILIO_API_BASE_URL=<the printed URL>. Ctrl-C stops it. See docs/carrier.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument(
            "--port", type=int, default=8975, help="Port to listen on (0: any free port)."
        )
        parser.add_argument(
            "--latency-ms",
            type=float,
            default=0.0,
            help="Milliseconds each answer waits, like the network and Twilio's API (150 is "
            "realistic).",
        )
        parser.add_argument(
            "--fail-rate",
            type=_rate,
            default=0.0,
            help="Share of sends answered 500 without processing them (0-1).",
        )
        parser.add_argument(
            "--fail-status",
            type=int,
            default=500,
            help="HTTP status of the --fail-rate answers (500; 503 is Twilio's 'try again').",
        )
        parser.add_argument(
            "--throttle-rate",
            type=_rate,
            default=0.0,
            help="Share of sends answered 429 / 20429 with Retry-After: 1, not processed (0-1).",
        )
        parser.add_argument(
            "--drop-rate",
            type=_rate,
            default=0.0,
            help="Share of sends processed but answered by closing the connection (the "
            "sender sees no answer and must reconcile).",
        )
        parser.add_argument(
            "--stop-rate",
            type=_rate,
            default=0.0,
            help="Share of delivered recipients who reply STOP (posted to --callback-base).",
        )
        parser.add_argument(
            "--undelivered-rate",
            type=_rate,
            default=0.0,
            help="Share of messages reported undelivered (30003) instead of delivered.",
        )
        parser.add_argument(
            "--callback-base",
            default="",
            help="Base URL of the pcsms web server, e.g. http://127.0.0.1:8000: status "
            "callbacks go to /sms/twilio/status/ there when a message names no StatusCallback, "
            "inbound STOP replies to /sms/twilio/inbound/.",
        )
        parser.add_argument(
            "--callback-delay",
            type=float,
            default=0.5,
            help="Seconds from accepted to sent, and from sent to delivered.",
        )
        parser.add_argument(
            "--no-callbacks",
            action="store_true",
            help="Post no callbacks at all (load tests of the send path alone).",
        )
        parser.add_argument(
            "--auth-token",
            default=None,
            help="Auth token that signs callbacks (X-Twilio-Signature). Default: the "
            "TWILIO_AUTH_TOKEN setting.",
        )
        parser.add_argument(
            "--check-auth",
            action="store_true",
            help="Answer 401 / 20003 unless the request's Basic auth is AccountSid:auth token.",
        )
        parser.add_argument(
            "--unsubscribed",
            action="append",
            default=[],
            metavar="NUMBER",
            help="A number that has unsubscribed (sends to it get 21610). Repeat or separate "
            "with commas.",
        )
        parser.add_argument(
            "--log",
            default=None,
            metavar="FILE",
            help="Append every accepted message as a JSON line (sid, to, from, body, time).",
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="Seed for repeatable rates and sids."
        )
        parser.add_argument(
            "--report-every",
            type=int,
            default=1000,
            metavar="N",
            help="Print a progress line every N accepted messages (0: never).",
        )
        parser.add_argument(
            "--duration",
            type=float,
            default=0.0,
            help="Stop after this many seconds (0: run until interrupted).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print machine-readable JSON lines instead."
        )

    def handle(self, *args, **options):
        unsubscribed = [
            number.strip()
            for value in options["unsubscribed"]
            for number in value.split(",")
            if number.strip()
        ]
        auth_token = options["auth_token"]
        if auth_token is None:
            auth_token = settings.TWILIO_AUTH_TOKEN
        carrier = FakeCarrier(
            host=options["host"],
            port=options["port"],
            latency_ms=options["latency_ms"],
            fail_rate=options["fail_rate"],
            fail_status=options["fail_status"],
            throttle_rate=options["throttle_rate"],
            drop_rate=options["drop_rate"],
            stop_rate=options["stop_rate"],
            undelivered_rate=options["undelivered_rate"],
            callback_base=options["callback_base"],
            callback_delay=options["callback_delay"],
            callbacks=not options["no_callbacks"],
            auth_token=auth_token,
            check_auth=options["check_auth"],
            unsubscribed=unsubscribed,
            log=options["log"],
            seed=options["seed"],
        )
        try:
            carrier.start()
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc
        as_json = options["json"]
        self._emit(
            as_json,
            {"event": "listening", "url": carrier.url},
            f"Fake Twilio carrier listening on {carrier.url}\n"
            f"  send with: SMS_BACKEND=messaging.backends.twilio.TwilioBackend "
            f"TWILIO_API_BASE_URL={carrier.url}",
        )

        def stop(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        every = options["report_every"]
        deadline = time.monotonic() + options["duration"] if options["duration"] else None
        started = time.monotonic()
        reported = 0
        last_freeze = time.monotonic()
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
                if time.monotonic() - last_freeze >= 1.0:
                    # The carrier keeps every message it accepted, so the collector's full
                    # passes grew with them: 60-340 ms in which no request was handled, then
                    # the backlog stamped at once (its clock showed 120-140 texts in one
                    # second from senders starting at most 100). Collect the last second's
                    # garbage, then leave everything alive out of later passes.
                    gc.collect()
                    gc.freeze()
                    last_freeze = time.monotonic()
                accepted = carrier.stats["accepted"]
                if every and accepted // every > reported // every:
                    reported = accepted
                    self._report(as_json, carrier, started, "progress")
        except KeyboardInterrupt:
            pass
        finally:
            carrier.stop()
        self._report(as_json, carrier, started, "stopped")

    def _report(self, as_json: bool, carrier: FakeCarrier, started: float, event: str) -> None:
        stats = dict(carrier.stats)
        elapsed = time.monotonic() - started
        stats.setdefault("duplicates", 0)
        stats.update(event=event, seconds=round(elapsed, 1))
        line = (
            f"{'Stopped: ' if event == 'stopped' else ''}"
            f"{stats.get('accepted', 0)} accepted, {stats.get('rejected', 0)} rejected, "
            f"{stats.get('throttled', 0)} throttled, {stats.get('failed', 0)} failed, "
            f"{stats.get('dropped', 0)} unanswered, "
            f"{stats.get('callbacks', 0)} callbacks ({stats.get('callback_errors', 0)} failed), "
            f"{stats['duplicates']} duplicates (same to+body again), after {elapsed:.1f} s"
        )
        self._emit(as_json, stats, line)

    def _emit(self, as_json: bool, data: dict, text: str) -> None:
        self.stdout.write(json.dumps(data) if as_json else text)
        self.stdout.flush()
