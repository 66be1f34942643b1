"""Statistics over features: the training set's per-feature mean and deviation
(:class:`FeatureStats`) and one speaker's running mean (:class:`SpeakerCentre`)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from .tta import change_speed

if TYPE_CHECKING:
    from .features import FeatureExtractor

__all__ = ["FeatureStats", "SpeakerCentre", "pad_batch", "time_mask"]


@dataclass
class FeatureStats:
    """Per-feature mean and standard deviation over the training set, shapes ``(n_features,)``.

    ``centre``: the population's speaker mean ``(n_features,)`` (the mean of the training
    examples' speaker means), for audio whose speaker is unknown; None where the features
    centre such audio on itself (FeatureConfig.unknown_speaker)."""

    mean: Tensor
    std: Tensor
    centre: Tensor | None = None

    @classmethod
    def identity(cls, n_features: int) -> FeatureStats:
        return cls(torch.zeros(n_features), torch.ones(n_features))

    @classmethod
    def accumulate(cls, batches: list[Tensor] | tuple[Tensor, ...] | object) -> FeatureStats:
        """Mean and std over frames of an iterable of ``(frames, n_features)`` tensors."""
        total, total_sq, count = None, None, 0
        for feats in batches:
            feats = feats.double()
            s, sq = feats.sum(0), (feats * feats).sum(0)
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            count += feats.shape[0]
        if count == 0:
            raise ValueError("no frames to compute feature statistics from")
        mean = total / count
        var = torch.clamp(total_sq / count - mean * mean, min=1e-8)
        return cls(mean.float(), var.sqrt().float())


class SpeakerCentre:
    """Running mean of one speaker's un-centred features over all frames heard so far.

    For ``speaker_cmn`` features: training takes it over each speaker's utterances, a live
    session over the speech it has received (each new segment is added before it is
    classified, so the first segment is centred on itself, as with per-utterance CMN).

    ``speeds`` (test-time augmentation): keep one mean per playback speed, each over the
    audio changed to that speed, so every speed variant of an utterance is centred on the
    speaker as heard at that speed.
    """

    def __init__(self, extractor: FeatureExtractor, speeds: Sequence[float] = (1.0,)) -> None:
        if not speeds:
            raise ValueError("at least one speed is needed")
        self._extractor = extractor
        self._speeds = tuple(float(s) for s in speeds)
        self._total = torch.zeros(len(self._speeds), extractor.config.n_features, dtype=torch.float64)
        self._frames = [0] * len(self._speeds)
        self._lock = threading.Lock()  # a live session's segments add from several pool threads

    @property
    def frames(self) -> int:
        """Frames added at speed 1.0 (at the first speed when 1.0 is not kept)."""
        return self._frames[self._speeds.index(1.0) if 1.0 in self._speeds else 0]

    @property
    def speeds(self) -> tuple[float, ...]:
        return self._speeds

    @property
    def value(self) -> Tensor | None:
        """The mean ``(n_features,)`` float32 on the CPU, or ``(n_speeds, n_features)`` when
        kept for several speeds; None before any audio."""
        with self._lock:
            return self._value()

    def _value(self) -> Tensor | None:
        if not all(self._frames):
            return None
        mean = self._extractor.speaker_estimate(self._total, torch.tensor(self._frames, dtype=torch.float64))
        return mean[0] if len(self._speeds) == 1 else mean

    @torch.inference_mode()
    def add(self, waveforms: Sequence[np.ndarray], batch_size: int = 64) -> None:
        """Add utterances (each ``(samples,)`` float, already trimmed as the features expect,
        or precomputed features ``(frames, n_features)``, at speed 1.0 only)."""
        sums = [self._sum([w if speed == 1.0 else change_speed(w, speed) for w in waveforms], batch_size) for speed in self._speeds]
        self.add_totals(torch.stack([total for total, _ in sums]), torch.tensor([frames for _, frames in sums]))

    def add_totals(self, totals: Tensor, frames: Tensor) -> Tensor | None:
        """Add features already summed: ``totals`` ``(n_speeds, n_features)`` over ``frames``
        ``(n_speeds,)`` frames. Returns the new :attr:`value` (read in the same step, so
        threads adding at once each get a mean that includes their own audio)."""
        if totals.shape != self._total.shape or frames.shape != (len(self._speeds),):
            raise ValueError(f"totals {tuple(totals.shape)} and frames {tuple(frames.shape)} do not fit this running mean")
        with self._lock:
            self._total += totals.double()
            self._frames = [a + int(b) for a, b in zip(self._frames, frames.tolist(), strict=True)]
            return self._value()

    def _sum(self, waveforms: Sequence[np.ndarray], batch_size: int) -> tuple[Tensor, int]:
        """(sum of the un-centred feature vectors ``(n_features,)`` float64, frame count)."""
        device = self._extractor.window.device
        total, count = torch.zeros(self._extractor.config.n_features, dtype=torch.float64), 0
        order = sorted(range(len(waveforms)), key=lambda i: waveforms[i].shape[0])  # less padding
        for start in range(0, len(order), batch_size):
            batch, lengths = pad_batch([waveforms[i] for i in order[start : start + batch_size]])
            feats, flen = self._extractor.uncentred(batch.to(device), lengths.to(device))
            feats = feats * time_mask(flen, feats.shape[1])[..., None]
            total += feats.sum((0, 1)).double().cpu()
            count += int(flen.sum())
        return total, count


def pad_batch(arrays: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Zero-pad waveforms ``(samples_i,)`` (or features ``(frames_i, n)``) into ``(batch,
    longest)`` (or ``(batch, longest, n)``) float32, with lengths ``(batch,)``."""
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.int64)
    batch = torch.zeros(len(arrays), int(lengths.max()), *arrays[0].shape[1:], dtype=torch.float32)
    for row, a in enumerate(arrays):
        batch[row, : a.shape[0]] = torch.from_numpy(np.ascontiguousarray(a))  # float16 states widen in the copy
    return batch, lengths


def time_mask(lengths: Tensor, frames: int) -> Tensor:
    """``(batch, frames)`` float mask, 1 on valid frames."""
    return (torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]).float()
