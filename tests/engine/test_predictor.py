"""Predictor: probabilities, attention timing, batching, files, segments, threads."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from devsupport.synth import SR, speech_like, speech_silence_speech, voiced_burst, write_wav
from recognition.engine.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from recognition.engine.features import (
    FeatureConfig,
    FeatureExtractor,
    FeatureStats,
    frame_count,
    prepare_waveform,
)
from recognition.engine.model import EmotionNet, ModelConfig
from recognition.engine.predictor import Prediction, Predictor, SegmentPrediction
from recognition.engine.trim import trim_bounds
from recognition.engine.vad import VadConfig

LABELS = ["neutral", "happy", "angry"]


def _tone(seconds: float, f0: float = 180.0, seed: int = 0) -> np.ndarray:
    return voiced_burst(seconds, f0, 20.0, 0.5, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, small, randomly initialised checkpoint with statistics from real features."""
    torch.manual_seed(0)
    cfg = ModelConfig(n_features=64, n_classes=3, conv_channels=(4, 8, 8), lstm_hidden=16, attention_dim=16)
    model = EmotionNet(cfg)
    # Non-trivial BatchNorm running stats, so eval mode really matters.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    feature_config = FeatureConfig()
    extractor = FeatureExtractor(feature_config)
    with torch.inference_mode():
        feats = [extractor.extract(prepare_waveform(speech_like(lab, seed=i), feature_config), normalise=False)
                 for i, lab in enumerate(LABELS)]
    ckpt = Checkpoint(
        model_config=cfg,
        feature_config=feature_config,
        labels=list(LABELS),
        stats=FeatureStats.accumulate(feats),
        state_dict=model.state_dict(),
        metrics={"ua": 0.5},
    )
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", ckpt)


@pytest.fixture(scope="module")
def predictor(checkpoint_path: Path) -> Predictor:
    return Predictor.from_checkpoint(checkpoint_path, device="cpu")


def test_properties(predictor: Predictor) -> None:
    assert predictor.labels == LABELS
    assert predictor.checkpoint.metrics == {"ua": 0.5}
    assert predictor.model_config.n_classes == 3
    assert predictor.feature_config == FeatureConfig()
    assert not predictor._model.training and not predictor._extractor.training


def test_probabilities_and_attention(predictor: Predictor) -> None:
    wave = speech_like("happy", duration=1.2, seed=3)
    pred = predictor.predict(wave)
    assert list(pred.probabilities) == LABELS
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
    assert pred.label == max(pred.probabilities, key=pred.probabilities.get)
    assert pred.attention.dtype == np.float32
    assert float(pred.attention.sum()) == pytest.approx(1.0, abs=1e-5)
    start, end = trim_bounds(wave)
    stride = predictor.model_config.time_stride
    assert pred.attention.size == frame_count(end - start, predictor.feature_config) // stride
    assert pred.attention_hop == pytest.approx(160 * stride / SR)
    assert pred.attention_offset == pytest.approx(start / SR)
    assert pred.duration == pytest.approx(wave.size / SR)
    data = json.loads(json.dumps(pred.to_dict()))
    assert set(data) == {"label", "probabilities", "attention", "attention_hop", "attention_offset", "duration"}
    assert len(data["attention"]) == pred.attention.size
    assert "attention" not in pred.to_dict(include_attention=False)


def test_trimming_matches_training(predictor: Predictor) -> None:
    wave = speech_like("sad", seed=5, lead_silence=0.6)
    start, end = predictor._trim(wave)
    np.testing.assert_array_equal(wave[start:end], prepare_waveform(wave, predictor.feature_config))


def test_offset_reflects_trimmed_leading_silence(predictor: Predictor) -> None:
    wave = np.concatenate([np.zeros(SR, np.float32), _tone(1.0)])
    pred = predictor.predict(wave)
    assert 0.88 <= pred.attention_offset <= 1.0  # 1 s of silence minus the 0.1 s margin
    assert pred.duration == pytest.approx(2.0)


def test_very_short_input(predictor: Predictor) -> None:
    pred = predictor.predict(_tone(0.01))  # 160 samples < n_fft
    assert pred.attention.size == 1 and pred.attention[0] == pytest.approx(1.0)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0)


def test_predict_equals_predict_batch(predictor: Predictor) -> None:
    short, long = speech_like("neutral", duration=0.5, seed=1), speech_like("angry", duration=2.5, seed=2)
    tiny = _tone(0.02, seed=4)
    alone = [predictor.predict(w) for w in (short, long, tiny)]
    batched = predictor.predict_batch([short, long, tiny], batch_size=3)
    assert predictor.predict_batch([short, long, tiny], batch_size=1)[0].label == alone[0].label
    for a, b in zip(alone, batched, strict=True):
        np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)
        np.testing.assert_allclose(a.attention, b.attention, atol=1e-4)
        assert a.attention_offset == b.attention_offset and a.duration == b.duration
    assert predictor.predict_batch([]) == []


