"""Test settings: the real settings with the locmem SMS backend and django-q2 in sync mode.

django-q2 reads ``Q_CLUSTER`` once at import, so ``override_settings`` cannot switch it;
it is pinned here, before Django starts.
"""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")

from pcsms.settings import *  # noqa: E402,F403
from pcsms.settings import Q_CLUSTER  # noqa: E402

SMS_BACKEND = "messaging.backends.locmem.LocmemBackend"
# On SQLite the test database is a file, not memory, so that worker processes started by the
# fault tests can share it.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # One file per test run, so two runs side by side never share it.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")  # noqa: F405
    }
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = BASE_DIR / ".test-media"  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
