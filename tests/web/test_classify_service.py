"""The one classify path (recognition.services.classify) and the per-process model cache (recognition.services.inference)."""

from __future__ import annotations

import asyncio
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from devsupport.synth import SR, speech_like, speech_silence_speech, write_wav
from devsupport.tiny_model import LABELS, tiny_checkpoint
from recognition.engine.audio import AudioError
from recognition.engine.spectrogram import MAX_COLUMNS, spectrogram
from recognition.engine.vad import segment_speech


@pytest.fixture
def active_version(db, tmp_path, one_thread):
    """A registered, active ModelVersion with a tiny checkpoint; the predictor cache is emptied around it."""
    from recognition.services import model_version_register
    from recognition.services.inference import predictor_cache_clear

    predictor_cache_clear()
    version = model_version_register(name="tiny", checkpoint_path=tiny_checkpoint(tmp_path / "tiny.pt"), activate=True)
    yield version
    predictor_cache_clear()


def test_no_active_model_is_a_clear_error(db):
    from recognition.services.inference import NoModelError, predictor_for

    with pytest.raises(NoModelError, match="No model is active"):
        predictor_for()
    with pytest.raises(NoModelError, match="no model version with id 999"):
        predictor_for(999)


def test_predictor_is_loaded_once_and_shared_between_threads(active_version):
    from recognition.services.inference import predictor_for, predictor_load

    version, predictor = predictor_for()
    assert version.pk == active_version.pk
    assert predictor.labels == LABELS
    assert predictor_for(active_version.pk)[1] is predictor
    barrier = threading.Barrier(4)

    def load():
        barrier.wait()
        return predictor_load(active_version)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: load(), range(4)))
    assert all(p is predictor for p in results)


def test_test_time_augmentation_follows_the_setting(db, tmp_path, settings, one_thread):
    from recognition.services import model_version_register
    from recognition.services.inference import predictor_cache_clear, predictor_for
    from training.engine.trainer import TrainConfig

    predictor_cache_clear()
    path = tiny_checkpoint(tmp_path / "speeds.pt", train_config=TrainConfig().to_dict())
    model_version_register(name="speeds", checkpoint_path=path, activate=True)
    assert predictor_for()[1].speeds == (0.9, 1.0, 1.1)  # on by default
    predictor_cache_clear()
    settings.SER_TEST_TIME_AUGMENTATION = False
    assert predictor_for()[1].speeds == (1.0,)
    predictor_cache_clear()


def test_a_seed_ensemble_asks_every_pair_when_the_setting_says_so(db, tmp_path, settings, one_thread):
    from recognition.services import model_version_register
    from recognition.services.inference import predictor_cache_clear, predictor_for
    from training.engine.trainer import TrainConfig

    predictor_cache_clear()
    path = tiny_checkpoint(tmp_path / "duo.pt", train_config=TrainConfig(members=2).to_dict(), members=2)
    model_version_register(name="duo", checkpoint_path=path, activate=True)
    assert predictor_for()[1].passes == 6  # every model at every speed
    predictor_cache_clear()
    settings.SER_TEST_TIME_AUGMENTATION = False
    assert predictor_for()[1].passes == 2  # each model once, at 1.0
    predictor_cache_clear()


def test_run_inference_runs_in_the_pool(settings):
    from recognition.services.inference import inference_executor, run_inference

    names = asyncio.run(run_inference(lambda: threading.current_thread().name))
    assert names.startswith("ser-inference")
    assert inference_executor() is inference_executor()


def test_missing_checkpoint_file_is_no_model_error(active_version):
    from recognition.services.inference import NoModelError, predictor_cache_clear, predictor_for

    predictor_cache_clear()
    Path(active_version.checkpoint.path).unlink()
    with pytest.raises(NoModelError, match="cannot be loaded"):
        predictor_for()


