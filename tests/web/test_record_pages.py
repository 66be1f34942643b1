"""The record page and the upload page, rendered by Django (the browser tests drive them live)."""

from __future__ import annotations

import io
import json
import re

import pytest

from devsupport.synth import speech_silence_speech, write_wav
from devsupport.tiny_model import LABELS, register_tiny

pytestmark = pytest.mark.usefixtures("one_thread")


def json_block(html: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no #{element_id} block"
    return json.loads(match.group(1))


def selected_option(html: str, select_attr: str) -> str:
    select = re.search(rf"<select {select_attr}.*?</select>", html, re.S).group(0)
    return re.search(r'<option value="(\d+)" selected>', select).group(1)


@pytest.mark.parametrize("url", ["/record/", "/classify/"])
def test_pages_need_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_record_page_defaults_to_the_active_model(auth_client, tmp_path):
    first = register_tiny(tmp_path, name="first", activate=False)
    active = register_tiny(tmp_path, name="second", labels=["neutral", "sad"], seed=2, activate=True)
    third = register_tiny(tmp_path, name="third", seed=3, activate=False)
    response = auth_client.get("/record/")
    assert response.status_code == 200
    html = response.content.decode()
    options = json_block(html, "record-options")
    assert options["defaultModel"] == active.pk
    assert options["wsPath"] == "/ws/record/"
    # The active version first, then the newest.
    assert [m["id"] for m in options["models"]] == [active.pk, third.pk, first.pk]
    assert options["models"][0]["labels"] == ["neutral", "sad"]
    assert "(active)" in options["models"][0]["label"]
    assert selected_option(html, 'id="model-select"') == str(active.pk)
    assert 'id="start" class="primary" >' in html or 'id="start" class="primary">' in html  # enabled
    assert "js/recorder.js" in html and "js/result_view.js" in html and "plotly.min.js" in html
    assert 'id="no-model"' not in html and 'id="no-active-model"' not in html


def test_record_page_without_any_model(auth_client, db):
    html = auth_client.get("/record/").content.decode()
    assert 'id="no-model"' in html and "There is no model yet" in html
    assert 'href="/runs/"' in html
    assert re.search(r'<button type="button" id="start" class="primary" disabled>', html)
    assert json_block(html, "record-options")["defaultModel"] is None


def test_record_page_staff_sees_admin_link(admin_client, db):
    html = admin_client.get("/record/").content.decode()
    assert 'href="/admin/"' in html


def test_record_page_with_no_active_model_preselects_one(auth_client, tmp_path):
    only = register_tiny(tmp_path, activate=False)
    html = auth_client.get("/record/").content.decode()
    assert 'id="no-active-model"' in html
    assert json_block(html, "record-options")["defaultModel"] == only.pk


def _upload(data: bytes, name: str = "speech.wav", **extra) -> dict:
    f = io.BytesIO(data)
    f.name = name
    return {"file": f, **extra}


@pytest.fixture
def wav_bytes(tmp_path) -> bytes:
    wave, _ = speech_silence_speech("happy", speech=0.7, silence=0.7)
    return write_wav(tmp_path / "two.wav", wave).read_bytes()


def test_upload_page_form(auth_client, tmp_path):
    active = register_tiny(tmp_path, activate=True)
    html = auth_client.get("/classify/").content.decode()
    assert 'enctype="multipart/form-data"' in html and 'name="file"' in html
    assert selected_option(html, 'name="model"') == str(active.pk)
    assert 'id="upload-result"' not in html and "50.0\xa0MB" in html


def test_upload_page_shows_the_result(auth_client, tmp_path, wav_bytes):
    active = register_tiny(tmp_path, activate=True)
    other = register_tiny(tmp_path, name="other", labels=["neutral", "angry"], seed=5, activate=False)
    response = auth_client.post("/classify/", _upload(wav_bytes, "my voice.wav"))
    assert response.status_code == 200
    html = response.content.decode()
    result = json_block(html, "upload-result")
    assert result["model"]["id"] == active.pk and result["verdict"]["label"] in LABELS and result["whole"] is None
    assert len(result["segments"]) == 2 and result["spectrogram"]["n_mels"] == 64
    assert "my voice.wav" in html and "plotly.min.js" in html
    # The chosen model is used and stays selected.
    response = auth_client.post("/classify/", _upload(wav_bytes, model=str(other.pk)))
    html = response.content.decode()
    assert json_block(html, "upload-result")["model"]["labels"] == ["neutral", "angry"]
    assert selected_option(html, 'name="model"') == str(other.pk)


def test_upload_page_corrupt_file(auth_client, tmp_path):
    register_tiny(tmp_path, activate=True)
    response = auth_client.post("/classify/", _upload(b"this is a text file, not audio" * 10, "notes.wav"))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="upload-error"' in html and "notes.wav:" in html
    assert 'id="upload-result"' not in html


def test_upload_page_too_large(auth_client, tmp_path, wav_bytes, settings):
    register_tiny(tmp_path, activate=True)
    settings.SER_API_MAX_UPLOAD_BYTES = 20_000
    response = auth_client.post("/classify/", _upload(wav_bytes))
    assert response.status_code == 413
    assert "too large" in response.content.decode()


def test_upload_page_csrf_is_enforced(tmp_path, user, wav_bytes):
    from django.test import Client

    register_tiny(tmp_path, activate=True)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.post("/classify/", _upload(wav_bytes)).status_code == 403
    browser.get("/classify/")
    token = browser.cookies["csrftoken"].value
    assert browser.post("/classify/", _upload(wav_bytes, csrfmiddlewaretoken=token)).status_code == 200


def test_upload_page_without_model(auth_client, db, wav_bytes):
    html = auth_client.get("/classify/").content.decode()
    assert 'id="no-model"' in html
    response = auth_client.post("/classify/", _upload(wav_bytes))
    assert response.status_code == 400
    assert "There is no model yet" in response.content.decode()
