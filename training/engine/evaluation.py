"""Scoring a model on labelled examples: WA, UA, macro-F1, confusion and per-corpus breakdown."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recognition.engine.features import FeatureExtractor
from recognition.engine.model import EmotionNet

from .data import Example, batches_of, collate, collate_centres
from .metrics import confusion_matrix, scores

__all__ = ["evaluate_examples"]


@torch.inference_mode()
def evaluate_examples(
    model: EmotionNet,
    extractor: FeatureExtractor,
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    batch_size: int = 64,
    class_weights: torch.Tensor | None = None,
) -> dict:
    """Scores (WA, UA, macro-F1, confusion, per class), loss and a per-corpus breakdown."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    preds, trues, corpora, total_loss = [], [], [], 0.0
    loss_fn = nn.CrossEntropyLoss(weight=None if class_weights is None else class_weights.to(device), reduction="sum")
    for idx in batches_of(examples, batch_size):
        waves, lengths = collate([examples[i].waveform for i in idx])
        centres = collate_centres([examples[i] for i in idx], extractor.config)
        feats, flen = extractor(waves.to(device), lengths.to(device), centres)
        logits, _ = model(feats, flen)
        target = torch.tensor([examples[i].label for i in idx], device=device)
        total_loss += float(loss_fn(logits, target))
        preds.extend(logits.argmax(1).tolist())
        trues.extend(target.tolist())
        corpora.extend(examples[i].corpus for i in idx)
    model.train(was_training)
    n = len(labels)
    result = scores(confusion_matrix(trues, preds, n), labels)
    result["loss"] = total_loss / max(1, len(trues))
    names = sorted(set(corpora))
    if len(names) > 1:
        result["per_corpus"] = {}
        for name in names:
            sel = [k for k, c in enumerate(corpora) if c == name]
            part = scores(confusion_matrix([trues[k] for k in sel], [preds[k] for k in sel], n), labels)
            result["per_corpus"][name] = {key: part[key] for key in ("wa", "ua", "macro_f1", "n", "confusion", "absent_classes")}
    return result
