"""Scoring a model on labelled examples: WA, UA, macro-F1, confusion and per-corpus breakdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from recognition.engine.feature_stats import pad_batch
from recognition.engine.features import FeatureConfig, FeatureExtractor
from recognition.engine.model import EmotionNet, EnsembleNet
from recognition.engine.tta import change_speed

from .data import Example, assign_speaker_centres, batches_of, collate_centres
from .metrics import confusion_matrix, per_speaker_scores, scores

__all__ = ["brief_metrics", "evaluate_examples", "example_probabilities", "score_probabilities"]


@torch.inference_mode()
def evaluate_examples(
    model: EmotionNet | EnsembleNet,
    extractor: FeatureExtractor,
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    batch_size: int = 64,
    class_weights: torch.Tensor | None = None,
    speeds: Sequence[float] = (1.0,),
) -> dict:
    """Scores (WA, UA, macro-F1, confusion, per class), loss and a per-corpus breakdown.

    ``speeds`` other than ``(1.0,)``: test-time augmentation as the Predictor does it; each
    example is classified at every speed (speaker means recomputed from the speaker's audio
    at that speed) and the probabilities are averaged (a seed ensemble's every model at
    every speed).
    """
    was_training = model.training
    model.eval()
    probs = example_probabilities(model, extractor, examples, batch_size=batch_size, speeds=speeds)
    model.train(was_training)
    return score_probabilities(probs, examples, labels, class_weights=class_weights)


def score_probabilities(
    probs: torch.Tensor, examples: Sequence[Example], labels: Sequence[str], *, class_weights: torch.Tensor | None = None
) -> dict:
    """The scores of :func:`evaluate_examples` from class probabilities ``(len(examples), n_classes)``."""
    target = torch.tensor([e.label for e in examples], dtype=torch.int64)
    weight = None if class_weights is None else class_weights.double().cpu()
    # NLL of the (averaged) probabilities: with one speed, the cross-entropy of the logits.
    total_loss = float(nn.functional.nll_loss(probs.clamp_min(1e-300).log(), target, weight=weight, reduction="sum")) if len(examples) else 0.0
    preds, trues, corpora = probs.argmax(1).tolist(), target.tolist(), [e.corpus for e in examples]
    n = len(labels)
    result = scores(confusion_matrix(trues, preds, n), labels)
    result["loss"] = total_loss / max(1, len(trues))
    # Per test speaker: where a model fails is usually a person, not a class.
    result["per_speaker"] = per_speaker_scores(trues, preds, corpora, [e.speaker for e in examples], n)
    names = sorted(set(corpora))
    if len(names) > 1:
        result["per_corpus"] = {}
        for name in names:
            sel = [k for k, c in enumerate(corpora) if c == name]
            part = scores(confusion_matrix([trues[k] for k in sel], [preds[k] for k in sel], n), labels)
            result["per_corpus"][name] = {key: part[key] for key in ("wa", "ua", "macro_f1", "n", "confusion", "absent_classes")}
    return result


@torch.inference_mode()
def example_probabilities(
    model: EmotionNet | EnsembleNet, extractor: FeatureExtractor, examples: Sequence[Example], *, batch_size: int = 64, speeds: Sequence[float] = (1.0,)
) -> torch.Tensor:
    """Class probabilities ``(len(examples), n_classes)`` float64 on the CPU, averaged over
    ``speeds`` (see :func:`evaluate_examples`); the model must be in eval mode."""
    device = next(model.parameters()).device
    probs = torch.zeros(len(examples), model.config.n_classes, dtype=torch.float64)
    for speed in speeds:
        variant = _at_speed(examples, speed, extractor.config)
        for idx in batches_of(variant, batch_size):
            waves, lengths = pad_batch([variant[i].inputs for i in idx])
            centres = collate_centres([variant[i] for i in idx], extractor.config)
            feats, flen = extractor(waves.to(device), lengths.to(device), centres)
            logits, _ = model(feats, flen)
            probs[idx] += torch.softmax(logits.double(), dim=1).cpu()
    return probs / len(speeds)


def _at_speed(examples: Sequence[Example], speed: float, feature_config: FeatureConfig) -> Sequence[Example]:
    """``examples`` played at ``speed``; speaker means are recomputed at that speed (examples
    without one, scored alone, stay without)."""
    if speed == 1.0:
        return examples
    if any(e.states is not None for e in examples):
        raise ValueError("examples with cached encoder states are scored at speed 1.0 only")
    variant = [replace(e, waveform=change_speed(e.waveform, speed)) for e in examples]
    if feature_config.speaker_cmn:
        known = [v for v in variant if v.centre is not None]
        assign_speaker_centres(known, feature_config)
    return variant


def brief_metrics(metrics: dict) -> dict:
    """The headline part of :func:`evaluate_examples`' result, as checkpoints keep it."""
    return {k: metrics[k] for k in ("wa", "ua", "macro_f1", "loss", "confusion", "n")}
