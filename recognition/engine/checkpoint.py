"""One-file checkpoints: model state (one model's, or each member's of a seed ensemble),
model and feature config, labels, normalisation statistics, metrics and engine version.
Loading checks all of it and refuses anything it cannot trust with a
:class:`CheckpointError` that says why.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import ENGINE_VERSION
from .features import FeatureConfig, FeatureExtractor, FeatureStats
from .model import EmotionNet, EnsembleNet, ModelConfig

__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "ser-studio/emotionnet"
_REQUIRED = ("format", "engine_version", "model_config", "feature_config", "labels", "feature_mean", "feature_std", "state_dict")


class CheckpointError(ValueError):
    """The file is not a checkpoint this engine can trust."""


@dataclass
class Checkpoint:
    """Everything needed to rebuild the trained model exactly; ``extra`` carries trainer state."""

    model_config: ModelConfig
    feature_config: FeatureConfig
    labels: list[str]
    stats: FeatureStats
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    engine_version: str = ENGINE_VERSION
    # A seed ensemble's other members (``state_dict`` is the first); empty for one model.
    member_states: list[dict[str, torch.Tensor]] = field(default_factory=list)

    @property
    def n_members(self) -> int:
        """Models whose probabilities are averaged (1 for a single model)."""
        return 1 + len(self.member_states)

    def build_model(self, device: str | torch.device = "cpu") -> EmotionNet | EnsembleNet:
        """The model in eval mode: an :class:`EnsembleNet` when the checkpoint holds several."""
        models = self.build_models(device)
        return models[0] if len(models) == 1 else EnsembleNet(models).eval()

    def build_models(self, device: str | torch.device = "cpu") -> list[EmotionNet]:
        """Each model the checkpoint holds, in eval mode, in order (``state_dict`` first)."""
        models = []
        for state in (self.state_dict, *self.member_states):
            model = EmotionNet(self.model_config)
            model.load_state_dict(state)
            models.append(model.to(device).eval())
        return models

    def build_extractor(self, device: str | torch.device = "cpu") -> FeatureExtractor:
        return FeatureExtractor(self.feature_config, self.stats).to(device).eval()

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "engine_version": self.engine_version,
            "model_config": self.model_config.to_dict(),
            "feature_config": self.feature_config.to_dict(),
            "labels": list(self.labels),
            "feature_mean": self.stats.mean.detach().cpu().float(),
            "feature_std": self.stats.std.detach().cpu().float(),
            **({"feature_centre": self.stats.centre.detach().cpu().float()} if self.stats.centre is not None else {}),
            "state_dict": _cpu(self.state_dict),
            "metrics": self.metrics,
            "extra": self.extra,
            **({"member_states": [_cpu(state) for state in self.member_states]} if self.member_states else {}),
        }


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write atomically (temporary file + rename) so a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(checkpoint.to_payload(), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the web server and workers may be other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load and validate a checkpoint file.

    Raises:
        CheckpointError: missing, truncated, not a torch file, foreign content, incompatible
            engine version, inconsistent labels, statistics or weights.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No such checkpoint file: {path}")
    try:
        # weights_only: never unpickle arbitrary objects from an uploaded file.
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for broken files
        raise CheckpointError(f"{path.name} is not a readable checkpoint (truncated, corrupt or not a PyTorch file): {_first_line(exc)}") from exc
    return checkpoint_from_payload(payload, source=path.name)


def _moved_pool(model: Any, features: Any) -> tuple[Any, Any]:
    """The (model, feature) settings of checkpoints written before frame pooling moved from
    the model to the features (``frame_pool`` → ``FeatureConfig.state_pool``): the same
    averaging, done before the layer mix instead of after it (they commute). Anything else
    is returned as it is."""
    if isinstance(model, dict) and isinstance(features, dict) and features.get("kind") == "whisper":
        pool = model.get("frame_pool", 1)
        if pool != 1 and features.get("state_pool", 1) == 1:
            return {k: v for k, v in model.items() if k != "frame_pool"}, {**features, "state_pool": pool}
    return model, features


def checkpoint_from_payload(payload: Any, *, source: str = "checkpoint") -> Checkpoint:
    """Validate a loaded payload dict and turn it into a :class:`Checkpoint`."""
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source} is not a SER studio checkpoint (no '{CHECKPOINT_FORMAT}' format tag).")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{source} lacks {', '.join(missing)}.")
    version = str(payload["engine_version"])
    if version.split(".")[0] != ENGINE_VERSION.split(".")[0]:
        raise CheckpointError(f"{source} was written by engine {version}; this engine ({ENGINE_VERSION}) cannot read it.")
    try:
        model_settings, feature_settings = _moved_pool(payload["model_config"], payload["feature_config"])
        model_config = ModelConfig.from_dict(model_settings)
        feature_config = FeatureConfig.from_dict(feature_settings)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source} has an invalid configuration: {exc}") from exc
    labels = payload["labels"]
    if (
        not isinstance(labels, list)
        or not all(isinstance(x, str) and x for x in labels)
        or len(set(labels)) != len(labels)
        or len(labels) != model_config.n_classes
    ):
        raise CheckpointError(f"{source} has labels that do not match its classifier ({model_config.n_classes} classes).")
    if model_config.n_features != feature_config.n_features:
        raise CheckpointError(f"{source}: the model expects {model_config.n_features} features, the feature config makes {feature_config.n_features}.")
    mean, std, centre = payload["feature_mean"], payload["feature_std"], payload.get("feature_centre")
    for name, t in (("mean", mean), ("std", std), *((("population centre", centre),) if centre is not None else ())):
        if (
            not isinstance(t, torch.Tensor)
            or not t.is_floating_point()
            or tuple(t.shape) != (feature_config.n_features,)
            or not torch.isfinite(t).all()
        ):
            raise CheckpointError(f"{source} has invalid feature {name} statistics.")
    if not bool((std > 0).all()):
        raise CheckpointError(f"{source} has a non-positive feature standard deviation.")
    state = payload["state_dict"]
    members = payload.get("member_states", [])
    if not isinstance(members, list):
        raise CheckpointError(f"{source} has malformed ensemble members.")
    for weights in (state, *members):
        _check_weights(weights, model_config, source)
    metrics = payload.get("metrics") or {}
    extra = payload.get("extra") or {}
    if not isinstance(metrics, dict) or not isinstance(extra, dict):
        raise CheckpointError(f"{source} has malformed metrics.")
    return Checkpoint(
        model_config=model_config,
        feature_config=feature_config,
        labels=list(labels),
        stats=FeatureStats(mean.float(), std.float(), None if centre is None else centre.float()),
        state_dict=state,
        metrics=metrics,
        extra=extra,
        engine_version=version,
        member_states=members,
    )


def _check_weights(state: Any, model_config: ModelConfig, source: str) -> None:
    """Refuse one model's weights unless they are finite tensors that fit the architecture."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{source} has no valid model weights.")
    try:
        EmotionNet(model_config).load_state_dict(state)
    except (RuntimeError, ValueError, TypeError) as exc:  # nn.LSTM refuses hidden_size=0 etc. with ValueError
        raise CheckpointError(f"{source}: the weights do not fit the stored architecture: {_first_line(exc)}") from exc
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise CheckpointError(f"{source} contains non-finite weights.")


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
