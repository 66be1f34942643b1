"""``manage.py studio`` (``make run``) as a user meets it: a real subprocess with its own data
folder starts Redis, a Celery worker and Daphne, serves pages and websockets, and leaves
nothing behind when stopped with Ctrl-C, or when one of its processes dies.
"""

from __future__ import annotations

import base64
import http.client
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 240  # a cold start on a busy machine: migrations, torch imports in the worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_marked(marker: str) -> dict[int, str]:
    """Live processes whose command line or environment mentions ``marker`` (our data folder)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline or marker.encode() in environ:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


class Studio:
    """``manage.py studio`` in a subprocess, with its output collected line by line."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("TEST_", "SER_", "DATABASE_", "REDIS_", "DJANGO_SETTINGS"))}
        self.env.update(DJANGO_SETTINGS_MODULE="ser_site.settings", SER_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    def start(self) -> Studio:
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "studio", "--port", str(self.port), "--stop-timeout", "20"],
            cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"studio exited ({self.proc.returncode}) before {what}:\n{self.output[-4000:]}")
            time.sleep(0.25)
        pytest.fail(f"no {what} within {timeout} s:\n{self.output[-4000:]}")

    def get(self, path: str) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def http_ready(self) -> bool:
        try:
            return self.get("/").status == 302
        except OSError:
            return False

    def child_pid(self, name: str) -> int:
        match = re.search(rf"^{name}\s+\| started \(pid (\d+)\)", self.output, re.M)
        assert match, self.output
        return int(match.group(1))

    def stop_and_wait(self, timeout: float = 90) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def kill_everything(self) -> None:
        """Teardown after a failure: this test's processes only (found by their data folder)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in processes_marked(str(self.data_dir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short path: the Redis unix socket lives in it (~107 bytes at most).
    path = Path(tempfile.mkdtemp(prefix="ser-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def studio(data_dir: Path) -> Iterator[Studio]:
    s = Studio(data_dir, free_port())
    try:
        yield s
    finally:
        s.kill_everything()


def log_in(port: int, username: str, password: str) -> str:
    """Log in through the real login form; returns the session cookie value."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    page = opener.open(f"{base}/accounts/login/", timeout=15).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/models/"})
    final = opener.open(f"{base}/accounts/login/", data=body.encode(), timeout=30)
    assert final.geturl() == f"{base}/models/", "login failed"
    return next(c.value for c in jar if c.name == "sessionid")


def websocket_handshake(port: int, path: str, *, session: str | None = None, origin: str | None = None) -> tuple[str, dict | None]:
    """Open a websocket by hand; returns the HTTP status line and the first message (if accepted)."""
    key = base64.b64encode(os.urandom(16)).decode()
    headers = [
        f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", f"Origin: {origin or f'http://127.0.0.1:{port}'}",
    ]
    if session:
        headers.append(f"Cookie: sessionid={session}")
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, buffered = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode()
        if " 101 " not in status:
            return status, None

        def take(n: int) -> bytes:  # exactly n bytes of the frame stream
            nonlocal buffered
            while len(buffered) < n:
                chunk = sock.recv(4096)
                assert chunk, "connection closed in the middle of a frame"
                buffered += chunk
            out, buffered = buffered[:n], buffered[n:]
            return out

        opcode, length = take(2)
        assert opcode == 0x81, f"expected one unfragmented text frame, got opcode byte {opcode:#x}"
        if length == 126:
            length = int.from_bytes(take(2), "big")
        elif length == 127:
            length = int.from_bytes(take(8), "big")
        return status, json.loads(take(length))


