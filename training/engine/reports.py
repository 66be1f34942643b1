"""Report assembly for experiments: the scores a report keeps, fold summaries, the protocol
line of a cross-validation, and the notes that explain the extra scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import scores, summarise_folds
from .splits import TRAIN_SPEAKER_VALIDATION

__all__ = [
    "ALONE_NOTE", "MEMBERS_NOTE", "TEACHER_NOTE", "TTA_NOTE", "cv_protocol", "headline", "members_summary",
    "merge_fold_reports", "public_scores", "summarise_results",
]


def headline(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("wa", "ua", "macro_f1")}


def public_scores(metrics: dict) -> dict:
    keys = ("wa", "ua", "macro_f1", "n", "confusion", "per_class", "absent_classes", "per_corpus", "per_speaker")
    return {k: metrics[k] for k in keys if k in metrics}


ALONE_NOTE = ("test recordings each scored alone, as a recording of an unknown speaker is at inference: centred on "
              "the training population's speaker mean where the model keeps one, else on itself")
MEMBERS_NOTE = "each model of the seed ensembles alone, one pass: the mean over all folds' members"
TEACHER_NOTE = "the ensemble the saved model (its student) was distilled from, each of its models once, at 1.0"
TTA_NOTE = (
    "test-time augmentation, as the app classifies: every model at every speed it was trained at, probabilities "
    "averaged; ua asks each model once, at 1.0 (SER_TEST_TIME_AUGMENTATION=0, classify --no-tta)"
)


def merge_fold_reports(reports: Sequence[dict]) -> dict:
    """One cross-validation report from reports on disjoint folds of the same setup.

    For folds trained in separate processes (``bench/accuracy.py --jobs``): the fold results
    are pooled as if one :func:`cross_validate` call had run them all.
    """
    if not reports:
        raise ValueError("no reports to merge")
    first = reports[0]
    for other in reports[1:]:
        for key in ("labels", "recipe", "n_folds", "utterances"):
            if other.get(key) != first.get(key):
                raise ValueError(f"the reports differ in {key!r}; they are not folds of one setup")
    results = sorted((f for r in reports for f in r["folds"]), key=lambda f: f["fold"])
    numbers = [f["fold"] for f in results]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"the reports share folds: {numbers}")
    merged = {k: v for k, v in first.items() if k not in ("folds", "wall_seconds")}
    merged["protocol"] = cv_protocol(first["n_folds"], results)
    merged.update(summarise_results(first["labels"], results))
    merged["wall_seconds"] = max(r.get("wall_seconds", 0.0) for r in reports)
    return merged


def cv_protocol(folds: int, results: Sequence[dict]) -> str:
    """The protocol line of a cross-validation report, from the results of the folds run."""
    if all(r["split"]["speaker_independent"] for r in results):
        protocol = f"{folds}-fold leave-speakers-out cross-validation (consecutive speaker groups per corpus)"
    else:
        protocol = f"{folds}-fold cross-validation (stratified random where speakers are unknown: not speaker-independent)"
    if any(TRAIN_SPEAKER_VALIDATION in r["protocol"] for r in results):
        protocol += f"; {TRAIN_SPEAKER_VALIDATION}"
    if len(results) != folds:
        protocol += f"; folds run: {[r['fold'] for r in results]}"
    return protocol


def summarise_results(labels: Sequence[str], results: list[dict]) -> dict:
    """Fold means and standard deviations, the confusion summed over folds and scores on it."""
    n = len(labels)
    total = np.sum([np.array(r["confusion"]) for r in results], axis=0) if results else np.zeros((n, n), int)
    pooled = scores(total, list(labels))
    alone = [r["alone"] for r in results if "alone" in r]
    tta = [r["tta"] for r in results if "tta" in r]
    teacher = [r["teacher"] for r in results if "teacher" in r]
    return {
        **summarise_folds(results),
        **({"alone": {**summarise_folds(alone), "note": ALONE_NOTE}} if alone else {}),
        **({"tta": {**summarise_folds(tta), "note": TTA_NOTE}} if tta else {}),
        **({"teacher": {**summarise_folds(teacher), "note": TEACHER_NOTE}} if teacher else {}),
        **members_summary(results),
        "confusion": total.tolist(),
        "pooled": {k: pooled[k] for k in ("wa", "ua", "macro_f1", "per_class")},
        "per_corpus": _per_corpus_over_folds(results),
        "folds": results,
    }


def members_summary(results: list[dict]) -> dict:
    """For seed ensembles: the mean one-pass scores of their members alone, over all folds."""
    members = [m for r in results for m in r.get("members", [])]
    if not members:
        return {}
    mean = {k: round(float(np.mean([m[k] for m in members])), 4) for k in ("wa", "ua", "macro_f1")}
    return {"member_mean": {**mean, "n": len(members), "note": MEMBERS_NOTE}}


def _per_corpus_over_folds(results: list[dict]) -> dict:
    names = sorted({c for r in results for c in r.get("per_corpus", {})})
    out = {}
    for name in names:
        parts = [r["per_corpus"][name] for r in results if name in r.get("per_corpus", {})]
        out[name] = summarise_folds(parts)
    return out
