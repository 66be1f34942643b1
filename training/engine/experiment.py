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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from recognition.engine import ENGINE_VERSION
from recognition.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from recognition.engine.features import FeatureConfig, FeatureExtractor
from recognition.engine.model import MODEL_SIZES, EmotionNet, EnsembleNet, ModelConfig
from recognition.engine.tta import inference_speeds, tta_speeds
from recognition.engine.whisper import get_encoder

from .corpora import CorpusScan, Utterance
from .data import AugmentConfig, Example, WaveformCache, assign_speaker_centres
from .evaluation import evaluate_examples
from .events import Callback, Place
from .labels import LabelSet, resolve_label_set
from .metrics import scores, summarise_folds
from .splits import TRAIN_SPEAKER_VALIDATION, Split, holdout_split, kfold_splits
from .state_cache import StateCache
from .trainer import TrainConfig, Trainer, pick_device

Progress = Callable[[int, int, str], None]

__all__ = ["Recipe", "FRONT_ENDS", "Dataset", "build_dataset", "train_holdout", "cross_validate", "checkpoint_dataset", "evaluate_checkpoint"]


# The Whisper front end's recipe. Its states are cached, so augmentation works on them: one
# time mask and one channel mask (the same channels of every layer) per example; waveform
# augmentation would need the encoder on every epoch.
WHISPER_AUGMENT = AugmentConfig(speed=(1.0,), gain_db=0.0, noise_prob=0.0, freq_masks=1, freq_mask_width=64,
                                time_masks=1, time_mask_fraction=0.15)
# Encoder states come every 20 ms; four are averaged per BLSTM step (80 ms, the CNN's stride).
WHISPER_MODEL = {"conv_channels": (), "pools": (), "frame_pool": 4, "dropout": 0.2}
FRONT_ENDS = {"whisper": "Whisper-base encoder states (pretrained, frozen)", "logmel": "log-Mel CNN (from scratch)",
              "mfcc": "MFCC CNN (from scratch)"}


