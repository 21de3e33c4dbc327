"""``manage.py smtp_sink``: a local SMTP server for the email skills' mail (docs/email.md)."""

from __future__ import annotations

import contextlib
import signal
import threading

from django.core.management.base import BaseCommand

from messaging.fake_carrier.smtp_sink import REFUSED_PREFIX, SmtpSink


class Command(BaseCommand):
    help = (
        "Run a local SMTP server that accepts every email (recipients starting with "
        f"'{REFUSED_PREFIX}' get a 550 hard bounce) and keeps it, optionally in an mbox file. "
        "Point the email backend at it with EMAIL_URL=smtp://127.0.0.1:<port>. Ctrl-C stops it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--port", type=int, default=1025, help="Port (0: any free port).")
        parser.add_argument("--mbox", help="Append every accepted email to this mbox file.")

    def handle(self, *args, **options):
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        with SmtpSink(options["host"], options["port"], mbox=options["mbox"]) as sink:
            self.stdout.write(f"SMTP sink listening on smtp://{sink.host}:{sink.port}", ending="\n")
            self.stdout.flush()
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop and say how many
                done.wait()
            self.stdout.write(f"{sink.count} email(s) received")
