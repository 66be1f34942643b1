"""The one-command runtime behind ``manage.py studio`` (``make run``).

It starts the embedded Redis (unless ``REDIS_URL`` names one), two Celery workers (training
with the embedded beat; imports and other short tasks) and the web server (:func:`web_server_argv`), streams their output with a name prefix, and stops them all
together: on Ctrl-C / SIGTERM / SIGHUP, or as soon as one of them dies on its own (then
the others are stopped and the exit code is non-zero). Shutdown order: the workers first
(SIGTERM = Celery's warm shutdown, which lets a task finish its step), then the web server, then
Redis, which both of them need until they are gone. A second Ctrl-C kills what is left.

Children run in their own sessions, so a terminal's Ctrl-C reaches only this process and
the order above holds; on Linux they also get SIGTERM if this process is killed outright.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

__all__ = [
    "AdminAccount", "ChildSpec", "LaunchError", "Supervisor", "admin_account_ensure", "check_port_free",
    "check_socket_path", "studio_children", "web_server_argv",
]

ADMIN_USERNAME = "admin"
UNIX_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, including the final NUL


class LaunchError(RuntimeError):
    """Something that keeps the studio from starting; the message says what to do."""


# ---- the admin account ---------------------------------------------------------------

@dataclass(frozen=True)
class AdminAccount:
    username: str
    created: bool
    password_file: Path | None  # where its first password was written, if that file exists


def admin_account_ensure(*, password_file: Path) -> AdminAccount:
    """Make sure a superuser exists.

    If there is none, create ``admin`` (or ``admin1``… when that name belongs to an ordinary
    user) with a random password and write the password to ``password_file`` (mode 0600).
    Otherwise report the first active superuser and leave passwords alone.
    """
    from django.contrib.auth import get_user_model
    from django.db import transaction

    user_model = get_user_model()
    existing = user_model.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    if existing is not None:
        return AdminAccount(existing.get_username(), False, password_file if password_file.exists() else None)
    username, n = ADMIN_USERNAME, 0
    while user_model.objects.filter(username=username).exists():
        n += 1
        username = f"{ADMIN_USERNAME}{n}"
    password = secrets.token_urlsafe(15)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():  # no account without its password file, and no file without its account
        user_model.objects.create_superuser(username=username, email="", password=password)
        password_file.unlink(missing_ok=True)  # os.open's mode applies only to a new file
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
    return AdminAccount(username, True, password_file)


# ---- pre-flight checks ---------------------------------------------------------------

def check_port_free(host: str, port: int) -> None:
    """Raise LaunchError if ``host:port`` cannot be bound (another server, or a bad host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise LaunchError(f"cannot listen on {host!r}: {exc}") from exc
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
        try:
            sock.bind(address)
        except OSError as exc:
            raise LaunchError(f"port {port} on {host} is not free ({exc.strerror}); choose another with --port") from exc


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(str(path))) > UNIX_SOCKET_PATH_MAX:
        raise LaunchError(
            f"the Redis socket path {path} is longer than {UNIX_SOCKET_PATH_MAX} bytes, the limit for unix "
            "sockets; set SER_DATA_DIR to a shorter folder (or REDIS_URL to an external Redis)"
        )


# ---- child processes -----------------------------------------------------------------

@dataclass
class ChildSpec:
    """A child process: its name (the output prefix), command line, the text of the line
    that says it is up, and how long it may take to stop after SIGTERM."""

    name: str
    argv: Sequence[str]
    ready_text: str | None = None
    stop_timeout: float = 15.0


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None


WEB_READY_TEXT = "Uvicorn running on"


def web_server_argv(host: str, port: int, *, ws_max_bytes: int | None = None) -> list[str]:
    """The command line of the web server (HTTP and websockets) on ``host:port``: the one
    place that names it, for ``make run``, the tests and the benchmarks.

    Uvicorn hands a request body to the application as it arrives, with flow control, so an
    upload is never held in memory whole and an oversized one is refused (413) from its
    headers. (Daphne's Twisted layer receives every body first and parses multipart bodies in
    memory before the application can refuse them: bench/upload_memory.py.)
    A websocket message over ``ws_max_bytes`` (default ``SER_WS_MAX_MESSAGE_BYTES``) closes the
    connection with 1009.
    """
    if ws_max_bytes is None:
        from django.conf import settings

        ws_max_bytes = settings.SER_WS_MAX_MESSAGE_BYTES
    return [
        sys.executable, "-m", "uvicorn", "ser_site.asgi:application", "--host", host, "--port", str(port),
        "--lifespan", "off", "--ws", "websockets-sansio", "--ws-max-size", str(ws_max_bytes),
        "--timeout-graceful-shutdown", "5", "--no-server-header",
    ]


def studio_children(*, host: str, port: int, data_dir: Path, worker_stop_timeout: float) -> list[ChildSpec]:
    """Two workers and the web server, in start order: "worker" trains (the ``training`` queue, one run
    at a time, embedded beat for the heartbeat reaper); "imports" takes the ``default`` queue, so
    a corpus upload is imported at once even while a long run occupies the trainer."""
    python = sys.executable
    worker = ChildSpec(
        "worker",
        [python, "-m", "celery", "-A", "ser_site", "worker", "-Q", "training", "-c", "1",
         "-B", "-s", str(data_dir / "celerybeat-schedule"), "-l", "INFO", "-n", "studio-training@%h",
         "--without-mingle", "--without-gossip"],
        ready_text=" ready.",
        stop_timeout=worker_stop_timeout,
    )
    imports = ChildSpec(
        "imports",
        [python, "-m", "celery", "-A", "ser_site", "worker", "-Q", "default", "-c", "1", "-l", "INFO",
         "-n", "studio-default@%h", "--without-mingle", "--without-gossip"],
        ready_text=" ready.",
        stop_timeout=worker_stop_timeout,
    )
    web = ChildSpec("web", web_server_argv(host, port), ready_text=WEB_READY_TEXT, stop_timeout=10.0)
    return [worker, imports, web]


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec function asking Linux to SIGTERM the child when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:  # runs in the forked child: only a C call, no Python locks
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return preexec


