"""mjsite settings: one file, every knob an environment variable with a safe default."""

import ipaddress
import json
import logging
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name, default="False"):
    return os.getenv(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name, default):
    return int(os.getenv(name, default))


# Core
# The dev default starts with "django-insecure-", so `check --deploy` flags a
# production host that forgot DJANGO_SECRET_KEY (security.W009).
SECRET_KEY = os.getenv(
    "DJANGO_SECRET_KEY", "django-insecure-dev-only-set-DJANGO_SECRET_KEY-in-production"
)
DEBUG = envbool("DJANGO_DEBUG", "False")
ALLOWED_HOSTS = os.getenv("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in os.getenv("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]
ROOT_URLCONF = "mjsite.urls"
WSGI_APPLICATION = "mjsite.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "mjsite.admin_site.MjsiteAdminConfig",  # django.contrib.admin, filters as offered only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "axes",  # login throttling: see "Login throttling" below
    "tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # Content-Security-Policy (see "Browser security headers")
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the pages' language (English, 简体中文)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a lock into the lockout page
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite in the project root unless DATABASE_URL says otherwise
DATABASES = {
    "default": dj_database_url.parse(
        os.getenv("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        # Keep connections: django-q2's ORM broker polls every 0.2 s and would
        # otherwise reconnect on every poll.
        conn_max_age=60,
        # A kept connection that died with a database restart is replaced, not used.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web app, the qcluster and a long sync share one file: WAL lets readers
    # go on during a write, IMMEDIATE takes the write lock up front (no upgrade
    # deadlocks) and the timeout makes writers wait instead of failing. A 64 MiB page
    # cache per connection (SQLite's default is 2 MiB) keeps a million-row mirror's
    # index pages in memory between statements. A new database gets 8 KiB pages: a task
    # row is about 2 KiB, of which a 4 KiB page holds one (a 100,000-task sync writes 7%
    # less); an existing one keeps its page size.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA page_size=8192; PRAGMA journal_mode=WAL; "
        "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;",
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }
    # Tests use a file, not memory: live-server tests write from several threads,
    # which an in-memory database shared between threads cannot take.
    test_dir = Path(os.getenv("TMPDIR", tempfile.gettempdir()))
    DATABASES["default"]["TEST"] = {"NAME": str(test_dir / f"mjsite-test-{os.getpid()}.sqlite3")}

# On PostgreSQL, no statement of a web request runs longer than this many seconds (0: no
# limit), a second line behind the admin's offered-only filters against a request that
# would hold a worker for minutes. mjsite/wsgi.py marks the web processes; the sync,
# archive and other commands are not limited.
MJ_WEB_STATEMENT_TIMEOUT = envint("MJ_WEB_STATEMENT_TIMEOUT", "30")
if (
    DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    and os.getenv("MJ_WEB_PROCESS")
    and MJ_WEB_STATEMENT_TIMEOUT > 0
):
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c statement_timeout={MJ_WEB_STATEMENT_TIMEOUT * 1000}"
    )

# Production security: all off by default, so `make run` works over plain HTTP;
# deploy/mjsite.env.example turns them on (see README's "Deploy").
SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT")
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers check over plain HTTP
SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("DJANGO_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = envbool("DJANGO_HSTS_PRELOAD")
# Set to false in the environment, these are a site's decision (subdomains it does not
# serve over HTTPS, no preload list), so `check --deploy` need not warn about them.
SILENCED_SYSTEM_CHECKS = [
    check
    for name, check in (
        ("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "security.W005"),
        ("DJANGO_HSTS_PRELOAD", "security.W021"),
    )
    if os.getenv(name, "").strip().lower() in ("0", "false", "no", "off")
]
SESSION_COOKIE_SECURE = envbool("DJANGO_SECURE_COOKIES", str(SECURE_SSL_REDIRECT))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if envbool("DJANGO_BEHIND_PROXY"):
    # Only behind a proxy that sets this header itself (deploy/nginx.conf does),
    # or any client could claim to be on HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Browser security headers: a Content-Security-Policy without inline scripts or eval
# (django-csp); the pages load only their own static files, and thumbnails fall back to
# the proxy's http(s) image links, so img-src allows those. No inline styles either:
# base.html turns off htmx's injected indicator style, and the admin has none.
# tests/test_security.py pins the header; tests/test_xss_browser.py checks that no page
# (the admin included) reports a violation.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "https:", "http:", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"  # task ids in URLs stay on this site
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Auth
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Login throttling (django-axes), on the site's login and the admin's: a username is
# locked after MJ_LOGIN_FAILURE_LIMIT wrong passwords, for MJ_LOGIN_COOLOFF_MINUTES after
# the last (0: until an admin runs `manage.py axes_reset_username <name>`), and shown
# templates/registration/locked_out.html with a 429. README's "Login lockout" says why by
# username alone. The API's tokens are no passwords: they never count, nor are refused.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked username
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("MJ_LOGIN_FAILURE_LIMIT", "10")
if AXES_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured("MJ_LOGIN_FAILURE_LIMIT must be 1 or more")
AXES_COOLOFF_TIME = timedelta(minutes=envint("MJ_LOGIN_COOLOFF_MINUTES", "15")) or None
if AXES_COOLOFF_TIME is not None and AXES_COOLOFF_TIME < timedelta(0):
    raise ImproperlyConfigured("MJ_LOGIN_COOLOFF_MINUTES must be 0 or more")
# Failures are summed over every address and browser, so rotating them gains nothing; the
# price is that anyone can lock a username they know. So a lock is not lengthened by the
# tries made during it, a success starts the count again, and other usernames are free.
AXES_LOCKOUT_PARAMETERS = ["username"]
SILENCED_SYSTEM_CHECKS.append("axes.W006")  # "no ip_address in AXES_LOCKOUT_PARAMETERS"
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# Small tables: an attempt row per username, address and browser, deleted once its cool-off
# is over; no row per successful login (Django keeps last_login) and no failure log. What a
# row keeps of the POST masks the password, the username and the CSRF token.
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_SENSITIVE_PARAMETERS = ["password", "username", "ip_address", "csrfmiddlewaretoken"]


def client_ip_behind_proxy(request):
    """The address nginx saw: the last of X-Forwarded-For (nginx appends it to what the
    client sent), else the connection's own."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
    for address in (forwarded, request.META.get("REMOTE_ADDR", "")):
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:
            continue
    return None


if envbool("DJANGO_BEHIND_PROXY"):
    # Only where nginx overwrites the header's end, as for X-Forwarded-Proto above.
    AXES_CLIENT_IP_CALLABLE = client_ip_behind_proxy

# Internationalisation
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.getenv("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Static files and media
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.getenv("MEDIA_ROOT", BASE_DIR / "media"))
# Archived images are served by tasks/archive/media.py to logged-in users only; nothing
# serves MEDIA_ROOT directly. MJ_STORAGE_BACKEND swaps the storage (e.g.
# storages.backends.s3.S3Storage once django-storages is installed), with its OPTIONS
# as a JSON object in MJ_STORAGE_OPTIONS.
MEDIA_URL = "/media/"
STORAGES = {
    "default": {
        "BACKEND": os.getenv("MJ_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": json.loads(os.getenv("MJ_STORAGE_OPTIONS") or "{}"),
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# The proxy (see README's configuration table)
MJ_PROXY_URL = os.getenv("MJ_PROXY_URL", "").strip()
MJ_API_SECRET = os.getenv("MJ_API_SECRET", "")
MJ_AUTH_HEADER = os.getenv("MJ_AUTH_HEADER", "mj-api-secret")
# The default source's kind (auto, novicezk, trueai, relay, newapi) and admin credential:
# trueai's admin token; new-api's admin access token and that admin's user id.
MJ_PROXY_KIND = os.getenv("MJ_PROXY_KIND", "auto").strip().lower() or "auto"
MJ_ADMIN_TOKEN = os.getenv("MJ_ADMIN_TOKEN", "")
MJ_ADMIN_USER = os.getenv("MJ_ADMIN_USER", "").strip()
MJ_SYNC_MINUTES = envint("MJ_SYNC_MINUTES", "1")
MJ_FULL_SYNC_MINUTES = envint("MJ_FULL_SYNC_MINUTES", "15")
MJ_ACCOUNT_MINUTES = envint("MJ_ACCOUNT_MINUTES", "5")  # Discord accounts (and every full pass)
MJ_CONNECT_TIMEOUT = float(os.getenv("MJ_CONNECT_TIMEOUT", "5"))
MJ_READ_TIMEOUT = float(os.getenv("MJ_READ_TIMEOUT", "60"))
MJ_MAX_BODY_MB = envint("MJ_MAX_BODY_MB", "512")
MJ_RETRIES = envint("MJ_RETRIES", "2")
# A pass renews its source's lease every batch; one that dies frees the source after this.
MJ_SYNC_LEASE_SECONDS = envint("MJ_SYNC_LEASE_SECONDS", "300")

# The image archive (tasks/archive/passes.py): copies of image links taken before they expire
MJ_ARCHIVE_MINUTES = envint("MJ_ARCHIVE_MINUTES", "1")  # how often the archive pass runs
MJ_ARCHIVE_BATCH = envint("MJ_ARCHIVE_BATCH", "100")  # tasks claimed at a time
MJ_ARCHIVE_WORKERS = envint("MJ_ARCHIVE_WORKERS", "4")  # downloads in parallel
MJ_ARCHIVE_PASS_SECONDS = envint("MJ_ARCHIVE_PASS_SECONDS", "50")  # a pass stops claiming after
MJ_ARCHIVE_MAX_MB = envint("MJ_ARCHIVE_MAX_MB", "50")  # largest image copied
MJ_ARCHIVE_MAX_VIDEO_MB = envint("MJ_ARCHIVE_MAX_VIDEO_MB", "200")  # largest video copied
MJ_ARCHIVE_MAX_PIXELS = envint("MJ_ARCHIVE_MAX_PIXELS", "40000000")  # decompression bombs
MJ_ARCHIVE_TIMEOUT = float(os.getenv("MJ_ARCHIVE_TIMEOUT", "15"))  # connect and read, seconds
MJ_ARCHIVE_DEADLINE = float(os.getenv("MJ_ARCHIVE_DEADLINE", "60"))  # whole download, seconds
# Private, loopback and link-local image hosts are refused unless their source allows
# them; "true" allows private ranges for every source, or list hosts and networks
# ("10.0.0.0/8,images.lan"). A source's own host is always allowed.
MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS = os.getenv("MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS", "").strip()
# Keep only the thumbnails of tasks submitted more than this many days ago (0: keep all).
MJ_THUMBS_ONLY_AFTER_DAYS = envint("MJ_THUMBS_ONLY_AFTER_DAYS", "0")

# Curation (tasks/curation/): the largest ZIP of archived originals one download may hold.
MJ_ZIP_MAX_MB = envint("MJ_ZIP_MAX_MB", "500")

# django-q2 (measured with 1.11.1): its defaults re-run a failed task without end and
# re-deliver one still running after `retry` seconds, and catch_up replays every missed
# run. So a pass is handed out once (max_attempts 1, failures acknowledged), never
# re-delivered while it runs (retry > timeout), and missed runs are not replayed.
Q_CLUSTER = {
    "name": os.getenv("Q_CLUSTER_NAME", "mjsite"),  # the queue's name: one per site on a Redis
    "workers": envint("Q_WORKERS", "2"),
    "timeout": envint("Q_TIMEOUT", "600"),
    "retry": envint("Q_RETRY", "720"),
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 250,
    "orm": "default",
    "sync": envbool("Q_SYNC", "False"),
}

# Redis (optional): with REDIS_URL, django-q2's queue and the cache live there, so
# qcluster processes on any number of hosts share the work; without it, the ORM broker.
REDIS_URL = os.getenv("REDIS_URL", "").strip()
if REDIS_URL:
    del Q_CLUSTER["orm"]  # django-q2 picks the ORM broker over Redis when both are set
    Q_CLUSTER["redis"] = REDIS_URL
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": Q_CLUSTER["name"],
        }
    }

# Alerts (tasks/alerts/): rules evaluated every MJ_ALERT_MINUTES; MJ_ALERT_URLS (apprise URLs,
# comma-separated) becomes the channel `default` on migrate; MJ_PUBLIC_URL begins the links in
# notifications (without it, paths only).
MJ_ALERT_URLS = os.getenv("MJ_ALERT_URLS", "").strip()
MJ_ALERT_MINUTES = envint("MJ_ALERT_MINUTES", "1")
MJ_PUBLIC_URL = os.getenv("MJ_PUBLIC_URL", "").strip().rstrip("/")


def email_from_url(url):
    """Django's EMAIL_* settings from `smtp://`, `smtp+tls://` or `smtp+ssl://user:pass@host:port`."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtp+tls", "smtp+ssl"):
        raise ImproperlyConfigured("EMAIL_URL must start with smtp://, smtp+tls:// or smtp+ssl://")
    return {
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or {"smtp+ssl": 465, "smtp+tls": 587}.get(parts.scheme, 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": parts.scheme == "smtp+tls",
        "EMAIL_USE_SSL": parts.scheme == "smtp+ssl",
    }


# Email for alert channels: EMAIL_URL, else Django's own EMAIL_* variables.
EMAIL_HOST = os.getenv("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = os.getenv("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.getenv("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS")
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", "10")
if os.getenv("EMAIL_URL", "").strip():
    globals().update(email_from_url(os.getenv("EMAIL_URL").strip()))
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "mjsite@localhost")

# Operations: /healthz (open) and /metrics (Prometheus; 404 while no token is set)
MJ_METRICS_TOKEN = os.getenv("MJ_METRICS_TOKEN", "").strip()
MJ_METRICS_CACHE_SECONDS = envint("MJ_METRICS_CACHE_SECONDS", "30")  # the full-table counts

# Logging: plain lines to stderr; secrets never logged (the client logs URLs only)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"mask_secrets": {"()": "mjsite.logging_filters.MaskSecrets"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["mask_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    # axes says INFO on every login and on every start of manage.py: lockouts are WARNING.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
if os.getenv("LOG_FORMAT", "plain").strip().lower() == "json":
    # One JSON object per line on stdout, for journald or a log shipper.
    LOGGING["formatters"]["json"] = {"()": "mjsite.logjson.JsonLines"}
    LOGGING["handlers"]["console"].update(formatter="json", stream="ext://sys.stdout")
    logging.captureWarnings(True)  # Python's warnings become JSON lines too
