"""Speaker-independent splits: held-out test speakers, a validation set from other speakers,
k-fold leave-speakers-out cross-validation. Seeded and reproducible. Corpora without
speaker information fall back to a stratified random split, and the protocol says so.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Split", "SplitError", "holdout_split", "kfold_splits", "natural_key", "speaker_key"]


class SplitError(ValueError):
    """The requested split cannot be made from these utterances."""


@dataclass
class Split:
    """Index lists into the utterance list, plus a human-readable protocol description."""

    train: list[int]
    valid: list[int]
    test: list[int]
    protocol: str
    speaker_independent: bool
    test_speakers: list[str] = field(default_factory=list)
    valid_speakers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "speaker_independent": self.speaker_independent,
            "test_speakers": self.test_speakers,
            "valid_speakers": self.valid_speakers,
            "sizes": {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)},
        }


def natural_key(text: str) -> list:
    """Sort key that orders 'Actor_2' before 'Actor_10'."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", text)]


def speaker_key(corpus: str, speaker: str | None) -> str | None:
    """Speakers are only the same person within one corpus."""
    return None if speaker is None else f"{corpus}/{speaker}"


def _group(speakers: Sequence[str | None]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, spk in enumerate(speakers):
        groups[spk].append(i)  # type: ignore[index]
    return groups


def _pick_valid_speakers(candidates: list[str], fraction: float, rng: np.random.Generator, corpora: dict[str, str]) -> list[str]:
    """About ``fraction`` of the candidate speakers, at least one per corpus that has two or more."""
    by_corpus: dict[str, list[str]] = defaultdict(list)
    for spk in candidates:
        by_corpus[corpora[spk]].append(spk)
    chosen: list[str] = []
    for _, spks in sorted(by_corpus.items()):
        if len(spks) < 2:
            continue
        n = max(1, int(round(fraction * len(spks))))
        n = min(n, len(spks) - 1)
        order = rng.permutation(len(spks))
        chosen.extend(spks[i] for i in order[:n])
    return sorted(chosen, key=natural_key)


def _stratified(labels: Sequence[str], indices: list[int], fraction: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Split ``indices`` into (rest, held) with ``fraction`` of each label held out."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        by_label[labels[i]].append(i)
    rest, held = [], []
    for _, idx in sorted(by_label.items()):
        idx = list(np.array(idx)[rng.permutation(len(idx))])
        n = int(round(fraction * len(idx))) if len(idx) > 1 else 0
        held.extend(int(i) for i in idx[:n])
        rest.extend(int(i) for i in idx[n:])
    return sorted(rest), sorted(held)


TRAIN_SPEAKER_VALIDATION = "validation drawn from training speakers (too few speakers for held-out validation speakers)"


def _ensure_valid(labels: Sequence[str], train: list[int], valid: list[int], rng: np.random.Generator) -> tuple[list[int], list[int], str]:
    """Too few speakers for validation speakers (e.g. TESS' two): draw validation utterances
    from the training speakers instead. Model selection then sees training speakers; the test
    set stays speaker-independent."""
    if valid or len(train) < 10:
        return train, valid, ""
    train, valid = _stratified(labels, train, 0.15, rng)
    return train, valid, f"; {TRAIN_SPEAKER_VALIDATION}"


def holdout_split(
    labels: Sequence[str],
    speakers: Sequence[str | None],
    corpora: Sequence[str],
    *,
    test_speakers: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.15,
    seed: int = 0,
) -> Split:
    """One train/validation/test split.

    With speakers: ``test_speakers`` (as ``corpus/speaker`` keys, or bare speaker ids matched in
    any corpus) or a seeded random ``test_fraction`` of each corpus' speakers are held out;
    validation speakers come from the remaining ones. Without speaker information anywhere in
    a corpus, that corpus is split stratified at random and the protocol says so.
    """
    rng = np.random.default_rng(seed)
    keys = [speaker_key(c, s) for c, s in zip(corpora, speakers, strict=True)]
    with_spk = [i for i, k in enumerate(keys) if k is not None]
    without = [i for i, k in enumerate(keys) if k is None]
    spk_corpus = {k: c for k, c in zip(keys, corpora, strict=True) if k is not None}
    all_spk = sorted(spk_corpus, key=natural_key)

    if test_speakers:
        wanted = set(test_speakers)
        test_spk = [k for k in all_spk if k in wanted or k.split("/", 1)[1] in wanted]
        unknown = [t for t in wanted if not any(k == t or k.split("/", 1)[1] == t for k in all_spk)]
        if unknown:
            raise SplitError(f"unknown test speakers: {sorted(unknown)}")
    else:
        test_spk = _pick_valid_speakers(all_spk, test_fraction, rng, spk_corpus)
    remaining = [k for k in all_spk if k not in set(test_spk)]
    valid_spk = _pick_valid_speakers(remaining, valid_fraction, rng, spk_corpus)
    if with_spk and not test_spk:
        raise SplitError("cannot hold out test speakers: every corpus needs at least two speakers")

    groups = _group([keys[i] for i in range(len(keys))])
    test = sorted(i for k in test_spk for i in groups[k])
    valid = sorted(i for k in valid_spk for i in groups[k])
    used = set(test) | set(valid)
    train = sorted(i for i in with_spk if i not in used)
    # Speaker-less corpora: stratified random split; said in the protocol.
    rest, t = _stratified(labels, without, test_fraction, rng)
    rest, v = _stratified(labels, rest, valid_fraction / max(1e-9, 1 - test_fraction), rng)
    train, valid, test = sorted(train + rest), sorted(valid + v), sorted(test + t)
    train, valid, note = _ensure_valid(labels, train, valid, rng)
    if not train or not test:
        raise SplitError("the split leaves the training or the test set empty")
    if without:
        protocol = "stratified random hold-out (no speaker information: speakers may appear in both training and test)"
        if with_spk:
            protocol = "speaker-independent hold-out where speakers are known; " + protocol
    else:
        protocol = f"speaker-independent hold-out: {_count(len(test_spk), 'test speaker')}, {_count(len(valid_spk), 'validation speaker')}"
    protocol += note
    return Split(train, valid, test, protocol, speaker_independent=not without, test_speakers=test_spk, valid_speakers=valid_spk)


def kfold_splits(
    labels: Sequence[str],
    speakers: Sequence[str | None],
    corpora: Sequence[str],
    *,
    folds: int,
    valid_fraction: float = 0.15,
    seed: int = 0,
    consecutive: bool = True,
) -> list[Split]:
    """Leave-speakers-out k-fold cross-validation.

    Speakers of each corpus are sorted naturally and cut into ``folds`` groups of consecutive
    speakers (``consecutive=True``; for RAVDESS with 6 folds this gives actors 1–4, 5–8, …,
    the project's benchmark protocol) or dealt out after a seeded shuffle. Each fold tests one
    group; validation speakers come from the other groups. Speaker-less corpora are split into
    stratified random folds.
    """
    if folds < 2:
        raise SplitError("need at least 2 folds")
    rng = np.random.default_rng(seed)
    keys = [speaker_key(c, s) for c, s in zip(corpora, speakers, strict=True)]
    spk_corpus = {k: c for k, c in zip(keys, corpora, strict=True) if k is not None}
    fold_of_spk: dict[str, int] = {}
    by_corpus: dict[str, list[str]] = defaultdict(list)
    for k in sorted(spk_corpus, key=natural_key):
        by_corpus[spk_corpus[k]].append(k)
    for corpus, spks in sorted(by_corpus.items()):
        if len(spks) < folds:
            raise SplitError(f"corpus {corpus!r} has {len(spks)} speakers, fewer than {folds} folds")
        order = list(range(len(spks))) if consecutive else list(rng.permutation(len(spks)))
        for rank, j in enumerate(order):
            fold_of_spk[spks[j]] = rank * folds // len(spks)
    without = [i for i, k in enumerate(keys) if k is None]
    fold_of_idx = {i: fold_of_spk[k] for i, k in enumerate(keys) if k is not None}
    by_label: dict[str, list[int]] = defaultdict(list)
    for i in without:
        by_label[labels[i]].append(i)
    for _, idx in sorted(by_label.items()):
        for rank, j in enumerate(rng.permutation(len(idx))):
            fold_of_idx[idx[j]] = rank % folds

    splits = []
    for f in range(folds):
        test = sorted(i for i, g in fold_of_idx.items() if g == f)
        test_spk = sorted({keys[i] for i in test if keys[i] is not None}, key=natural_key)
        other_spk = [k for k in sorted(spk_corpus, key=natural_key) if fold_of_spk[k] != f]
        valid_spk = _pick_valid_speakers(other_spk, valid_fraction, np.random.default_rng(seed + 1000 + f), spk_corpus)
        valid = sorted(i for i, k in enumerate(keys) if k is not None and k in set(valid_spk))
        rest_nospk = [i for i in without if fold_of_idx[i] != f]
        rest_nospk, v = _stratified(labels, rest_nospk, valid_fraction, np.random.default_rng(seed + 2000 + f))
        valid = sorted(valid + v)
        used = set(test) | set(valid)
        train = sorted(i for i in range(len(keys)) if i not in used and (keys[i] is not None or i in set(rest_nospk)))
        train, valid, note = _ensure_valid(labels, train, valid, np.random.default_rng(seed + 3000 + f))
        protocol = (
            f"{folds}-fold leave-speakers-out cross-validation ({'consecutive' if consecutive else 'shuffled'} speaker groups), fold {f + 1}"
            if not without
            else f"{folds}-fold cross-validation, fold {f + 1} (stratified random where speakers are unknown: not speaker-independent)"
        ) + note
        splits.append(Split(train, valid, test, protocol, speaker_independent=not without, test_speakers=test_spk, valid_speakers=valid_spk))
    return splits


def _count(n: int, noun: str) -> str:
    """``1 test speaker``, ``2 test speakers``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
