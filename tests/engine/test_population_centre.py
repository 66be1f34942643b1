"""Encoder heads that read every layer, and the population's speaker mean for unknown speakers:
the extractor's fallback, the shrunk speaker estimate, the checkpoint round trip, the trainer."""

from __future__ import annotations

import pytest
import torch

from recognition.engine.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from recognition.engine.feature_stats import FeatureStats, SpeakerCentre
from recognition.engine.features import FeatureConfig, FeatureExtractor
from recognition.engine.model import EmotionNet, ModelConfig

pytestmark = pytest.mark.usefixtures("one_thread")

POPULATION = FeatureConfig(kind="whisper", speaker_cmn=True, state_pool=4, unknown_speaker="population", centre_prior_s=10.0)
N = POPULATION.n_features


def _stats(seed: int = 0) -> FeatureStats:
    g = torch.Generator().manual_seed(seed)
    return FeatureStats(torch.randn(N, generator=g), torch.rand(N, generator=g) + 0.5, torch.randn(N, generator=g))


def test_unknown_speakers_are_centred_on_the_population_else_on_themselves():
    stats = _stats()
    feats = torch.randn(3, 9, N)
    lengths = torch.tensor([9, 5, 2])
    known = torch.randn(N)
    centres = torch.stack([known, torch.full((N,), float("nan")), torch.full((N,), float("nan"))])
    out, _ = FeatureExtractor(POPULATION, stats).centred(feats, lengths, centres, scale=True)
    torch.testing.assert_close(out[0], (feats[0] - known - stats.mean) / stats.std)
    torch.testing.assert_close(out[1, :5], (feats[1, :5] - stats.centre - stats.mean) / stats.std)
    assert not out[1, 5:].any() and not out[2, 2:].any()
    alone, _ = FeatureExtractor(POPULATION, stats).centred(feats, lengths, None)
    torch.testing.assert_close(alone[2, :2], feats[2, :2] - stats.centre)
    # Without a population mean (older checkpoints, "own"), a row is centred on itself.
    own = FeatureConfig(kind="whisper", speaker_cmn=True, state_pool=4)
    plain, _ = FeatureExtractor(own, stats).centred(feats, lengths, centres)
    torch.testing.assert_close(plain[1, :5], feats[1, :5] - feats[1, :5].mean(0))
    assert FeatureExtractor(own, stats).stats.centre is None
    assert not FeatureExtractor(POPULATION).has_population  # no statistics yet: no population either


def test_a_speaker_mean_from_little_speech_is_shrunk_towards_the_population():
    stats = _stats(1)
    extractor = FeatureExtractor(POPULATION, stats)
    prior = 10.0 * 1000 / POPULATION.hop_ms  # 10 s of 80 ms frames
    states = torch.randn(40, N).numpy().astype("float32")  # 3.2 s of one speaker's (pooled) states
    running = SpeakerCentre(extractor)
    running.add([states])
    expected = (torch.from_numpy(states).double().sum(0) + prior * stats.centre.double()) / (40 + prior)
    torch.testing.assert_close(running.value, expected.float())
    # Much more speech: the speaker's own mean dominates.
    long = SpeakerCentre(extractor)
    long.add([states] * 200)
    assert float((long.value - torch.from_numpy(states).mean(0)).abs().max()) < 0.02 * float(stats.centre.abs().max())


def test_the_population_mean_survives_the_checkpoint_and_a_bad_one_is_refused(tmp_path):
    config = ModelConfig(n_features=N, n_classes=2, conv_channels=(), pools=(), encoder_layers=6, layer_mix="concat",
                         lstm_hidden=8, attention_dim=8, lstm_input=16)
    ck = Checkpoint(model_config=config, feature_config=POPULATION, labels=["a", "b"], stats=_stats(2),
                    state_dict=EmotionNet(config).state_dict())
    path = save_checkpoint(tmp_path / "pop.pt", ck)
    back = load_checkpoint(path)
    torch.testing.assert_close(back.stats.centre, ck.stats.centre)
    assert back.build_extractor().has_population and back.model_config.layer_mix == "concat"
    payload = torch.load(path, weights_only=True)
    payload["feature_centre"][3] = float("nan")
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="population centre"):
        load_checkpoint(path)


def test_an_encoder_head_reads_every_layer_or_mixes_them():
    concat = ModelConfig(n_features=N, n_classes=3, conv_channels=(), pools=(), encoder_layers=6, layer_mix="concat")
    mixed = ModelConfig(n_features=N, n_classes=3, conv_channels=(), pools=(), encoder_layers=6)
    assert mixed.layer_mix == "softmax" and mixed.freq_out == 512 and concat.freq_out == N
    assert EmotionNet(concat).layer_logits is None and EmotionNet(concat).project[0].in_features == N
    torch.manual_seed(0)
    model = EmotionNet(concat).eval()
    feats, lengths = torch.randn(2, 12, N), torch.tensor([12, 5])
    with torch.no_grad():
        batch, _ = model(feats, lengths)
        alone, _ = model(feats[1:, :5], lengths[1:])
    torch.testing.assert_close(batch[1], alone[0], atol=1e-5, rtol=1e-4)  # padding changes nothing
    with pytest.raises(ValueError, match="layer_mix"):
        ModelConfig(n_features=N, n_classes=3, conv_channels=(), pools=(), encoder_layers=6, layer_mix="max")


@pytest.mark.parametrize("kwargs, match", [
    ({"unknown_speaker": "population"}, "speaker_cmn"),
    ({"speaker_cmn": True, "centre_prior_s": 5.0}, "centre_prior_s"),
    ({"speaker_cmn": True, "unknown_speaker": "nobody"}, "unknown_speaker"),
])
def test_population_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FeatureConfig(kind="whisper", **kwargs)


def test_choosing_another_mean_normalisation_drops_the_population_centre():
    from dataclasses import replace

    from training.engine.recipe import Recipe

    base = Recipe().features
    assert base.unknown_speaker == "population"
    for name in ("utterance", "none"):
        changed = replace(base, **FeatureConfig.mean_norm_fields(name))
        assert changed.unknown_speaker == "own" and changed.centre_prior_s == 0
    assert replace(base, **FeatureConfig.mean_norm_fields("speaker")) == base


def test_the_spectrogram_of_a_whisper_model_keeps_the_encoders_20_ms_steps():
    import numpy as np

    from recognition.engine.spectrogram import spectrogram
    from training.engine.recipe import Recipe

    wave = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    picture = spectrogram(wave, Recipe().features)  # pooled states and a population centre: still a plain log-Mel
    assert picture is not None and picture["hop"] == pytest.approx(0.02)
