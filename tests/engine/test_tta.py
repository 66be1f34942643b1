"""Test-time augmentation: speed changes, the speeds a checkpoint is asked at, and the
Predictor's and the evaluation's averaging over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from devsupport.synth import speech_like
from devsupport.tiny_model import tiny_checkpoint
from recognition.engine.checkpoint import Checkpoint
from recognition.engine.features import FeatureExtractor, prepare_waveform
from recognition.engine.predictor import Predictor
from recognition.engine.tta import change_speed, tta_speeds
from training.engine.data import AugmentConfig, Example, assign_speaker_centres, augment_waveform
from training.engine.evaluation import evaluate_examples, example_probabilities
from training.engine.trainer import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ["neutral", "happy", "sad"]


def test_change_speed_is_training_speed_augmentation():
    wave = speech_like("happy", seed=1)
    np.testing.assert_array_equal(change_speed(wave, 1.0), wave)
    for factor in (0.9, 1.1):
        out = change_speed(wave, factor)
        assert out.dtype == np.float32 and out.size == round(wave.size / factor)
        # Augmentation with only a speed change does exactly this.
        only_speed = AugmentConfig(speed=(factor,), gain_db=0.0, noise_prob=0.0)
        np.testing.assert_array_equal(augment_waveform(wave, only_speed, np.random.default_rng(0)), out)
    assert change_speed(np.zeros(1, np.float32), 0.9).size == 1


def test_tta_speeds_come_from_the_training_augmentation():
    assert tta_speeds(TrainConfig().to_dict()) == (0.9, 1.0, 1.1)
    assert tta_speeds(TrainConfig(augment=AugmentConfig(enabled=False)).to_dict()) == (1.0,)
    assert tta_speeds(TrainConfig(augment=AugmentConfig(speed=(1.2, 0.8))).to_dict()) == (0.8, 1.0, 1.2)
    assert tta_speeds(TrainConfig(augment=AugmentConfig(speed=())).to_dict()) == (1.0,)
    assert tta_speeds(None) == tta_speeds({}) == (1.0,)  # a checkpoint from elsewhere: no TTA
    # Stored configs are data: nonsense speeds are dropped, not trusted.
    assert tta_speeds({"augment": {"speed": [0.9, "fast", 0.0, 50, 1.1]}}) == (0.9, 1.0, 1.1)


def _checkpoint(path: Path, *, speaker_cmn: bool, train_config: dict | None) -> Path:
    return tiny_checkpoint(path, labels=LABELS, speaker_cmn=speaker_cmn, train_config=train_config)


@pytest.fixture(scope="module", params=[False, True], ids=["utterance_cmn", "speaker_cmn"])
def model_path(request, tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("tta") / "m.pt", speaker_cmn=request.param, train_config=TrainConfig().to_dict())


def _by_hand(ck: Checkpoint, piece: np.ndarray, speeds, centres=None) -> np.ndarray:
    """Mean softmax ``(C,)`` over ``speeds`` of one trimmed utterance, one pass per speed."""
    model, extractor = ck.build_model(), ck.build_extractor()
    total = np.zeros(len(ck.labels))
    with torch.inference_mode():
        for k, speed in enumerate(speeds):
            wave = torch.from_numpy(change_speed(piece, speed))[None]
            c = None if centres is None else centres[k][None]
            feats, lengths = extractor(wave, torch.tensor([wave.shape[1]]), c)
            logits, _ = model(feats, lengths)
            total += torch.softmax(logits.double(), 1)[0].numpy()
    return total / len(speeds)


def test_predictor_averages_over_the_trained_speeds(model_path):
    tta, plain = Predictor.from_checkpoint(model_path, device="cpu"), Predictor.from_checkpoint(model_path, device="cpu", tta=False)
    assert tta.speeds == (0.9, 1.0, 1.1) and plain.speeds == (1.0,)
    ck = tta.checkpoint
    wave = speech_like("sad", seed=7)
    piece = prepare_waveform(wave, ck.feature_config)
    got = tta.predict(wave)
    np.testing.assert_allclose(list(got.probabilities.values()), _by_hand(ck, piece, tta.speeds), atol=1e-5)
    np.testing.assert_allclose(list(plain.predict(wave).probabilities.values()), _by_hand(ck, piece, (1.0,)), atol=1e-5)
    assert got.probabilities != plain.predict(wave).probabilities
    # The attention is the speed-1.0 pass's, on the input's time axis.
    np.testing.assert_allclose(got.attention, plain.predict(wave).attention, atol=1e-5)
    assert got.attention_offset == plain.predict(wave).attention_offset
    # Batches (padding, length sorting) give the same as one by one.
    waves = [speech_like(lab, duration=d, seed=s) for s, (lab, d) in enumerate([("happy", 0.8), ("sad", 1.9), ("neutral", 1.3)])]
    for one, batched in zip((tta.predict(w) for w in waves), tta.predict_batch(waves, batch_size=2), strict=True):
        np.testing.assert_allclose(list(one.probabilities.values()), list(batched.probabilities.values()), atol=1e-5)


def test_speaker_centres_are_kept_per_speed(tmp_path):
    path = _checkpoint(tmp_path / "spk.pt", speaker_cmn=True, train_config=TrainConfig().to_dict())
    tta, plain = Predictor.from_checkpoint(path, device="cpu"), Predictor.from_checkpoint(path, device="cpu", tta=False)
    cfg = tta.feature_config
    waves = [speech_like(lab, seed=30 + i) for i, lab in enumerate(LABELS)]
    pieces = [prepare_waveform(w, cfg) for w in waves]
    running = tta.speaker_centre(waves[:1])
    tta.speaker_centre(waves[1:], running)
    assert running.value.shape == (3, cfg.n_features) and running.speeds == (0.9, 1.0, 1.1)
    extractor = FeatureExtractor(cfg)
    for row, speed in enumerate(tta.speeds):
        expected = extractor.speaker_mean([change_speed(p, speed) for p in pieces])
        torch.testing.assert_close(running.value[row], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(running.value[1], plain.speaker_centre(waves).value, atol=1e-5, rtol=0)
    assert running.frames == plain.speaker_centre(waves).frames
    # Each speed's pass is centred on that speed's mean.
    got = tta.predict(waves[0], running.value)
    np.testing.assert_allclose(list(got.probabilities.values()), _by_hand(tta.checkpoint, pieces[0], tta.speeds, running.value), atol=1e-5)
    # A single (n_features,) centre serves every speed; other shapes are refused.
    one = running.value[1]
    np.testing.assert_allclose(list(tta.predict(waves[0], one).probabilities.values()),
                               _by_hand(tta.checkpoint, pieces[0], tta.speeds, one.expand(3, -1)), atol=1e-5)
    with pytest.raises(ValueError, match="centre must have shape"):
        tta.predict(waves[0], torch.zeros(2, cfg.n_features))


def test_a_checkpoint_without_training_settings_is_asked_once(tmp_path):
    path = _checkpoint(tmp_path / "old.pt", speaker_cmn=False, train_config=None)
    assert Predictor.from_checkpoint(path, device="cpu").speeds == (1.0,)


def test_evaluation_tta_matches_the_predictor(tmp_path):
    path = _checkpoint(tmp_path / "spk.pt", speaker_cmn=True, train_config=TrainConfig().to_dict())
    predictor = Predictor.from_checkpoint(path, device="cpu")
    ck = predictor.checkpoint
    cfg = ck.feature_config
    # Two speakers; the examples hold trimmed audio, as the waveform cache does.
    examples = [
        Example(prepare_waveform(speech_like(lab, seed=10 * spk + i), cfg), i, "c", f"s{spk}", f"{spk}-{i}.wav")
        for spk in range(2) for i, lab in enumerate(LABELS)
    ]
    assign_speaker_centres(examples, cfg)
    model, extractor = ck.build_model().eval(), ck.build_extractor()
    probs = example_probabilities(model, extractor, examples, speeds=predictor.speeds, batch_size=4)
    expected = []
    for spk in ("s0", "s1"):
        mine = [e for e in examples if e.speaker == spk]
        centre = predictor.speaker_centre([e.waveform for e in mine]).value
        expected += [list(p.probabilities.values()) for p in predictor.predict_batch([e.waveform for e in mine], centre=centre)]
    np.testing.assert_allclose(probs.numpy(), expected, atol=1e-5)
    one_pass = example_probabilities(model, extractor, examples)
    assert not torch.allclose(probs, one_pass, atol=1e-4)
    result = evaluate_examples(model, extractor, examples, LABELS, speeds=predictor.speeds)
    confusion = np.zeros((3, 3), int)
    for e, p in zip(examples, probs.argmax(1).tolist(), strict=True):
        confusion[e.label, p] += 1
    assert result["confusion"] == confusion.tolist()
    # The examples themselves are untouched, and one speed is the plain evaluation.
    assert all(e.centre is not None and e.waveform.size for e in examples)
    single = evaluate_examples(model, extractor, examples, LABELS)
    weights = torch.tensor([1.0, 2.0, 0.5])
    weighted = evaluate_examples(model, extractor, examples, LABELS, class_weights=weights)
    with torch.inference_mode():
        logits = []
        for e in examples:
            feats, lengths = extractor(torch.from_numpy(e.waveform)[None], torch.tensor([e.waveform.size]), torch.from_numpy(e.centre)[None])
            logits.append(model(feats, lengths)[0][0])
        logits = torch.stack(logits)
    target = torch.tensor([e.label for e in examples])
    assert single["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, target)), abs=1e-5)
    assert weighted["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, target, weight=weights, reduction="sum")) / len(examples), abs=1e-5)
