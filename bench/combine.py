"""Would more models help? Score the union of several kept runs' models, fold by fold, printing JSON.

    python bench/combine.py DIR [DIR ...] [--setup ravdess] [--folds 1 2 ...] [--speeds S ...] [--cache-dir DIR]

Each DIR is a ``bench/accuracy.py --keep DIR`` folder. For every fold that all of them hold
(``DIR/SETUP/foldN/best.pt``, one model or a seed ensemble), the models of all the runs are
pooled (identical weights, such as two runs' shared first model, count once), each asked
at every speed it was trained at as the app asks (or at ``--speeds``: ``--speeds 1.0`` is
the app's one-pass setting), and their class probabilities averaged.
Each run's own ensemble and each model alone are scored on the same test speakers (taken
from the checkpoints, which must agree), so the report shows what the larger ensemble adds
without training anything again. Each model keeps its own checkpoint's feature statistics.
``first_k`` and ``first_k_one_pass`` score the first k distinct models (in the order given,
members in their order), k = 1 .. all, as asked and once each at 1.0: how UA grows with the
ensemble's size (the first three of one ``--recipe '{"train": {"members": 6}}'`` run are that
seed's default ensemble).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch
from accuracy import SETUPS
from common import ROOT, corpora_dir, machine  # adds the repo to sys.path

from recognition.engine.checkpoint import Checkpoint, load_checkpoint
from recognition.engine.model import EmotionNet
from recognition.engine.tta import tta_speeds
from training.engine.corpora import scan_corpus
from training.engine.data import Example, WaveformCache
from training.engine.evaluation import example_probabilities, score_probabilities
from training.engine.experiment import checkpoint_dataset
from training.engine.metrics import summarise_folds


def _fingerprint(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _models(ck: Checkpoint) -> list[tuple[str, EmotionNet]]:
    """``(fingerprint, model in eval mode)`` for each model a checkpoint holds."""
    return [(_fingerprint(state), model) for state, model in zip((ck.state_dict, *ck.member_states), ck.build_models(), strict=True)]


def kept_folds(run: Path, setup: str) -> list[int]:
    """The folds of a ``bench/accuracy.py --keep`` folder that hold a finished ``best.pt``."""
    return sorted(int(p.name[4:]) for p in (run / setup).glob("fold*") if (p / "best.pt").is_file())


def test_examples(path: Path, ck: Checkpoint, scans: list, cache_dir: Path) -> tuple[list[str], list[Example]]:
    """The test speakers a fold's checkpoint records, and their utterances as ``ck`` labels them."""
    speakers = ck.extra.get("split", {}).get("test_speakers")
    if not speakers:
        raise SystemExit(f"{path} does not record its test speakers")
    return speakers, checkpoint_dataset(ck, scans, speakers=speakers).examples(WaveformCache(ck.feature_config, cache_dir))


def _headline(result: dict) -> dict:
    return {key: round(result[key], 4) for key in ("ua", "wa", "macro_f1")}


