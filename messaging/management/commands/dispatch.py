"""``manage.py dispatch``: run the sender in the foreground."""

from __future__ import annotations

import contextlib
import gc
import sys
import time

from django.conf import settings
from django.utils.module_loading import import_string

from messaging.models import MessageStatus, OutboundMessage
from messaging.sender import Dispatcher
from pcsms.commands import JsonCommand, ProgressBar, progress_stream, write_json


class Command(JsonCommand):
    help = (
        "Send queued texts at each transport code's pace, in the foreground. The same loop the "
        "django-q2 workers run; any number may run at once (each code has one sender at a time)."
    )

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--once",
            action="store_true",
            help="Send what is due now, then exit (each code's sender stops when idle).",
        )
        mode.add_argument(
            "--until-idle",
            action="store_true",
            help="Run until nothing is queued or in flight for a few seconds, then exit.",
        )
        parser.add_argument(
            "--seconds", type=float, default=None, help="Stop after this many seconds."
        )
        parser.add_argument(
            "--backend", default=None, help="Dotted path of an SMS backend to use for all codes."
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object with the counts at the end."
        )

    def handle(self, *args, **options):
        # Threads hand the GIL over every 5 ms by default: a slot's carrier call could wait
        # that long behind database work in another thread. Pacing wants sub-millisecond.
        sys.setswitchinterval(0.0005)
        stream = progress_stream(self, options)
        interactive = stream is not None
        # Until idle, the work has an end: a bar of the texts done out of those done and queued.
        bar = (
            ProgressBar(stream, width=20, unit="texts")
            if stream and options["until_idle"]
            else None
        )
        started = time.monotonic()
        last = {"sent": 0, "t": started}

        def progress(dispatcher: Dispatcher) -> None:
            if not interactive:
                return
            now = time.monotonic()
            stats = dispatcher.stats
            rate = (stats.sent - last["sent"]) / max(1e-6, now - last["t"])
            last.update(sent=stats.sent, t=now)
            queued = OutboundMessage.objects.filter(status=MessageStatus.QUEUED).count()
            line = (
                f"{now - started:6.0f} s  codes {len(dispatcher.threads):3d}  "
                f"sent {stats.sent:8d} ({rate:7.1f}/s)  failed {stats.failed}  "
                f"retried {stats.retried}  withdrawn {stats.withdrawn}  "
                f"unknown {stats.unknown}  queued {queued}   "
            )
            if bar is not None:
                done = stats.sent + stats.failed + stats.withdrawn + stats.unknown
                bar.update(done, done + queued, label=line)
                return
            self.stdout.write(f"\r{line}", ending="")
            self.stdout.flush()

        # What exists now (Django, the apps, the SMS backend's modules) lives as long as the
        # process: leave it out of the collector's full passes. They scanned it every ~3 s,
        # 60-135 ms each with every thread stopped (bench/dispatch.py), holding up requests
        # that had passed the start gate.
        # (A backend that cannot be loaded is reported by the senders, as before.)
        with contextlib.suppress(ImportError):
            import_string(options["backend"] or settings.SMS_BACKEND)
        gc.collect()
        gc.freeze()
        dispatcher = Dispatcher(
            until_idle=options["once"] or options["until_idle"],
            max_seconds=options["seconds"],
            idle_exit=0.0 if options["once"] else 5.0,
            backend_path=options["backend"],
            on_tick=progress,
        )
        try:
            stats = dispatcher.run()
        except KeyboardInterrupt:
            dispatcher.stop.set()
            stats = dispatcher.stats
        if interactive:
            self.stdout.write("")
        summary = {
            "sent": stats.sent,
            "failed": stats.failed,
            "retried": stats.retried,
            "withdrawn": stats.withdrawn,
            "held": stats.held,
            "unknown": stats.unknown,
            "requeued": stats.requeued,
            "seconds": round(time.monotonic() - started, 2),
        }
        if options["json"]:
            write_json(self, summary)
        else:
            self.stdout.write(
                "Sent {sent}, failed {failed}, retried {retried}, withdrawn {withdrawn}, "
                "unknown {unknown} in {seconds} s.".format(**summary)
            )
