"""Accuracy benchmark on the real corpora (speaker-independent), printing JSON.

    python bench/accuracy.py [--only ravdess nemo tess pooled ravdess-to-nemo nemo-to-ravdess]
                             [--front-end whisper|logmel] [--epochs N] [--folds 1 2 ...]
                             [--jobs N] [--recipe JSON] [--report FULL.json] [--keep DIR [--resume]]

- ravdess: 8 classes, 6-fold leave-actors-out CV (actors 1-4, 5-8, ..., 21-24).
- nemo: nEMO (Polish), 6 classes, 3-fold leave-speakers-out CV (EB0 IC0 KD0 / KS0 MK0 MP0 /
  SM0 TP0 WR0).
- tess: 2-fold cross-speaker (train OAF -> test YAF, and back).
- pooled: RAVDESS + TESS, the 7 common classes, 2 folds (RAVDESS actors 1-12 + TESS OAF
  tested in fold 1, actors 13-24 + YAF in fold 2), broken down per corpus.
- ravdess-to-nemo, nemo-to-ravdess: cross-corpus; train on every speaker of one corpus
  (validation speakers drawn from it), test on every speaker of the other, over their six
  shared classes (RAVDESS calm counted as neutral, disgust left out).
Reports mean and standard deviation over folds of WA, UA and macro-F1, the front end, and
wall time (which includes loading the audio and, for the Whisper front end, encoding every
utterance that is not in the state cache yet).

``--jobs N`` trains the folds in N processes with cores/N threads each (on this 2-core
machine two one-thread processes train about twice as fast as one two-thread process:
the model is too small to keep two threads busy) and merges their reports.
``--keep DIR`` keeps each fold's checkpoints (``DIR/<setup>/foldN/best.pt``, test metrics
inside) for later analysis; by default they go to a temporary folder. ``--resume`` continues
the folds kept there: finished models are reloaded, not trained again, so a recipe that adds
to a finished run trains only what it adds (``--recipe '{"train": {"distil_weight": 0.9}}'``
on a kept five-model run trains the students alone).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import ROOT, corpora_dir, machine  # adds the repo to sys.path

from training.engine.corpora import scan_corpus
from training.engine.data import WaveformCache
from training.engine.experiment import (
    Recipe,
    build_dataset,
    cross_validate,
    merge_fold_reports,
    train_holdout,
)

SETUPS = {
    "ravdess": {"corpora": ["ravdess"], "folds": 6, "mode": "all"},
    "nemo": {"corpora": ["nemo"], "folds": 3, "mode": "all"},
    "tess": {"corpora": ["tess"], "folds": 2, "mode": "all"},
    "pooled": {"corpora": ["ravdess", "tess"], "folds": 2, "mode": "common"},
    "ravdess-to-nemo": {"corpora": ["ravdess", "nemo"], "test_corpus": "nemo", "folds": 1, "mode": "common"},
    "nemo-to-ravdess": {"corpora": ["nemo", "ravdess"], "test_corpus": "ravdess", "folds": 1, "mode": "common"},
}
CROSS_MAPPING = {"calm": "neutral"}


def brief(report: dict) -> dict:
    keys = ("protocol", "front_end", "labels", "utterances", "wa", "wa_std", "ua", "ua_std", "macro_f1", "macro_f1_std", "alone", "tta", "teacher", "member_mean", "per_corpus", "confusion", "wall_seconds")
    out = {k: report[k] for k in keys if k in report}
    out["folds"] = [
        {k: f[k] for k in ("fold", "wa", "ua", "macro_f1", "validation_ua", "alone", "tta", "teacher", "members", "best_epoch", "epochs_run", "train_seconds") if k in f}
        | {"test_speakers": f["split"]["test_speakers"]}
        | ({"per_corpus": {c: {m: v[m] for m in ("wa", "ua", "macro_f1")} for c, v in f["per_corpus"].items()}} if f.get("per_corpus") else {})
        for f in report["folds"]
    ]
    return out


def _merge(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied recursively (nested dicts merge, other values replace)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _run_in_processes(args: argparse.Namespace, name: str, chosen: list[int]) -> dict:
    """Run ``chosen`` folds of one setup in ``args.jobs`` child processes of this script; merge."""
    groups = [chosen[i :: args.jobs] for i in range(args.jobs) if chosen[i :: args.jobs]]
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-jobs-") as tmp:
        children = []
        for i, group in enumerate(groups):
            out = Path(tmp) / f"part{i}.json"
            command = [sys.executable, __file__, "--only", name, "--folds", *map(str, group), "--threads", str(args.threads),
                       "--report", str(out), "--front-end", args.front_end]
            for flag, value in (("--seed", args.seed), ("--epochs", args.epochs), ("--recipe", args.recipe), ("--cache-dir", args.cache_dir),
                                ("--keep", args.keep)):
                if value is not None:
                    command += [flag, str(value)]
            if args.resume:
                command.append("--resume")
            children.append((subprocess.Popen(command, stdout=subprocess.DEVNULL), out))
        codes = [child.wait() for child, _ in children]
        if any(codes):
            raise SystemExit(f"a fold process failed (exit codes {codes})")
        return merge_fold_reports([json.loads(out.read_text())[name] for _, out in children])


def cross_corpus(scans: list, ds, test_corpus: str, recipe: Recipe, cache: WaveformCache, work: Path) -> dict:
    """Train on every speaker of the other corpus, test on every speaker of ``test_corpus``."""
    test = sorted({f"{u.corpus}/{u.speaker}" for u in ds.utterances if u.corpus == test_corpus})
    report = train_holdout(scans, work / "model.pt", recipe=recipe, dataset=ds, test_speakers=test, work_dir=work / "run", cache=cache)
    trained = next(s.name for s in scans if s.name != test_corpus)
    report["protocol"] = f"cross-corpus: trained on {trained} ({report['protocol']}), tested on every {test_corpus} speaker"
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(SETUPS), default=list(SETUPS))
    parser.add_argument("--front-end", choices=("whisper", "logmel", "mfcc"), default="whisper",
                        help="whose default recipe to start from (default: whisper, the app's default)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="1-based folds to run (default all)")
    parser.add_argument("--cache-dir", default=None, help="decoded-audio cache (default: var/cache under the repo)")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default: the recipe's)")
    parser.add_argument("--recipe", default=None, help="JSON merged into the default recipe, e.g. '{\"train\": {\"label_smoothing\": 0.1}}'")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for training (default: all cores, or cores/jobs)")
    parser.add_argument("--jobs", type=int, default=1, help="train the folds in this many processes at once")
    parser.add_argument("--report", default=None, help="also write the full reports (confusions, per class, per fold) here")
    parser.add_argument("--keep", default=None, help="keep the fold checkpoints under this folder (default: a temporary one)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the folds kept under --keep: finished models are reloaded, unfinished ones continue "
                        "from their last.pt, so a recipe that adds to a run (distil_weight) trains only what is new")
    args = parser.parse_args()
    if args.jobs > 1 and not args.threads:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)

    root = corpora_dir()
    if not root.is_dir():
        print(json.dumps({"error": f"corpora not found at {root}"}))
        sys.exit(1)
    recipe = Recipe.for_front_end(args.front_end)
    if args.recipe:
        recipe = Recipe.from_dict(_merge(recipe.to_dict(), json.loads(args.recipe)))
    if args.threads:
        recipe = replace(recipe, train=replace(recipe.train, num_threads=args.threads))
    train = recipe.train if args.epochs is None else replace(recipe.train, epochs=args.epochs)
    recipe = replace(recipe, train=train if args.seed is None else replace(train, seed=args.seed))
    cache = WaveformCache(recipe.features, args.cache_dir or (ROOT / "var" / "cache" / "bench"))
    results = {"benchmark": "accuracy", "machine": machine(), "recipe": recipe.to_dict(), "results": {}}
    full: dict[str, dict] = {}
    for name in args.only:
        setup = SETUPS[name]
        started = time.perf_counter()
        chosen = [f for f in (args.folds or range(1, setup["folds"] + 1)) if f <= setup["folds"]]
        if args.jobs > 1 and len(chosen) > 1:
            report = _run_in_processes(args, name, chosen)
        else:
            scans = [scan_corpus(root / c) for c in setup["corpora"]]
            ds = build_dataset(scans, mode=setup["mode"], mapping=CROSS_MAPPING if "test_corpus" in setup else None)
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                work = Path(args.keep) / name if args.keep else Path(tmp)
                if "test_corpus" in setup:
                    report = cross_corpus(scans, ds, setup["test_corpus"], recipe, cache, work)
                    report["wall_seconds"] = round(time.perf_counter() - started, 1)
                    results["results"][name] = brief(report)
                    full[name] = report
                    continue
                kwargs = {"folds": setup["folds"], "recipe": recipe, "dataset": ds, "cache": cache,
                          "on_fold": lambda i, f, name=name: print(f"[{name}] fold {i + 1}: UA {f['ua']:.3f} WA {f['wa']:.3f} ({f['train_seconds']:.0f}s)", file=sys.stderr, flush=True)}
                if args.resume:  # cross_validate resumes only the first fold it runs (an interrupted run's): continue each
                    report = merge_fold_reports([cross_validate(scans, work, only_folds=[f - 1], resume=True, **kwargs) for f in chosen])
                else:
                    report = cross_validate(scans, work, only_folds=[f - 1 for f in chosen], **kwargs)
        report["wall_seconds"] = round(time.perf_counter() - started, 1)
        results["results"][name] = brief(report)
        full[name] = report
    if args.report:
        Path(args.report).write_text(json.dumps(full, indent=1))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
