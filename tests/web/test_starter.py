"""The shipped starter model: it loads and classifies, registers once on an empty registry
(also when two processes start together), and recording and classifying work on a fresh
database with nothing trained."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from devsupport.synth import speech_silence_speech, write_wav
from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.predictor import Predictor
from recognition.models import ModelVersion
from recognition.services.starter import STARTER_DIR, STARTER_PATH, model_version_register_starter
from tests.conftest import ROOT, worker_env

pytestmark = pytest.mark.usefixtures("one_thread")

STARTER_LABELS = {"neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"}


def test_shipped_starter_loads_and_classifies_synthetic_speech():
    ck = load_checkpoint(STARTER_PATH)
    assert set(ck.labels) == STARTER_LABELS
    assert ck.feature_config.kind == "whisper" and ck.model_config.encoder_layers == 6
    assert ck.metrics["test"]["ua"] > 0.5 and ck.metrics["protocol"].startswith("cross-corpus: trained on RAVDESS and nEMO")
    assert (STARTER_DIR / "MODEL_CARD.md").is_file()
    wave, _ = speech_silence_speech("angry", speech=1.0, silence=0.6)
    prediction = Predictor(ck, device="cpu").predict(wave)
    assert prediction.label in STARTER_LABELS
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.django_db
def test_starter_registers_once_and_only_on_an_empty_registry():
    version = model_version_register_starter()
    assert version is not None and version.is_active and version.version == 1
    assert set(version.labels) == STARTER_LABELS and version.metrics["ua"] > 0.5
    assert version.lineage["source"].startswith("starter model")
    assert model_version_register_starter() is None
    assert ModelVersion.objects.count() == 1
    # Once the user has deleted every version, the next start brings it back.
    ModelVersion.objects.all().delete()
    assert model_version_register_starter() is not None


def test_two_processes_starting_together_register_it_once(transactional_db, tmp_path):
    from django.conf import settings
    from django.db import connection

    media = Path(settings.MEDIA_ROOT)
    before = len(list(media.rglob("starter-*.pt")))
    env = worker_env(connection.settings_dict["NAME"])
    command = [sys.executable, "manage.py", "register_starter"]
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted("registered Starter" in out for out in outputs) == [False, True], outputs
    assert ModelVersion.objects.count() == 1 and ModelVersion.objects.get().is_active
    assert len(list(media.rglob("starter-*.pt"))) == before + 1  # the loser left no stray copy behind


@pytest.mark.django_db
def test_record_page_and_classify_work_on_a_fresh_database(auth_client, tmp_path):
    version = model_version_register_starter()
    page = auth_client.get(f"/models/{version.pk}/")
    assert b"Whisper-base encoder states" in page.content and b"6 encoder layers" in page.content
    record = auth_client.get("/record/")
    assert record.status_code == 200 and b"There is no model yet" not in record.content
    wave, _ = speech_silence_speech("happy", speech=0.9, silence=0.7)
    data = write_wav(tmp_path / "speech.wav", wave).read_bytes()
    f = io.BytesIO(data)
    f.name = "speech.wav"
    api = auth_client.post("/api/classify", {"file": f})
    assert api.status_code == 200, api.content
    body = api.json()
    assert body["label"] in STARTER_LABELS and body["model"]["name"].startswith("Starter")
    f = io.BytesIO(data)
    f.name = "speech.wav"
    page = auth_client.post("/classify/", {"file": f})
    assert page.status_code == 200 and b"There is no model yet" not in page.content


def test_build_starter_is_documented_in_the_model_card():
    card = (STARTER_DIR / "MODEL_CARD.md").read_text()
    for needle in ("build_starter", "CC BY-NC-SA 4.0", "RAVDESS", "nEMO", "TESS"):
        assert needle in card
    assert (ROOT / "LICENSE").is_file()


@pytest.mark.django_db
def test_missing_encoder_weights_are_a_clear_503(auth_client, tmp_path, monkeypatch):
    from recognition.engine.whisper import encoder as encoder_module
    from recognition.services.inference import predictor_cache_clear

    model_version_register_starter()
    predictor_cache_clear()
    monkeypatch.setattr(encoder_module, "_ENCODERS", {})  # as in a fresh process
    monkeypatch.setenv("SER_WHISPER_DIR", str(tmp_path / "nowhere"))
    wave, _ = speech_silence_speech("sad", speech=0.6, silence=0.4)
    f = io.BytesIO(write_wav(tmp_path / "s.wav", wave).read_bytes())
    f.name = "s.wav"
    response = auth_client.post("/api/classify", {"file": f})
    assert response.status_code == 503
    assert "SER_WHISPER_DIR" in response.json()["error"]
    predictor_cache_clear()


def test_shipped_starter_stores_float16_weights_and_stays_small():
    assert STARTER_PATH.stat().st_size < 5_000_000  # a shipped model holds only its heads
    ck = load_checkpoint(STARTER_PATH)
    for weights in (ck.state_dict, *ck.member_states):
        assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    assert ck.n_members == 3 and all(p.dtype == torch.float32 for p in ck.build_model().parameters())
