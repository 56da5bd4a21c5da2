"""The one settings module. Every knob comes from the environment.

Defaults give the embedded setup of `make run`: SQLite in the project folder and
kombu's filesystem broker, so nothing needs a server. With `postgres://` and
`redis://` URLs it is the production setup. Bad values fail loudly at start-up
instead of being guessed at.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LOOPDASH_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean, refusing anything that is not clearly one."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    # A fixed development key keeps `make run` working with no set-up; the
    # system check `loopdash.W001` warns whenever DEBUG is off and this is used.
    SECRET_KEY = "loopdash-insecure-development-key-change-me"
    USING_DEFAULT_SECRET_KEY = True
else:
    USING_DEFAULT_SECRET_KEY = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# HTTPS. loopdash speaks plain HTTP itself; in production a TLS-terminating proxy sits in
# front and tells it the original scheme in X-Forwarded-Proto (and must overwrite any such
# header a client sends). LOOPDASH_HTTPS=true trusts that header, redirects plain HTTP to
# HTTPS, sends HSTS and marks the session and CSRF cookies Secure. /healthz stays reachable
# over plain HTTP so that probes inside the network need no certificate. See docs/PRODUCTION.md.
LOOPDASH_HTTPS = env_bool("LOOPDASH_HTTPS", False)
if LOOPDASH_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("LOOPDASH_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("LOOPDASH_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("LOOPDASH_HSTS_PRELOAD", True)
# How many proxies in front append to X-Forwarded-For: the client address used for login
# throttling is the one the outermost of them saw. 0 (the default) uses REMOTE_ADDR.
LOOPDASH_PROXY_COUNT = env_int("LOOPDASH_PROXY_COUNT", 0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "sessions.apps.LoopSessionsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # After the login check: a NUL in any query parameter or form field is a 400 naming it.
    "sessions.validation.RejectNulMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "loopdash.urls"
WSGI_APPLICATION = "loopdash.wsgi.application"

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
                "django.template.context_processors.csp",  # {{ csp_nonce }} for inline code, if ever needed
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; a generous timeout
    # rides out the worker's short write transactions instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not memory: test workers and browser servers in other processes must see it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Login throttling (django-axes). Axes' backend comes first: it refuses a locked-out login
# before the password is even checked. A lockout is per username *and* client address, so
# an attacker can neither lock a user out from elsewhere nor lock out everyone behind one
# NAT. It ends after the cool-off, or when an admin deletes the access attempt in /admin/
# (or runs `manage.py axes_reset_username NAME`). A cool-off of 0 locks until an admin unlocks.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOOPDASH_LOGIN_FAILURE_LIMIT", 5)
_cooloff_minutes = env_int("LOOPDASH_LOGIN_COOLOFF_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff_minutes) if _cooloff_minutes > 0 else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "loopdash.throttle.lockout_response"  # templates/registration/locked_out.html
AXES_CLIENT_IP_CALLABLE = "loopdash.client_ip.client_ip"
if AXES_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured(f"LOOPDASH_LOGIN_FAILURE_LIMIT={AXES_FAILURE_LIMIT} must be 1 or more")

# Content-Security-Policy on every response. Scripts and style sheets come only from this
# origin (or carry the per-request nonce). Two exceptions, both for styles only:
# - style attributes (`style-src-attr 'unsafe-inline'`): templates size bars with
#   style="width: N%"; an attribute can style its own element but never run script or,
#   with img-src/font-src limited to 'self', load anything from elsewhere.
# - empty <style> elements (the hash of ""): plotly.js creates an empty <style> and fills
#   it through the CSSOM (insertRule), which CSP allows; only the empty element needs it.
# Two inline style elements are kept from being made at all, in templates/base.html: htmx's
# indicator styles (includeIndicatorStyles: false) and the map CSS that plotly.js injects for
# map charts, which loopdash does not draw (a marker element with the id plotly looks for).
# sessions/tests/test_browser_csp.py proves in Chromium that nothing else is refused.
EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE, CSP.REPORT_SAMPLE],
    "style-src": [CSP.SELF, CSP.NONCE, EMPTY_STYLE_HASH, CSP.REPORT_SAMPLE],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "loopdash.staticfinders.PlotlyFinder",  # plotly.js from the installed plotly package
]
WHITENOISE_USE_FINDERS = True
# Hashed, gzip- and brotli-compressed copies after `collectstatic` (make run and docker-compose run it),
# served with a ten-year max-age; plain files through the finders before it (loopdash/staticstorage.py).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "loopdash.staticstorage.CompressedStaticStorage"},
}

# Files the workers and uploads produce: run logs, report-logs, JUnit files.
MEDIA_ROOT = Path(os.environ.get("LOOPDASH_MEDIA_ROOT", VAR_DIR / "media"))

# Ingestion.
INGEST_MAX_BYTES = env_int("LOOPDASH_INGEST_MAX_MB", 200) * 1024 * 1024
SUSPECT_DURATION_S = 0.01
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Celery: the filesystem transport needs no server; it polls its folders, so a
# short interval makes a queued task start well within a second.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Broadcasts (worker pings, /healthz's worker count) keep their exchange tables here, not in ./control.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
else:
    # Longer than the longest run: a late-acked task is redelivered only after this.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600)}
# A running run or deployment whose heartbeat is older than this is marked lost by the reaper
# (celery beat, every 15 s), so a dead worker's run ends within about this bound plus 15 s.
LOOPDASH_LOST_AFTER_S = env_int("LOOPDASH_LOST_AFTER_S", 60)
# Queued work that no worker claims within this bound is ended (its task message was lost).
LOOPDASH_QUEUED_MAX_S = env_int("LOOPDASH_QUEUED_MAX_S", 3600)
# When a run, a shard or a deployment ends, its worker stores its whole log in the database (gzip), so
# the web serves "Whole log" without the worker's disk (docs/WORKERS.md). A longer log keeps its first
# and last halves of this many bytes; 0: no log is stored.
LOOPDASH_STORED_LOG_MAX_BYTES = env_int("LOOPDASH_STORED_LOG_MAX_BYTES", 20 * 1024 * 1024)
if LOOPDASH_STORED_LOG_MAX_BYTES < 0:
    raise ImproperlyConfigured("LOOPDASH_STORED_LOG_MAX_BYTES must be 0 (store no log) or more")
# Retention (docs/RETENTION.md): results keep their message, traceback and output this many days, or
# for the latest this many cycles of their session (an environment may set its own); 0: no such limit.
LOOPDASH_RETENTION_DAYS = env_int("LOOPDASH_RETENTION_DAYS", 90)
LOOPDASH_RETENTION_CYCLES = env_int("LOOPDASH_RETENTION_CYCLES", 0)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Where people reach the dashboard: used in links that the CLI prints. Unset, the address `make run` is
# serving on now (scripts/run.sh writes it to var/served-url while it serves), else port 8000.
SERVED_URL_FILE = VAR_DIR / "served-url"
LOOPDASH_BASE_URL = (
    os.environ.get("LOOPDASH_BASE_URL")
    or (SERVED_URL_FILE.read_text().strip() if SERVED_URL_FILE.is_file() else "")
    or "http://127.0.0.1:8000"
)

# Quarantine (sessions/services/quarantine.py): a quarantined test that passed this many counted runs
# in a row is suggested for release.
LOOPDASH_QUARANTINE_RELEASE_AFTER = env_int("LOOPDASH_QUARANTINE_RELEASE_AFTER", 5)
if LOOPDASH_QUARANTINE_RELEASE_AFTER < 1:
    raise ImproperlyConfigured("LOOPDASH_QUARANTINE_RELEASE_AFTER must be at least 1")
# Webhooks (sessions/work/webhooks.py): attempts per delivery, the first retry's delay (doubling after
# each failed attempt), and the connect/read timeout of one attempt.
LOOPDASH_WEBHOOK_MAX_ATTEMPTS = env_int("LOOPDASH_WEBHOOK_MAX_ATTEMPTS", 5)
LOOPDASH_WEBHOOK_BACKOFF_S = env_int("LOOPDASH_WEBHOOK_BACKOFF_S", 10)
LOOPDASH_WEBHOOK_TIMEOUT_S = env_int("LOOPDASH_WEBHOOK_TIMEOUT_S", 5)
if not 1 <= LOOPDASH_WEBHOOK_MAX_ATTEMPTS <= 20:
    raise ImproperlyConfigured("LOOPDASH_WEBHOOK_MAX_ATTEMPTS must be from 1 to 20")
if LOOPDASH_WEBHOOK_BACKOFF_S < 0 or not 1 <= LOOPDASH_WEBHOOK_TIMEOUT_S <= 60:
    raise ImproperlyConfigured("LOOPDASH_WEBHOOK_BACKOFF_S must be 0 or more, LOOPDASH_WEBHOOK_TIMEOUT_S from 1 to 60")
