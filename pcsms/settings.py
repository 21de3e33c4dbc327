"""Settings for pcsms, read from the environment with django-environ.

Every variable is documented in ``.env.example``. The defaults run everything on one machine:
SQLite (WAL mode, so the web server and the worker share it), the ORM broker for django-q2 and
the simulated carrier. Production sets ``DATABASE_URL=postgres://...``, ``REDIS_URL`` and the
Twilio credentials.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is a convenience for developers; real deployments set the environment itself.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


def _required(name: str, dev_default: str) -> str:
    """A secret: mandatory in production, a fixed development value when DEBUG is on."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"Set the {name} environment variable (required when DEBUG is off).")


SECRET_KEY = _required("SECRET_KEY", "dev-only-insecure-secret-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Behind a TLS-terminating proxy, Twilio signs the https URL; Django must know it was https.
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # The webhooks are unaffected: the carrier calls the https PUBLIC_BASE_URL, which the
    # proxy forwards with X-Forwarded-Proto: https, so no request of theirs is redirected.
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    # Sent from the pcsms host name, these cover that host and its own subdomains only.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "pcsms.admin_apps.PcsmsAdminConfig",  # django.contrib.admin, its index grouped by task
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # thousands separators on the dashboards
    "django_q",
    # Before pcsms: pcsms/admin.py makes the admins of the apps above it superuser-only.
    "axes",
    "phonenumber_field",
    "anymail",  # the ESPs' mail backends and their tracking webhooks (docs/email.md)
    "pcsms",
    "dnc",
    "messaging",
    "skills",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "pcsms.urls"
WSGI_APPLICATION = "pcsms.wsgi.application"
ASGI_APPLICATION = "pcsms.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; the busy timeout makes a writer wait
    # for the lock instead of failing at once; IMMEDIATE takes the write lock at BEGIN so two
    # writers never deadlock on a read-to-write upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
# Workers run many short tasks; reconnecting for each one cut django-q2 throughput ~10x here.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# Server-side prepared statements for the hottest statements (pcsms/db.py); off for a
# transaction-mode pooler that cannot keep them.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Admin login and sessions ------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out login before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_MINUTES = env.int("AXES_COOLOFF_MINUTES", default=15)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
# A user name and an address together: someone guessing one account's password locks that
# account from their own address only, not every colleague behind the office's NAT address.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# A good login forgets the earlier typos.
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "pcsms.throttling.lockout_response"
# Failed logins and lockouts are still logged; not the banner at every manage.py command.
AXES_VERBOSE = False
# An idle timeout, not an absolute one: every request pushes the session's end further out.
SESSION_COOKIE_AGE = env.int("ADMIN_SESSION_IDLE_MINUTES", default=30) * 60
SESSION_SAVE_EVERY_REQUEST = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
# Calling lists can be large; the upload is streamed to disk, not held in memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# The largest calling list or DNC file the admin accepts (pcsms/files.py).
MAX_UPLOAD_MB = env.int("MAX_UPLOAD_MB", default=200)

# The evidence PDF's font (skills/evidence.py): a Unicode TTF shows every character of a text;
# without one the PDF uses its core font, Latin-1 only.
EVIDENCE_PDF_FONT = env.str(
    "EVIDENCE_PDF_FONT", default="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
)

PHONENUMBER_DEFAULT_REGION = env.str("PHONENUMBER_DEFAULT_REGION", default="US")
PHONENUMBER_DEFAULT_FORMAT = "E164"

# --- E-mail (the end-of-list notification, and the email skills' default mail backend) ---------
# EMAIL_URL as django-environ reads it: smtp://user:password@host:587 (+tls), or the default,
# which prints the e-mails on the console. The demo points it at its SMTP sink; tests use
# Django's in-memory outbox. An email sender's registration may name another mail backend.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="pcsms <pcsms@localhost>")
# anymail's settings, each from the environment variable of the same name: ANYMAIL_WEBHOOK_SECRET
# (the basic-auth "user:password" every tracking webhook must carry), the ESP's keys such as
# ANYMAIL_MAILGUN_API_KEY and ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY (docs/email.md).
ANYMAIL = {
    name.removeprefix("ANYMAIL_"): value
    for name, value in os.environ.items()
    if name.startswith("ANYMAIL_")
}

# --- SMS ------------------------------------------------------------------------------------
SMS_BACKEND = env.str("SMS_BACKEND", default="messaging.backends.simulator.SimulatorBackend")
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
# Points the real SDK at another server (the local fake carrier) instead of api.twilio.com.
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="")
# Seconds after its claim before a text with no carrier answer is looked up at the carrier
# (longer than any request can still be on its way).
SENDER_RECONCILE_AFTER = env.float("SENDER_RECONCILE_AFTER", default=30.0)
# A sent text with no receipt after this many seconds is looked up at the carrier, and again
# every as many seconds, for RECEIPT_CHECK_FOR seconds after it was sent: a lost status
# callback then costs a late receipt, not a second text (docs/dnc-and-callbacks.md).
RECEIPT_CHECK_AFTER = env.float("RECEIPT_CHECK_AFTER", default=600.0)
RECEIPT_CHECK_FOR = env.float("RECEIPT_CHECK_FOR", default=2 * 3600.0)
if SMS_BACKEND.endswith("TwilioBackend") and not DEBUG:
    for _name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        if not globals()[_name]:
            raise ImproperlyConfigured(
                f"Set the {_name} environment variable for the Twilio backend."
            )

# --- Workers (django-q2) ----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "pcsms",
    "workers": env.int("Q_WORKERS", default=2),
    # Retry must outlast the timeout or a slow task is started twice; max_attempts bounds
    # retries (the default 0 retries forever, a duplicate-send risk).
    "timeout": 300,
    "retry": 360,
    "max_attempts": 3,
    # A 10-minute outage must not replay as eleven planner runs.
    "catch_up": False,
    "save_limit": 250,
    "label": "Workers",
    "sync": env.bool("Q_SYNC", default=False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # The twilio SDK logs ~10 INFO lines per request: far too many for a sender at 1,000/s.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "twilio": {"level": "WARNING"}},
}
