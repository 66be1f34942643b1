"""Speed benchmark of the default (Whisper front end) path on this machine, printing JSON.

    python bench/speed.py [--only classify encode train] [--model CKPT] [--quick]

- classify: one 3 s clip end to end (decode, Whisper's Mel, the encoder, the head), one
  thread, median over runs; the encoder in float32 and in bfloat16
  (``SER_ENCODER_PRECISION``), interleaved so the machine's load hits both alike.
- encode: the one-off encoding pass a run makes before its first epoch, over RAVDESS
  (every block's states of every utterance, float32, batches of 8), cold: no state cache.
- train: one head epoch over RAVDESS fold 1's training part with a warm state cache (the
  states come from ``var/cache/bench``, as ``bench/accuracy.py`` leaves them), all cores.

The model is ``--model``, else the shipped starter (``recognition/starter/starter.pt``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import ROOT, corpora_dir, machine  # adds the repo to sys.path

from recognition.engine.audio import decode_audio
from recognition.engine.predictor import Predictor
from recognition.engine.whisper.encoder import get_encoder
from training.engine.corpora import scan_corpus
from training.engine.data import WaveformCache
from training.engine.events import EpochReport
from training.engine.experiment import Recipe, build_dataset
from training.engine.splits import kfold_splits
from training.engine.state_cache import StateCache
from training.engine.trainer import Trainer

TARGETS = {"classify_3s_median_ms_max": 50.0, "train_epoch_s_max": 5.0}
STARTER_PATH = ROOT / "recognition" / "starter" / "starter.pt"
SR = 16000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dist(values: list[float]) -> dict:
    return {"median_ms": round(statistics.median(values) * 1000, 2), "p90_ms": round(float(np.percentile(values, 90)) * 1000, 2),
            "min_ms": round(min(values) * 1000, 2)}


def three_second_clip(work: Path) -> tuple[Path, str]:
    """The middle 3 s of the first RAVDESS file (a WAV written here), or synthetic speech."""
    files = sorted((corpora_dir() / "ravdess").rglob("*.flac"))
    if files:
        wave = decode_audio(files[0])
        start = (wave.size - 3 * SR) // 2
        wave, source = wave[start : start + 3 * SR], f"ravdess {files[0].name}, middle 3 s"
    else:
        t = np.arange(3 * SR) / SR
        wave = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        source = "synthetic tone (corpora absent)"
    import wave as wavfile

    path = work / "three_seconds.wav"
    with wavfile.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(SR)
        fh.writeframes((np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes())
    return path, source


def bench_classify(model: Path, runs: int) -> dict:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        path, source = three_second_clip(Path(tmp))
        predictors = {}
        for precision in ("float32", "bfloat16"):
            os.environ["SER_ENCODER_PRECISION"] = precision
            predictors[precision] = Predictor.from_checkpoint(model, device="cpu")
            for _ in range(5):
                predictors[precision].predict_file(path)
        os.environ.pop("SER_ENCODER_PRECISION")
        times: dict[str, list[float]] = {p: [] for p in predictors}
        decode: list[float] = []
        for _ in range(runs):
            for precision, predictor in predictors.items():
                os.environ["SER_ENCODER_PRECISION"] = precision
                started = time.perf_counter()
                predictor.predict_file(path)
                times[precision].append(time.perf_counter() - started)
            started = time.perf_counter()
            decode_audio(path)
            decode.append(time.perf_counter() - started)
        os.environ.pop("SER_ENCODER_PRECISION")
    out = {"input": source, "model": str(model), "threads": 1, "runs": runs, "head_passes": predictors["float32"].passes,
           "call": "Predictor.predict_file(3 s WAV): decode + trim + Mel + encoder + heads",
           "decode": dist(decode), **{f"end_to_end_{p}": dist(v) for p, v in times.items()}}
    out["target_met"] = out["end_to_end_float32"]["median_ms"] <= TARGETS["classify_3s_median_ms_max"]
    return out


def _ravdess() -> tuple:
    root = corpora_dir() / "ravdess"
    if not root.is_dir():
        raise SystemExit(json.dumps({"error": f"RAVDESS not found at {root}"}))
    return build_dataset([scan_corpus(root, probe_durations=False)], mode="all")


def bench_encode(limit: int | None) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    ds = _ravdess()
    recipe = Recipe()
    paths = [u.path for u in ds.utterances][:limit]
    waves = WaveformCache(recipe.features, ROOT / "var" / "cache" / "bench").load_many(paths)
    cache = StateCache(get_encoder("cpu", "float32"), None, recipe.features.state_pool)  # in memory only: every utterance is encoded
    started = time.perf_counter()
    cache.states(waves)
    seconds = time.perf_counter() - started
    audio = sum(w.size for w in waves) / SR
    return {"utterances": len(waves), "audio_s_after_trimming": round(audio, 1), "wall_s": round(seconds, 1),
            "per_utterance_ms": round(1000 * seconds / len(waves), 1), "audio_s_per_s": round(audio / seconds, 1),
            "threads": torch.get_num_threads()}


def bench_train(epochs: int) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    ds = _ravdess()
    recipe = Recipe()
    split = kfold_splits([ds.labels[t] for t in ds.targets], [u.speaker for u in ds.utterances], ds.corpora, folds=6)[0]
    examples = ds.examples(WaveformCache(recipe.features, ROOT / "var" / "cache" / "bench"))
    train, valid = [examples[i] for i in split.train], [examples[i] for i in split.valid]
    durations: list[float] = []
    config = replace(recipe.train, epochs=epochs, patience=0)
    with tempfile.TemporaryDirectory(prefix="bench-speed-train-") as tmp:
        trainer = Trainer(labels=ds.labels, feature_config=recipe.features, model_config=recipe.model_config(len(ds.labels)),
                          train_config=config, out_dir=tmp,
                          callback=lambda e: durations.append(e.duration) if isinstance(e, EpochReport) else None)
        trainer.fit(train, valid)
    per_epoch = statistics.median(durations)
    return {"train_utterances": len(train), "valid_utterances": len(valid), "threads": torch.get_num_threads(),
            "epoch_s": [round(d, 2) for d in durations], "per_epoch_s": round(per_epoch, 2),
            "statistic": "median epoch of one head (training pass + validation pass), warm state cache",
            # The default trains its heads one after another: an epoch of the whole run costs this.
            "heads": config.members, "epoch_of_all_heads_s": round(per_epoch * config.members, 2),
            "target_met": per_epoch <= TARGETS["train_epoch_s_max"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=("classify", "encode", "train"), default=["classify", "encode", "train"])
    parser.add_argument("--model", default=str(STARTER_PATH), help="checkpoint to classify with (default: the starter)")
    parser.add_argument("--quick", action="store_true", help="small counts, to check the script")
    args = parser.parse_args()
    results: dict = {"benchmark": "speed", "machine": machine(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                     "targets": TARGETS, "results": {}}
    if "classify" in args.only:
        log("classify ...")
        results["results"]["classify_3s"] = bench_classify(Path(args.model), 10 if args.quick else 50)
    if "encode" in args.only:
        log("encode ...")
        results["results"]["encode_cold"] = bench_encode(40 if args.quick else None)
    if "train" in args.only:
        log("train ...")
        results["results"]["train_epoch"] = bench_train(1 if args.quick else 3)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
