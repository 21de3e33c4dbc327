"""What the tests that start real pcsms processes share: the test database's URL for them, a
django-q2 cluster (``manage.py qcluster``) on either broker, and waiting for what it does.

The processes run the production settings (``pcsms.settings``), not the test settings, whose
django-q2 is synchronous; they reach the test database through ``DATABASE_URL``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The test database, as a URL another process can open (the SQLite test database is a file)."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    host, port = params.get("HOST") or "127.0.0.1", params.get("PORT") or 5432
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    return f"postgres://{params['USER']}{password}@{host}:{port}/{params['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    """The environment of a pcsms process on the test database."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)  # the broker is the caller's choice, never inherited
    env.update(
        DJANGO_SETTINGS_MODULE="pcsms.settings",
        DEBUG="true",
        DATABASE_URL=database_url(),
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def qcluster(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``manage.py qcluster`` until the block ends; then it and its workers are stopped."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the workers stop with it
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)  # a sender run still going would hold it longer
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stderr.close()


def wait_for(
    condition: Callable[[], object],
    seconds: float,
    process=None,
    describe: Callable[[], str] | None = None,
) -> object:
    """``condition()``'s first true value within ``seconds``; fails saying why if none came
    (``describe()``: what the test sees instead)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            errors = process.stderr.read().decode()[-2000:]
            raise AssertionError(f"the process ended ({process.returncode}): {errors}")
        time.sleep(0.25)
    seen = f": {describe()}" if describe else ""
    raise AssertionError(f"not done within {seconds:.0f} s{seen}")
