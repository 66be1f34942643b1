"""Tiny real checkpoints registered as ModelVersions, for the web, API and browser tests
and bench/attack.py.

The model is randomly initialised (so its verdicts are arbitrary) but complete: the real
engine loads it, the registry validates it and the predictor runs it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from devsupport.synth import CLASS_STYLES, speech_like
from recognition.engine.checkpoint import Checkpoint, save_checkpoint
from recognition.engine.features import (
    FeatureConfig,
    FeatureExtractor,
    FeatureStats,
    prepare_waveform,
)
from recognition.engine.model import EmotionNet, ModelConfig

LABELS = ["neutral", "happy", "sad", "angry"]


def tiny_checkpoint(
    path: Path, *, labels: list[str] = LABELS, seed: int = 0, speaker_cmn: bool = False, train_config: dict | None = None,
    members: int = 1,
) -> Path:
    """Write a small deterministic checkpoint with feature statistics from synthetic speech.

    ``train_config`` (``TrainConfig.to_dict()``) is stored as training stores it; with speed
    augmentation in it the predictor classifies at those speeds too (test-time augmentation).
    ``members > 1``: a seed ensemble of that many random models.
    """
    torch.manual_seed(seed)
    cfg = ModelConfig(n_features=64, n_classes=len(labels), conv_channels=(4, 8, 8), lstm_hidden=16, attention_dim=16)
    model = EmotionNet(cfg)
    others = [EmotionNet(cfg).state_dict() for _ in range(members - 1)]
    feature_config = FeatureConfig(speaker_cmn=speaker_cmn)
    extractor = FeatureExtractor(feature_config)
    styles = [lab if lab in CLASS_STYLES else "neutral" for lab in labels]
    with torch.inference_mode():
        feats = [extractor.extract(prepare_waveform(speech_like(style, seed=i), feature_config), normalise=False)
                 for i, style in enumerate(styles)]
    ckpt = Checkpoint(model_config=cfg, feature_config=feature_config, labels=list(labels),
                      stats=FeatureStats.accumulate(feats), state_dict=model.state_dict(),
                      metrics={"test": {"ua": 0.5, "wa": 0.5}}, extra={"train_config": train_config} if train_config else {},
                      member_states=others)
    return save_checkpoint(path, ckpt)


def register_tiny(
    folder: Path, *, name: str = "tiny", labels: list[str] = LABELS, seed: int = 0, activate: bool = True, speaker_cmn: bool = False,
    train_config: dict | None = None, members: int = 1,
):
    """Register a tiny checkpoint (written under ``folder``) as a ModelVersion; returns it."""
    from recognition.services import model_version_register
    from recognition.services.inference import predictor_cache_clear

    predictor_cache_clear()  # ids can repeat between tests; never reuse another test's model
    path = tiny_checkpoint(Path(folder) / f"{name}-{seed}.pt", labels=labels, seed=seed, speaker_cmn=speaker_cmn, train_config=train_config,
                           members=members)
    return model_version_register(name=name, checkpoint_path=path, activate=activate)