def combine_fold(paths: list[Path], scans: list, cache_dir: Path, speeds: tuple[float, ...] | None = None) -> dict:
    """Scores of each run's ensemble, of each distinct model alone, and of all distinct models
    together; every model asked at ``speeds`` (None: the speeds its checkpoint was trained at)."""
    checkpoints = [load_checkpoint(p) for p in paths]
    first = checkpoints[0]
    speakers, examples = test_examples(paths[0], first, scans, cache_dir)
    for path, ck in zip(paths, checkpoints, strict=True):
        if ck.extra.get("split", {}).get("test_speakers") != speakers or list(ck.labels) != list(first.labels):
            raise SystemExit(f"{path} was tested on other speakers or labels than {paths[0]}")
        if ck.feature_config != first.feature_config:
            raise SystemExit(f"{path} has other features than {paths[0]}: speaker means would differ")
    labels = list(first.labels)
    # Per distinct model: its probabilities at each speed asked, so any mix of models and
    # speeds can be scored without another pass.
    per_speed: dict[str, dict[float, torch.Tensor]] = {}
    asked_of: dict[str, tuple[float, ...]] = {}
    runs = []
    for path, ck in zip(paths, checkpoints, strict=True):
        extractor = ck.build_extractor()
        asked = speeds or tta_speeds(ck.extra.get("train_config"))
        mine = []
        for fingerprint, model in _models(ck):
            if fingerprint not in per_speed:
                per_speed[fingerprint] = {
                    s: example_probabilities(model, extractor, examples, speeds=(s,)) for s in sorted(set(asked) | {1.0})
                }
                asked_of[fingerprint] = asked
            mine.append(fingerprint)
        run_probs = torch.stack([_at(per_speed[f], asked_of[f]) for f in mine]).mean(0)
        runs.append({"checkpoint": str(path), "models": len(mine), **_headline(score_probabilities(run_probs, examples, labels))})
    order = list(per_speed)
    probs = [_at(per_speed[f], asked_of[f]) for f in order]
    one_pass = [per_speed[f][1.0] for f in order]

    def first(k: int, chosen: list[torch.Tensor]) -> float:
        return round(score_probabilities(torch.stack(chosen[:k]).mean(0), examples, labels)["ua"], 4)

    return {
        "test_speakers": speakers,
        "utterances": len(examples),
        "runs": runs,
        "models_alone": [_headline(score_probabilities(p, examples, labels))["ua"] for p in probs],
        "distinct_models": len(order),
        "union": _headline(score_probabilities(torch.stack(probs).mean(0), examples, labels)),
        # UA of the first k distinct models (in the order given), k = 1 .. all: as asked, and once at 1.0.
        "first_k": [first(k, probs) for k in range(1, len(order) + 1)],
        "first_k_one_pass": [first(k, one_pass) for k in range(1, len(order) + 1)],
    }


def _at(by_speed: dict[float, torch.Tensor], speeds: tuple[float, ...]) -> torch.Tensor:
    """The mean of one model's probabilities over ``speeds``."""
    return torch.stack([by_speed[s] for s in speeds]).mean(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="bench/accuracy.py --keep folders")
    parser.add_argument("--setup", choices=sorted(SETUPS), default="ravdess")
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="only these folds (1-based)")
    parser.add_argument("--speeds", type=float, nargs="+", default=None,
                        help="ask every model at these speeds (default: those it was trained at, as the app does)")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "cache" / "bench")
    args = parser.parse_args()
    speeds = tuple(sorted(set(args.speeds))) if args.speeds else None
    root = corpora_dir()
    scans = [scan_corpus(root / name) for name in SETUPS[args.setup]["corpora"]]
    held = [kept_folds(run, args.setup) for run in args.runs]
    folds = sorted(set(held[0]).intersection(*held[1:]))
    if args.folds:
        folds = [f for f in folds if f in args.folds]
    if not folds:
        raise SystemExit(f"no fold with a best.pt in every one of {[str(r) for r in args.runs]}")
    started = time.perf_counter()
    per_fold = []
    for fold in folds:
        result = {"fold": fold, **combine_fold([run / args.setup / f"fold{fold}" / "best.pt" for run in args.runs], scans, args.cache_dir, speeds)}
        run_uas = ", ".join(f"{r['ua']:.3f}" for r in result["runs"])
        print(f"[{args.setup}] fold {fold}: union of {result['distinct_models']} models UA {result['union']['ua']:.3f}; runs {run_uas}",
              file=sys.stderr, flush=True)
        per_fold.append(result)

    def rounded(summary: dict) -> dict:
        return {key: round(value, 4) for key, value in summary.items()}

    alone = [ua for f in per_fold for ua in f["models_alone"]]
    summary = {
        "union": rounded(summarise_folds([f["union"] for f in per_fold])),
        "runs": [rounded(summarise_folds([f["runs"][i] for f in per_fold])) for i in range(len(args.runs))],
        "models_alone_ua": round(sum(alone) / len(alone), 4),
    }
    counts = min(f["distinct_models"] for f in per_fold)
    for key in ("first_k", "first_k_one_pass"):
        summary[key] = [round(sum(f[key][k] for f in per_fold) / len(per_fold), 4) for k in range(counts)]
    print(json.dumps({
        "benchmark": "combine", "machine": machine(), "setup": args.setup, "runs": [str(r) for r in args.runs],
        "protocol": "each fold's test speakers as recorded in its checkpoints; every distinct model asked at "
                    + (f"speeds {list(speeds)}" if speeds else "every speed it was trained at (as the app asks)")
                    + ", class probabilities averaged; UA = mean per-class recall; mean and population std over folds",
        "folds": folds, **summary, "per_fold": per_fold, "wall_seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
