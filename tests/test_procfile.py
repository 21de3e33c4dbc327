"""The Procfile, run by honcho as docs/deployment.md says: the web server answers ``/healthz``
and the worker takes tasks from the broker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django_q.conf import Conf
from django_q.models import Task

from pcsms.queue import enqueue_on_commit
from tests.processes import ROOT, process_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def test_honcho_starts_a_web_server_and_a_worker(monkeypatch):
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # gunicorn and python of this environment
    env = process_env(
        BIND=f"127.0.0.1:{port}",
        WEB_WORKERS="1",
        WEB_THREADS="2",
        Q_WORKERS="1",
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    honcho = subprocess.Popen(
        [str(Path(bin_dir) / "honcho"), "start"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        body = wait_for(lambda: health(f"http://127.0.0.1:{port}/healthz"), 60, honcho)
        assert body["status"] == "ok" and body["database"] == "ok" and body["broker"] == "ok"

        monkeypatch.setattr(Conf, "SYNC", False)  # to the broker, as in production
        enqueue_on_commit("skills.tasks.plan_tick", task_name="procfile check", group="planner")
        task = wait_for(lambda: Task.objects.filter(name="procfile check").first(), 60, honcho)
        assert task.success, task.result
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
        honcho.stderr.close()