def create_run(studio: Studio) -> int:
    """A finished run row in the studio's database (a queued one without corpora would be requeued and fail)."""
    code = "from training.models import TrainingRun; print(TrainingRun.objects.create(name='ws check', status='succeeded').pk)"
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=studio.env,
                          capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def check_production_defaults(studio: Studio, data_dir: Path, session: str, run_id: int) -> None:
    """What `make run` serves is no development server (issue 29, item 6)."""
    assert stat.S_IMODE((data_dir / "secret-key").stat().st_mode) == 0o600
    missing = studio.get("/no/such/page/")
    assert missing.status == 404  # the friendly page; Django's debug page would list every URL
    conn = http.client.HTTPConnection("127.0.0.1", studio.port, timeout=15)
    conn.request("GET", "/no/such/page/")
    assert "Page not found" in conn.getresponse().read().decode()
    conn.close()
    status, _ = websocket_handshake(studio.port, "/ws/no/such/socket/", session=session)
    assert " 403 " in status, status  # closed, not a 500 with a traceback
    for foreign in (f"http://127.0.0.1:{studio.port + 1}", f"https://127.0.0.1:{studio.port}"):
        status, _ = websocket_handshake(studio.port, f"/ws/runs/{run_id}/", session=session, origin=foreign)
        assert " 403 " in status, (foreign, status)
    assert "Traceback" not in studio.output
    assert websocket_close_code_after(studio.port, "/ws/record/", session, b"\0" * (10 * 1024 * 1024)) == 1009


def websocket_close_code_after(port: int, path: str, session: str, message: bytes) -> int | None:
    """The close code the server sends after ``message`` (an oversized one: 1009)."""
    import asyncio

    import websockets

    async def scenario() -> int | None:
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}", origin=f"http://127.0.0.1:{port}",
                                      additional_headers={"Cookie": f"sessionid={session}"}, max_size=None) as ws:
            await ws.send(message)
            try:
                await asyncio.wait_for(ws.recv(), 30)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    return asyncio.run(scenario())


def test_studio_serves_and_stops_cleanly_on_ctrl_c(studio: Studio, data_dir: Path):
    studio.start()
    studio.wait_for("login redirect on /", studio.http_ready)
    studio.wait_for("worker ready", lambda: re.search(r"^worker\s+\|.* ready\.", studio.output, re.M) is not None)
    assert studio.get("/").getheader("Location") == "/accounts/login/?next=/"

    password_file = data_dir / "admin-password.txt"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 16
    assert "Created the admin account 'admin'" in studio.output

    run_id = create_run(studio)
    status, _ = websocket_handshake(studio.port, f"/ws/runs/{run_id}/")
    assert " 403 " in status, status  # no session: refused before the handshake completes
    session = log_in(studio.port, "admin", password)
    status, first = websocket_handshake(studio.port, f"/ws/runs/{run_id}/", session=session)
    assert " 101 " in status and first["type"] == "run.status", (status, first)
    check_production_defaults(studio, data_dir, session, run_id)

    running = processes_marked(str(data_dir))
    commands = " ".join(running.values())
    assert "redis-server" in commands and "uvicorn" in commands and "celery" in commands
    assert len(running) >= 5  # studio, redis, web server, celery main + pool (+ beat)
    assert (data_dir / "redis.sock").exists()

    assert studio.stop_and_wait() == 0, studio.output[-3000:]
    assert re.search(r"^worker\s+\| stopped \(exit code 0\)", studio.output, re.M), studio.output[-3000:]
    assert re.search(r"^web\s+\| stopped \(by SIGTERM, as asked\)", studio.output, re.M)
    assert re.search(r"^redis\s+\| stopped", studio.output, re.M)
    # Redis goes last: after the workers and the web server.
    assert re.search(r"^imports\s+\| stopped \(exit code 0\)", studio.output, re.M)
    redis_stop = re.search(r"^redis\s+\| stopped", studio.output, re.M).start()
    assert redis_stop > re.search(r"^web\s+\| stopped", studio.output, re.M).start()
    assert processes_marked(str(data_dir)) == {}
    assert not (data_dir / "redis.sock").exists()


def test_studio_stops_everything_when_a_process_dies(studio: Studio, data_dir: Path):
    # An existing superuser is reported, not replaced.
    code = ("from django.core.management import call_command; call_command('migrate', verbosity=0); "
            "from django.contrib.auth.models import User; User.objects.create_superuser('root', '', 'pw')")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=studio.env, check=True, timeout=180)
    studio.start()
    studio.wait_for("login redirect on /", studio.http_ready)
    assert "Admin account: root" in studio.output and not (data_dir / "admin-password.txt").exists()

    os.kill(studio.child_pid("web"), signal.SIGKILL)
    assert studio.proc.wait(90) == 1
    assert "web exited unexpectedly with code -9; stopping the others" in studio.output
    assert "CommandError: the studio stopped because one of its processes failed" in studio.output
    assert processes_marked(str(data_dir)) == {}
    assert not (data_dir / "redis.sock").exists()
