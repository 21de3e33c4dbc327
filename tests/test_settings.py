"""Configuration from the environment: production refuses to start without its secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_settings(**env: str) -> subprocess.CompletedProcess:
    drop = {"SECRET_KEY", "DEBUG", "SMS_BACKEND", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"}
    clean = {k: v for k, v in os.environ.items() if k not in drop}
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "pcsms.settings"
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_with_debug_off_names_the_variable():
    result = _load_settings(DEBUG="false")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


def test_debug_on_runs_without_secrets():
    assert _load_settings(DEBUG="true").returncode == 0


@pytest.mark.parametrize("variable", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"])
def test_twilio_backend_in_production_requires_credentials(variable):
    env = {
        "DEBUG": "false",
        "SECRET_KEY": "x" * 50,
        "SMS_BACKEND": "messaging.backends.twilio.TwilioBackend",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "secret",
    }
    env.pop(variable)
    result = _load_settings(**env)
    assert result.returncode != 0
    assert variable in result.stderr


def test_sqlite_file_database_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    """The web server and the worker share the SQLite file: WAL lets them read while one writes."""
    script = (
        "import django; django.setup()\n"
        "from django.db import connection\n"
        "c = connection.cursor()\n"
        "print(c.execute('PRAGMA journal_mode').fetchone()[0], "
        "c.execute('PRAGMA busy_timeout').fetchone()[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DEBUG="true",
        DJANGO_SETTINGS_MODULE="pcsms.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    mode, busy_ms = result.stdout.split()
    assert mode == "wal"
    assert int(busy_ms) >= 5000
