"""Run the demo: the Django web server, the django-q2 worker and a local SMTP sink together,
in one terminal.

Each child runs in its own process group and its output is prefixed with ``[web]``,
``[worker]`` or ``[mail]``. The web server and the worker get ``EMAIL_URL`` pointing at the
sink, so the demo's email skill (seed_demo pins its registration to Django's SMTP backend)
mails it, and the sink keeps every email in ``demo-mail.mbox``; texts go to the simulated
carrier, which runs inside the worker. The admin URL is printed once the web server answers.
Ctrl-C (or SIGTERM) stops them all; if any child dies on its own, the others are stopped and
this script exits non-zero.

Started by ``make demo``; standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# Where the SMTP sink keeps the demo's emails (git ignores it); any mail reader opens it.
MBOX = BASE_DIR / "demo-mail.mbox"
# How long a child may take to stop on SIGINT before it gets SIGTERM, then SIGKILL.
GRACE_SECONDS = 10.0

_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Child:
    """One supervised ``manage.py`` command, in a process group of its own."""

    def __init__(
        self,
        label: str,
        args: list[str],
        env: dict[str, str],
        shown: Callable[[str], bool] | None = None,
    ) -> None:
        self.label = label
        self.shown = shown
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            # Its own session: the terminal's Ctrl-C reaches only this supervisor, which then
            # stops each child's whole group (django-q2's worker processes included).
            start_new_session=True,
        )
        self.pump = threading.Thread(target=self._pump, name=f"pump-{label}", daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self.shown is None or self.shown(line):
                say(f"[{self.label}] {line.rstrip()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, signum: int) -> None:
        # The group may already be gone; that is the goal, not an error.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


def mail_line_shown(line: str) -> bool:
    """aiosmtpd logs each SMTP command of every session: of those, only each recipient (those
    starting with "bounce" are then refused with a 550)."""
    return " mail.log " not in line or " recip: " in line


def stop_all(children: list[Child]) -> None:
    """SIGINT first (django-q2 and runserver both stop cleanly on it), then harder."""
    for signum, wait in ((signal.SIGINT, GRACE_SECONDS), (signal.SIGTERM, 5.0)):
        for child in children:
            if child.alive():
                child.signal_group(signum)
        deadline = time.monotonic() + wait
        while any(c.alive() for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
    for child in children:
        # SIGKILL the group even when the leader is gone: stray worker processes go with it.
        child.signal_group(signal.SIGKILL)
        child.proc.wait()
        child.pump.join(timeout=2)


def announce_when_up(web: Child, url: str, mail: str, stop: threading.Event) -> None:
    """Polls the admin URL and prints it once the web server answers."""
    while not stop.is_set() and web.alive():
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own http URL
                pass
        except urllib.error.HTTPError:
            pass  # any HTTP answer (a redirect to the login page, even an error) means it's up
        except (urllib.error.URLError, OSError):
            stop.wait(0.5)
            continue
        if web.alive():
            say("")
            say(f"  pcsms admin: {url}")
            say("  Log in with the account seed_demo printed above. Ctrl-C stops the demo.")
            say(f"  Demo emails: {mail}")
            say("")
        return


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the pcsms web server, django-q2 worker and a local SMTP sink for the "
        "demo's emails together (Ctrl-C stops them all)."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8000),
        help="port to serve on (the PORT environment variable, else 8000)",
    )
    parser.add_argument(
        "--smtp-port",
        type=int,
        default=int(os.environ.get("SMTP_PORT") or 1025),
        help="port of the SMTP sink on 127.0.0.1 (the SMTP_PORT environment variable, else "
        "1025; a free one if that is in use)",
    )
    parser.add_argument(
        "--mbox",
        type=Path,
        default=MBOX,
        help=f"file the SMTP sink appends the emails to ({MBOX.name})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base_url = f"http://{args.host}:{args.port}"
    # Checked first: otherwise another program on the port would answer and be announced.
    if not port_is_free(args.host, args.port):
        say(f"[demo] {args.host}:{args.port} is in use; stop what runs there or set PORT=...")
        return 1
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # The demo runs with DEBUG on (no SECRET_KEY needed, static files served by runserver),
    # and callback URLs point at this server unless the caller says otherwise.
    env.setdefault("DEBUG", "true")
    env.setdefault("PUBLIC_BASE_URL", base_url)
    smtp_host, smtp_port = "127.0.0.1", args.smtp_port
    if not port_is_free(smtp_host, smtp_port):
        smtp_port = any_free_port(smtp_host)
        say(f"[demo] {smtp_host}:{args.smtp_port} is in use; the SMTP sink takes {smtp_port}.")
    smtp_url = f"smtp://{smtp_host}:{smtp_port}"
    # Always the sink, whatever the caller's EMAIL_URL: the demo's mail stays on this machine.
    served = {**env, "EMAIL_URL": smtp_url}
    mbox = args.mbox.resolve()

    stopping = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    children = [
        Child("web", ["runserver", f"{args.host}:{args.port}", "--noreload"], served),
        Child("worker", ["qcluster"], served),
        Child(
            "mail",
            ["smtp_sink", "--host", smtp_host, "--port", str(smtp_port), "--mbox", str(mbox)],
            env,
            shown=mail_line_shown,
        ),
    ]
    web = children[0]
    mail = f"sent to the SMTP sink at {smtp_url}, kept in {mbox}"
    threading.Thread(
        target=announce_when_up,
        args=(web, f"{base_url}/admin/", mail, stopping),
        name="announce",
        daemon=True,
    ).start()

    exit_code = 0
    while not stopping.is_set():
        dead = [c for c in children if not c.alive()]
        if dead:
            for child in dead:
                say(f"[demo] {child.label} exited with code {child.proc.returncode}; stopping.")
            # Non-zero even if the child exited 0: the demo is not meant to end on its own.
            code = dead[0].proc.returncode
            exit_code = code if code and code > 0 else 1
            break
        stopping.wait(0.2)
    if received:
        say(f"[demo] {signal.Signals(received[0]).name} received; stopping.")

    stopping.set()
    stop_all(children)
    say("[demo] stopped.")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
