"""Training on the Whisper front end: the state cache, a model trained on cached states,
its checkpoint round trip, and the predictor agreeing with what training scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devsupport.synth import speech_like
from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.features import FeatureConfig
from recognition.engine.predictor import Predictor
from recognition.engine.whisper import get_encoder, state_frames
from training.engine.data import AugmentConfig, Example, assign_speaker_centres
from training.engine.evaluation import example_probabilities
from training.engine.recipe import WHISPER_AUGMENT, Recipe
from training.engine.state_cache import StateCache, audio_key
from training.engine.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ["neutral", "angry"]
FEATURES = FeatureConfig(kind="whisper", speaker_cmn=True, trim="none")


@pytest.fixture(scope="module")
def encoder():
    return get_encoder("cpu")


def _examples(per_class: int, seed: int) -> list[Example]:
    out = []
    for c, label in enumerate(LABELS):
        for i in range(per_class):
            out.append(Example(speech_like(label, 0.8, seed=seed + 100 * c + i, lead_silence=0.05), c, "synth", f"s{i % 3}"))
    return out


def test_state_cache_keeps_states_on_disk_and_in_memory(tmp_path, encoder):
    waves = [speech_like("happy", 0.6, seed=1), speech_like("sad", 1.1, seed=2), speech_like("happy", 0.6, seed=1)]
    cache = StateCache(encoder, tmp_path)
    first = cache.states(waves)
    assert (cache.hits, cache.misses) == (0, 3)
    assert [s.shape for s in first] == [(state_frames(w.size), encoder.n_features) for w in waves]
    assert all(s.dtype == np.float16 for s in first)
    assert first[0] is first[2]  # the same audio is encoded once
    files = sorted((tmp_path / encoder.encoder_id).rglob("*.npy"))
    assert len(files) == 2 and files[0].stem in {audio_key(waves[0]), audio_key(waves[1])}
    # A new cache (a later run) reads them back without the encoder.
    later = StateCache(encoder, tmp_path)
    again = later.states(waves[:2])
    assert (later.hits, later.misses) == (2, 0)
    np.testing.assert_array_equal(again[1], first[1])


def test_state_cache_is_invalidated_by_audio_encoder_and_damage(tmp_path, encoder, monkeypatch):
    wave = speech_like("angry", 0.7, seed=3)
    cache = StateCache(encoder, tmp_path)
    reference = cache.states([wave])[0]
    # Other samples (one changed by a rounding step) are another entry.
    changed = wave.copy()
    changed[100] += 1e-3
    assert audio_key(changed) != audio_key(wave)
    # A damaged file is recomputed, never trusted, and rewritten whole.
    path = tmp_path / encoder.encoder_id / audio_key(wave)[:2] / f"{audio_key(wave)}.npy"
    path.write_bytes(path.read_bytes()[:200])
    fresh = StateCache(encoder, tmp_path)
    np.testing.assert_array_equal(fresh.states([wave])[0], reference)
    assert fresh.misses == 1
    assert np.load(path).shape == reference.shape
    # Other weights (another encoder id) never read these states.
    monkeypatch.setattr(encoder, "encoder_id", "whisper-base-0000000000000000")
    other = StateCache(encoder, tmp_path)
    other.states([wave])
    assert other.misses == 1


def test_trainer_refuses_waveform_augmentation_on_cached_states(tmp_path):
    recipe = Recipe()
    with pytest.raises(ValueError, match="waveform augmentation"):
        Trainer(labels=LABELS, feature_config=FEATURES, model_config=recipe.model_config(2),
                train_config=TrainConfig(augment=AugmentConfig()), out_dir=tmp_path)


def test_whisper_model_trains_on_cached_states_and_round_trips(tmp_path, encoder):
    train, valid = _examples(6, 0), _examples(2, 500)
    cache = StateCache(encoder, tmp_path / "cache")
    for examples in (train, valid):
        for example, states in zip(examples, cache.states([e.waveform for e in examples]), strict=True):
            example.states = states
        assign_speaker_centres(examples, FEATURES)
    assert train[0].centre.shape == (FEATURES.n_features,)
    recipe = Recipe()
    model_config = recipe.model_config(2)
    assert model_config.encoder_layers == 6 and model_config.conv_channels == ()
    config = TrainConfig(epochs=6, batch_size=4, lr=3e-3, seed=0, device="cpu", patience=0, num_threads=1, augment=WHISPER_AUGMENT)
    result = Trainer(labels=LABELS, feature_config=FEATURES, model_config=model_config, train_config=config,
                     out_dir=tmp_path / "run").fit(train, valid)
    assert result.best_metrics["ua"] == 1.0  # two synthetic classes this different are learnt

    ck = load_checkpoint(result.best_path)
    assert ck.feature_config == FEATURES and ck.model_config == model_config
    model, extractor = ck.build_model(), ck.build_extractor()
    trained = example_probabilities(model, extractor, valid).numpy()  # from the cached float16 states
    # The predictor runs the encoder live (float32) on the same audio, centred on the same speaker means.
    predictor = Predictor(ck, device="cpu")
    assert predictor.speeds == (1.0,)
    for example, probs in zip(valid, trained, strict=True):
        live = predictor.predict(example.waveform, centre=torch.from_numpy(example.centre))
        assert live.label == LABELS[int(np.argmax(probs))]
        assert max(abs(live.probabilities[label] - float(probs[i])) for i, label in enumerate(LABELS)) < 0.02
        assert live.attention_hop == pytest.approx(0.08)


def test_recipe_defaults_and_stored_recipes():
    assert Recipe().features.kind == "whisper" and Recipe().train.members == 1
    scratch = Recipe.for_front_end("logmel")
    assert scratch.train.members == 5 and scratch.model_config(8).encoder_layers == 0
    # A recipe stored before the Whisper front end (no kind) is still the CNN's.
    assert Recipe.from_dict({"features": {"speaker_cmn": True}}).features.kind == "logmel"
    assert Recipe.from_dict(Recipe().to_dict()) == Recipe()

