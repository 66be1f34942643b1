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
from recognition.engine.whisper import get_encoder, pool_states, pooled_frames, state_frames
from training.engine.data import AugmentConfig, Example, assign_speaker_centres
from training.engine.evaluation import example_probabilities
from training.engine.recipe import WHISPER_AUGMENT, Recipe
from training.engine.state_cache import StateCache, audio_key
from training.engine.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ["neutral", "angry"]
FEATURES = FeatureConfig(kind="whisper", speaker_cmn=True, trim="none", state_pool=4, unknown_speaker="population",
                         centre_prior_s=10.0)


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


def test_pooling_averages_whole_groups_of_valid_states_only():
    torch.manual_seed(0)
    states = torch.randn(3, 11, 6)
    steps = torch.tensor([11, 6, 2])
    for row, n in enumerate(steps.tolist()):
        states[row, n:] = 0  # the encoder zeroes padded states
    pooled, out_steps = pool_states(states, steps, 4)
    assert pooled.shape == (3, 2, 6) and out_steps.tolist() == [2, 1, 1] == [pooled_frames(n, 4) for n in (11, 6, 2)]
    torch.testing.assert_close(pooled[0, 1], states[0, 4:8].mean(0))  # frames 8-10, not a whole group, are dropped
    torch.testing.assert_close(pooled[1, 0], states[1, :4].mean(0))
    assert not pooled[1, 1].any()  # a group reaching into padding is zeroed, never averaged with it
    torch.testing.assert_close(pooled[2, 0], states[2, :2].mean(0))  # shorter than a group: the mean of what there is
    # Each row is what it would be alone.
    for row, n in enumerate(steps.tolist()):
        alone, alone_steps = pool_states(states[row : row + 1, :n], steps[row : row + 1], 4)
        torch.testing.assert_close(alone[0, : int(alone_steps[0])], pooled[row, : int(out_steps[row])])
    assert pool_states(states, steps, 1)[0] is states


def test_pooled_states_are_cached_apart_and_match_the_extractor(tmp_path, encoder):
    from recognition.engine.features import FeatureExtractor

    wave = speech_like("angry", 1.3, seed=4)
    raw = StateCache(encoder, tmp_path).states([wave])[0]
    pooled = StateCache(encoder, tmp_path, pool=4).states([wave])[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [encoder.encoder_id, f"{encoder.encoder_id}-pool4"]
    assert pooled.shape == (pooled_frames(raw.shape[0], 4), encoder.n_features)
    np.testing.assert_allclose(pooled[0].astype(np.float32), raw[:4].astype(np.float32).mean(0), atol=2e-2)
    # The live path (the extractor on a waveform) gives what training reads from the cache.
    with torch.inference_mode():
        live = FeatureExtractor(FEATURES).extract(wave, normalise=False)
    own = torch.from_numpy(pooled.astype(np.float32))
    torch.testing.assert_close(live, own - own.mean(0), atol=1e-2, rtol=2e-3)  # float16 rounding


def test_whisper_model_trains_on_cached_states_and_round_trips(tmp_path, encoder):
    train, valid = _examples(6, 0), _examples(2, 500)
    cache = StateCache(encoder, tmp_path / "cache", pool=FEATURES.state_pool)
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
    # The population's speaker mean: the training examples' speaker means, averaged.
    np.testing.assert_allclose(ck.stats.centre.numpy(), np.mean([e.centre for e in train], axis=0), rtol=1e-4, atol=1e-4)
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
    assert Recipe().features.kind == "whisper" and Recipe().train.members == 3
    scratch = Recipe.for_front_end("logmel")
    assert scratch.train.members == 5 and scratch.model_config(8).encoder_layers == 0
    # A recipe stored before the Whisper front end (no kind) is still the CNN's.
    assert Recipe.from_dict({"features": {"speaker_cmn": True}}).features.kind == "logmel"
    assert Recipe.from_dict(Recipe().to_dict()) == Recipe()



def test_checkpoints_and_recipes_from_before_pooling_moved_to_the_features(tmp_path):
    from recognition.engine.checkpoint import Checkpoint, save_checkpoint
    from recognition.engine.feature_stats import FeatureStats
    from recognition.engine.model import EmotionNet

    plain = FeatureConfig(kind="whisper", speaker_cmn=True)
    config = Recipe().model_config(2)
    path = save_checkpoint(tmp_path / "old.pt", Checkpoint(
        model_config=config, feature_config=plain, labels=LABELS, stats=FeatureStats.identity(plain.n_features),
        state_dict=EmotionNet(config).state_dict(), metrics={}, extra={}))
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["frame_pool"] = 4  # as the previous release wrote a Whisper model
    torch.save(payload, path)
    ck = load_checkpoint(path)
    assert ck.feature_config.state_pool == 4 and ck.feature_config.hop_ms == 80 and ck.model_config == config
    # A run's stored Whisper recipe without the field gets the pooling it trained with.
    stored = Recipe().to_dict()
    del stored["features"]["state_pool"]
    assert Recipe.from_dict(stored).features.state_pool == 4
    with pytest.raises(ValueError, match="state_pool applies"):
        FeatureConfig(kind="logmel", state_pool=4)
