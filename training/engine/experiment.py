"""Experiments: from corpus scans to trained models and JSON reports.

This is what the command-line tools (and the web app's training task) call: it maps labels,
loads audio through the cache, builds speaker-independent splits, runs the trainer, scores
the best checkpoint on the held-out speakers, and writes a report that always names its
protocol.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recognition.engine import ENGINE_VERSION
from recognition.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from recognition.engine.features import FeatureExtractor
from recognition.engine.model import EmotionNet, EnsembleNet
from recognition.engine.tta import inference_speeds, tta_speeds
from recognition.engine.whisper import get_encoder

from .corpora import CorpusScan, Utterance
from .data import Example, WaveformCache, assign_speaker_centres
from .evaluation import evaluate_examples
from .events import Callback, Place
from .labels import LabelSet, resolve_label_set
from .recipe import FRONT_ENDS, Recipe
from .reports import (
    TEACHER_NOTE,
    TTA_NOTE,
    cv_protocol,
    headline,
    members_summary,
    merge_fold_reports,
    public_scores,
    summarise_results,
)
from .splits import Split, holdout_split, kfold_splits
from .state_cache import StateCache
from .trainer import Trainer, pick_device

Progress = Callable[[int, int, str], None]

__all__ = ["Recipe", "FRONT_ENDS", "Dataset", "build_dataset", "train_holdout", "cross_validate", "checkpoint_dataset", "evaluate_checkpoint", "merge_fold_reports"]


@dataclass
class Dataset:
    """The utterances a run uses after label mapping, with their class indices."""

    label_set: LabelSet
    utterances: list[Utterance]
    targets: list[int]
    dropped: dict[str, int]

    @property
    def labels(self) -> list[str]:
        return list(self.label_set.labels)

    @property
    def corpora(self) -> list[str]:
        """Corpus name of each utterance, in order."""
        return [u.corpus for u in self.utterances]

    def examples(self, cache: WaveformCache, progress: Progress | None = None, device: str = "cpu") -> list[Example]:
        """Load (and, for an encoder front end, encode once) every utterance. ``progress(done,
        total, phase)`` reports each phase: ``"loading audio"``, then ``"encoding"``."""
        waves = cache.load_many([u.path for u in self.utterances], progress and (lambda d, t: progress(d, t, "loading audio")))
        examples = [
            Example(w, t, u.corpus, u.speaker, str(u.path))
            for w, t, u in zip(waves, self.targets, self.utterances, strict=True)
        ]
        if cache.feature_config.kind == "whisper":
            # Training always encodes in full precision; SER_ENCODER_PRECISION applies to inference.
            encoder = get_encoder(pick_device(device), "float32")
            states = StateCache(encoder, cache.cache_dir, cache.feature_config.state_pool).states(
                waves, progress and (lambda d, t: progress(d, t, "encoding"))
            )
            for example, state in zip(examples, states, strict=True):
                example.states = state
        assign_speaker_centres(examples, cache.feature_config)
        return examples


def build_dataset(
    scans: Sequence[CorpusScan],
    *,
    mode: str = "common",
    mapping: dict[str, str | None] | None = None,
    include: list[str] | None = None,
    label_set: LabelSet | None = None,
) -> Dataset:
    """Pool the corpora and keep the utterances whose (mapped) label is in the label set."""
    if not scans:
        raise ValueError("no corpora given")
    names = [s.name for s in scans]
    if len(set(names)) != len(names):
        raise ValueError(f"corpus names must be distinct, got {names}")
    if label_set is None:
        label_set = resolve_label_set({s.name: set(s.label_counts()) for s in scans}, mode, mapping, include)
    utts, targets, dropped = [], [], {}
    for scan in scans:
        for u in scan.utterances:
            label = label_set.apply(u.label)
            if label is None:
                dropped[u.label] = dropped.get(u.label, 0) + 1
                continue
            utts.append(u)
            targets.append(label_set.index(label))
    if not utts:
        raise ValueError("no utterances left after applying the label set")
    return Dataset(label_set, utts, targets, dropped)


def _split_args(ds: Dataset) -> tuple[list[str], list[str | None], list[str]]:
    return [ds.labels[t] for t in ds.targets], [u.speaker for u in ds.utterances], ds.corpora


def _run_split(
    ds: Dataset,
    examples: list[Example],
    split: Split,
    recipe: Recipe,
    out_dir: Path,
    *,
    callback: Callback | None,
    should_stop: Callable[[], bool] | None,
    resume: bool,
    metadata: dict,
    place: Place,
) -> tuple[dict, Any]:
    labels = ds.labels
    trainer = Trainer(
        labels=labels,
        feature_config=recipe.features,
        model_config=recipe.model_config(len(labels)),
        train_config=recipe.train,
        out_dir=out_dir,
        callback=callback,
        should_stop=should_stop,
        metadata={"protocol": split.protocol, "split": split.to_dict(), "label_set": ds.label_set.to_dict(), **metadata},
        place=place,
    )
    started = time.perf_counter()
    result = trainer.fit([examples[i] for i in split.train], [examples[i] for i in split.valid], resume=resume)
    train_seconds = time.perf_counter() - started
    ck = load_checkpoint(result.best_path)
    model, extractor, test_examples = ck.build_model(), ck.build_extractor(), [examples[i] for i in split.test]
    test = evaluate_examples(model, extractor, test_examples, labels)
    other = _tta_scores(ck, model, extractor, test_examples, labels)
    if recipe.features.speaker_cmn:
        # What a lone recording meets at inference (no speaker mean: centred on itself).
        alone = evaluate_examples(model, extractor, [replace(e, centre=None) for e in test_examples], labels)
        other["alone"] = headline(alone)
    # The registered model carries its test metrics, and the scores as the app asks it.
    ck.metrics = {**ck.metrics, "test": public_scores(test), "protocol": split.protocol, **other}
    save_checkpoint(result.best_path, ck)
    fold = {
        "protocol": split.protocol,
        "split": split.to_dict(),
        **public_scores(test),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped": result.stopped,
        "validation_ua": result.best_metrics.get("ua"),
        "train_seconds": round(train_seconds, 1),
        **other,
    }
    if isinstance(model, EnsembleNet):
        fold["members"] = _member_scores(ck, model, extractor, test_examples, labels)
    if result.teacher_path is not None and result.stopped != "cancelled":
        # A distilled run: the saved model is the student; score the ensemble that taught it too.
        teacher = load_checkpoint(result.teacher_path)
        ensemble, teacher_extractor = teacher.build_model(), teacher.build_extractor()
        fold["teacher"] = {**headline(evaluate_examples(ensemble, teacher_extractor, test_examples, labels)), "note": TEACHER_NOTE}
        fold["members"] = _member_scores(teacher, ensemble, teacher_extractor, test_examples, labels)
    return fold, result


def _member_scores(ck: Checkpoint, ensemble: EnsembleNet, extractor: FeatureExtractor, examples: list[Example], labels: list[str]) -> list[dict]:
    """Each member of a seed ensemble alone (one pass): what the trainer recorded of it (seed,
    epochs, validation UA) and its test scores, so a report shows what averaging them gained."""
    return [
        {"member": index + 1, **info, **headline(evaluate_examples(model, extractor, examples, labels))}
        for index, (info, model) in enumerate(zip(ck.extra["members"], ensemble.members, strict=True))
    ]


def _tta_scores(ck: Checkpoint, model: EmotionNet | EnsembleNet, extractor: FeatureExtractor, examples: list[Example], labels: list[str]) -> dict:
    """``{"tta": WA, UA, macro-F1 and speeds}`` as the Predictor answers by default: every model
    (one, or a seed ensemble's) at every speed it was trained at, probabilities averaged; the
    report's ``ua`` asks each model once, at 1.0. {} where the Predictor asks each model once
    too: models trained at one speed, and ensembles too big for the pass budget."""
    speeds = inference_speeds(tta_speeds(ck.extra.get("train_config")), members=ck.n_members)
    if speeds == (1.0,):
        return {}
    return {"tta": {**headline(evaluate_examples(model, extractor, examples, labels, speeds=speeds)), "speeds": list(speeds)}}


def _report_head(ds: Dataset, scans: Sequence[CorpusScan], recipe: Recipe) -> dict:
    return {
        "engine_version": ENGINE_VERSION,
        "front_end": recipe.front_end,
        "labels": ds.labels,
        "label_set": ds.label_set.to_dict(),
        "corpora": [{"name": s.name, "format": s.format, "utterances": len(s.utterances), "skipped": len(s.skipped)} for s in scans],
        "utterances": len(ds.utterances),
        "dropped_labels": ds.dropped,
        "recipe": recipe.to_dict(),
    }


def train_holdout(
    scans: Sequence[CorpusScan],
    out: str | Path,
    *,
    recipe: Recipe = Recipe(),
    dataset: Dataset | None = None,
    test_speakers: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    work_dir: str | Path | None = None,
    cache: WaveformCache | None = None,
    callback: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Train one model on a speaker-independent hold-out split; copy the best checkpoint to ``out``.

    Returns the report (``protocol``, ``labels``, ``wa``, ``ua``, ``macro_f1``, ``confusion``,
    ``per_corpus``, ``folds`` (one entry), timings).
    """
    started = time.perf_counter()
    ds = dataset or build_dataset(scans)
    cache = cache or WaveformCache(recipe.features)
    examples = ds.examples(cache, progress, recipe.train.device)
    split = holdout_split(*_split_args(ds), test_speakers=test_speakers, test_fraction=test_fraction, seed=recipe.train.seed)
    out = Path(out)
    work = Path(work_dir) if work_dir else out.with_suffix(".work")
    fold, _ = _run_split(ds, examples, split, recipe, work, callback=callback, should_stop=should_stop, resume=resume,
                          metadata={}, place=Place())
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "best.pt", out)
    report = {"protocol": split.protocol, **_report_head(ds, scans, recipe), **{k: v for k, v in fold.items() if k != "protocol"}}
    report.setdefault("per_corpus", {})
    report.update(members_summary([fold]))
    report["folds"] = [fold]
    report["model"] = str(out)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    return report


