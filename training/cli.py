"""Shared command-line plumbing for the train / crossval / evaluate commands: corpus and
recipe options, label-set options, terminal progress bars and report writing."""

from __future__ import annotations

import json
import sys
import time
from argparse import ArgumentParser
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.core.management.base import CommandError

from recognition.engine.features import FEATURE_KINDS, MEAN_NORMS, TRIM_METHODS, FeatureConfig
from recognition.engine.model import MODEL_SIZES
from training.engine.corpora import FORMATS, CorpusError, CorpusScan, scan_corpus
from training.engine.data import WaveformCache
from training.engine.events import BatchProgress, EpochReport, Event, Resumed
from training.engine.experiment import Dataset, Recipe, build_dataset


def add_corpus_arguments(parser: ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--corpus", action="append", required=required, default=[], metavar="PATH",
                        help="corpus folder (repeat for multi-domain training)")
    parser.add_argument("--format", action="append", default=[], metavar="FORMAT",
                        help=f"force the format of the corpus at the same position ({', '.join(FORMATS)}); default: detect")
    parser.add_argument("--speaker-regex", default=None,
                        help="for the 'folders' format: regex with a named group 'speaker' applied to file names")


def add_label_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--labels", nargs="+", default=["common"], metavar="LABEL",
                        help="'common' (classes in every corpus, default), 'all', or an explicit list of classes")
    parser.add_argument("--map", action="append", default=[], metavar="FROM=TO",
                        help="merge or drop classes before the label set is chosen, e.g. calm=neutral or calm= (drop)")


def add_recipe_arguments(parser: ArgumentParser) -> None:
    whisper, scratch = Recipe.for_front_end("whisper"), Recipe.for_front_end("logmel")
    d, t = whisper.features, whisper.train

    def per_front_end(field: str) -> str:
        return f"default {getattr(t, field)} with whisper, {getattr(scratch.train, field)} from scratch"

    g = parser.add_argument_group("recipe (defaults follow the chosen front end)")
    g.add_argument("--features", choices=FEATURE_KINDS, default=d.kind,
                   help="front end: whisper (pretrained Whisper-base encoder states, the default) or a CNN trained "
                   "from scratch over logmel or mfcc features")
    g.add_argument("--n-mels", type=int, default=FeatureConfig().n_mels, help="logmel/mfcc front ends")
    g.add_argument("--trim", choices=TRIM_METHODS, default=d.trim, help="edge-silence trimming")
    g.add_argument("--mean-norm", choices=MEAN_NORMS, default=d.mean_norm,
                   help=f"subtract each feature's mean per speaker, per utterance, or not at all (default: {d.mean_norm})")
    g.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="medium")
    g.add_argument("--dropout", type=float, default=None)
    g.add_argument("--epochs", type=int, default=None, help=per_front_end("epochs"))
    g.add_argument("--batch-size", type=int, default=t.batch_size)
    g.add_argument("--lr", type=float, default=None, help=per_front_end("lr"))
    g.add_argument("--weight-decay", type=float, default=t.weight_decay)
    g.add_argument("--patience", type=int, default=None, help=f"early stopping on validation UA (0 = off; {per_front_end('patience')})")
    g.add_argument("--label-smoothing", type=float, default=t.label_smoothing)
    g.add_argument("--own-centre-share", type=float, default=None, metavar="SHARE",
                   help="with --mean-norm speaker: share of training examples centred as a recording of an "
                   f"unknown speaker is at inference ({per_front_end('own_centre_share')})")
    g.add_argument("--members", type=int, default=None, metavar="N",
                   help="train a seed ensemble of N models (seeds SEED..SEED+N-1) and average them; "
                   f"N times the training time; classifying takes one pass per model and speed, on one shared encoder pass for Whisper "
                   f"({per_front_end('members')})")
    g.add_argument("--distil", type=float, default=t.distil_weight, metavar="WEIGHT",
                   help="seed ensembles: then train one model on the ensemble's class probabilities (this weight; the "
                   "labels the rest) and save it alone, one pass per speed to classify (e.g. 0.9; default 0 = off)")
    g.add_argument("--distil-temperature", type=float, default=t.distil_temperature, metavar="T",
                   help=f"softening of both models' probabilities when distilling (default {t.distil_temperature})")
    g.add_argument("--no-augment", action="store_true")
    g.add_argument("--no-class-weights", action="store_true")
    g.add_argument("--balanced", action="store_true", help="balanced sampling across corpora and classes")
    g.add_argument("--seed", type=int, default=t.seed)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    g.add_argument("--cache-dir", default=None, help="decoded-audio and encoder-state cache (default: SER_FEATURE_CACHE_DIR)")


def recipe_from_options(options: dict[str, Any]) -> Recipe:
    """The chosen front end's default recipe with the options given on the command line."""
    try:
        base = Recipe.for_front_end(options["features"])
        features = replace(base.features, trim=options["trim"], **FeatureConfig.mean_norm_fields(options["mean_norm"]),
                           **({} if base.features.kind == "whisper" else {"n_mels": options["n_mels"]}))
        chosen = {key: options[key] for key in ("epochs", "lr", "patience", "members", "own_centre_share") if options.get(key) is not None}
        train = replace(
            base.train, batch_size=options["batch_size"], weight_decay=options["weight_decay"],
            class_weighting=not options["no_class_weights"], balanced_sampling=options["balanced"],
            seed=options["seed"], device=options["device"], num_threads=options["threads"],
            label_smoothing=options["label_smoothing"],
            distil_weight=options["distil"], distil_temperature=options["distil_temperature"],
            augment=replace(base.train.augment, enabled=not options["no_augment"]), **chosen,
        )
        overrides = {} if options.get("dropout") is None else {"dropout": options["dropout"]}
        return Recipe(features=features, model_size=options["model_size"], model_overrides=overrides, train=train)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def label_options(options: dict[str, Any]) -> dict[str, Any]:
    mapping: dict[str, str | None] = {}
    for item in options["map"]:
        if "=" not in item:
            raise CommandError(f"--map takes FROM=TO, not {item!r}")
        src, dst = item.split("=", 1)
        mapping[src.strip()] = dst.strip() or None
    labels = options["labels"]
    if labels in (["common"], ["all"]):
        return {"mode": labels[0], "mapping": mapping, "include": None}
    return {"mode": "all", "mapping": mapping, "include": labels}


