"""Peak resident memory of the web server against the size of an upload's body.

Cases (loopback only): an anonymous multipart POST to ``/api/classify`` of each
``--anon-mb`` size, and a logged-in corpus upload to ``/corpora/upload/`` of ``--corpus-mb``.
Each case gets a fresh server process: its resident memory after a warm-up request is the
baseline, and a thread samples ``/proc/<pid>/status`` every 10 ms while the request is sent
and answered. A server that grows past ``--cap-mb`` over its baseline is killed (the row says
``capped``), so the benchmark stays bounded on a shared machine.

Servers (``--servers``): ``project`` (the command ``make run`` uses), ``daphne`` (stock
Daphne), ``daphne-noparse`` (Daphne whose Twisted request does not parse form bodies),
``uvicorn``, ``hypercorn``; the last two must be importable (``PYTHONPATH``).

    python bench/upload_memory.py [--servers project daphne] [--anon-mb 50 200] [--corpus-mb 1024]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import LiveStack  # noqa: E402

APP = "ser_site.asgi:application"
SERVERS = {
    "daphne": [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", APP],
    "daphne-noparse": [sys.executable, __file__, "--serve-daphne-noparse", "{port}"],
    "uvicorn": [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", "{port}", "--lifespan", "off"],
    "hypercorn": [sys.executable, "-m", "hypercorn", APP, "--bind", "127.0.0.1:{port}"],
}
CHUNK = b"\0" * (1 << 20)
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (a server may serve from worker processes)."""
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += rss_mb(int(child))
    except OSError:
        pass
    return total


class Sampler(threading.Thread):
    """Peak RSS of ``pid``; kills the process once it grows ``cap_mb`` over ``baseline``."""

    def __init__(self, process, baseline: float, cap_mb: float) -> None:
        super().__init__(daemon=True)
        self.process, self.baseline, self.cap_mb = process, baseline, cap_mb
        self.peak, self.capped, self.done = baseline, False, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            value = rss_mb(self.process.pid)
            self.peak = max(self.peak, value)
            if value - self.baseline > self.cap_mb and self.process.poll() is None:
                self.capped = True
                self.process.kill()


def multipart(fields: dict[str, str], file_field: str, filename: str, size: int) -> tuple[bytes, bytes, int]:
    head = "".join(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items())
    head += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n")
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head.encode(), tail, len(head.encode()) + size + len(tail)


def post(port: int, path: str, size: int, *, fields: dict[str, str], file_field: str, filename: str,
         headers: dict[str, str], timeout: float) -> dict:
    """Stream a multipart body of ``size`` file bytes; returns the status and how much was sent."""
    head, tail, length = multipart(fields, file_field, filename, size)
    request = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}",
               f"Content-Type: multipart/form-data; boundary={BOUNDARY}", "Connection: close"]
    request += [f"{k}: {v}" for k, v in headers.items()]
    sent = 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode() + head)
            while sent < size:
                piece = CHUNK[: min(len(CHUNK), size - sent)]
                sock.sendall(piece)
                sent += len(piece)
            sock.sendall(tail)
        except OSError:
            pass  # the server answered early and closed: read what it said
        try:
            answer = sock.recv(4096).decode("latin-1")
        except OSError as exc:
            answer = f"no answer ({exc.__class__.__name__})"
    match = re.match(r"HTTP/1\.[01] (\d+)", answer)
    return {"status": int(match.group(1)) if match else None, "sent_mb": round(sent / 2**20, 1),
            "seconds": round(time.monotonic() - started, 1)}


def csrf_token(stack: LiveStack) -> tuple[str, str]:
    import urllib.request

    request = urllib.request.Request(stack.url("/corpora/upload/"), headers={"Cookie": f"sessionid={stack.session_cookie}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        cookie = re.search(r"csrftoken=([^;]+)", response.headers.get("Set-Cookie", "")).group(1)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode()).group(1)
    return cookie, token


def case(stack: LiveStack, kind: str, mb: int, cap_mb: float, timeout: float) -> dict:
    stack.restart_server()
    size = mb * 2**20
    if kind == "anonymous classify":
        post(stack.port, "/api/classify", 1024, fields={}, file_field="file", filename="a.wav", headers={}, timeout=30)
        args = {"fields": {}, "file_field": "file", "filename": "a.wav", "headers": {}}
        path = "/api/classify"
    else:
        cookie, token = csrf_token(stack)
        args = {"fields": {"csrfmiddlewaretoken": token, "name": f"bench {time.time_ns()}", "format": ""},
                "file_field": "archive", "filename": "corpus.zip",
                "headers": {"Cookie": f"sessionid={stack.session_cookie}; csrftoken={cookie}",
                            "Origin": f"http://127.0.0.1:{stack.port}", "Referer": stack.url("/corpora/upload/")}}
        path = "/corpora/upload/"
    time.sleep(1.0)
    baseline = rss_mb(stack.server.pid)
    sampler = Sampler(stack.server, baseline, cap_mb)
    sampler.start()
    try:
        result = post(stack.port, path, size, timeout=timeout, **args)
        time.sleep(1.0)  # the server may still be parsing after it answered
    finally:
        sampler.done.set()
        sampler.join()
    return {"case": kind, "body_mb": mb, **result, "baseline_mb": round(baseline), "peak_mb": round(sampler.peak),
            "peak_over_baseline_mb": round(sampler.peak - baseline), "capped": sampler.capped}


def serve_daphne_noparse(port: str) -> None:
    """Daphne with ``parsePOSTFormSubmission=False`` on Twisted's requests (the option Twisted
    offers against its own multipart parse); Daphne still queues the whole body at once."""
    import functools

    from daphne import http_protocol
    from daphne.cli import CommandLineInterface

    build = http_protocol.HTTPFactory.buildProtocol

    def build_protocol(self, addr):  # noqa: ANN001, ANN202 — Twisted's signature
        protocol = build(self, addr)
        protocol.requestFactory = functools.partial(http_protocol.WebRequest, parsePOSTFormSubmission=False)
        return protocol

    http_protocol.HTTPFactory.buildProtocol = build_protocol
    CommandLineInterface().run(["-b", "127.0.0.1", "-p", port, APP])


def main() -> None:
    if sys.argv[1:2] == ["--serve-daphne-noparse"]:
        serve_daphne_noparse(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", nargs="+", default=["project"], choices=["project", *SERVERS])
    parser.add_argument("--anon-mb", nargs="*", type=int, default=[50, 200])
    parser.add_argument("--corpus-mb", nargs="*", type=int, default=[1024])
    parser.add_argument("--cap-mb", type=float, default=4096, help="kill a server that grows this much (MB)")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    rows = []
    with LiveStack() as stack:  # one data folder and session; a fresh server per case
        for server in args.servers:
            stack.server_argv = None if server == "project" else SERVERS[server]
            cases = [("anonymous classify", mb) for mb in args.anon_mb] + [("logged-in corpus upload", mb) for mb in args.corpus_mb]
            for kind, mb in cases:
                rows.append({"server": server, **case(stack, kind, mb, args.cap_mb, args.timeout)})
                print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"benchmark": "upload_memory", "results": rows}, indent=1))


if __name__ == "__main__":
    main()