def cross_validate(
    scans: Sequence[CorpusScan],
    work_dir: str | Path,
    *,
    folds: int,
    only_folds: Sequence[int] | None = None,
    recipe: Recipe = Recipe(),
    dataset: Dataset | None = None,
    cache: WaveformCache | None = None,
    callback: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
    on_fold: Callable[[int, dict], None] | None = None,
    completed: dict[int, dict] | None = None,
    resume: bool = False,
) -> dict:
    """Leave-speakers-out k-fold cross-validation (consecutive speaker groups).

    ``only_folds`` (0-based) runs a subset. The report gives fold means and standard
    deviations of WA, UA and macro-F1, the confusion summed over folds, and each fold.
    ``completed`` (0-based fold → its result from an earlier, interrupted call) skips those
    folds; with ``resume`` the first remaining fold continues from its ``last.pt``.
    """
    completed = dict(completed or {})
    started = time.perf_counter()
    ds = dataset or build_dataset(scans)
    cache = cache or WaveformCache(recipe.features)
    examples = ds.examples(cache, progress, recipe.train.device)
    splits = kfold_splits(*_split_args(ds), folds=folds, seed=recipe.train.seed)
    chosen = list(range(folds)) if only_folds is None else sorted(set(only_folds))
    for f in chosen:
        if not 0 <= f < folds:
            raise ValueError(f"fold {f + 1} does not exist (1..{folds})")
    results = []
    first_remaining = True
    for f in chosen:
        if f in completed:
            results.append(completed[f])
            continue
        fold, _ = _run_split(
            ds, examples, splits[f], recipe, Path(work_dir) / f"fold{f + 1}", callback=callback, should_stop=should_stop,
            resume=resume and first_remaining, metadata={"fold": f + 1}, place=Place(fold=f + 1, folds=folds),
        )
        first_remaining = False
        fold["fold"] = f + 1
        results.append(fold)
        if on_fold:
            on_fold(f, fold)
    report = {"protocol": cv_protocol(folds, results), "n_folds": folds, **_report_head(ds, scans, recipe)}
    report.update(summarise_results(ds.labels, results))
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    return report


