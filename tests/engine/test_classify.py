"""The single engine call behind every classification: speech found once, features once, the
verdict from the speech segments only (never from silence)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from devsupport.synth import SR, speech_like, speech_silence_speech
from devsupport.tiny_model import LABELS, tiny_checkpoint
from recognition.engine.classify import classify_recording, speech_verdict
from recognition.engine.predictor import Prediction, Predictor, SegmentPrediction
from recognition.engine.spectrogram import MAX_COLUMNS
from recognition.engine.vad import VadConfig, segment_speech


def _recording() -> np.ndarray:
    """Speech-like utterances of different styles with pauses between them (four segments)."""
    pause = np.zeros(int(0.8 * SR), np.float32)
    parts = [speech_silence_speech("angry")[0], pause, speech_like("sad", 1.5, seed=3), pause, speech_like("happy", 1.0, seed=5)]
    return np.concatenate(parts)


def _one_by_one(predictor: Predictor, wave: np.ndarray) -> list[SegmentPrediction]:
    """The segments as the long way gives them: the VAD's spans, each segment classified on
    its own with :meth:`Predictor.predict`, centred on the speaker mean of all of them."""
    spans = []
    for segment in segment_speech(wave, VadConfig(sample_rate=SR)):
        begin, end = int(round(segment.start * SR)), int(round(segment.end * SR))
        if end > begin:
            spans.append((begin, end))
    pieces = [wave[b:e] for b, e in spans]
    centre = predictor.speaker_centre(pieces).value if predictor.speaker_normalised and pieces else None
    out = []
    for (b, e), piece in zip(spans, pieces, strict=True):
        p = predictor.predict(piece, centre)
        out.append(SegmentPrediction(start=b / SR, end=e / SR, prediction=dataclasses.replace(p, attention_offset=p.attention_offset + b / SR)))
    return out


@pytest.fixture(scope="module", params=["plain", "speaker", "speaker_tta_duo"])
def predictor(request, tmp_path_factory) -> Predictor:
    from training.engine.trainer import TrainConfig

    options = {
        "plain": {},
        "speaker": {"speaker_cmn": True},
        "speaker_tta_duo": {"speaker_cmn": True, "train_config": TrainConfig(members=2).to_dict(), "members": 2},
    }[request.param]
    path = tiny_checkpoint(tmp_path_factory.mktemp("classify") / "m.pt", **options)
    return Predictor.from_checkpoint(path, device="cpu")


def test_predict_speech_equals_the_segment_path_with_one_front_end_pass(predictor, one_thread):
    wave = _recording()
    expected = _one_by_one(predictor, wave)
    found, centre = predictor.predict_speech(wave, batch_size=3)  # several batches
    assert len(found) == len(expected) >= 4
    for got, want in zip(found, expected, strict=True):
        assert (got.start, got.end) == (want.start, want.end)
        assert got.prediction.label == want.prediction.label
        assert got.prediction.probabilities == pytest.approx(want.prediction.probabilities, abs=1e-5)
        np.testing.assert_allclose(got.prediction.attention, want.prediction.attention, atol=1e-4)
        assert got.prediction.attention_offset == pytest.approx(want.prediction.attention_offset)
    if predictor.speaker_normalised:  # the centre taken from the same features as the speaker_centre pass
        pieces = [wave[int(round(s.start * SR)) : int(round(s.end * SR))] for s in found]
        np.testing.assert_allclose(centre.numpy(), predictor.speaker_centre(pieces).value.numpy(), rtol=1e-5, atol=1e-5)
    else:
        assert centre is None


def test_predict_speech_computes_the_features_again_past_its_memory_budget(predictor, monkeypatch, one_thread):
    import recognition.engine.predictor as module

    wave = _recording()
    kept, centre = predictor.predict_speech(wave, batch_size=2)
    monkeypatch.setattr(module, "_KEEP_BYTES", 0)
    again, same_centre = predictor.predict_speech(wave, batch_size=2)
    assert [s.prediction.probabilities for s in again] == [
        pytest.approx(s.prediction.probabilities, abs=1e-6) for s in kept
    ]
    assert (centre is None and same_centre is None) or np.allclose(centre.numpy(), same_centre.numpy())


def test_predict_speech_with_the_whisper_front_end_runs_the_encoder_once_per_segment(tmp_path, monkeypatch, one_thread):
    """A speaker-normalised model over Whisper encoder states: the same segments and probabilities
    as the segment path, with one encoder pass per segment instead of two (centre, then model)."""
    import torch

    from recognition.engine.checkpoint import Checkpoint, save_checkpoint
    from recognition.engine.features import (
        FeatureConfig,
        FeatureExtractor,
        FeatureStats,
        prepare_waveform,
    )
    from recognition.engine.model import EmotionNet, ModelConfig

    torch.manual_seed(0)
    features = FeatureConfig(kind="whisper", speaker_cmn=True, state_pool=2)
    config = ModelConfig(n_features=features.n_features, n_classes=len(LABELS), conv_channels=(), pools=(),
                         encoder_layers=features.encoder_layers, lstm_hidden=16, attention_dim=16)
    extractor = FeatureExtractor(features)
    with torch.inference_mode():
        feats = [extractor.extract(prepare_waveform(speech_like(label, seed=i), features), normalise=False)
                 for i, label in enumerate(["neutral", "happy", "sad", "angry"])]
    path = save_checkpoint(tmp_path / "whisper.pt", Checkpoint(
        model_config=config, feature_config=features, labels=LABELS, stats=FeatureStats.accumulate(feats),
        state_dict=EmotionNet(config).state_dict(), metrics={}, extra={}))
    predictor = Predictor.from_checkpoint(path, device="cpu")
    wave = np.concatenate([speech_silence_speech("angry")[0], speech_like("sad", 2.0, seed=3)])
    expected = _one_by_one(predictor, wave)
    calls = []
    original = FeatureExtractor.uncentred
    monkeypatch.setattr(FeatureExtractor, "uncentred", lambda self, w, n: calls.append(int(n.sum())) or original(self, w, n))
    assert predictor.predict_segments(wave)[0].prediction.probabilities == pytest.approx(expected[0].prediction.probabilities, abs=1e-5)
    calls.clear()
    found, _ = predictor.predict_speech(wave)
    assert len(found) == len(expected) == 3
    for got, want in zip(found, expected, strict=True):
        assert (got.start, got.end) == (want.start, want.end)
        assert got.prediction.probabilities == pytest.approx(want.prediction.probabilities, abs=1e-5)
    assert len(calls) == 1 and calls[0] <= sum(int(round((s.end - s.start) * SR)) for s in found)


def test_predict_speech_takes_given_spans_and_refuses_bad_ones(predictor, one_thread):
    wave = _recording()
    spans = [(8000, 24000), (30000, 40000)]
    found, _ = predictor.predict_speech(wave, spans)
    assert [(s.start, s.end) for s in found] == [(0.5, 1.5), (1.875, 2.5)]
    assert predictor.predict_speech(wave, [])[0] == []
    for bad in ([(5, 5)], [(0, wave.size + 1)], [(-1, 10)]):
        with pytest.raises(ValueError, match="span"):
            predictor.predict_speech(wave, bad)
    with pytest.raises(ValueError, match="non-finite"):
        predictor.predict_speech(np.full(1000, np.nan, np.float32))


def test_the_verdict_comes_from_the_speech_segments(predictor, one_thread):
    wave = _recording()
    result = classify_recording(predictor, wave)
    assert result.whole is None  # the whole-recording pass only when asked
    assert result.duration == pytest.approx(wave.size / SR)
    seconds = np.array([s.end - s.start for s in result.segments])
    probs = np.array([[s.prediction.probabilities[label] for label in LABELS] for s in result.segments])
    expected = seconds @ probs / seconds.sum()
    verdict = result.verdict
    assert list(verdict.probabilities) == LABELS
    assert [verdict.probabilities[label] for label in LABELS] == pytest.approx(list(expected), abs=1e-9)
    assert verdict.label == LABELS[int(np.argmax(expected))]
    assert verdict.speech_seconds == pytest.approx(seconds.sum()) and verdict.segments == len(result.segments)
    assert verdict.speech_seconds < result.duration - 1.5  # the pauses did not vote
    spec = result.spectrogram
    assert len(spec["db"]) == 64 and len(spec["db"][0]) <= MAX_COLUMNS

    asked = classify_recording(predictor, wave, whole=True, with_spectrogram=False)
    assert asked.spectrogram is None
    _, centre = predictor.predict_speech(wave)
    assert asked.whole.probabilities == pytest.approx(predictor.predict(wave, centre).probabilities, abs=1e-5)
    assert asked.verdict == verdict


@pytest.mark.parametrize("seconds", [0.0, 0.01, 10.0])
def test_digital_silence_has_no_verdict(predictor, seconds):
    silence = np.zeros(int(seconds * SR), np.float32)
    result = classify_recording(predictor, silence, whole=True)
    assert result.segments == [] and result.verdict is None
    assert result.duration == pytest.approx(seconds)
    if silence.size:
        # Asked for, the whole pass still runs; the verdict stays "no speech".
        assert result.whole is not None and result.spectrogram is not None
    else:
        assert result.whole is None and result.spectrogram is None


def test_given_segments_are_taken_as_they_are(predictor):
    wave = speech_like("sad", duration=1.0)
    given = [_segment(0.1, 0.4, {"neutral": 0.1, "happy": 0.7, "sad": 0.1, "angry": 0.1}),
             _segment(0.5, 1.4, {"neutral": 0.1, "happy": 0.1, "sad": 0.2, "angry": 0.6})]
    result = classify_recording(predictor, wave, segments=given)
    assert result.segments == given
    # 0.3 s of happy 0.7 against 0.9 s of angry 0.6: the longer segment weighs three times as much.
    assert result.verdict.label == "angry"
    assert result.verdict.probabilities["happy"] == pytest.approx((0.3 * 0.7 + 0.9 * 0.1) / 1.2)


def test_bad_waveforms_are_refused(predictor):
    with pytest.raises(ValueError, match="shape"):
        classify_recording(predictor, np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="float"):
        classify_recording(predictor, np.zeros(16000, np.int16))


def test_speech_verdict_without_segments_is_none():
    assert speech_verdict([], LABELS) is None


def _segment(start: float, end: float, probabilities: dict[str, float]) -> SegmentPrediction:
    label = max(probabilities, key=probabilities.get)
    prediction = Prediction(label, probabilities, np.ones(1, np.float32), 0.08, start, end - start)
    return SegmentPrediction(start, end, prediction)


def test_module_needs_no_django():
    import subprocess
    import sys

    code = "import sys, recognition.engine.classify; assert not any(m.startswith('django') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