@dataclass(frozen=True)
class Recipe:
    """The default training recipe; every field can be overridden per run. The default front
    end is the pretrained Whisper-base encoder; :meth:`for_front_end` gives each front end's
    own defaults (the from-scratch CNN's are those the project measured for it)."""

    # Per-speaker mean normalisation: removes the speaker's and the channel's colouring but
    # keeps each utterance's loudness and brightness relative to the speaker.
    features: FeatureConfig = field(default_factory=lambda: FeatureConfig(kind="whisper", speaker_cmn=True))
    model_size: str = "medium"
    model_overrides: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=20, lr=1e-3, patience=8, augment=WHISPER_AUGMENT))

    def __post_init__(self) -> None:
        # A recipe never carries a teacher, so a distilling one must train its own: an ensemble.
        if self.train.distil_weight > 0 and self.train.members < 2:
            raise ValueError("Distilling needs an ensemble of at least two models to learn from.")

    @classmethod
    def for_front_end(cls, kind: str) -> Recipe:
        """The default recipe of front end ``kind`` (one of ``FEATURE_KINDS``)."""
        if kind == "whisper":
            return cls()
        # From scratch: a seed ensemble of five models, each asked once (bench/RESULTS.md,
        # "How many models?"), with waveform augmentation and the CNN's defaults.
        return cls(features=FeatureConfig(kind=kind, speaker_cmn=True), train=TrainConfig(members=5))

    @property
    def front_end(self) -> str:
        """What the model reads, in words, for reports."""
        return FRONT_ENDS[self.features.kind]

    def model_config(self, n_classes: int) -> ModelConfig:
        if self.model_size not in MODEL_SIZES:
            raise ValueError(f"model size must be one of {sorted(MODEL_SIZES)}")
        preset = dict(MODEL_SIZES[self.model_size])
        if self.features.encoder_layers:
            preset.update(WHISPER_MODEL, encoder_layers=self.features.encoder_layers)
        return ModelConfig(n_features=self.features.n_features, n_classes=n_classes, **{**preset, **self.model_overrides})

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        """Inverse of :meth:`to_dict`; missing parts take their defaults (training settings
        TrainConfig's: a stored recipe without ``members`` is one model, as before ensembles)."""
        kind = (data.get("features") or {}).get("kind", "logmel")  # recipes stored before the Whisper front end are the CNN's
        default = cls.for_front_end(kind)
        return cls(
            features=FeatureConfig.from_dict({**default.features.to_dict(), **(data.get("features") or {})}),
            model_size=data.get("model_size", default.model_size),
            model_overrides=dict(data.get("model_overrides") or {}),
            train=TrainConfig.from_dict(data.get("train") or {}),
        )

    def to_dict(self) -> dict:
        return {
            "features": self.features.to_dict(),
            "model_size": self.model_size,
            "model_overrides": dict(self.model_overrides),
            "train": self.train.to_dict(),
        }


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
            states = StateCache(get_encoder(pick_device(device), "float32"), cache.cache_dir).states(
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
        other["alone"] = _headline(alone)
    # The registered model carries its test metrics, and the scores as the app asks it.
    ck.metrics = {**ck.metrics, "test": _public(test), "protocol": split.protocol, **other}
    save_checkpoint(result.best_path, ck)
    fold = {
        "protocol": split.protocol,
        "split": split.to_dict(),
        **_public(test),
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
        fold["teacher"] = {**_headline(evaluate_examples(ensemble, teacher_extractor, test_examples, labels)), "note": TEACHER_NOTE}
        fold["members"] = _member_scores(teacher, ensemble, teacher_extractor, test_examples, labels)
    return fold, result


def _member_scores(ck: Checkpoint, ensemble: EnsembleNet, extractor: FeatureExtractor, examples: list[Example], labels: list[str]) -> list[dict]:
    """Each member of a seed ensemble alone (one pass): what the trainer recorded of it (seed,
    epochs, validation UA) and its test scores, so a report shows what averaging them gained."""
    return [
        {"member": index + 1, **info, **_headline(evaluate_examples(model, extractor, examples, labels))}
        for index, (info, model) in enumerate(zip(ck.extra["members"], ensemble.members, strict=True))
    ]


def _headline(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("wa", "ua", "macro_f1")}


def _tta_scores(ck: Checkpoint, model: EmotionNet | EnsembleNet, extractor: FeatureExtractor, examples: list[Example], labels: list[str]) -> dict:
    """``{"tta": WA, UA, macro-F1 and speeds}`` as the Predictor answers by default: every model
    (one, or a seed ensemble's) at every speed it was trained at, probabilities averaged; the
    report's ``ua`` asks each model once, at 1.0. {} where the Predictor asks each model once
    too: models trained at one speed, and ensembles too big for the pass budget."""
    speeds = inference_speeds(tta_speeds(ck.extra.get("train_config")), members=ck.n_members)
    if speeds == (1.0,):
        return {}
    return {"tta": {**_headline(evaluate_examples(model, extractor, examples, labels, speeds=speeds)), "speeds": list(speeds)}}


def _public(metrics: dict) -> dict:
    keys = ("wa", "ua", "macro_f1", "n", "confusion", "per_class", "absent_classes", "per_corpus", "per_speaker")
    return {k: metrics[k] for k in keys if k in metrics}


ALONE_NOTE = "test recordings each centred on their own mean, as a lone recording is at inference (no speaker mean)"
MEMBERS_NOTE = "each model of the seed ensembles alone, one pass: the mean over all folds' members"
TEACHER_NOTE = "the ensemble the saved model (its student) was distilled from, each of its models once, at 1.0"
TTA_NOTE = (
    "test-time augmentation, as the app classifies: every model at every speed it was trained at, probabilities "
    "averaged; ua asks each model once, at 1.0 (SER_TEST_TIME_AUGMENTATION=0, classify --no-tta)"
)


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
    report.update(_members_summary([fold]))
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
    report = {"protocol": _cv_protocol(folds, results), "n_folds": folds, **_report_head(ds, scans, recipe)}
    report.update(_summarise(ds.labels, results))
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    return report


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
    merged["protocol"] = _cv_protocol(first["n_folds"], results)
    merged.update(_summarise(first["labels"], results))
    merged["wall_seconds"] = max(r.get("wall_seconds", 0.0) for r in reports)
    return merged


def _cv_protocol(folds: int, results: Sequence[dict]) -> str:
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


def _summarise(labels: Sequence[str], results: list[dict]) -> dict:
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
        **_members_summary(results),
        "confusion": total.tolist(),
        "pooled": {k: pooled[k] for k in ("wa", "ua", "macro_f1", "per_class")},
        "per_corpus": _per_corpus_over_folds(results),
        "folds": results,
    }


def _members_summary(results: list[dict]) -> dict:
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
        **_public(result),
        "per_corpus": result.get("per_corpus", {}),
        **{key: {**value, "note": TTA_NOTE} for key, value in tta.items()},
        "folds": [],
    }