def test_predict_file_path_and_bytes(predictor: Predictor, tmp_path: Path) -> None:
    wave = speech_like("angry", duration=1.0, seed=7)
    path = write_wav(tmp_path / "clip.wav", wave)
    # The WAV holds 16-bit samples: compare with the same quantisation.
    quantised = (np.clip(wave, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32768
    expected = predictor.predict(quantised)
    for source in (path, str(path), path.read_bytes()):
        got = predictor.predict_file(source)
        np.testing.assert_allclose(list(got.probabilities.values()), list(expected.probabilities.values()), atol=1e-4)
        assert got.duration == pytest.approx(wave.size / SR)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.zeros((2, 100), np.float32), "shape"),
        (np.array([0.0, np.nan, 0.1], np.float32), "non-finite"),
        (np.array([0.0, np.inf], np.float32), "non-finite"),
        (np.zeros(400, np.int16), "float"),
    ],
)
def test_bad_input_raises(predictor: Predictor, bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        predictor.predict(bad)
    with pytest.raises(ValueError, match="waveform 1"):
        predictor.predict_batch([_tone(0.2), bad])


def test_bad_file_raises(predictor: Predictor) -> None:
    with pytest.raises(ValueError):
        predictor.predict_file(b"this is not audio at all")


def test_from_checkpoint_rejects_garbage(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 not a checkpoint" * 10)
    with pytest.raises(CheckpointError):
        Predictor.from_checkpoint(garbage)
    with pytest.raises(CheckpointError):
        Predictor.from_checkpoint(tmp_path / "missing.pt")


def test_predict_segments(predictor: Predictor) -> None:
    wave, truth = speech_silence_speech(seed=1)
    segments = predictor.predict_segments(wave)
    pad = VadConfig().padding_ms / 1000
    assert len(segments) == 2
    for seg, (t0, t1) in zip(segments, truth, strict=True):
        assert isinstance(seg, SegmentPrediction)
        # Segments carry the VAD's padding on both sides (same tolerance as test_vad).
        assert seg.start == pytest.approx(t0 - pad, abs=0.15)
        assert seg.end == pytest.approx(t1 + pad, abs=0.15)
        assert seg.prediction.duration == pytest.approx(seg.end - seg.start)
        assert seg.start <= seg.prediction.attention_offset < seg.end
        alone = predictor.predict(wave[round(seg.start * SR) : round(seg.end * SR)])
        np.testing.assert_allclose(
            list(seg.prediction.probabilities.values()), list(alone.probabilities.values()), atol=1e-4
        )
    flat = json.loads(json.dumps(segments[0].to_dict()))
    assert set(flat) == {"start", "end", "label", "probabilities"}
    assert "attention" in segments[0].to_dict(include_attention=True)
    assert predictor.predict_segments(np.zeros(SR, np.float32)) == []


def test_concurrent_predictions_match_sequential(predictor: Predictor) -> None:
    waves = [speech_like(LABELS[i % 3], duration=0.4 + 0.1 * i, seed=10 + i) for i in range(16)]
    sequential = [predictor.predict(w) for w in waves]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(predictor.predict, waves))
    for a, b in zip(sequential, concurrent, strict=True):
        assert isinstance(b, Prediction)
        assert a.probabilities == b.probabilities
        np.testing.assert_array_equal(a.attention, b.attention)


def test_segments_and_batch_argument_errors(predictor: Predictor) -> None:
    wave, _ = speech_silence_speech(seed=2)
    with pytest.raises(ValueError, match="8000 Hz"):
        predictor.predict_segments(wave, VadConfig(sample_rate=8000))
    with pytest.raises(ValueError, match="batch_size"):
        predictor.predict_batch([wave], batch_size=0)


# --- speaker-normalised models ---------------------------------------------------------------


@pytest.fixture(scope="module")
def speaker_predictor(checkpoint_path: Path) -> Predictor:
    """The module's checkpoint with ``speaker_cmn`` features (the weights do not care)."""
    base = load_checkpoint(checkpoint_path)
    return Predictor(dataclasses.replace(base, feature_config=dataclasses.replace(base.feature_config, speaker_cmn=True)), device="cpu")


def test_speaker_centre_is_none_for_models_without_speaker_normalisation(predictor):
    assert not predictor.speaker_normalised
    assert predictor.speaker_centre([speech_like("happy", seed=1)]) is None


def test_speaker_centre_uses_trimmed_audio_and_changes_predictions(speaker_predictor):
    p = speaker_predictor
    cfg = p.feature_config
    waves = [speech_like(lab, seed=20 + i) for i, lab in enumerate(LABELS)]
    running = p.speaker_centre(waves[:1])
    p.speaker_centre(waves[1:], running)
    expected = FeatureExtractor(cfg).speaker_mean([prepare_waveform(w, cfg) for w in waves])
    torch.testing.assert_close(running.value, expected, atol=1e-4, rtol=0)
    alone = p.predict(waves[0])
    centred = p.predict(waves[0], running.value)
    assert alone.probabilities != centred.probabilities
    # One centre for a batch: the same as one by one.
    batched = p.predict_batch(waves, centre=running.value)
    for w, b in zip(waves, batched, strict=True):
        np.testing.assert_allclose(list(p.predict(w, running.value).probabilities.values()), list(b.probabilities.values()), atol=1e-5)


def test_segments_of_a_speaker_normalised_model_share_the_recording_centre(speaker_predictor):
    p = speaker_predictor
    wave, _ = speech_silence_speech("angry", seed=3)
    segments = p.predict_segments(wave)
    assert len(segments) == 2
    pieces = [wave[int(round(s.start * SR)) : int(round(s.end * SR))] for s in segments]
    centre = p.speaker_centre(pieces).value
    for seg, piece in zip(segments, pieces, strict=True):
        np.testing.assert_allclose(
            list(seg.prediction.probabilities.values()), list(p.predict(piece, centre).probabilities.values()), atol=1e-5
        )


