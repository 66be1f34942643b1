"""POST /api/classify: token and session authentication, limits, errors, model choice.

Real tiny checkpoints registered in the registry, real synthetic WAV files, the real
predictor: nothing is mocked.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from django.test import Client

from devsupport.synth import speech_silence_speech, write_wav
from devsupport.tiny_model import LABELS, register_tiny
from recognition.services.tokens import api_token_create, api_token_revoke

URL = "/api/classify"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def version(db, tmp_path):
    return register_tiny(tmp_path, activate=True)


@pytest.fixture
def secret(user) -> str:
    _, secret = api_token_create(user=user, name="script")
    return secret


@pytest.fixture
def wav_bytes(tmp_path) -> bytes:
    wave, _ = speech_silence_speech("angry", speech=0.8, silence=0.8)
    return write_wav(tmp_path / "two.wav", wave).read_bytes()


def upload(data: bytes, name: str = "speech.wav", **extra) -> dict:
    f = io.BytesIO(data)
    f.name = name
    return {"file": f, **extra}


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_token_classifies_a_file(client, version, secret, wav_bytes, user):
    response = client.post(URL, upload(wav_bytes), **bearer(secret))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["model"] == {"id": version.pk, "name": "tiny", "version": 1, "labels": LABELS}
    # The verdict comes from the speech segments; the whole-recording pass was not asked for.
    assert data["speech"] is True and data["whole"] is None
    assert data["label"] in LABELS and data["label"] == data["verdict"]["label"]
    assert data["probabilities"] == data["verdict"]["probabilities"]
    assert math.isclose(sum(data["probabilities"].values()), 1.0, abs_tol=1e-4)
    assert data["duration"] == pytest.approx(3.4, abs=0.01)
    # Speech, a pause, speech: two segments, in order, inside the recording.
    assert [s["index"] for s in data["segments"]] == [0, 1]
    assert 0 <= data["segments"][0]["start"] < data["segments"][0]["end"] < data["segments"][1]["start"]
    assert data["segments"][1]["end"] <= data["duration"]
    assert all(len(s["attention"]) > 0 and s["attention_hop"] > 0 for s in data["segments"])
    assert data["spectrogram"]["n_mels"] == len(data["spectrogram"]["db"]) == 64
    # The use is recorded on the token.
    token = user.api_tokens.get()
    assert token.last_used_at is not None


def test_spectrogram_off_and_whole_on_request(client, version, secret, wav_bytes):
    response = client.post(URL + "?spectrogram=0&whole=1", upload(wav_bytes), **bearer(secret))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["spectrogram"] is None
    assert data["whole"]["label"] in LABELS and len(data["whole"]["attention"]) > 0
    assert data["label"] == data["verdict"]["label"]  # the verdict stays the speech's
    assert len(response.content) < 20_000
    refused = client.post(URL + "?spectrogram=maybe", upload(wav_bytes), **bearer(secret))
    assert refused.status_code == 400 and refused.json()["code"] == "bad_flag"
    assert "'spectrogram' must be 0 or 1" in refused.json()["error"]


def test_silence_is_no_speech_not_an_emotion(client, version, secret, tmp_path):
    silence = write_wav(tmp_path / "silence.wav", np.zeros(10 * 16000, np.float32)).read_bytes()
    response = client.post(URL, upload(silence), **bearer(secret))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["speech"] is False and data["label"] is None and data["probabilities"] is None
    assert data["verdict"] is None and data["segments"] == [] and data["whole"] is None
    assert data["duration"] == 10.0


def test_without_token_is_401(client, version, wav_bytes):
    response = client.post(URL, upload(wav_bytes))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize("header", ["Bearer ser_not-a-real-token", "Bearer nonsense", "Basic YWxpY2U6cHc=", "Bearer "])
def test_wrong_token_is_401(client, version, wav_bytes, secret, header):
    response = client.post(URL, upload(wav_bytes), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert "error" in response.json()


def test_revoked_token_is_401(client, version, wav_bytes, user, secret):
    assert client.post(URL, upload(wav_bytes), **bearer(secret)).status_code == 200
    token = user.api_tokens.get()
    assert api_token_revoke(user=user, token_id=token.pk)
    response = client.post(URL, upload(wav_bytes), **bearer(secret))
    assert response.status_code == 401


def test_token_of_inactive_user_is_401(client, version, wav_bytes, user, secret):
    user.is_active = False
    user.save()
    assert client.post(URL, upload(wav_bytes), **bearer(secret)).status_code == 401


def test_session_needs_csrf_token(version, wav_bytes, user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get("/profile/")  # sets the CSRF cookie, as any page does
    csrf = browser.cookies["csrftoken"].value
    refused = browser.post(URL, upload(wav_bytes))
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf"
    accepted = browser.post(URL, upload(wav_bytes), HTTP_X_CSRFTOKEN=csrf)
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["label"] in LABELS
    # The form-field token works too (a plain HTML form posting to the API).
    as_field = browser.post(URL, upload(wav_bytes, csrfmiddlewaretoken=csrf))
    assert as_field.status_code == 200


def test_corrupt_file_is_422(client, version, secret):
    response = client.post(URL, upload(b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio at all" * 20), **bearer(secret))
    assert response.status_code == 422
    data = response.json()
    assert data["code"] == "bad_audio" and data["error"]


def test_missing_file_is_400(client, version, secret):
    response = client.post(URL, {"model": str(version.pk)}, **bearer(secret))
    assert response.status_code == 400
    assert "file" in response.json()["error"]


def test_get_is_405(client, secret):
    response = client.get(URL, **bearer(secret))
    assert response.status_code == 405


def test_too_large_from_content_length(client, version, secret, settings, wav_bytes):
    settings.SER_API_MAX_UPLOAD_BYTES = 10_000
    big = wav_bytes * 3  # far past the limit plus the multipart allowance
    assert len(big) > 10_000 + 64 * 1024
    response = client.post(URL, upload(big), **bearer(secret))
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert "9.8 KB" in response.json()["error"]


def test_too_large_while_reading(client, version, secret, settings, wav_bytes):
    """Content-Length is within the allowance for multipart overhead, but the file itself is
    over the limit: the byte count during parsing catches it."""
    settings.SER_API_MAX_UPLOAD_BYTES = len(wav_bytes) - 1000
    response = client.post(URL, upload(wav_bytes), **bearer(secret))
    assert response.status_code == 413
    settings.SER_API_MAX_UPLOAD_BYTES = len(wav_bytes)
    assert client.post(URL, upload(wav_bytes), **bearer(secret)).status_code == 200


def test_no_model_is_503(client, db, secret, wav_bytes):
    response = client.post(URL, upload(wav_bytes), **bearer(secret))
    assert response.status_code == 503
    assert response.json()["code"] == "no_model"


def test_no_active_model_is_503(client, tmp_path, secret, wav_bytes):
    register_tiny(tmp_path, activate=False)
    response = client.post(URL, upload(wav_bytes), **bearer(secret))
    assert response.status_code == 503


def test_picks_the_given_version(client, version, tmp_path, secret, wav_bytes):
    other = register_tiny(tmp_path, name="two-class", labels=["neutral", "sad"], seed=3, activate=False)
    response = client.post(URL, upload(wav_bytes, model=str(other.pk)), **bearer(secret))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["model"]["id"] == other.pk and data["model"]["labels"] == ["neutral", "sad"]
    assert set(data["probabilities"]) == {"neutral", "sad"}
    # Without a choice, the active version answers.
    default = client.post(URL, upload(wav_bytes), **bearer(secret)).json()
    assert default["model"]["id"] == version.pk


@pytest.mark.parametrize("value", ["abc", "999999", "-1"])
def test_unknown_model_is_400(client, version, secret, wav_bytes, value):
    response = client.post(URL, upload(wav_bytes, model=value), **bearer(secret))
    assert response.status_code == 400
    assert response.json()["code"] == "bad_model"
