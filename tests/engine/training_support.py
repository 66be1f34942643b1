"""Helpers shared by the engine's training tests: synthetic examples, a tiny model, a small
trainer and recipe, and a weight comparison."""

from __future__ import annotations

import torch

from devsupport.synth import speech_like
from recognition.engine.features import FeatureConfig
from recognition.engine.model import ModelConfig
from training.engine.data import AugmentConfig, Example
from training.engine.recipe import Recipe
from training.engine.trainer import TrainConfig, Trainer

LABELS4 = ["neutral", "happy", "sad", "angry"]
LABELS2 = ["neutral", "angry"]


def synthetic_examples(labels, per_class, seed, duration, corpus="synth", lead_silence=0.1):
    out = []
    for c, label in enumerate(labels):
        for i in range(per_class):
            wave = speech_like(label, duration, seed=seed + 1000 * c + i, lead_silence=lead_silence)
            out.append(Example(wave, c, corpus, f"s{i % 4}"))
    return out


def tiny_model(n_features, n_classes):
    return ModelConfig(n_features=n_features, n_classes=n_classes, conv_channels=(4, 8, 8), lstm_hidden=16, attention_dim=16)


SMALL_FEATURES = FeatureConfig(trim="none", n_mels=32)


def small_trainer(out_dir, *, epochs=4, callback=None, should_stop=None, features=SMALL_FEATURES, **train_overrides) -> Trainer:
    settings = {"batch_size": 4, "lr": 3e-3, "seed": 0, "device": "cpu", "patience": 0, "num_threads": 1, "progress_every": 1}
    config = TrainConfig(epochs=epochs, **{**settings, **train_overrides})
    return Trainer(
        labels=LABELS2,
        feature_config=features,
        model_config=tiny_model(32, 2),
        train_config=config,
        out_dir=out_dir,
        callback=callback,
        should_stop=should_stop,
    )


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def tiny_recipe(epochs=2) -> Recipe:
    features = FeatureConfig(trim="none", n_mels=32)
    return Recipe(
        features=features,
        model_size="small",
        model_overrides={"conv_channels": (4, 8, 8), "lstm_hidden": 16, "attention_dim": 16},
        train=TrainConfig(epochs=epochs, batch_size=8, lr=3e-3, seed=0, device="cpu", num_threads=1, augment=AugmentConfig(enabled=False)),
    )
