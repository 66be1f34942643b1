"""Which speakers a run tests and validates on, known before it starts.

The plan comes from the engine's own code on the database's rows (``corpus_scans`` →
``build_dataset`` → ``holdout_split`` / ``kfold_splits``), with the run's label set and seed,
so it names the speakers the worker will use; the report's split replaces it when the run
has one. Chosen test speakers are checked here, so a bad choice is refused with the form.
"""

from __future__ import annotations

from collections.abc import Sequence

from training.engine.experiment import build_dataset
from training.engine.splits import SplitError, holdout_split, kfold_splits, natural_key
from training.models import Corpus, TrainingRun

from .datasets import corpus_scans

__all__ = ["split_plan"]


def split_plan(
    *,
    corpora: Sequence[Corpus],
    label_mode: str,
    label_mapping: dict[str, str | None] | None,
    protocol: str,
    folds: int,
    seed: int,
    test_speakers: Sequence[str] = (),
) -> dict:
    """``{"protocol", "folds": [{"test_speakers", "valid_speakers"}]}`` for these settings.

    Raises ValueError (with a message for the user) for test speakers that are not in the
    chosen corpora, a choice that leaves a corpus no speaker to train on, or a split that
    cannot be made."""
    if test_speakers and protocol != TrainingRun.Protocol.HOLDOUT:
        raise ValueError("Test speakers can only be chosen for a hold-out run; k-fold tests every speaker in turn.")
    dataset = build_dataset(corpus_scans(corpora), mode=label_mode, mapping=label_mapping or None)
    labels = [dataset.labels[t] for t in dataset.targets]
    speakers = [u.speaker for u in dataset.utterances]
    names = dataset.corpora
    if test_speakers:
        known = {f"{c}/{s}" for c, s in zip(names, speakers, strict=True) if s is not None}
        unknown = sorted(set(test_speakers) - known, key=natural_key)
        if unknown:
            raise ValueError(f"Not a speaker of the chosen corpora: {', '.join(unknown)}.")
        for corpus in sorted(set(names)):
            own = {k for k in known if k.startswith(corpus + "/")}
            if own and own <= set(test_speakers):
                raise ValueError(f"Every speaker of {corpus} is a test speaker: leave at least two to train and validate on.")
    try:
        if protocol == TrainingRun.Protocol.KFOLD:
            splits = kfold_splits(labels, speakers, names, folds=folds, seed=seed)
        else:
            splits = [holdout_split(labels, speakers, names, test_speakers=list(test_speakers) or None, seed=seed)]
    except SplitError as exc:
        raise ValueError(str(exc)) from exc
    return {
        "protocol": splits[0].protocol if len(splits) == 1 else splits[0].protocol.rsplit(", fold", 1)[0],
        "folds": [{"test_speakers": s.test_speakers, "valid_speakers": s.valid_speakers} for s in splits],
    }
