"""Speed benchmark of the engine on the real corpora (synthetic audio when they are absent), printing JSON.

    python bench/speed.py [--quick] [--only frontend classify batch train] [--model PATH] [--members N] [--no-tta]

- frontend: the engine's log-Mel front end (``FeatureExtractor.raw``, trim="none") against
  librosa's ``melspectrogram`` + ``power_to_db`` with equal parameters, on the same decoded
  RAVDESS utterances, one thread each (torch and BLAS); per utterance, plus the engine in
  batches of 32 zero-padded utterances. Also checks that both give the same dB values.
- classify: end-to-end latency of ``Predictor.predict_file`` on a 3.0 s 16 kHz WAV file
  (decode + trim + features + model) on one CPU thread, with the decode / predict split,
  asked as the app asks it (every model at each of its three trained speeds while that stays
  within nine passes, else each model once), and the same with each model asked once at 1.0
  (``SER_TEST_TIME_AUGMENTATION=0``). Without ``--model`` the model has the default recipe's
  shape (a seed ensemble of five, asked once each); ``--members N``
  changes the number of models, ``--no-tta`` asks each model once (classify and batch).
- batch: ``Predictor.predict_batch`` throughput over decoded RAVDESS waveforms, with all
  cores and with one thread.
- train: one training epoch of the default recipe over all of RAVDESS (1440 utterances,
  8 classes) from a warm waveform cache, timed from the trainer's epoch events.

Progress goes to stderr; stdout gets one JSON document. ``--quick`` uses small counts
(for checking the script, not for numbers to quote).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import ROOT, corpora_dir, machine, ravdess_labels  # adds the repo to sys.path

from recognition.engine import SAMPLE_RATE
from recognition.engine.audio import decode_audio
from recognition.engine.checkpoint import Checkpoint, save_checkpoint
from recognition.engine.features import FeatureConfig, FeatureExtractor, FeatureStats
from recognition.engine.model import EmotionNet, ModelConfig
from recognition.engine.predictor import Predictor
from training.engine.events import BatchProgress, EpochReport, Event
from training.engine.experiment import Recipe
from training.engine.trainer import TrainConfig

SECTIONS = ("frontend", "classify", "batch", "train")
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".webm"}

TARGETS = {
    "frontend_speedup_min": 5.0,
    "classify_3s_median_ms_max": 15.0,
    "train_epoch_s_max": 30.0,
}

# Full-run and --quick counts.
COUNTS = {
    False: {"frontend_files": 200, "frontend_repeats": 5, "classify_runs": 50, "classify_warmup": 10,
            "batch_files": 200, "batch_repeats": 3, "train_epochs": 2, "train_limit": None},
    True: {"frontend_files": 12, "frontend_repeats": 3, "classify_runs": 10, "classify_warmup": 3,
           "batch_files": 24, "batch_repeats": 1, "train_epochs": 1, "train_limit": 96},
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class single_thread:
    """torch (and, when threadpoolctl is there, BLAS/OpenMP) limited to one thread inside the block."""

    def __enter__(self) -> single_thread:
        self._torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self._limits = None
        self.blas_limited = False
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return self
        self._limits = threadpool_limits(limits=1)
        self.blas_limited = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()
        torch.set_num_threads(self._torch_threads)


# -- audio sources ---------------------------------------------------------------------


def ravdess_files() -> list[Path]:
    root = corpora_dir() / "ravdess"
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def synthetic_waveforms(n: int) -> list[np.ndarray]:
    from tests.synth import CLASS_STYLES, speech_like

    labels = sorted(CLASS_STYLES)
    # Durations 2.9-5.3 s like RAVDESS (speech_like adds 0.4 s of silence around `duration`).
    return [speech_like(labels[i % len(labels)], duration=2.5 + (i % 7) * 0.3, seed=i) for i in range(n)]


def load_waveforms(n: int) -> tuple[list[np.ndarray], dict]:
    """The first ``n`` RAVDESS files decoded to 16 kHz float32, or synthetic audio if absent."""
    files = ravdess_files()[:n]
    if files:
        log(f"decoding {len(files)} RAVDESS files ...")
        waves = [decode_audio(p) for p in files]
        source = {"audio": "ravdess", "corpus_dir": str(corpora_dir() / "ravdess"),
                  "files": f"first {len(files)} in sorted path order ({files[0].parent.name}/{files[0].name} ...)"}
    else:
        waves = synthetic_waveforms(n)
        source = {"audio": "synthetic", "note": f"corpora not found at {corpora_dir()}; "
                  "synthetic speech-like audio from tests/synth.py (speech_like) instead"}
    seconds = sum(w.size for w in waves) / SAMPLE_RATE
    source.update({"utterances": len(waves), "audio_seconds": round(seconds, 2)})
    return waves, source


def pad_batch(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([w.size for w in waves], dtype=torch.int64)
    out = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(waves):
        out[i, : w.size] = torch.from_numpy(w)
    return out, lengths


# -- 1. front end ----------------------------------------------------------------------


def bench_frontend(counts: dict) -> dict:
    try:
        import librosa
    except ImportError:
        return {"error": "librosa is not installed (it is a dev dependency)"}
    waves, source = load_waveforms(counts["frontend_files"])
    audio_s = source["audio_seconds"]
    n = len(waves)
    cfg = FeatureConfig(trim="none")
    fe = FeatureExtractor(cfg).eval()
    params = {"sample_rate": cfg.sample_rate, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length,
              "win_length": cfg.win_length, "window": "hann (periodic)", "center": False, "power": 2.0,
              "n_mels": cfg.n_mels, "mel": "Slaney scale, Slaney area norm, 0 Hz to Nyquist",
              "db": "10*log10(max(S, 1e-10)), ref=1.0, top_db=None", "dtype": "float32"}

    def engine_one(w: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(w)[None]
        feats, _ = fe.raw(x, torch.tensor([w.size]))
        return feats

    def librosa_one(w: np.ndarray) -> np.ndarray:
        S = librosa.feature.melspectrogram(y=w, sr=SAMPLE_RATE, n_fft=512, hop_length=160, win_length=400,
                                           center=False, power=2.0, n_mels=64)
        return librosa.power_to_db(S, ref=1.0, top_db=None)

    order = sorted(range(n), key=lambda i: waves[i].size)
    batches = [order[i : i + 32] for i in range(0, n, 32)]

    def engine_batched() -> None:
        for idx in batches:
            x, lengths = pad_batch([waves[i] for i in idx])
            fe.raw(x, lengths)

    def run_all(fn) -> float:
        started = time.perf_counter()
        for w in waves:
            fn(w)
        return time.perf_counter() - started

    with single_thread() as limit, torch.inference_mode():
        log("frontend: warm-up ...")
        for w in waves[:3]:
            engine_one(w)
            librosa_one(w)
        engine_batched()
        times: dict[str, list[float]] = {"engine": [], "librosa": [], "engine_batched": []}
        for r in range(counts["frontend_repeats"]):
            # Interleaved, so a load change on the machine hits all three alike.
            times["engine"].append(run_all(engine_one))
            times["librosa"].append(run_all(librosa_one))
            started = time.perf_counter()
            engine_batched()
            times["engine_batched"].append(time.perf_counter() - started)
            log(f"frontend: repeat {r + 1}/{counts['frontend_repeats']}: engine {times['engine'][-1]:.3f}s, "
                f"librosa {times['librosa'][-1]:.3f}s, engine batched {times['engine_batched'][-1]:.3f}s")

        # Agreement, per utterance and between the batched and the one-by-one engine output.
        max_diff, max_diff_loud, sum_diff, cells = 0.0, 0.0, 0.0, 0
        for w in waves:
            ours = engine_one(w)[0].double().numpy()  # (frames, n_mels)
            ref = librosa_one(w).T.astype(np.float64)
            if ours.shape != ref.shape:
                return {"error": f"shape mismatch: engine {ours.shape}, librosa {ref.shape}"}
            diff = np.abs(ours - ref)
            loud = ref > ref.max() - 80.0
            max_diff = max(max_diff, float(diff.max()))
            max_diff_loud = max(max_diff_loud, float(diff[loud].max()))
            sum_diff += float(diff.sum())
            cells += diff.size
        batch_diff = 0.0
        for idx in batches:
            x, lengths = pad_batch([waves[i] for i in idx])
            feats, flen = fe.raw(x, lengths)
            for row, i in enumerate(idx):
                single = engine_one(waves[i])[0]
                batch_diff = max(batch_diff, float((feats[row, : int(flen[row])] - single).abs().max()))

    def summary(key: str) -> dict:
        total = statistics.median(times[key])
        return {"total_s": round(total, 4), "per_utterance_ms": ms(total / n),
                "audio_s_per_s": round(audio_s / total, 1), "repeats_s": [round(t, 4) for t in times[key]]}

    engine, ref, batched = summary("engine"), summary("librosa"), summary("engine_batched")
    speedup = statistics.median(times["librosa"]) / statistics.median(times["engine"])
    batched["speedup_vs_librosa"] = round(statistics.median(times["librosa"]) / statistics.median(times["engine_batched"]), 2)
    batched["batch_size"] = 32
    batched["note"] = "utterances sorted by length, zero-padded to the longest in each batch (padding included in the time)"
    return {
        **source,
        "params": params,
        "threads": {"torch": 1, "blas_openmp_limited_to_1": limit.blas_limited},
        "repeats": counts["frontend_repeats"],
        "statistic": "median over repeats of the time to process all utterances; warm-up before",
        "engine": {"call": "FeatureExtractor(FeatureConfig(trim='none')).raw(x[None], lengths), one utterance per call", **engine},
        "librosa": {"call": "librosa.feature.melspectrogram(...) + librosa.power_to_db(S, ref=1.0, top_db=None)",
                    "version": librosa.__version__, **ref},
        "speedup": round(speedup, 2),
        "target_speedup_min": TARGETS["frontend_speedup_min"],
        "target_met": speedup >= TARGETS["frontend_speedup_min"],
        "engine_batched": batched,
        "agreement": {
            "max_abs_diff_db": round(max_diff, 5),
            "max_abs_diff_db_within_80db_of_peak": round(max_diff_loud, 5),
            "mean_abs_diff_db": round(sum_diff / max(1, cells), 7),
            "batched_vs_single_max_abs_diff_db": round(batch_diff, 6),
        },
    }


# -- predictor helpers -------------------------------------------------------------------


def build_predictor(model: str | None, work: Path, members: int | None = None, tta: bool = True,
                    device: str | torch.device = "cpu") -> tuple[Predictor, dict]:
    """The checkpoint ``model``, or random weights shaped as the default recipe trains them
    (``members`` models, default the recipe's), on ``device``."""
    if model:
        predictor = Predictor.from_checkpoint(model, device=device, tta=tta)
        info = {"checkpoint": str(model), "default_model": False}
    else:
        torch.manual_seed(0)
        members = members or Recipe().train.members
        mc = ModelConfig(n_features=64, n_classes=8)
        states = [EmotionNet(mc).state_dict() for _ in range(members)]
        # Stored training settings as a trained model has them: they set the TTA speeds.
        ck = Checkpoint(model_config=mc, feature_config=FeatureConfig(), labels=ravdess_labels(),
                        stats=FeatureStats.identity(mc.n_features), state_dict=states[0], member_states=states[1:],
                        extra={"train_config": TrainConfig(members=members).to_dict()})
        path = save_checkpoint(work / "random.pt", ck)
        predictor = Predictor.from_checkpoint(path, device=device, tta=tta)
        info = {"checkpoint": "random weights, default ModelConfig(n_features=64, n_classes=8), FeatureConfig() and "
                f"TrainConfig(members={members})", "default_model": members == Recipe().train.members}
    n_params = sum(p.numel() for p in EmotionNet(predictor.model_config).parameters()) * predictor.checkpoint.n_members
    info.update({"members": predictor.checkpoint.n_members, "passes": predictor.passes, "feature_config": predictor.feature_config.to_dict(), "model_config": predictor.model_config.to_dict(),
                 "parameters": n_params, "device": str(predictor.device), "tta_speeds": list(predictor.speeds)})
    return predictor, info


def write_wav(path: Path, waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(sample_rate)
        fh.writeframes(pcm.tobytes())
    return path


def three_second_file(work: Path) -> tuple[Path, dict]:
    n = 3 * SAMPLE_RATE
    files = ravdess_files()
    source: dict
    wav = None
    for p in files:
        decoded = decode_audio(p)
        if decoded.size >= n:
            start = (decoded.size - n) // 2
            wav = decoded[start : start + n]
            source = {"audio": "ravdess", "from": f"{p.parent.name}/{p.name}",
                      "cut": f"the middle 3.0 s of {decoded.size / SAMPLE_RATE:.2f} s"}
            break
    if wav is None:
        from tests.synth import speech_like

        wav = speech_like("angry", duration=2.6, seed=0)
        wav = np.pad(wav, (0, max(0, n - wav.size)))[:n]
        source = {"audio": "synthetic",
                  "note": f"corpora not found at {corpora_dir()}; speech_like('angry') from tests/synth.py, cut/padded to 3.0 s"}
    path = write_wav(work / "three_seconds.wav", wav)
    source.update({"file": "WAV, 16-bit PCM, mono, 16 kHz, written with the stdlib wave module",
                   "seconds": n / SAMPLE_RATE, "bytes": path.stat().st_size})
    return path, source


def dist(values: list[float]) -> dict:
    return {"median_ms": ms(statistics.median(values)), "p90_ms": ms(float(np.percentile(values, 90))),
            "min_ms": ms(min(values)), "max_ms": ms(max(values))}


# -- 2. classify a 3 s file ------------------------------------------------------------------


def bench_classify(counts: dict, model: str | None, members: int | None = None, tta: bool = True) -> dict:
    runs, warmup = counts["classify_runs"], counts["classify_warmup"]
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        work = Path(tmp)
        path, source = three_second_file(work)
        with single_thread() as limit:
            predictor, info = build_predictor(model, work, members, tta)
            one_speed = Predictor(predictor.checkpoint, device="cpu", tta=False)
            log(f"classify: warm-up {warmup} runs ...")
            for _ in range(warmup):
                predictor.predict_file(path)
                one_speed.predict_file(path)
            end_to_end, end_to_end_one, decode, predict, predict_one = [], [], [], [], []
            for _ in range(runs):
                # Interleaved, so a load change on the machine hits all of them alike.
                started = time.perf_counter()
                predictor.predict_file(path)
                end_to_end.append(time.perf_counter() - started)
                started = time.perf_counter()
                one_speed.predict_file(path)
                end_to_end_one.append(time.perf_counter() - started)
                started = time.perf_counter()
                waveform = decode_audio(path, sample_rate=predictor.sample_rate)
                decode.append(time.perf_counter() - started)
                started = time.perf_counter()
                predictor.predict(waveform)
                predict.append(time.perf_counter() - started)
                started = time.perf_counter()
                one_speed.predict(waveform)
                predict_one.append(time.perf_counter() - started)
            log(f"classify: {runs} runs, median {statistics.median(end_to_end) * 1000:.2f} ms")
    median_ms = statistics.median(end_to_end) * 1000
    return {
        "input": source,
        "model": info,
        "call": "Predictor.predict_file(path) (decode_audio + trim + features + model + softmax)",
        "threads": {"torch": 1, "blas_openmp_limited_to_1": limit.blas_limited},
        "runs": runs,
        "warmup_runs": warmup,
        "end_to_end": dist(end_to_end),
        "end_to_end_one_speed": {"call": "Predictor(..., tta=False).predict_file(path): each model once, at 1.0",
                                 "passes": one_speed.passes, **dist(end_to_end_one)},
        "split": {"decode": {"call": "decode_audio(path)", **dist(decode)},
                  "predict": {"call": "Predictor.predict(waveform) (trim + features + model at each TTA speed)", **dist(predict)},
                  "predict_one_speed": {"call": "Predictor(..., tta=False).predict(waveform)", **dist(predict_one)}},
        "target_median_ms_max": TARGETS["classify_3s_median_ms_max"],
        "target_met": median_ms <= TARGETS["classify_3s_median_ms_max"],
    }


# -- 3. batch throughput ------------------------------------------------------------------------


def bench_batch(counts: dict, model: str | None, default_threads: int, tta: bool = True) -> dict:
    waves, source = load_waveforms(counts["batch_files"])
    audio_s = source["audio_seconds"]
    out = {**source, "call": "Predictor.predict_batch(waveforms, batch_size=32)",
           "repeats": counts["batch_repeats"], "statistic": "median over repeats; warm-up before", "runs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        predictor, info = build_predictor(model, Path(tmp), tta=tta)
        out["model"] = info
        settings = (("all_cores", default_threads), ("one_thread", 1))
        for _, threads in settings:
            torch.set_num_threads(threads)
            predictor.predict_batch(waves[:8])  # warm-up
        times: dict[str, list[float]] = {name: [] for name, _ in settings}
        for r in range(counts["batch_repeats"]):
            # Interleaved, so a load change on the machine hits both settings alike.
            for name, threads in settings:
                torch.set_num_threads(threads)
                started = time.perf_counter()
                predictor.predict_batch(waves)
                times[name].append(time.perf_counter() - started)
                log(f"batch: repeat {r + 1}: {name} ({threads} threads): {times[name][-1]:.3f}s for {len(waves)} utterances")
        for name, threads in settings:
            total = statistics.median(times[name])
            out["runs"][name] = {"torch_threads": threads, "total_s": round(total, 4),
                                 "per_utterance_ms": ms(total / len(waves)),
                                 "audio_s_per_s": round(audio_s / total, 1),
                                 "utterances_per_s": round(len(waves) / total, 1),
                                 "repeats_s": [round(t, 4) for t in times[name]]}
        torch.set_num_threads(default_threads)
    return out


# -- 4. one training epoch ------------------------------------------------------------------------


def count_cache_entries(cache_dir: Path) -> int:
    return sum(1 for _ in cache_dir.rglob("*.npy")) if cache_dir.is_dir() else 0


def bench_train(counts: dict, epochs: int, split_mode: str, cache_dir: Path, default_threads: int) -> dict:
    from training.engine.corpora import scan_corpus
    from training.engine.data import Example, WaveformCache
    from training.engine.experiment import Recipe, build_dataset
    from training.engine.splits import kfold_splits
    from training.engine.trainer import Trainer

    root = corpora_dir() / "ravdess"
    if not root.is_dir():
        return {"error": f"corpora not found at {corpora_dir()}: the training benchmark needs RAVDESS"}
    torch.set_num_threads(default_threads)
    recipe = Recipe()
    recipe = replace(recipe, train=replace(recipe.train, epochs=epochs, patience=0, members=1))  # one model's epoch
    ds = build_dataset([scan_corpus(root, probe_durations=False)], mode="all")
    split = kfold_splits([ds.labels[t] for t in ds.targets], [u.speaker for u in ds.utterances], ds.corpora, folds=6)[0]
    if split_mode == "all":
        train_idx, valid_idx = list(range(len(ds.utterances))), list(split.valid)
        split_note = ("train: all RAVDESS utterances; valid: fold 1's validation speakers "
                      f"({', '.join(split.valid_speakers)}), which are also in train: they only make the "
                      "per-epoch validation pass as costly as in a real run")
    else:
        train_idx, valid_idx = list(split.train), list(split.valid)
        split_note = f"6-fold leave-actors-out, fold 1 train/valid partition ({split.protocol}); test actors unused"
    limit = counts["train_limit"]
    if limit is not None:
        # --quick: an evenly spread subset, so the script is checked in seconds, not minutes.
        train_idx = train_idx[:: max(1, len(train_idx) // limit)][:limit]
        valid_idx = valid_idx[:: max(1, len(valid_idx) // max(1, limit // 4))][: max(1, limit // 4)]
        split_note += f"; --quick: subset of {len(train_idx)} train / {len(valid_idx)} valid utterances"
    needed = sorted(set(train_idx) | set(valid_idx))

    cache = WaveformCache(recipe.features, cache_dir)
    before = count_cache_entries(cache_dir)
    log(f"train: loading {len(needed)} waveforms through the cache at {cache_dir} ...")
    started = time.perf_counter()
    waves = cache.load_many([ds.utterances[i].path for i in needed])
    load_s = time.perf_counter() - started
    added = count_cache_entries(cache_dir) - before
    examples = {i: Example(w, ds.targets[i], ds.utterances[i].corpus, ds.utterances[i].speaker, str(ds.utterances[i].path))
                for i, w in zip(needed, waves, strict=True)}
    train = [examples[i] for i in train_idx]
    valid = [examples[i] for i in valid_idx]
    train_audio_s = sum(e.waveform.size for e in train) / SAMPLE_RATE

    events: list[EpochReport] = []

    def callback(event: Event) -> None:
        if isinstance(event, EpochReport):
            events.append(event)
            log(f"train: epoch {event.epoch}/{event.epochs} {event.duration:.1f}s (UA {event.ua:.3f})")
        elif isinstance(event, BatchProgress):
            log(f"train: epoch {event.epoch} batch {event.batch}/{event.batches}")

    with tempfile.TemporaryDirectory(prefix="bench-speed-train-") as tmp:
        trainer = Trainer(labels=ds.labels, feature_config=recipe.features, model_config=recipe.model_config(len(ds.labels)),
                          train_config=recipe.train, out_dir=tmp, callback=callback)
        started = time.perf_counter()
        trainer.fit(train, valid)
        fit_s = time.perf_counter() - started
    durations = [e.duration for e in events]
    per_epoch = statistics.median(durations) if durations else float("nan")
    out = {
        "corpus": str(root),
        "labels": ds.labels,
        "split": split_note,
        "train_utterances": len(train),
        "valid_utterances": len(valid),
        "train_audio_s": round(train_audio_s, 1),
        "recipe": {**recipe.to_dict(), "model_config": recipe.model_config(len(ds.labels)).to_dict()},
        "device": str(trainer.device),
        "torch_threads": torch.get_num_threads(),
        "cache": {"dir": str(cache_dir), "load_s": round(load_s, 2), "new_entries": added, "warm": added == 0,
                  "note": "warm = every waveform came from the on-disk cache (no decoding)"},
        "epochs": epochs,
        "epoch_durations_s": [round(d, 2) for d in durations],
        "per_epoch_s": round(per_epoch, 2),
        "per_epoch_statistic": "median of the epoch events' 'duration' (training pass + validation pass)",
        "fit_wall_s": round(fit_s, 2),
        "fit_overhead_s": round(fit_s - sum(durations), 2),
        "fit_overhead_note": "feature statistics pass, model set-up and last.pt writes, outside the epoch durations",
        "target_epoch_s_max": TARGETS["train_epoch_s_max"],
    }
    if limit is None:
        out["target_met"] = per_epoch <= TARGETS["train_epoch_s_max"]
    else:
        scaled = per_epoch * len(ds.utterances) / max(1, len(train))
        out["per_epoch_s_scaled_to_all"] = round(scaled, 1)
        out["target_met"] = None
        out["target_note"] = "--quick trains on a subset: not comparable with the target (the scaled value is a rough guide)"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, to check the script")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--model", default=None, help="checkpoint for classify/batch (default: random weights)")
    parser.add_argument("--no-tta", action="store_true", help="classify and batch: each model once, at 1.0 (no test-time augmentation)")
    parser.add_argument("--members", type=int, default=None,
                        help="classify: without --model, a random seed ensemble of this many models (default: the recipe's)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 2, --quick 1)")
    parser.add_argument("--split", choices=("all", "fold1"), default="all",
                        help="train on all 1440 utterances (default) or on fold 1's train partition")
    parser.add_argument("--cache-dir", default=None, help="decoded-audio cache (default: var/cache/bench, as bench/accuracy.py)")
    args = parser.parse_args()

    counts = COUNTS[args.quick]
    default_threads = torch.get_num_threads()
    results: dict = {"benchmark": "speed", "quick": args.quick, "machine": machine(),
                     "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "targets": TARGETS, "results": {}}
    started = time.perf_counter()
    for section in SECTIONS:
        if section not in args.only:
            continue
        log(f"== {section}")
        if section == "frontend":
            results["results"]["frontend"] = bench_frontend(counts)
        elif section == "classify":
            results["results"]["classify_3s"] = bench_classify(counts, args.model, args.members, not args.no_tta)
        elif section == "batch":
            results["results"]["batch_throughput"] = bench_batch(counts, args.model, default_threads, not args.no_tta)
        else:
            epochs = args.epochs or counts["train_epochs"]
            cache_dir = Path(args.cache_dir) if args.cache_dir else ROOT / "var" / "cache" / "bench"
            results["results"]["train_epoch"] = bench_train(counts, epochs, args.split, cache_dir, default_threads)
        torch.set_num_threads(default_threads)
    res = results["results"]
    targets_met = {}
    if "frontend" in res:
        targets_met["frontend_speedup_ge_5x"] = res["frontend"].get("target_met")
    if "classify_3s" in res:
        targets_met["classify_3s_median_le_15ms"] = res["classify_3s"].get("target_met")
    if "train_epoch" in res:
        targets_met["train_epoch_le_30s"] = res["train_epoch"].get("target_met")
    results["targets_met"] = targets_met
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
