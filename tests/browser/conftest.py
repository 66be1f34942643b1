"""Browser tests: a real web server subprocess and a real Chromium driven by Playwright.

Fixtures for every browser test:

- ``live_server_url``: ``http://127.0.0.1:<port>`` of ``daphne_server``, the web server
  ``make run`` starts (uvicorn; the fixture keeps its old name) serving the whole app (pages, static files, websockets) on the test database and the
  embedded Redis. It needs committed data, so it pulls in ``transactional_db``; it is
  started per test. (pytest-django's own ``live_server`` is a WSGI server: no websockets.)
  ``daphne_extra_env`` adds settings, e.g. ``@pytest.mark.parametrize("daphne_extra_env",
  [{"SER_STREAM_MAX_SECONDS": "2"}])`` on one test.
- ``browser``: one Chromium for all browser tests, with a fake microphone that plays
  ``fake_microphone_wav`` in a loop (override that session fixture for other audio).
- ``logged_in_page``: a fresh browser context and page, logged in as ``user`` (the session
  cookie of a ``force_login``), base URL set to the live server. ``page.js_errors`` collects
  uncaught page errors (tests assert it stays empty), ``page.console_errors`` console errors.
- ``screenshot(page, name)``: saves ``var/screenshots/<name>.png`` and returns the path.
- ``playwright_session`` with ``launch_chromium(...)`` and ``open_logged_in_page(...)``: other
  browsers (no microphone, a blocked one, other flags) for the same server.

Everything skips cleanly when /usr/bin/chromium (or Playwright) is missing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from devsupport.synth import SR, continuous_voice, speech_like, write_wav
from ser_site.launcher import web_server_argv
from tests.conftest import ROOT, worker_env

CHROMIUM = Path(os.environ.get("SER_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "var" / "screenshots"

def pytest_collection_modifyitems(config, items):
    """Skip every test in this folder when Chromium or Playwright is missing."""
    reason = ""
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "Playwright is not installed"
    if not reason:
        return
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaphneServer:
    """The web server (``ser_site.launcher.web_server_argv``, as ``make run`` starts it) on a free local port, with its log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> DaphneServer:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 — closed in stop()
        self.proc = subprocess.Popen(
            web_server_argv("127.0.0.1", self.port),
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web server exited: {self.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the web server did not answer within {timeout:.0f} s: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture
def daphne_extra_env() -> dict[str, str]:
    """Extra environment (settings) for the web server; override it in a test module."""
    return {}


@pytest.fixture
def daphne_server(transactional_db, redis_server, tmp_path, daphne_extra_env) -> Iterator[DaphneServer]:
    """The web server object (``.url``, ``.log_text()``)."""
    from django.db import connection

    env = worker_env(connection.settings_dict["NAME"])
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    # "insecure.test" (mapped to 127.0.0.1 by a browser flag) is a plain-http origin that is
    # not localhost: how a page served without TLS looks to the browser.
    env["ALLOWED_HOSTS"] = env.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]") + ",insecure.test"
    env["SER_INFERENCE_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = "1"  # the machine is shared: one core for the model
    env.update(daphne_extra_env)
    server = DaphneServer(env, tmp_path / "daphne.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def live_server_url(daphne_server: DaphneServer) -> str:
    return daphne_server.url


def speech_with_pauses(seconds: float = 8.0, *, seed: int = 0) -> np.ndarray:
    """Speech-like bursts of several styles separated by clear pauses (so the VAD cuts segments)."""
    styles = ["angry", "happy", "sad", "neutral", "fearful"]
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = []
    total = 0.0
    i = 0
    while total < seconds:
        burst = speech_like(styles[i % len(styles)], duration=float(rng.uniform(0.8, 1.3)), seed=seed + i, lead_silence=0.05)
        pause = np.zeros(int(rng.uniform(0.6, 0.9) * SR), np.float32)
        pieces += [burst, pause]
        total += (burst.size + pause.size) / SR
        i += 1
    return np.concatenate(pieces).astype(np.float32)


@pytest.fixture(scope="session")
def fake_microphone_wav(tmp_path_factory) -> Path:
    """16-bit PCM mono WAV that Chromium's fake microphone plays in a loop: about 4 s of bursts
    with pauses, then 6 s of voice without a pause (cut at the VAD's maximum segment length),
    then a pause."""
    wave = np.concatenate([speech_with_pauses(4.0), continuous_voice(6.0)])
    return write_wav(tmp_path_factory.mktemp("mic") / "speech.wav", wave)


BASE_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"]


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it lives, and tests outside this folder that run later (pytest-django runs
# tests without a database last) must not find it there.
@pytest.fixture(scope="package")
def playwright_session() -> Iterator:
    """The Playwright driver for the browser tests (more browsers: ``launch_chromium``)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread, which makes
    # Django's "no ORM calls from async code" guard fire on the test's plain sync database
    # work. The guard stays on in the web server subprocess (daphne_server removes this variable).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    try:
        with sync_playwright() as p:
            yield p
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def launch_chromium(playwright, *, microphone_wav: Path | None = None, fake_ui: bool = True, args: list[str] = ()):
    """Chromium with a fake microphone playing ``microphone_wav`` (None: no microphone at all).

    ``fake_ui`` answers the permission prompt with "allow"; without it, a context that was
    not granted the microphone gets the prompt's "deny" (NotAllowedError), as a user who
    blocks it would.
    """
    flags = list(BASE_ARGS)
    if fake_ui:
        flags.append("--use-fake-ui-for-media-stream")
    if microphone_wav is not None:
        flags += ["--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={microphone_wav}"]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags + list(args))


@pytest.fixture(scope="package")
def browser(playwright_session, fake_microphone_wav: Path):
    """One Chromium for the browser tests, its fake microphone playing ``fake_microphone_wav``."""
    chromium = launch_chromium(playwright_session, microphone_wav=fake_microphone_wav)
    try:
        yield chromium
    finally:
        chromium.close()


def open_logged_in_page(browser, base_url: str, user, *, microphone: bool = True):
    """A page in a new context of ``browser``, logged in as ``user`` by a session cookie.

    ``page.js_errors`` collects uncaught exceptions, ``page.console_errors`` console errors.
    Close it with ``page.context.close()``.
    """
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    if microphone:
        context.grant_permissions(["microphone"], origin=base_url)
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base_url}])
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.js_errors = []  # uncaught exceptions: a test fails on any
    page.console_errors = []  # console.error lines (404s of favicons land here too)
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)
    return page


@pytest.fixture
def logged_in_page(browser, live_server_url: str, user):
    """A page in a fresh context, logged in as ``user``, with ``page.js_errors``."""
    page = open_logged_in_page(browser, live_server_url, user)
    try:
        yield page
    finally:
        page.context.close()


@pytest.fixture
def screenshot() -> Callable:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, *, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
