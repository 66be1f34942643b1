"""How much of who is speaking, and of the emotion, do a model's utterance vectors carry?

    python bench/probe.py DIR [DIR ...] [--setup ravdess] [--folds 1 2 ...] [--cache-dir DIR]

Each DIR is a ``bench/accuracy.py --keep DIR`` folder. For every kept fold and every model
in its ``best.pt``, the attention-pooled vector the classifier reads (``EmotionNet.embed``)
is computed for every utterance of the corpus, centred as in the benchmark, and linear
probes (softmax regression on standardised vectors, fitted on a random half of the
utterances, scored on the other half, averaged over three draws) are trained on:

- ``speaker_test``: which of the fold's held-out test speakers is speaking (unseen in training);
- ``speaker_train``: which of the other speakers is speaking (those the model trained or
  validated on);
- ``emotion_test``: the emotion, on the held-out speakers.

Chance is one over the number of speakers (or classes). It shows whether a recipe (such as
``--speaker-adversarial``) takes speaker identity out of what the classifier sees.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from accuracy import SETUPS
from combine import kept_folds
from common import ROOT, corpora_dir, machine  # adds the repo to sys.path

from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.features import FeatureExtractor
from recognition.engine.model import EmotionNet
from training.engine.corpora import scan_corpus
from training.engine.data import Example, WaveformCache, batches_of, collate, collate_centres
from training.engine.experiment import checkpoint_dataset


@torch.no_grad()
def utterance_vectors(model: EmotionNet, extractor: FeatureExtractor, examples: list[Example]) -> torch.Tensor:
    """``(utterances, 2 * lstm_hidden)`` pooled vectors, each utterance centred on its speaker's mean."""
    model.eval()
    out = torch.empty(len(examples), 2 * model.config.lstm_hidden)
    for idx in batches_of(examples, 64):  # length-sorted batches: rows go back to their places
        batch = [examples[i] for i in idx]
        x, lengths = collate([e.waveform for e in batch])
        feats, flen = extractor(x, lengths, collate_centres(batch, extractor.config))
        out[torch.tensor(idx)] = model.embed(feats, flen)[0]
    return out


def probe(vectors: torch.Tensor, targets: torch.Tensor, seed: int) -> float:
    """Held-out accuracy of an L2-regularised softmax regression fitted on a random half."""
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    fit, held = order[: len(order) // 2], order[len(order) // 2 :]
    mean, std = vectors[fit].mean(0), vectors[fit].std(0) + 1e-6
    z = (vectors - mean) / std
    classes = int(targets.max()) + 1
    weight = torch.zeros(z.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    solver = torch.optim.LBFGS([weight, bias], max_iter=200)

    def loss() -> torch.Tensor:
        solver.zero_grad()
        value = torch.nn.functional.cross_entropy(z[fit] @ weight + bias, targets[fit]) + 1e-3 * weight.square().sum()
        value.backward()
        return value

    solver.step(loss)
    with torch.no_grad():
        return float(((z[held] @ weight + bias).argmax(1) == targets[held]).float().mean())


def _classes(values: list) -> torch.Tensor:
    names = sorted(set(values))
    return torch.tensor([names.index(v) for v in values])


def probe_fold(path: Path, scans: list, cache_dir: Path) -> dict:
    ck = load_checkpoint(path)
    test = set(ck.extra.get("split", {}).get("test_speakers") or [])
    if not test:
        raise SystemExit(f"{path} does not record its test speakers")
    examples = checkpoint_dataset(ck, scans).examples(WaveformCache(ck.feature_config, cache_dir))
    held = torch.tensor([f"{e.corpus}/{e.speaker}" in test for e in examples])
    speakers = [f"{e.corpus}/{e.speaker}" for e in examples]
    labels = torch.tensor([e.label for e in examples])
    extractor = ck.build_extractor()
    models = []
    for model in ck.build_models():
        z = utterance_vectors(model, extractor, examples)
        scores = {
            "speaker_test": (z[held], _classes([s for s, h in zip(speakers, held.tolist(), strict=True) if h])),
            "speaker_train": (z[~held], _classes([s for s, h in zip(speakers, held.tolist(), strict=True) if not h])),
            "emotion_test": (z[held], labels[held]),
        }
        models.append({name: round(float(np.mean([probe(v, t, seed) for seed in range(3)])), 4) for name, (v, t) in scores.items()})
    return {
        "test_speakers": sorted(test),
        "chance": {"speaker_test": round(1 / len(test), 4), "speaker_train": round(1 / len(set(speakers) - test), 4),
                   "emotion_test": round(1 / len(ck.labels), 4)},
        "models": models,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="bench/accuracy.py --keep folders")
    parser.add_argument("--setup", choices=sorted(SETUPS), default="ravdess")
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="only these folds (1-based)")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "cache" / "bench")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = corpora_dir()
    scans = [scan_corpus(root / name) for name in SETUPS[args.setup]["corpora"]]
    started = time.perf_counter()
    runs = []
    for run in args.runs:
        folds = [f for f in kept_folds(run, args.setup) if not args.folds or f in args.folds]
        per_fold = [{"fold": f, **probe_fold(run / args.setup / f"fold{f}" / "best.pt", scans, args.cache_dir)} for f in folds]
        every = [m for f in per_fold for m in f["models"]]
        mean = {key: round(float(np.mean([m[key] for m in every])), 4) for key in ("speaker_test", "speaker_train", "emotion_test")} if every else {}
        runs.append({"run": str(run), "folds": folds, "mean_over_models": mean, "per_fold": per_fold})
    print(json.dumps({
        "benchmark": "probe", "machine": machine(), "setup": args.setup,
        "protocol": "linear probes on each model's pooled utterance vectors: fitted on a random half of the utterances, "
                    "accuracy on the other half, mean of three draws",
        "runs": runs, "wall_seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
