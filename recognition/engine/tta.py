"""Speed changes for augmentation and test-time augmentation (TTA).

Training resamples each utterance by a random factor from its speed set (tempo and pitch
together). At inference a model can be asked the same question at each of those speeds and
its answers averaged: the model has learned all of them, and their errors differ, so on
RAVDESS this raised speaker-independent UA (bench/RESULTS.md).

A seed ensemble of up to three models asks every one of its models at every speed (models ×
speeds passes, at most :data:`MAX_PASSES`): on RAVDESS it gained over asking each model once
at 1.0 in every run measured; spreading the models over the speeds (one speed each) gained
less. Bigger ensembles ask each model once: five models once each beat three at every speed,
and asking the same five at every speed gained nothing for three times the passes
(bench/RESULTS.md, "How many models?").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["change_speed", "tta_speeds", "inference_speeds", "MAX_PASSES"]

# The most passes (models × speeds) the app asks of one recording: a three-model ensemble at
# its three speeds, 9. Bigger ensembles ask each model once, at 1.0: on RAVDESS five models
# once each did as well as the same five at every speed, at a third of the passes (bench/RESULTS.md).
MAX_PASSES = 9


def change_speed(waveform: np.ndarray, factor: float) -> np.ndarray:
    """``waveform`` ``(samples,)`` played ``factor`` times faster: ``(round(samples / factor),)``
    float32, by linear interpolation (what training's speed augmentation does)."""
    if factor == 1.0 or waveform.size <= 1:
        return np.asarray(waveform, dtype=np.float32)
    n_out = max(1, int(round(waveform.size / factor)))
    return np.interp(np.linspace(0, waveform.size - 1, n_out), np.arange(waveform.size), waveform).astype(np.float32)


def tta_speeds(train_config: Mapping[str, Any] | None) -> tuple[float, ...]:
    """The speeds a model trained with ``train_config`` (``TrainConfig.to_dict()``, as stored in
    its checkpoint) is asked at: its speed augmentation's set, always with 1.0, sorted;
    ``(1.0,)`` when it was trained without speed augmentation or the config is unknown."""
    augment = (train_config or {}).get("augment") or {}
    if not augment.get("enabled", True):
        return (1.0,)
    speeds: Sequence[float] = augment.get("speed") or ()
    valid = {float(s) for s in speeds if isinstance(s, (int, float)) and 0.5 <= float(s) <= 2.0}
    return tuple(sorted(valid | {1.0}))


def inference_speeds(trained: Sequence[float], *, members: int = 1, tta: bool = True) -> tuple[float, ...]:
    """The speeds the app asks a checkpoint of ``members`` models at, given those it was
    ``trained`` at (:func:`tta_speeds`): all of them with ``tta`` while ``members`` × speeds
    stays within :data:`MAX_PASSES`, otherwise ``(1.0,)``. Every model of a seed ensemble is
    asked at every speed returned."""
    speeds = tuple(float(s) for s in trained)
    if not tta or max(1, members) * len(speeds) > MAX_PASSES:
        return (1.0,)
    return speeds
