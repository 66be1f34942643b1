"""Classification metrics: WA (accuracy), UA (mean per-class recall), macro-F1, confusion.

Confusion matrices are true × predicted (rows = true labels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["confusion_matrix", "scores", "summarise_folds", "per_speaker_scores"]


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts, shape ``(n_classes, n_classes)``, rows = true, columns = predicted."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def scores(cm: np.ndarray, labels: Sequence[str]) -> dict:
    """WA, UA and macro-F1 plus per-class recall/precision/F1 from a confusion matrix.

    Classes with no true samples are left out of UA and macro-F1 (their recall is undefined)
    and listed under ``absent_classes``.
    """
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return {
        "wa": float(tp.sum() / total) if total else 0.0,
        "ua": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n": int(total),
        "per_class": {
            label: {"recall": float(recall[i]), "precision": float(precision[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "absent_classes": [label for i, label in enumerate(labels) if not present[i]],
        "confusion": cm.astype(np.int64).tolist(),
    }


def summarise_folds(fold_scores: Sequence[dict]) -> dict:
    """Mean and (population) standard deviation of WA, UA and macro-F1 over folds."""
    out = {}
    for key in ("wa", "ua", "macro_f1"):
        values = np.array([f[key] for f in fold_scores], dtype=np.float64)
        out[key] = float(values.mean()) if values.size else 0.0
        out[f"{key}_std"] = float(values.std()) if values.size else 0.0
    return out


def per_speaker_scores(
    y_true: Sequence[int], y_pred: Sequence[int], corpora: Sequence[str], speakers: Sequence[str | None], n_classes: int
) -> dict[str, dict]:
    """WA, UA and count per speaker, keyed ``corpus/speaker`` (speakers are only the same
    person within one corpus); utterances without a speaker are left out. UA counts the
    classes that speaker has."""
    groups: dict[str, list[int]] = {}
    for i, (corpus, speaker) in enumerate(zip(corpora, speakers, strict=True)):
        if speaker is not None:
            groups.setdefault(f"{corpus}/{speaker}", []).append(i)
    out = {}
    for key in sorted(groups):
        idx = groups[key]
        cm = confusion_matrix([y_true[i] for i in idx], [y_pred[i] for i in idx], n_classes)
        part = scores(cm, [str(c) for c in range(n_classes)])
        out[key] = {"wa": part["wa"], "ua": part["ua"], "n": part["n"], "correct": int(np.trace(cm))}
    return out
