"""Settings for the test suite.

By default the suite needs no servers: SQLite files and an embedded Redis on a unix socket
in a private temporary folder (started by the ``redis_server`` fixture). ``TEST_DATABASE_URL``
and ``TEST_REDIS_URL`` switch the same suite to PostgreSQL and an external Redis; ``.ci/run``
sets both. Subprocesses (Celery workers, Daphne) inherit everything through the environment.
"""

from __future__ import annotations

import os
import tempfile

_run_dir = os.environ.get("SER_TEST_RUN_DIR")
CREATED_RUN_DIR: str | None = None  # the folder this process made; the suite removes it at the end
if not _run_dir:
    # Short path: unix socket paths are limited to ~100 bytes.
    _run_dir = CREATED_RUN_DIR = tempfile.mkdtemp(prefix="ser-test-")
    os.environ["SER_TEST_RUN_DIR"] = _run_dir
os.environ.setdefault("SER_DATA_DIR", os.path.join(_run_dir, "data"))
if os.environ.get("TEST_REDIS_URL"):
    os.environ["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
else:
    os.environ.pop("REDIS_URL", None)
# DEBUG stays as the environment says (off by default): subprocess servers and workers run as
# `make run` does. pytest-django runs the tests themselves with DEBUG off either way.

from .settings import *  # noqa: E402,F403
from .settings import DATA_DIR, DATABASES  # noqa: E402

if os.environ.get("TEST_DATABASE_URL"):
    import dj_database_url

    DATABASES["default"] = dj_database_url.parse(os.environ["TEST_DATABASE_URL"])
    # One test database per pytest process, so that two suites on one server never collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_ser_{os.getpid()}"}
else:
    # A file, not :memory:, so that a Celery worker subprocess sees the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In-process tests need no Redis for the cache (failed-login counters); subprocess servers,
# which read ser_site.settings, use the test Redis like production.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SER_HEARTBEAT_SECONDS = 0.5
SER_HEARTBEAT_TIMEOUT = 3.0
