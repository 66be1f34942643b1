"""Playlists, out-of-range samples and too-short audio through every way audio comes in: the
JSON API, the upload page, the record websocket and a corpus import (issue 29, items 2-3).

The server's working directory holds a real WAV file that each playlist names; a server
that followed the playlist would answer with that file's classification.
"""

from __future__ import annotations

import asyncio
import io
import json
import math

import numpy as np
import pytest

from devsupport.hostile_audio import (
    PLAYLIST_NAMES,
    float_wav_bytes,
    huge_sine,
    playlists,
    secret_file,
)
from devsupport.synth import SR
from devsupport.tiny_model import register_tiny
from recognition.services.tokens import api_token_create
from tests.web.corpora_helpers import leftovers, ravdess_folder, storage, upload, zip_bytes  # noqa: F401
from training.models import Corpus
from training.services.corpora import corpus_upload_create
from training.services.corpus_import import corpus_import_execute

pytestmark = pytest.mark.usefixtures("one_thread")
TIMEOUT = 30


@pytest.fixture
def server_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cwd"
    folder.mkdir()
    secret_file(folder)
    monkeypatch.chdir(folder)
    return folder


def _file(data: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f


def _upload_name(kind: str) -> str:
    return {"hls": "list.m3u8", "hls-http": "list.m3u8", "sdp": "stream.sdp"}.get(kind, "speech.wav")


def _clean(message: str, folder) -> None:
    assert "not a supported audio format" in message, message
    assert str(folder) not in message and "secret" not in message and "Errno" not in message


@pytest.mark.django_db
@pytest.mark.parametrize("kind", PLAYLIST_NAMES)
def test_api_refuses_playlists(client, tmp_path, user, server_folder, kind):
    register_tiny(tmp_path, activate=True)
    _, secret = api_token_create(user=user, name="script")
    data = playlists(server_folder)[kind]
    response = client.post("/api/classify", {"file": _file(data, _upload_name(kind))}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "bad_audio"
    _clean(response.json()["error"], server_folder)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", PLAYLIST_NAMES)
def test_upload_page_refuses_playlists(auth_client, tmp_path, server_folder, kind):
    register_tiny(tmp_path, activate=True)
    data = playlists(server_folder)[kind]
    response = auth_client.post("/classify/", {"file": _file(data, _upload_name(kind))})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="upload-result"' not in html
    _clean(html, server_folder)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "samples,code_word",
    [(huge_sine(1e20), "out of range"), (huge_sine(1.0, seconds=0.01), "too short"), (huge_sine(1.0, seconds=1 / SR), "too short")],
    ids=["huge-finite", "10ms", "one-sample"],
)
def test_api_refuses_unusable_samples_with_valid_json(client, tmp_path, user, samples, code_word):
    register_tiny(tmp_path, activate=True)
    _, secret = api_token_create(user=user, name="script")
    response = client.post("/api/classify", {"file": _file(float_wav_bytes(samples), "x.wav")}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 422, response.content
    body = json.loads(response.content, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert body["code"] == "bad_audio" and code_word in body["error"]


@pytest.mark.django_db
def test_api_answers_finite_probabilities_for_loud_float_audio(client, tmp_path, user):
    """Float audio a little over full scale is a recording: classified, every number finite."""
    register_tiny(tmp_path, activate=True)
    _, secret = api_token_create(user=user, name="script")
    response = client.post("/api/classify", {"file": _file(float_wav_bytes(huge_sine(4.0)), "x.wav")}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200, response.content
    body = json.loads(response.content, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert all(math.isfinite(p) for p in body["probabilities"].values())


@pytest.mark.parametrize("kind", ["ffconcat", "hls", "sdp", "ffconcat-subfile-url"])
def test_record_websocket_refuses_playlists_without_a_mime_type(transactional_db, redis_server, tmp_path, user, server_folder, kind):
    from tests.web.record_helpers import communicator, expect_error, start

    register_tiny(tmp_path, activate=True)

    async def scenario():
        comm = communicator(user)
        ready = await start(comm, mime="")
        assert ready["type"] == "ready"
        await comm.send_to(bytes_data=playlists(server_folder)[kind])
        await comm.send_json_to({"type": "stop"})
        return await expect_error(comm, "bad_audio")

    _clean(asyncio.run(scenario())["message"], server_folder)


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer")
def test_corpus_import_skips_playlists_and_unusable_samples(storage, tmp_path, server_folder):  # noqa: F811
    folder = ravdess_folder(tmp_path / "src", actors=1, statements=1)
    hostile = {**playlists(server_folder), "huge": float_wav_bytes(huge_sine(1e20)),
               "short": float_wav_bytes(huge_sine(1.0, seconds=0.01))}
    # Valid RAVDESS names (intensity 02, which the real recordings do not use), one per payload.
    names = [f"03-01-{code}-02-{statement:02d}-{repetition:02d}-01.wav"
             for code in ("03", "04", "05") for statement in (1, 2) for repetition in (1, 2)]
    kinds = dict(zip(names, hostile, strict=False))
    extra = {f"ravdess/Actor_01/{name}": hostile[kind] for name, kind in kinds.items()}
    corpus = corpus_upload_create(name="hostile", archive=upload(zip_bytes(folder, prefix="ravdess/", extra=extra)))
    corpus = corpus_import_execute(corpus_id=corpus.pk)
    assert corpus.status == Corpus.Status.READY, corpus.error
    assert corpus.utterances.count() == 4  # only the real recordings
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in corpus.skipped}
    assert set(reasons) == set(kinds)
    for name, reason in reasons.items():
        if kinds[name] == "huge":
            assert "out of range" in reason
        elif kinds[name] == "short":
            assert "too short" in reason
        else:
            _clean(reason, server_folder)
    assert np.all([u.duration > 0.5 for u in corpus.utterances.all()])
