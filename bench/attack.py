"""Attack a running studio on the loopback interface and print what held (JSON).

Starts ``manage.py studio`` (what ``make run`` runs: web server, two Celery workers, the
embedded Redis) in a private data folder, registers a small untrained model (so uploads are
decoded and classified), then sends, as an outsider and as a logged-in user: oversized
bodies, playlists that name server files or URLs (API, upload page, ws/record/, corpus
import), out-of-range and too-short audio, foreign websocket origins, unknown websocket paths,
a missing page, a login brute force, an oversized websocket message, zip traversal, a zip
bomb, garbage websocket frames and 50 simultaneous streams. Every attack is bounded in size
and time.

Per attack: did it get a clear refusal (the expected status or close code and a message),
did the server survive (no 5xx, every process alive), did it leave files or rows behind.
Peak memory is the web server's resident set (with its children), sampled every 20 ms.

    python bench/attack.py [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT  # noqa: E402
from bench.stack import free_port  # noqa: E402
from bench.upload_memory import post, rss_mb  # noqa: E402
from devsupport.hostile_audio import (  # noqa: E402
    PLAYLIST_NAMES,
    float_wav_bytes,
    huge_sine,
    playlists,
    secret_file,
)
from devsupport.synth import speech_like, write_wav  # noqa: E402

BOMB_LIMIT = 50 * 2**20  # SER_MAX_UNZIPPED_BYTES for the run: a bomb needs only to pass it
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Target:
    """The studio subprocess, its processes, and HTTP/websocket helpers."""

    def __init__(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SER_", "DEBUG", "DATABASE_", "REDIS_", "DJANGO_"))}
        self.env.update(SER_DATA_DIR=str(data), PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="ser_site.settings",
                        SER_MAX_UNZIPPED_BYTES=str(BOMB_LIMIT), SER_INFERENCE_THREADS="1", OMP_NUM_THREADS="1")
        self.lines: list[str] = []
        self.peak_mb = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "manage.py", "studio", "--port", str(self.port)], cwd=ROOT,
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=lambda: [self.lines.append(raw.decode(errors="replace")) for raw in self.proc.stdout],
                         daemon=True).start()
        deadline = time.monotonic() + 300
        while "SER Studio is up" not in "".join(self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the studio did not start:\n" + "".join(self.lines)[-3000:])
            time.sleep(0.3)
        self.pids = {name: int(pid) for name, pid in re.findall(r"^(\w+)\s+\| started \(pid (\d+)\)", "".join(self.lines), re.M)}
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self.proc.poll() is None:
            self.peak_mb = max(self.peak_mb, rss_mb(self.pids["web"]))
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc.poll() is None and all(Path(f"/proc/{pid}").exists() for pid in self.pids.values())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def shell(self, code: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=300, check=True)
        return done.stdout.strip().splitlines()[-1]

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{self.port}", **(headers or {})})
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
        conn.close()
        return response.status, text


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "attackboundary41d8cd98f00b204e"
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def sign_in(target: Target, username: str, password: str) -> tuple[int, str, str]:
    """Post the sign-in form as a browser does (its CSRF cookie and token first).

    Returns the answer's status, its ``Set-Cookie`` header ("" when none) and the CSRF cookie sent."""
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
    host = {"Host": f"127.0.0.1:{target.port}"}
    conn.request("GET", "/accounts/login/", headers=host)
    first = conn.getresponse()
    page = first.read().decode()
    cookie = re.search(r"csrftoken=([^;]+)", first.getheader("Set-Cookie")).group(1)
    token = CSRF_FIELD.search(page).group(1)
    body = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token}).encode()
    conn.request("POST", "/accounts/login/", body=body, headers={**host, "Content-Type": "application/x-www-form-urlencoded",
                                                                 "Cookie": f"csrftoken={cookie}", "Origin": f"http://127.0.0.1:{target.port}"})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer.status, answer.getheader("Set-Cookie") or "", cookie