def checkpoint_dataset(ck: Checkpoint, scans: Sequence[CorpusScan], *, speakers: Sequence[str] | None = None) -> Dataset:
    """The utterances of ``scans`` (only ``speakers``' when given, as ``Actor_01`` or
    ``ravdess/Actor_01``) labelled with ``ck``'s label set; classes the model does not know
    are left out and counted in ``dropped``."""
    stored = ck.extra.get("label_set")
    label_set = LabelSet.from_dict(stored) if stored else LabelSet(tuple(ck.labels), {}, "all")
    ds = build_dataset(scans, label_set=label_set)
    keep = list(range(len(ds.utterances)))
    if speakers:
        wanted = set(speakers)
        keep = [i for i, u in enumerate(ds.utterances) if u.speaker in wanted or f"{u.corpus}/{u.speaker}" in wanted]
        if not keep:
            raise ValueError(f"no utterances from speakers {sorted(wanted)}")
    return replace(ds, utterances=[ds.utterances[i] for i in keep], targets=[ds.targets[i] for i in keep])


def evaluate_checkpoint(
    model_path: str | Path,
    scans: Sequence[CorpusScan],
    *,
    speakers: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> dict:
    """Score a saved model on corpora (optionally only some speakers), mapping corpus labels
    onto the model's labels; utterances of classes the model does not know are left out and
    counted in ``dropped_labels``. Audio is cached under ``cache_dir`` when given."""
    ck = load_checkpoint(model_path)
    labels = list(ck.labels)
    ds = checkpoint_dataset(ck, scans, speakers=speakers)
    examples = ds.examples(WaveformCache(ck.feature_config, cache_dir), progress)
    model, extractor = ck.build_model(), ck.build_extractor()
    result = evaluate_examples(model, extractor, examples, labels)
    tta = _tta_scores(ck, model, extractor, examples, labels)
    trained_on = ck.metrics.get("protocol") or ck.extra.get("protocol", "unknown")
    protocol = f"evaluation of {Path(model_path).name} on {'speakers ' + ', '.join(speakers) if speakers else 'all utterances'}"
    protocol += f" (model trained with: {trained_on}; check that these speakers were held out)"
    return {
        "protocol": protocol,
        "engine_version": ENGINE_VERSION,
        "labels": labels,
        "corpora": [{"name": s.name, "format": s.format, "utterances": len(s.utterances)} for s in scans],
        "utterances": len(examples),
        "dropped_labels": ds.dropped,
        **public_scores(result),
        "per_corpus": result.get("per_corpus", {}),
        **{key: {**value, "note": TTA_NOTE} for key, value in tta.items()},
        "folds": [],
    }
