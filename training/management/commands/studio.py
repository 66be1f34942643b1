"""python manage.py studio [--host 127.0.0.1] [--port 8000]: the whole studio in one command.

Migrates the database, makes sure an admin account exists, then runs the embedded Redis
(unless REDIS_URL is set), two Celery workers (one with the beat), and the web server (uvicorn) until Ctrl-C. The
process handling lives in ``ser_site.launcher``; this command only orchestrates.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from ser_site import launcher

PASSWORD_FILE_NAME = "admin-password.txt"


class Command(BaseCommand):
    help = "Run the studio: migrate, ensure an admin account, start Redis (embedded), Celery workers and the web server."
    requires_system_checks = []  # migrate runs the checks

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address the web server listens on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="port the web server listens on (default 8000)")
        parser.add_argument(
            "--stop-timeout", type=float, default=30.0,
            help="seconds the worker gets to finish its current step after Ctrl-C before it is killed (default 30)",
        )

    def handle(self, *args, host: str, port: int, stop_timeout: float, **options):
        data_dir = Path(settings.DATA_DIR)
        redis = None
        try:
            launcher.check_port_free(host, port)
            if not settings.REDIS_URL:
                from ser_site.redis_server import EmbeddedRedis

                launcher.check_socket_path(Path(settings.EMBEDDED_REDIS_SOCKET))
                redis = EmbeddedRedis(settings.EMBEDDED_REDIS_SOCKET)
        except launcher.LaunchError as exc:
            raise CommandError(str(exc)) from exc

        self.stdout.write(f"Data folder: {data_dir}")
        call_command("migrate", interactive=False, verbosity=1)
        account = launcher.admin_account_ensure(password_file=data_dir / PASSWORD_FILE_NAME)
        self._starter()
        login = self._login_text(account)
        self.stdout.write(login)
        connections.close_all()  # this process serves nothing; the children open their own

        shown_host = "localhost" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
        url = f"http://{shown_host}:{port}/"

        def banner() -> None:
            supervisor.say(f"SER Studio is up: {url}")
            supervisor.say(login)
            supervisor.say("Ctrl-C stops everything.")

        env = dict(os.environ)
        env["SER_DATA_DIR"] = str(data_dir)  # the children must agree on folders and the Redis socket
        env["PYTHONUNBUFFERED"] = "1"  # line-by-line output through the pipes
        specs = launcher.studio_children(host=host, port=port, data_dir=data_dir, worker_stop_timeout=stop_timeout)
        supervisor = launcher.Supervisor(
            specs, env=env, cwd=Path(settings.BASE_DIR), out=self.stdout, redis=redis, on_ready=banner
        )
        supervisor.install_signal_handlers()
        if supervisor.run() != 0:
            raise CommandError("the studio stopped because one of its processes failed (see above)")

    def _starter(self) -> None:
        """On a registry with no model at all, the shipped starter becomes the active version."""
        try:
            call_command("register_starter", stdout=self.stdout, stderr=self.stderr)
        except CommandError as exc:
            self.stderr.write(f"{exc}; train a model to classify.")

    @staticmethod
    def _login_text(account: launcher.AdminAccount) -> str:
        if account.created:
            return (
                f"Created the admin account {account.username!r}; its password is in {account.password_file} "
                f"(readable only by you). Change it with: python manage.py changepassword {account.username}"
            )
        where = f"; its first password is in {account.password_file}" if account.password_file else ""
        return f"Admin account: {account.username}{where}. Set a new password with: python manage.py changepassword {account.username}"
