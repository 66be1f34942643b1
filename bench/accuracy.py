"""Accuracy benchmark on the real corpora (speaker-independent), printing JSON.

    python bench/accuracy.py [--only ravdess tess pooled] [--epochs N] [--folds 1 2 ...]

- ravdess: 8 classes, 6-fold leave-actors-out CV (actors 1-4, 5-8, ..., 21-24).
- tess: 2-fold cross-speaker (train OAF -> test YAF, and back).
- pooled: RAVDESS + TESS, the 7 common classes, 2 folds (RAVDESS actors 1-12 + TESS OAF
  tested in fold 1, actors 13-24 + YAF in fold 2), broken down per corpus.
Reports mean and standard deviation over folds of WA, UA and macro-F1, and wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace

from common import ROOT, corpora_dir, machine  # adds the repo to sys.path

from training.engine.corpora import scan_corpus
from training.engine.data import WaveformCache
from training.engine.experiment import Recipe, build_dataset, cross_validate

SETUPS = {
    "ravdess": {"corpora": ["ravdess"], "folds": 6, "mode": "all"},
    "tess": {"corpora": ["tess"], "folds": 2, "mode": "all"},
    "pooled": {"corpora": ["ravdess", "tess"], "folds": 2, "mode": "common"},
}


def brief(report: dict) -> dict:
    keys = ("protocol", "labels", "utterances", "wa", "wa_std", "ua", "ua_std", "macro_f1", "macro_f1_std", "per_corpus", "confusion", "wall_seconds")
    out = {k: report[k] for k in keys if k in report}
    out["folds"] = [
        {k: f[k] for k in ("fold", "wa", "ua", "macro_f1", "best_epoch", "epochs_run", "train_seconds") if k in f}
        | {"test_speakers": f["split"]["test_speakers"]}
        | ({"per_corpus": {c: {m: v[m] for m in ("wa", "ua", "macro_f1")} for c, v in f["per_corpus"].items()}} if f.get("per_corpus") else {})
        for f in report["folds"]
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(SETUPS), default=list(SETUPS))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="1-based folds to run (default all)")
    parser.add_argument("--cache-dir", default=None, help="decoded-audio cache (default: var/cache under the repo)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    root = corpora_dir()
    if not root.is_dir():
        print(json.dumps({"error": f"corpora not found at {root}"}))
        sys.exit(1)
    recipe = Recipe()
    train = recipe.train if args.epochs is None else replace(recipe.train, epochs=args.epochs)
    recipe = replace(recipe, train=replace(train, seed=args.seed))
    cache = WaveformCache(recipe.features, args.cache_dir or (ROOT / "var" / "cache" / "bench"))
    results = {"benchmark": "accuracy", "machine": machine(), "recipe": recipe.to_dict(), "results": {}}
    for name in args.only:
        setup = SETUPS[name]
        scans = [scan_corpus(root / c) for c in setup["corpora"]]
        ds = build_dataset(scans, mode=setup["mode"])
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as work:
            only = None if args.folds is None else [f - 1 for f in args.folds if f <= setup["folds"]]
            report = cross_validate(scans, work, folds=setup["folds"], only_folds=only, recipe=recipe, dataset=ds, cache=cache,
                                    on_fold=lambda i, f, name=name: print(f"[{name}] fold {i + 1}: UA {f['ua']:.3f} WA {f['wa']:.3f} ({f['train_seconds']:.0f}s)", file=sys.stderr, flush=True))
        report["wall_seconds"] = round(time.perf_counter() - started, 1)
        results["results"][name] = brief(report)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
