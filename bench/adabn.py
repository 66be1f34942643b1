"""Would re-estimating BatchNorm statistics per test speaker help? Prints JSON.

    python bench/adabn.py DIR [--setup ravdess] [--folds 1 2 ...] [--blend 0.5 1.0] [--cache-dir DIR]

DIR is a ``bench/accuracy.py --keep DIR`` folder. For every fold's ``best.pt`` (one model or
a seed ensemble) and every test speaker, each model's BatchNorm layers get that speaker's
statistics ("AdaBN"): layer by layer, the per-channel mean and variance of the layer's input
over all of the speaker's utterances (unlabelled, each alone, so no padding enters them),
blended with the training statistics as ``blend * speaker + (1 - blend) * training``. The
adapted models are asked once each at speed 1.0 (the app's one-pass setting), and their
probabilities averaged. ``blend`` 0 is the model as trained, so every blend is compared on
the same models and the same utterances: the difference is the adaptation alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from accuracy import SETUPS
from combine import kept_folds, test_examples
from common import ROOT, corpora_dir, machine  # adds the repo to sys.path

from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.features import FeatureExtractor
from recognition.engine.model import EmotionNet
from training.engine.corpora import scan_corpus
from training.engine.data import Example, collate, collate_centres
from training.engine.evaluation import example_probabilities, score_probabilities
from training.engine.metrics import summarise_folds


@torch.no_grad()
def adapt(model: EmotionNet, extractor: FeatureExtractor, examples: list[Example], blend: float) -> EmotionNet:
    """A copy of ``model`` whose BatchNorm layers carry ``examples``' statistics, blended."""
    adapted = copy.deepcopy(model).eval()
    for block in adapted.blocks:
        sums: dict[str, torch.Tensor | int] = {}

        def collect(_module: torch.nn.Module, _inputs: tuple, out: torch.Tensor, sums: dict = sums) -> None:
            # out: (1, channels, freq, time) for one utterance, so every position is valid.
            flat = out.double().transpose(0, 1).reshape(out.shape[1], -1)
            sums["n"] = sums.get("n", 0) + flat.shape[1]
            sums["x"] = sums.get("x", 0) + flat.sum(1)
            sums["xx"] = sums.get("xx", 0) + (flat * flat).sum(1)

        hook = block.conv.register_forward_hook(collect)
        try:
            for example in examples:
                waves, lengths = collate([example.waveform])
                feats, flen = extractor(waves, lengths, collate_centres([example], extractor.config))
                adapted(feats, flen)
        finally:
            hook.remove()
        mean = sums["x"] / sums["n"]
        var = sums["xx"] / sums["n"] - mean * mean
        norm = block.norm
        norm.running_mean.mul_(1 - blend).add_(blend * mean.float())
        norm.running_var.mul_(1 - blend).add_(blend * var.clamp(min=0).float())
    return adapted


def adapt_fold(path: Path, scans: list, cache_dir: Path, blends: list[float]) -> dict:
    ck = load_checkpoint(path)
    speakers, examples = test_examples(path, ck, scans, cache_dir)
    labels = list(ck.labels)
    extractor = ck.build_extractor()
    models = ck.build_models()
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_speaker[f"{e.corpus}/{e.speaker}"].append(i)
    result = {"test_speakers": speakers, "utterances": len(examples), "models": len(models), "blends": {}}
    for blend in blends:
        probs = torch.zeros(len(examples), len(labels), dtype=torch.float64)
        for model in models:
            for rows in by_speaker.values():
                group = [examples[i] for i in rows]
                used = adapt(model, extractor, group, blend) if blend > 0 else model
                probs[rows] += example_probabilities(used, extractor, group)
        scores = score_probabilities(probs / len(models), examples, labels)
        result["blends"][str(blend)] = {key: round(scores[key], 4) for key in ("ua", "wa", "macro_f1")}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a bench/accuracy.py --keep folder")
    parser.add_argument("--setup", choices=sorted(SETUPS), default="ravdess")
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="only these folds (1-based)")
    parser.add_argument("--blend", type=float, nargs="+", default=[0.5, 1.0], help="weights of the speaker's statistics")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "cache" / "bench")
    args = parser.parse_args()
    if any(not 0.0 < b <= 1.0 for b in args.blend):
        raise SystemExit("--blend values must lie in (0, 1]")
    blends = [0.0, *args.blend]
    root = corpora_dir()
    scans = [scan_corpus(root / name) for name in SETUPS[args.setup]["corpora"]]
    folds = [f for f in kept_folds(args.run, args.setup) if not args.folds or f in args.folds]
    if not folds:
        raise SystemExit(f"no fold with a best.pt under {args.run / args.setup}")
    started = time.perf_counter()
    per_fold = []
    for fold in folds:
        result = {"fold": fold, **adapt_fold(args.run / args.setup / f"fold{fold}" / "best.pt", scans, args.cache_dir, blends)}
        uas = ", ".join(f"{b}: {s['ua']:.3f}" for b, s in result["blends"].items())
        print(f"[{args.setup}] fold {fold}: UA by blend {uas}", file=sys.stderr, flush=True)
        per_fold.append(result)
    summary = {
        str(b): {k: round(v, 4) for k, v in summarise_folds([f["blends"][str(b)] for f in per_fold]).items()} for b in blends
    }
    print(json.dumps({
        "benchmark": "adabn", "machine": machine(), "setup": args.setup, "run": str(args.run), "folds": folds,
        "protocol": "each fold's test speakers as recorded in its checkpoint; per speaker, BatchNorm statistics "
                    "re-estimated on that speaker's utterances (unlabelled) and blended with the training ones; "
                    "every model asked once at speed 1.0, probabilities averaged; UA = mean per-class recall",
        "by_blend": summary, "per_fold": per_fold, "wall_seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