def _exit_text(code: int) -> str:
    # Uvicorn ends a graceful shutdown by raising the SIGTERM it received again, so that its
    # parent sees why it stopped: for the SIGTERM sent by stop() that is a clean stop.
    return "by SIGTERM, as asked" if code == -signal.SIGTERM else f"exit code {code}"


class Supervisor:
    """Start children (and the embedded Redis), watch them, stop them in order.

    ``run()`` blocks until a stop is requested (``request_stop``, wired to signals by
    ``install_signal_handlers``) or a child exits on its own, and returns the exit code.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        env: dict[str, str],
        cwd: Path,
        out: TextIO,
        redis: object | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.specs = list(specs)
        self.env = env
        self.cwd = cwd
        self.out = out
        self.redis = redis  # an EmbeddedRedis or None (external Redis)
        self.on_ready = on_ready
        self.children: list[_Child] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._force = threading.Event()
        self._signal: int | None = None
        self._width = max([len(s.name) for s in self.specs] + [len("studio"), len("redis")])

    # -- output --
    def say(self, line: str, name: str = "studio") -> None:
        with self._lock:
            try:
                self.out.write(f"{name:<{self._width}} | {line}\n")
                self.out.flush()
            except (OSError, ValueError):  # our own stdout went away: keep supervising anyway
                pass

    def _pump(self, child: _Child) -> None:
        stream = child.process.stdout
        assert stream is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if child.spec.ready_text and child.spec.ready_text in line:
                child.ready.set()
            self.say(line, child.spec.name)
        stream.close()

    # -- signals --
    def request_stop(self, signum: int | None = None) -> None:
        """First call: stop in order. Second call: kill what is left. Safe in a signal handler."""
        if self._stop.is_set():
            self._force.set()
        else:
            self._signal = signum
            self._stop.set()

    def install_signal_handlers(self) -> dict[int, object]:
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, lambda s, _frame: self.request_stop(s))
        return previous

    # -- lifecycle --
    def start(self) -> None:
        if self.redis is not None:
            self.redis.start()
            if self.redis.process is None:
                self.say(f"a Redis already answers on {self.redis.url}: using it (it is left running)", "redis")
            else:
                self.say(f"embedded Redis on {self.redis.url} (pid {self.redis.process.pid}, log: {self.redis.log_path})", "redis")
        preexec = _parent_death_signal()
        for spec in self.specs:
            if self._stop.is_set():
                return
            process = subprocess.Popen(
                list(spec.argv), cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec,
            )
            self.children.append(_Child(spec, process))
            shown = spec.argv[2:] if spec.argv[1:2] == ["-m"] else spec.argv
            self.say(f"started (pid {process.pid}): {' '.join(shown)}", spec.name)
        # Readers start after every fork, so no fork happens while another thread holds a lock.
        for child in self.children:
            child.reader = threading.Thread(target=self._pump, args=(child,), name=f"pump-{child.spec.name}", daemon=True)
            child.reader.start()

    def _died(self) -> str | None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                return f"{child.spec.name} exited unexpectedly with code {code}"
        process = getattr(self.redis, "process", None)
        if process is not None and process.poll() is not None:
            return f"the embedded Redis exited unexpectedly with code {process.returncode}"
        return None

    def run(self) -> int:
        """Start everything, wait, stop everything. Returns 0 after a requested stop, 1 otherwise."""
        failure = None
        announced = False
        try:
            self.start()
            while not self._stop.wait(0.2):
                failure = self._died()
                if failure:
                    break
                if not announced and all(c.ready.is_set() for c in self.children if c.spec.ready_text):
                    announced = True
                    if self.on_ready:
                        self.on_ready()
        except Exception as exc:  # noqa: BLE001 — a start failure still stops what did start
            failure = f"could not start: {exc}"
        if failure:
            self.say(f"{failure}; stopping the others")
        elif self._signal is not None:
            self.say(f"{signal.Signals(self._signal).name} received: stopping (press Ctrl-C again to kill at once)")
        self.stop()
        return 1 if failure else 0

    def _wait(self, child: _Child, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._force.is_set():
            if child.process.poll() is not None:
                return True
            time.sleep(0.05)
        return child.process.poll() is not None

    def _kill_group(self, child: _Child) -> None:
        # The child leads its own process group: this also reaches pool processes left behind.
        try:
            os.killpg(child.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        for child in self.children:  # start order: the workers first, then the web server
            if child.process.poll() is None:
                self.say(f"stopping (SIGTERM, waiting up to {child.spec.stop_timeout:.0f} s)", child.spec.name)
                child.process.send_signal(signal.SIGTERM)
                if not self._wait(child, child.spec.stop_timeout):
                    why = "second Ctrl-C" if self._force.is_set() else f"still running after {child.spec.stop_timeout:.0f} s"
                    self.say(f"{why}: killing it", child.spec.name)
            self._kill_group(child)
            child.process.wait()
            if child.reader is not None:
                child.reader.join(timeout=5)
            self.say(f"stopped ({_exit_text(child.process.returncode)})", child.spec.name)
        if self.redis is not None and self.redis.process is not None:
            self.redis.stop()
            self.say("stopped", "redis")