class Session:
    """A logged-in browser: session cookie and CSRF token."""

    def __init__(self, target: Target, username: str, password: str) -> None:
        self.target = target
        _, cookies, cookie = sign_in(target, username, password)
        self.session = re.search(r"sessionid=([^;]+)", cookies).group(1)
        self.csrf_cookie = re.search(r"csrftoken=([^;]+)", cookies).group(1) if "csrftoken=" in cookies else cookie
        self.csrf = ""
        page = target.request("GET", "/classify/", headers=self.headers())[1]
        self.csrf = CSRF_FIELD.search(page).group(1)

    def headers(self) -> dict[str, str]:
        return {"Cookie": f"sessionid={self.session}; csrftoken={self.csrf_cookie}",
                "Origin": f"http://127.0.0.1:{self.target.port}", "X-CSRFToken": self.csrf}

    def post(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[int, str]:
        body, content_type = multipart({"csrfmiddlewaretoken": self.csrf, **fields}, files)
        return self.target.request("POST", path, body, {**self.headers(), "Content-Type": content_type})


async def ws_attack(target: Target, session: str | None, path: str, *, origin: str | None = None,
                    messages: list = (), timeout: float = 30) -> dict:
    """Open a websocket, send ``messages``, collect what comes back until it closes."""
    import websockets

    origin = origin if origin is not None else f"http://127.0.0.1:{target.port}"
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    try:
        async with websockets.connect(f"ws://127.0.0.1:{target.port}{path}", origin=origin, additional_headers=headers,
                                      max_size=None, open_timeout=timeout) as ws:
            received = []
            for message in messages:
                await ws.send(json.dumps(message) if isinstance(message, dict) else message)
            try:
                while True:
                    received.append(await asyncio.wait_for(ws.recv(), timeout))
            except websockets.ConnectionClosed as closed:
                return {"status": 101, "close": closed.rcvd.code if closed.rcvd else None, "received": received}
            except TimeoutError:
                return {"status": 101, "close": "open", "received": received}
    except websockets.InvalidStatus as refused:
        return {"status": refused.response.status_code, "close": None, "received": []}


def ravdess_zip(extra: dict[str, bytes]) -> bytes:
    """Four real recordings of one actor plus ``extra`` entries."""
    out = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (code, label) in enumerate([("01", "neutral"), ("03", "happy"), ("04", "sad"), ("05", "angry")]):
            path = write_wav(Path(folder) / f"{i}.wav", speech_like(label, duration=1.0, seed=i))
            archive.writestr(f"c/Actor_01/03-01-{code}-01-01-01-01.wav", path.read_bytes())
        for name, data in extra.items():
            archive.writestr(name, data)
    return out.getvalue()


def bomb_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("c/Actor_01/03-01-05-01-01-01-01.wav", "w") as member:
        chunk = b"\0" * 2**20
        for _ in range(BOMB_LIMIT // len(chunk) * 4):
            member.write(chunk)
    return out.getvalue()


def traversal_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("c/../../../../tmp/ser-attack-escaped.wav", b"RIFF")
    return out.getvalue()


def _error_message(received: list) -> dict:
    for raw in received:
        if isinstance(raw, str):
            message = json.loads(raw)
            if message.get("type") == "error":
                return message
    return {}


def run_attacks(target: Target, admin: Session, token: str, ids: dict[str, int], secret_dir: Path) -> list[dict]:
    results: list[dict] = []
    port = target.port

    def record(name: str, clear: bool, status: object, detail: str = "") -> None:
        results.append({"attack": name, "clear": bool(clear), "status": status, "detail": detail[:160]})

    for mb in (50, 200):
        answer = post(port, "/api/classify", mb * 2**20, fields={}, file_field="file", filename="a.wav", headers={}, timeout=120)
        record(f"anonymous {mb} MB POST /api/classify", answer["status"] in (401, 413), answer["status"], f"sent {answer['sent_mb']} MB")
    hostile = playlists(secret_dir)
    leaked = ("secret", str(secret_dir), "Errno")
    for kind in PLAYLIST_NAMES:
        body, content_type = multipart({}, {"file": ("upload.wav", hostile[kind])})
        status, text = target.request("POST", "/api/classify", body, {"Authorization": f"Bearer {token}", "Content-Type": content_type})
        record(f"{kind} via API", status == 422 and "not a supported audio format" in text and not any(x in text for x in leaked), status, text)
        status, text = admin.post("/classify/", {}, {"file": ("upload.wav", hostile[kind])})
        record(f"{kind} via upload page", status == 400 and "not a supported audio format" in text and "secret" not in text, status)
    for kind in ("ffconcat", "hls", "sdp"):
        out = asyncio.run(ws_attack(target, admin.session, "/ws/record/", messages=[
            {"type": "start", "mime": "", "model": None}, hostile[kind], {"type": "stop"}]))
        error = _error_message(out["received"])
        record(f"{kind} via ws/record/ (no MIME type)", error.get("code") == "bad_audio" and "not a supported" in error.get("message", ""),
               out["close"], error.get("message", ""))
    for name, samples, expected in (("huge finite samples (x1e20)", huge_sine(1e20), "out of range"),
                                    ("10 ms of audio", huge_sine(1.0, seconds=0.01), "too short"),
                                    ("one sample", huge_sine(1.0, seconds=1 / 16000), "too short")):
        body, content_type = multipart({}, {"file": ("x.wav", float_wav_bytes(samples))})
        status, text = target.request("POST", "/api/classify", body, {"Authorization": f"Bearer {token}", "Content-Type": content_type})
        record(f"{name} via API", status == 422 and expected in text and "NaN" not in text, status, text)

    # Websockets: foreign origins, unknown paths, oversized and garbage messages, a flood.
    for path in (f"/ws/runs/{ids['run']}/", f"/ws/corpora/{ids['corpus']}/import/", "/ws/record/"):
        for origin in (f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}", "http://localhost:3000"):
            out = asyncio.run(ws_attack(target, admin.session, path, origin=origin, timeout=5))
            record(f"origin {origin} on {path.split('/')[2]}", out["status"] == 403, out["status"])
    for path in ("/ws/nope/", "/ws/runs/x/", "/"):
        out = asyncio.run(ws_attack(target, admin.session, path, timeout=5))
        record(f"unknown websocket path {path}", out["status"] == 403, out["status"])
    out = asyncio.run(ws_attack(target, admin.session, "/ws/record/", messages=[b"\0" * (10 * 2**20)]))
    record("10 MB websocket message", out["close"] == 1009, out["close"])
    out = asyncio.run(ws_attack(target, admin.session, "/ws/record/", messages=[
        {"type": "start", "mime": "audio/webm;codecs=opus", "model": None}, os.urandom(3000), os.urandom(3000)]))
    error = _error_message(out["received"])
    record("garbage frames after start", error.get("code") == "bad_audio" and isinstance(out["close"], int) and out["close"] >= 4000,
           out["close"], error.get("message", ""))

    async def flood() -> list[dict]:
        return await asyncio.gather(*[ws_attack(target, admin.session, "/ws/record/", timeout=5, messages=[
            {"type": "start", "mime": "audio/webm;codecs=opus", "model": None}]) for _ in range(50)])

    answers = asyncio.run(flood())
    ready = sum(any('"ready"' in m for m in a["received"] if isinstance(m, str)) for a in answers)
    refused = sum(_error_message(a["received"]).get("code") == "too_many_streams" for a in answers)
    record("50 simultaneous streams", ready <= 3 and ready + refused == 50, f"{ready} ready, {refused} refused")

    # Pages and sign-in.
    status, text = target.request("GET", "/no/such/page/")
    record("missing page (debug page?)", status == 404 and "Page not found" in text and "URLconf" not in text, status)
    statuses = []
    for _ in range(12):
        statuses.append(sign_in(target, "victim", "wrong-password")[0])
    record("12 wrong passwords for one account", statuses[-1] == 429 and statuses.count(429) == 2, statuses[-3:])

    # Corpus uploads: traversal, bomb, playlists and unusable audio inside an otherwise good corpus.
    status, text = admin.post("/corpora/upload/", {"name": "traversal", "format": ""}, {"archive": ("t.zip", traversal_zip())})
    record("zip traversal", status == 400 and not Path("/tmp/ser-attack-escaped.wav").exists(), status, _form_error(text))
    status, text = admin.post("/corpora/upload/", {"name": "bomb", "format": ""}, {"archive": ("b.zip", bomb_zip())})
    bomb_state = target.shell("from training.models import Corpus; c = Corpus.objects.filter(name='bomb').first(); "
                              "print(c and c.status)") if status in (201, 302) else "refused"
    record("zip bomb", status == 400 or bomb_state in ("failed", "refused"), status, _form_error(text) or bomb_state)
    extra = {f"c/Actor_01/03-01-0{code}-02-0{st}-0{rep}-01.wav": data for (code, st, rep), data in zip(
        [(c, s, r) for c in (3, 4, 5) for s in (1, 2) for r in (1, 2)],
        [*hostile.values(), float_wav_bytes(huge_sine(1e20)), float_wav_bytes(huge_sine(1.0, seconds=0.01))], strict=False)}
    status, _ = admin.post("/corpora/upload/", {"name": "hostile corpus", "format": ""}, {"archive": ("h.zip", ravdess_zip(extra))})
    deadline = time.monotonic() + 180
    state = ""
    while time.monotonic() < deadline:
        state = target.shell("from training.models import Corpus; import json; c = Corpus.objects.get(name='hostile corpus'); "
                             "print(json.dumps([c.status, c.utterances.count(), [s['reason'] for s in c.skipped]]))")
        if json.loads(state)[0] != "importing":
            break
        time.sleep(2)
    corpus_status, kept, reasons = json.loads(state)
    clear = corpus_status == "ready" and kept == 4 and len(reasons) == len(extra) and all(
        any(word in r for word in ("not a supported audio format", "out of range", "too short")) for r in reasons)
    record("playlists and unusable audio in a corpus import", clear, corpus_status, f"{kept} kept, {len(reasons)} skipped")
    return results


def _form_error(html: str) -> str:
    match = re.search(r'class="[^"]*error[^"]*"[^>]*>([^<]+)<', html)
    return match.group(1).strip() if match else ""


def leftovers(target: Target) -> dict:
    found = target.shell(
        "from pathlib import Path; import json; from django.conf import settings; from training.models import Corpus; "
        "ready = {f'{c.pk}-' for c in Corpus.objects.filter(status='ready')}; "
        "staging = [str(p) for p in (Path(settings.DATA_DIR) / 'tmp').glob('*')]; "
        "media = [str(p) for p in (Path(settings.MEDIA_ROOT) / 'corpora').glob('*') if not any(p.name.startswith(r) for r in ready)]; "
        "rows = list(Corpus.objects.exclude(status__in=['ready', 'failed']).values_list('name', flat=True)); "
        "print(json.dumps({'staging': staging, 'media': media, 'rows': rows}))")
    left = json.loads(found)
    if Path("/tmp/ser-attack-escaped.wav").exists():
        left["escaped"] = ["/tmp/ser-attack-escaped.wav"]
    return left


def _tracebacks(log: str) -> list[str]:
    """The line before each traceback in the studio's output and the exception it ends with."""
    lines = log.splitlines()
    found = []
    for i, line in enumerate(lines):
        if "Traceback" in line:
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].split("|", 1)[-1].startswith(("  ", "Traceback"))), i)
            found.append(f"{lines[i - 1] if i else ''} ... {lines[end]}"[:300])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ser-atk-"))
    secret_dir = data / "media" / "corpora" / "1-secret"
    target = Target(data)
    try:
        target.start()
        time.sleep(2)
        baseline = rss_mb(target.pids["web"])
        secret_file(secret_dir)  # a server file the playlists name (absolute path)
        token = target.shell(
            "from pathlib import Path; from django.contrib.auth import get_user_model; from recognition.services.tokens import api_token_create; "
            "from devsupport.tiny_model import register_tiny; from training.models import Corpus, TrainingRun; "
            f"register_tiny(Path('{data}'), activate=True); U = get_user_model(); admin = U.objects.get(username='admin'); "
            "U.objects.create_user('victim', password='victim-password-123'); "
            "TrainingRun.objects.create(name='target', created_by=admin, status='succeeded'); Corpus.objects.create(name='target', status='ready'); "
            "print(api_token_create(user=admin, name='attack')[1])")
        ids = json.loads(target.shell("from training.models import Corpus, TrainingRun; import json; print(json.dumps("
                                      "{'run': TrainingRun.objects.get(name='target').pk, 'corpus': Corpus.objects.get(name='target').pk}))"))
        admin = Session(target, "admin", (data / "admin-password.txt").read_text().strip())
        results = run_attacks(target, admin, token, ids, secret_dir)
        alive = target.alive()
        left = leftovers(target)
    finally:
        target.stop()
        log = "".join(target.lines)
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    server_errors = len(re.findall(r'" 5\d\d ', log))
    print(json.dumps({
        "benchmark": "attack",
        "attacks_tried": len(results),
        "clear_errors": sum(r["clear"] for r in results),
        "not_clear": [r for r in results if not r["clear"]],
        "server_crashes": int(not alive) + server_errors,
        "tracebacks_in_log": _tracebacks(log),
        "files_or_rows_left_behind": sum(len(v) for v in left.values()),
        "left_behind": left,
        "web_server_rss_mb": {"baseline": round(baseline), "peak": round(target.peak_mb)},
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
