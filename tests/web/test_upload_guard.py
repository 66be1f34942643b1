"""UploadSizeGuard: oversized audio uploads are refused before Django reads their body."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.asgi import get_asgi_application

from recognition.upload_guard import UploadSizeGuard

LIMIT = 1000  # file bytes; requests may be 64 KiB larger (multipart framing)
REQUEST_LIMIT = LIMIT + 64 * 1024


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.SER_API_MAX_UPLOAD_BYTES = LIMIT


class Recorder:
    """An inner ASGI app that reads the whole body and answers with its length."""

    def __init__(self) -> None:
        self.called = False
        self.received = 0

    async def __call__(self, scope, receive, send):
        self.called = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            self.received += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(self.received).encode()})


def run(app, *, path: str, body_chunks: list[bytes], content_length: int | None, method: str = "POST"):
    """Drive ``app`` with one request; returns (status, body, chunks the app pulled)."""
    headers = [(b"content-type", b"multipart/form-data; boundary=x")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http",
             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(body_chunks) - 1} for i, c in enumerate(body_chunks)]
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        if pulled < len(messages):
            pulled += 1
            return messages[pulled - 1]
        await asyncio.sleep(3600)  # a client that sends nothing more

    async def send(message):
        sent.append(message)

    # A thread of its own: the caller's thread may already run an event loop (Playwright's).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, asyncio.wait_for(app(scope, receive, send), 30)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


def test_declared_length_over_the_limit_is_refused_unread():
    inner = Recorder()
    status, body, pulled = run(UploadSizeGuard(inner), path="/api/classify", body_chunks=[b"x" * 100],
                               content_length=10 * 1024**3)
    assert status == 413 and pulled == 0 and not inner.called
    data = json.loads(body)
    assert data["code"] == "too_large" and "1000 bytes" in data["error"]


def test_upload_page_gets_an_html_413():
    status, body, _ = run(UploadSizeGuard(Recorder()), path="/classify/", body_chunks=[b""], content_length=REQUEST_LIMIT + 1)
    assert status == 413 and b"too large" in body and b'href="/classify/"' in body


def test_chunked_body_is_cut_off_while_reading(db):
    """No Content-Length: the real Django app stops reading at the limit and the guard answers."""
    chunk = b"y" * 16 * 1024
    chunks = [chunk] * 20  # 320 KiB, more than the request limit
    status, body, pulled = run(UploadSizeGuard(get_asgi_application()), path="/api/classify", body_chunks=chunks,
                               content_length=None)
    assert status == 413 and json.loads(body)["code"] == "too_large"
    assert pulled * len(chunk) <= REQUEST_LIMIT + len(chunk)  # stopped at the limit, not at the end
    assert pulled < len(chunks)


def test_requests_within_the_limit_pass_through():
    inner = Recorder()
    status, body, _ = run(UploadSizeGuard(inner), path="/api/classify", body_chunks=[b"a" * 600, b"b" * 600],
                          content_length=1200)
    assert status == 200 and body == b"1200"


@pytest.mark.parametrize(("path", "method"), [("/corpora/upload/", "POST"), ("/api/classify", "GET")])
def test_other_requests_are_untouched(path, method):
    inner = Recorder()
    big = [b"z" * (REQUEST_LIMIT + 10)]
    status, body, _ = run(UploadSizeGuard(inner), path=path, body_chunks=big, content_length=len(big[0]), method=method)
    assert status == 200 and body == str(len(big[0])).encode()


@pytest.mark.urls("tests.web.urls_moved")
def test_the_guarded_paths_come_from_the_url_configuration():
    """The views are found by URL name: moved under /v2/, their uploads are still limited, and
    the old paths (no view any more) are not."""
    big = [b"z" * (REQUEST_LIMIT + 10)]
    for path in ("/v2/api/classify", "/v2/classify/"):
        inner = Recorder()
        status, _, pulled = run(UploadSizeGuard(inner), path=path, body_chunks=big, content_length=len(big[0]))
        assert status == 413 and pulled == 0 and not inner.called
    inner = Recorder()
    status, _, _ = run(UploadSizeGuard(inner), path="/api/classify", body_chunks=big, content_length=len(big[0]))
    assert status == 200 and inner.called


def test_corpus_uploads_are_guarded_with_their_own_limit(settings):
    """The served application refuses a corpus upload over SER_MAX_UPLOAD_BYTES before Django."""
    from recognition.services.uploads import format_bytes
    from ser_site.asgi import application
    from training.services.corpora import corpus_request_limit

    settings.SER_MAX_UPLOAD_BYTES = 5000
    settings.SER_MAX_ARCHIVE_FILES = 10
    assert corpus_request_limit() == 5000 + 1024**2 + 10 * 1024  # the one limit the view's allowance shares
    status, body, pulled = run(application, path="/corpora/upload/", body_chunks=[b"z"], content_length=10 * 1024**3)
    assert status == 413 and pulled == 0
    assert b"upload is too large" in body and format_bytes(5000).encode() in body  # the file limit a user can act on
    status, _, pulled = run(application, path="/corpora/upload/", body_chunks=[b"z"], content_length=corpus_request_limit() + 1)
    assert status == 413 and pulled == 0
    # A folder upload's framing fits: a body at the request limit reaches Django (anonymous: sent to login).
    status, _, pulled = run(application, path="/corpora/upload/", body_chunks=[b"z"], content_length=corpus_request_limit())
    assert status == 302 and pulled == 1
