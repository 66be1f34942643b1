"""A complete live stack for benchmarks: a private data folder, a migrated SQLite database,
the embedded Redis, a web server subprocess, and a logged-in user's session cookie.

    with LiveStack() as stack:
        stack.url("/runs/1/"), stack.session_cookie, stack.django_env()

Django is set up in this process against the same database and Redis, so a benchmark can
play the Celery worker's part with the real service code. ``server_argv`` picks another
web server command (``{port}`` is filled in); ``restart_server`` starts a fresh one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench.common import ROOT

__all__ = ["LiveStack", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveStack:
    def __init__(
        self, *, keep: bool = False, daphne_log: str | None = None, server_argv: Sequence[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ser-bench-"))
        self.keep = keep
        self.port = free_port()
        self.daphne_log = Path(daphne_log) if daphne_log else self.dir / "server.log"
        self.server_argv = list(server_argv) if server_argv else None
        self.extra_env = dict(extra_env or {})
        self.redis = None
        self.server: subprocess.Popen | None = None  # the web server process
        self.session_cookie = ""
        self.user = None

    def django_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "ser_site.settings",
            "SER_DATA_DIR": str(self.dir),
            "DATABASE_URL": f"sqlite:///{self.dir / 'db.sqlite3'}",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        })
        env.update(self.extra_env)
        env.pop("REDIS_URL", None)
        return env

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> LiveStack:
        os.environ.update(self.django_env())
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client

        from ser_site.redis_server import EmbeddedRedis

        call_command("migrate", verbosity=0, interactive=False)
        self.redis = EmbeddedRedis(settings.EMBEDDED_REDIS_SOCKET).start()
        self.user = get_user_model().objects.create_user("bench", password="bench-password-123")
        client = Client()
        client.force_login(self.user)
        self.session_cookie = client.cookies["sessionid"].value
        self.start_server()
        return self

    def _argv(self) -> list[str]:
        if self.server_argv:
            return [a.format(port=self.port) for a in self.server_argv]
        from ser_site.launcher import web_server_argv

        return web_server_argv("127.0.0.1", self.port)

    def start_server(self) -> None:
        log = open(self.daphne_log, "ab")  # noqa: SIM115 — closed with the process
        self.server = subprocess.Popen(
            self._argv(), cwd=ROOT, env=self.django_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url("/accounts/login/"), timeout=2)
                return
            except OSError:
                if self.server.poll() is not None:
                    raise RuntimeError(f"the web server exited: {self.daphne_log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        raise RuntimeError("the web server did not start")

    def stop_server(self) -> None:
        if self.server and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def restart_server(self) -> None:
        self.stop_server()
        self.start_server()

    def __exit__(self, *exc: object) -> None:
        self.stop_server()
        if self.redis:
            self.redis.stop()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