def scan_corpora(options: dict[str, Any], out: TextIO) -> list[CorpusScan]:
    paths, formats = options["corpus"], options["format"]
    if formats and len(formats) not in (1, len(paths)):
        raise CommandError("give one --format for all corpora or one per --corpus, in the same order")
    scans = []
    for i, path in enumerate(paths):
        fmt = (formats[0] if len(formats) == 1 else formats[i]) if formats else None
        extra = {"speaker_regex": options["speaker_regex"]} if options.get("speaker_regex") and (fmt or "folders") == "folders" else {}
        try:
            scan = scan_corpus(Path(path), format=fmt, **extra)
        except CorpusError as exc:
            raise CommandError(str(exc)) from exc
        counts = ", ".join(f"{k} {v}" for k, v in scan.label_counts().items())
        speakers = f"{len(scan.speakers())} speakers" if scan.has_speakers else "no speaker information"
        out.write(f"{scan.name}: {scan.format}, {len(scan.utterances)} utterances, {speakers}; {counts}\n")
        if scan.skipped:
            out.write(f"  skipped {len(scan.skipped)} files:\n")
            for group in scan.summary()["skipped_reasons"][:10]:
                out.write(f"    {group['count']} x {group['reason']} (e.g. {group['examples'][0]})\n")
        scans.append(scan)
    return scans


def add_training_arguments(parser: ArgumentParser) -> None:
    """Corpus, label-set and recipe options, as ``train`` and ``crossval`` share them."""
    add_corpus_arguments(parser)
    add_label_arguments(parser)
    add_recipe_arguments(parser)


def prepare_training(options: dict[str, Any], out: TextIO) -> tuple[list[CorpusScan], Recipe, Dataset]:
    """Scan the corpora, build the recipe and the labelled dataset, and say what was found."""
    scans = scan_corpora(options, out)
    recipe = recipe_from_options(options)
    try:
        dataset = build_dataset(scans, **label_options(options))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    out.write(f"labels: {', '.join(dataset.labels)} ({len(dataset.utterances)} utterances)\n")
    return scans, recipe, dataset


def make_cache(features: FeatureConfig, options: dict[str, Any]) -> WaveformCache:
    """The decoded-audio cache for these feature settings (``--cache-dir`` or the settings' default)."""
    return WaveformCache(features, options.get("cache_dir") or settings.SER_FEATURE_CACHE_DIR)


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the stream is not a terminal."""

    def __init__(self, label: str, stream: TextIO = sys.stderr) -> None:
        self.label = label
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0

    def phase(self, done: int, total: int, phase: str) -> None:
        """A data-preparation step (``progress`` of the experiments): its name labels the bar."""
        self.label = phase
        self(done, total)

    def __call__(self, done: int, total: int, suffix: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * done / max(1, total))
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {suffix}\x1b[K")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def epoch_printer(out: TextIO, bar: ProgressBar):
    """Trainer callback: a progress bar within the epoch and one line per epoch."""

    def callback(event: Event) -> None:
        prefix = f"fold {event.fold}/{event.folds} " if event.folds > 1 else ""
        if isinstance(event, BatchProgress):
            bar.label = f"{prefix}epoch {event.epoch}/{event.epochs}"
            bar(event.batch, event.batches, f"loss {event.train_loss:.3f}")
        elif isinstance(event, Resumed):
            model = f"model {event.member}/{event.members} " if event.members > 1 else ""
            out.write(f"{prefix}{model}resumed from the last checkpoint after epoch {event.epoch}\n")
            out.flush()
        elif isinstance(event, EpochReport):
            star = " *" if event.is_best else ""
            out.write(
                f"{prefix}epoch {event.epoch:3d}/{event.epochs}  loss {event.train_loss:.3f}  "
                f"train acc {event.train_acc:.3f}  val loss {event.val_loss:.3f}  WA {event.wa:.3f}  "
                f"UA {event.ua:.3f}  F1 {event.macro_f1:.3f}  lr {event.lr:.2e}  {event.duration:.1f}s{star}\n"
            )
            out.flush()

    return callback


def write_report(report: dict, path: str | None, out: TextIO) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
        out.write(f"report written to {path}\n")


def summary_line(report: dict) -> str:
    def fmt(key: str) -> str:
        std = report.get(f"{key}_std")
        return f"{report[key]:.3f}" + (f" ± {std:.3f}" if std is not None else "")

    line = f"{report['protocol']}\nWA {fmt('wa')}  UA {fmt('ua')}  macro-F1 {fmt('macro_f1')}"
    for key, name in (
        ("tta", "with test-time augmentation (as the app classifies)"),
        ("alone", "each recording alone (no speaker mean)"),
        ("member_mean", "the ensemble's models alone, mean"),
        ("teacher", "the ensemble the model was distilled from"),
    ):
        part = report.get(key)
        if part:
            std = f" ± {part['ua_std']:.3f}" if "ua_std" in part else ""
            line += f"\n{name}: WA {part['wa']:.3f}  UA {part['ua']:.3f}{std}  macro-F1 {part['macro_f1']:.3f}"
    return line