def test_result_dict_of_a_waveform(active_version):
    from recognition.services.classify import recording_classify
    from recognition.services.inference import predictor_for

    version, predictor = predictor_for()
    wave, truth = speech_silence_speech("angry", speech=0.8, silence=0.8)
    result = recording_classify(version=version, predictor=predictor, waveform=wave)

    assert result["model"] == {"id": version.pk, "name": "tiny", "version": 1, "labels": LABELS}
    assert result["duration"] == pytest.approx(wave.size / SR, abs=1e-4)
    assert result["whole"] is None  # only when asked

    segments = result["segments"]
    assert [s["index"] for s in segments] == list(range(len(truth)))
    for seg, (start, end) in zip(segments, truth, strict=True):
        assert seg["start"] == pytest.approx(start, abs=0.2)
        assert seg["end"] == pytest.approx(end, abs=0.35)
        assert seg["label"] == max(seg["probabilities"], key=seg["probabilities"].get)
        assert sum(seg["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        # The attention of each segment, on the recording's time axis, for the spectrogram.
        assert sum(seg["attention"]) == pytest.approx(1.0, abs=1e-3) and seg["attention_hop"] == pytest.approx(0.08)
        assert seg["start"] <= seg["attention_offset"] < seg["end"]
    assert [(s.start, s.end) for s in segment_speech(wave)] == [(s["start"], s["end"]) for s in segments]

    verdict = result["verdict"]
    seconds = np.array([s["end"] - s["start"] for s in segments])
    expected = seconds @ np.array([[s["probabilities"][k] for k in LABELS] for s in segments]) / seconds.sum()
    assert verdict["probabilities"] == pytest.approx(dict(zip(LABELS, expected, strict=True)), abs=1e-5)
    assert verdict["label"] == LABELS[int(np.argmax(expected))]
    assert verdict["segments"] == 2 and verdict["speech_seconds"] == pytest.approx(seconds.sum(), abs=1e-3)

    spec = result["spectrogram"]
    assert spec["n_mels"] == 64 and len(spec["db"]) == 64
    assert spec["f_max"] == 8000.0
    columns = len(spec["db"][0])
    assert columns <= MAX_COLUMNS
    assert columns * spec["hop"] == pytest.approx(wave.size / SR, abs=0.05)
    # Loud bursts are louder than the pauses in the picture too.
    db = np.array(spec["db"])
    loud = db[:, int(0.9 / spec["hop"])].max()
    quiet = db[:, int(1.7 / spec["hop"])].max()
    assert loud > quiet + 20


def test_whole_and_spectrogram_on_request(active_version):
    from recognition.services.classify import recording_classify
    from recognition.services.inference import predictor_for

    version, predictor = predictor_for()
    wave, _ = speech_silence_speech("sad", speech=0.8, silence=0.8)
    result = recording_classify(version=version, predictor=predictor, waveform=wave, whole=True, spectrogram=False)
    assert result["spectrogram"] is None
    whole, expected = result["whole"], predictor.predict(wave)
    assert set(whole) == {"label", "probabilities", "attention", "attention_hop", "attention_offset"}
    assert whole["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert len(whole["attention"]) == expected.attention.size


def test_digital_silence_is_no_speech(active_version):
    from recognition.services.classify import recording_classify
    from recognition.services.inference import predictor_for

    version, predictor = predictor_for()
    result = recording_classify(version=version, predictor=predictor, waveform=np.zeros(10 * SR, np.float32))
    assert result["verdict"] is None and result["segments"] == [] and result["whole"] is None
    assert result["duration"] == 10.0 and len(result["spectrogram"]["db"]) == 64


def test_long_audio_is_pooled_to_max_columns(active_version):
    from recognition.services.inference import predictor_for

    _, predictor = predictor_for()
    wave = np.tile(speech_like("happy", duration=2.0), 40)[: 70 * SR]  # 70 s: 6998 frames
    spec = spectrogram(wave, predictor.feature_config)
    columns = len(spec["db"][0])
    assert columns <= MAX_COLUMNS
    frames = (wave.size - 512) // 160 + 1
    assert columns == math.ceil(frames / math.ceil(frames / MAX_COLUMNS))
    assert spec["hop"] == pytest.approx(math.ceil(frames / MAX_COLUMNS) * 0.01)
    assert np.isfinite(np.array(spec["db"])).all()


def test_empty_waveform_has_no_verdict_and_no_spectrogram(active_version):
    from recognition.services.classify import recording_classify
    from recognition.services.inference import predictor_for

    version, predictor = predictor_for()
    result = recording_classify(version=version, predictor=predictor, waveform=np.zeros(0, np.float32), whole=True)
    assert result["verdict"] is None and result["whole"] is None and result["spectrogram"] is None
    assert result["segments"] == [] and result["duration"] == 0


def test_file_classify_decodes_and_refuses_bad_input(active_version, tmp_path, settings):
    from recognition.services.classify import file_classify
    from recognition.services.inference import predictor_for

    version, predictor = predictor_for()
    wave = speech_like("angry", duration=1.0)
    path = write_wav(tmp_path / "a.wav", wave)
    result = file_classify(version=version, predictor=predictor, source=str(path))
    assert result["verdict"]["label"] in LABELS
    assert result["duration"] == pytest.approx(wave.size / SR, abs=1e-3)
    assert file_classify(version=version, predictor=predictor, source=path.read_bytes())["verdict"] == result["verdict"]
    with pytest.raises(AudioError):
        file_classify(version=version, predictor=predictor, source=b"not audio at all" * 100)
    settings.SER_MAX_AUDIO_SECONDS = 0.2
    with pytest.raises(AudioError, match="limit"):
        file_classify(version=version, predictor=predictor, source=str(path))
