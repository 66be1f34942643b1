"""The encoder's precision against accuracy: a trained fold's model scored on its held-out
speakers with the encoder run live in float32 and in bfloat16 (``SER_ENCODER_PRECISION``),
as the app runs it; prints JSON.

    python bench/precision.py FOLD_DIR [FOLD_DIR ...]

Each ``FOLD_DIR`` is a fold folder kept by ``bench/accuracy.py --keep`` (``best.pt`` inside,
its test speakers in the checkpoint). Each test speaker is centred on the mean of their own
utterances, as in the benchmark. UA = mean per-class recall.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from common import corpora_dir, machine  # adds the repo to sys.path

from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.predictor import Predictor
from training.engine.corpora import scan_corpus
from training.engine.data import WaveformCache
from training.engine.experiment import checkpoint_dataset
from training.engine.metrics import confusion_matrix, scores


def score(fold: Path, precision: str) -> dict:
    os.environ["SER_ENCODER_PRECISION"] = precision
    ck = load_checkpoint(fold / "best.pt")
    speakers = ck.extra["split"]["test_speakers"]
    corpus = speakers[0].split("/", 1)[0]
    ds = checkpoint_dataset(ck, [scan_corpus(corpora_dir() / corpus, probe_durations=False)], speakers=speakers)
    waves = WaveformCache(ck.feature_config).load_many([u.path for u in ds.utterances])
    predictor = Predictor(ck, device="cpu")
    started = time.perf_counter()
    predicted = [0] * len(waves)
    for speaker in sorted({u.speaker for u in ds.utterances}):
        idx = [i for i, u in enumerate(ds.utterances) if u.speaker == speaker]
        centre = predictor.speaker_centre([waves[i] for i in idx]).value
        for i in idx:
            predicted[i] = predictor.labels.index(predictor.predict(waves[i], centre).label)
    seconds = time.perf_counter() - started
    result = scores(confusion_matrix(ds.targets, predicted, len(ck.labels)), ck.labels)
    return {"wa": round(result["wa"], 4), "ua": round(result["ua"], 4), "utterances": len(waves), "wall_s": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folds", nargs="+", type=Path)
    args = parser.parse_args()
    out: dict = {"benchmark": "precision", "machine": machine(), "folds": {}}
    for fold in args.folds:
        out["folds"][str(fold)] = {precision: score(fold, precision) for precision in ("float32", "bfloat16")}
    for precision in ("float32", "bfloat16"):
        out[f"mean_ua_{precision}"] = round(float(np.mean([f[precision]["ua"] for f in out["folds"].values()])), 4)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
