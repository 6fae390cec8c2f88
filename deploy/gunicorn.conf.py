"""gunicorn for mjsite: `gunicorn -c deploy/gunicorn.conf.py` (mjsite-web.service runs it).

It listens on localhost only; nginx (deploy/nginx.conf) is the public side. Every value
can be changed from the environment (the EnvironmentFile of the systemd unit).
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

wsgi_app = "mjsite.wsgi:application"
chdir = str(ROOT)
bind = os.getenv("GUNICORN_BIND", "127.0.0.1:8000")

# Threads serve the slow requests (CSV exports, image views) without a process each;
# every thread keeps its own database connection (CONN_MAX_AGE 60).
worker_class = "gthread"
workers = int(os.getenv("WEB_CONCURRENCY", min(2 * (os.cpu_count() or 1) + 1, 8)))
threads = int(os.getenv("GUNICORN_THREADS", "4"))
timeout = int(os.getenv("GUNICORN_TIMEOUT", "60"))  # nginx's proxy_read_timeout is the same
graceful_timeout = 30  # mjsite-web.service's TimeoutStopSec is longer
keepalive = 5
max_requests = 2000  # recycle workers now and then; the jitter keeps them from all going at once
max_requests_jitter = 200

# No control socket (gunicorn 25+ makes one in $HOME, which the unit keeps read-only):
# systemd does the managing (`systemctl reload mjsite-web` for a graceful reload).
control_socket_disable = True

# nginx on this host sets X-Forwarded-For and X-Forwarded-Proto; nobody else is trusted.
forwarded_allow_ips = os.getenv("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# No access log here: the hook URL (/hooks/mj/<token>/) is a credential, and nginx
# already logs every request with the token masked. Errors go to stderr (the journal).
accesslog = None
errorlog = "-"
loglevel = os.getenv("GUNICORN_LOG_LEVEL", "info")
if os.getenv("LOG_FORMAT", "plain").strip().lower() == "json":
    # gunicorn's own lines as JSON too, like the app's (mjsite/logjson.py).
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "mjsite.logjson.JsonLines"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {"gunicorn.error": {"handlers": ["console"], "level": loglevel.upper()}},
    }
