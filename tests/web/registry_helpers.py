"""Model versions for the registry's page and admin tests: real tiny checkpoints, registered
through the registry service."""

from __future__ import annotations

from pathlib import Path

import torch

from recognition.engine.checkpoint import Checkpoint, save_checkpoint
from recognition.engine.features import FeatureConfig, FeatureStats
from recognition.engine.model import EmotionNet, ModelConfig
from recognition.models import ModelVersion
from recognition.services import model_version_register

LABELS = ["neutral", "happy", "sad"]
CONFUSION = [[3, 1, 0], [1, 2, 1], [0, 1, 5]]
PROTOCOL = "speaker-independent hold-out: test speakers spk1, spk2"


def write_checkpoint(
    path: Path, *, labels: list[str] = LABELS, seed: int = 0, per_class: bool = False, members: int = 1, train_config: dict | None = None,
) -> Path:
    """A small, complete, randomly initialised checkpoint with test metrics and a confusion matrix."""
    torch.manual_seed(seed)
    features = FeatureConfig(n_mels=16, trim="none")
    n = features.n_features
    cfg = ModelConfig(n_features=n, n_classes=len(labels), conv_channels=(4, 8, 8), lstm_hidden=8, attention_dim=8)
    model = EmotionNet(cfg)
    others = [EmotionNet(cfg).state_dict() for _ in range(members - 1)]
    test = {"wa": 10 / 14, "ua": 0.6389, "macro_f1": 0.6111, "n": 14, "confusion": CONFUSION[: len(labels)]}
    if per_class:
        test["per_class"] = {lab: {"recall": 0.9, "precision": 0.8, "f1": 0.85, "support": 7} for lab in labels}
    ckpt = Checkpoint(
        model_config=cfg,
        feature_config=features,
        labels=list(labels),
        stats=FeatureStats(torch.zeros(n), torch.ones(n)),
        state_dict=model.state_dict(),
        metrics={"test": test, "protocol": PROTOCOL},
        extra={"train_config": train_config} if train_config else {},
        member_states=others,
    )
    return save_checkpoint(path, ckpt)


def register(tmp_path: Path, name: str = "tiny", *, seed: int = 0, activate: bool = False, **kwargs) -> ModelVersion:
    path = write_checkpoint(tmp_path / f"{name}-{seed}.pt", seed=seed)
    return model_version_register(name=name, checkpoint_path=path, activate=activate, **kwargs)
