"""Training data: a waveform cache (audio is decoded and trimmed once), length-bucketed
batches of padded sequences, and augmentation (gain, speed, noise on the waveform;
SpecAugment masks on the features).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recognition.engine.audio import decode_audio
from recognition.engine.config import known_fields
from recognition.engine.feature_stats import pad_batch
from recognition.engine.features import (
    FeatureConfig,
    FeatureExtractor,
    FeatureStats,
    prepare_waveform,
)
from recognition.engine.tta import change_speed

__all__ = [
    "Example",
    "WaveformCache",
    "AugmentConfig",
    "bucket_batches",
    "collate_centres",
    "assign_speaker_centres",
    "augment_waveform",
    "class_weights",
    "epoch_order",
    "feature_stats",
    "spec_augment",
]


@dataclass
class Example:
    """One labelled utterance ready for training: waveform ``(samples,)`` float32 at 16 kHz."""

    waveform: np.ndarray
    label: int
    corpus: str
    speaker: str | None = None
    path: str = ""
    # The speaker's mean feature vector ``(n_features,)`` for ``speaker_cmn`` features; None
    # when the speaker is unknown (the utterance's own mean stands in).
    centre: np.ndarray | None = None
    # A frozen encoder's states ``(frames, n_features)`` float16, computed once (StateCache);
    # when set, training and scoring read them instead of the waveform.
    states: np.ndarray | None = None

    @property
    def inputs(self) -> np.ndarray:
        """What the front end reads: the cached states, else the waveform."""
        return self.waveform if self.states is None else self.states


class WaveformCache:
    """Decoded and trimmed waveforms, keyed by file identity and the trimming settings.

    Kept in memory and, when ``cache_dir`` is given, as ``.npy`` files (float16, half the
    space; the front end's log compression makes the rounding irrelevant) so later runs
    skip decoding entirely. With a ``cache_dir``, a waveform just decoded is rounded to
    float16 as well, so a run sees the same samples whether its cache was cold or warm
    (otherwise the first run of a seed trains on other data than every later one).
    """

    def __init__(self, feature_config: FeatureConfig, cache_dir: str | os.PathLike | None = None) -> None:
        self.feature_config = feature_config
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._memory: dict[str, np.ndarray] = {}

    def _key(self, path: Path) -> str:
        st = path.stat()
        cfg = self.feature_config
        ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{cfg.sample_rate}|{cfg.trim}|{cfg.trim_top_db}"
        return hashlib.sha1(ident.encode()).hexdigest()

    def get(self, path: str | os.PathLike) -> np.ndarray:
        path = Path(path)
        key = self._key(path)
        if key in self._memory:
            return self._memory[key]
        wav = None
        disk = self.cache_dir / key[:2] / f"{key}.npy" if self.cache_dir else None
        if disk is not None and disk.is_file():
            try:
                wav = np.load(disk).astype(np.float32)
            except (OSError, ValueError):
                wav = None  # a damaged cache entry is rebuilt, never trusted
        if wav is None:
            wav = prepare_waveform(decode_audio(path, sample_rate=self.feature_config.sample_rate), self.feature_config)
            wav = np.ascontiguousarray(wav, dtype=np.float32)
            if disk is not None:
                stored = wav.astype(np.float16)
                disk.parent.mkdir(parents=True, exist_ok=True)
                tmp = disk.with_suffix(f".{os.getpid()}.tmp")
                with open(tmp, "wb") as fh:
                    np.save(fh, stored)
                os.replace(tmp, disk)
                wav = stored.astype(np.float32)
        self._memory[key] = wav
        return wav

    def load_many(self, paths: Sequence[str | os.PathLike], progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
        out = []
        for i, p in enumerate(paths):
            out.append(self.get(p))
            if progress:
                progress(i + 1, len(paths))
        return out


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation switches and strengths (training only)."""

    enabled: bool = True
    gain_db: float = 6.0
    speed: tuple[float, ...] = (0.9, 1.0, 1.1)
    noise_prob: float = 0.1
    noise_snr_db: tuple[float, float] = (15.0, 40.0)
    # Light masking: with at most 80 epochs on a 2-core CPU, heavier regularisation only slows learning.
    freq_masks: int = 1
    freq_mask_width: int = 8
    time_masks: int = 1
    time_mask_fraction: float = 0.1

    def to_dict(self) -> dict:
        data = asdict(self)
        data["speed"] = list(self.speed)
        data["noise_snr_db"] = list(self.noise_snr_db)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> AugmentConfig:
        data = known_fields(cls, data, "augmentation settings", retired={"freq_warp": 0.0})
        for key in ("speed", "noise_snr_db"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def augment_waveform(wav: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random speed (resampling: tempo and pitch together), gain and additive noise on one
    ``(samples,)`` waveform."""
    if not config.enabled:
        return wav
    factor = float(rng.choice(config.speed)) if config.speed else 1.0
    wav = change_speed(wav, factor)
    if config.gain_db > 0:
        wav = wav * np.float32(10 ** (rng.uniform(-config.gain_db, config.gain_db) / 20))
    if config.noise_prob > 0 and rng.random() < config.noise_prob:
        power = float(np.mean(wav * wav)) + 1e-12
        snr = rng.uniform(*config.noise_snr_db)
        wav = wav + rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), wav.size).astype(np.float32)
    return wav.astype(np.float32, copy=False)


def spec_augment(feats: Tensor, lengths: Tensor, config: AugmentConfig, generator: torch.Generator, *, layers: int = 0) -> Tensor:
    """SpecAugment frequency and time masks, filled with 0 (the normalised mean).

    feats ``(batch, frames, n_features)``; lengths ``(batch,)``. Masks stay inside valid frames.
    ``layers`` > 0: the features are that many encoder layers' states side by side, and a
    frequency mask becomes a channel mask: the same channels of every layer (the layers
    share one residual stream, so a channel means the same thing in each).
    """
    if not config.enabled:
        return feats
    feats = feats.clone()
    batch, frames, n_feat = feats.shape
    groups = feats.view(batch, frames, max(1, layers), -1)  # (batch, frames, layers, channels); a view
    n_feat = groups.shape[3]
    for b in range(batch):
        length = int(lengths[b])
        for _ in range(config.freq_masks):
            width = int(torch.randint(0, config.freq_mask_width + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, n_feat - width), (1,), generator=generator))
            groups[b, :length, :, start : start + width] = 0
        max_t = int(config.time_mask_fraction * length)
        for _ in range(config.time_masks):
            width = int(torch.randint(0, max_t + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, length - width), (1,), generator=generator))
            feats[b, start : start + width] = 0
    return feats


def bucket_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None, *, drop_singletons: bool = False) -> list[list[int]]:
    """Group indices of similar length into batches (less padding); shuffled when ``rng`` is given.

    Sorting by length with a little random jitter keeps batches varied between epochs.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if rng is not None:
        jitter = rng.uniform(0.9, 1.1, lengths.size)
        order = np.argsort(lengths * jitter, kind="stable")
    else:
        order = np.argsort(lengths, kind="stable")
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if drop_singletons and len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())  # BatchNorm cannot train on a batch of one
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def assign_speaker_centres(examples: Sequence[Example], feature_config: FeatureConfig) -> None:
    """Give every example with a known speaker its speaker's mean feature vector (``speaker_cmn``).

    Each speaker's mean comes from that speaker's own (unaugmented, unlabelled) audio only, so
    it leaks nothing across a speaker-independent split; a held-out speaker is normalised with
    their own audio, as a live session is with what it has heard so far.
    """
    if not feature_config.speaker_cmn:
        return
    extractor = FeatureExtractor(feature_config)
    for members in _by_speaker(e for e in examples if e.speaker is not None).values():
        centre = extractor.speaker_mean([e.inputs for e in members]).numpy()
        for e in members:
            e.centre = centre


def _by_speaker(examples: Iterable[Example]) -> dict[tuple[str, str | None], list[Example]]:
    groups: dict[tuple[str, str | None], list[Example]] = {}
    for e in examples:
        groups.setdefault((e.corpus, e.speaker), []).append(e)
    return groups


def collate_centres(examples: Sequence[Example], feature_config: FeatureConfig) -> Tensor | None:
    """The ``centres`` argument of :meth:`FeatureExtractor.forward` for these examples:
    ``(batch, n_features)`` with NaN rows where the speaker mean is unknown; None when the
    features are not speaker-normalised."""
    if not feature_config.speaker_cmn:
        return None
    out = torch.full((len(examples), feature_config.n_features), float("nan"))
    for row, e in enumerate(examples):
        if e.centre is not None:
            out[row] = torch.from_numpy(e.centre)
    return out


def batches_of(examples: Sequence[Example], batch_size: int) -> Iterator[list[int]]:
    """Deterministic length-sorted batches for evaluation."""
    yield from bucket_batches([e.inputs.shape[0] for e in examples], batch_size, None)


def class_weights(examples: Sequence[Example], n_classes: int) -> Tensor:
    """``(n_classes,)`` loss weights inversely proportional to each class's count (0 where absent)."""
    counts = np.bincount([e.label for e in examples], minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def epoch_order(examples: Sequence[Example], rng: np.random.Generator, *, balanced: bool) -> np.ndarray:
    """The indices one training epoch visits: each example once, or with ``balanced`` drawn with
    replacement so every (corpus, class) cell gets the same expected share of the epoch."""
    if not balanced:
        return np.arange(len(examples))
    cells = [(e.corpus, e.label) for e in examples]
    counts: dict[tuple[str, int], int] = {}
    for c in cells:
        counts[c] = counts.get(c, 0) + 1
    p = np.array([1.0 / counts[c] for c in cells])
    return rng.choice(len(examples), size=len(examples), replace=True, p=p / p.sum())


def feature_stats(extractor: FeatureExtractor, examples: Sequence[Example]) -> FeatureStats:
    """Per-feature mean and deviation over every frame of ``examples`` (centred as training
    centres them), computed on the extractor's device; with ``unknown_speaker="population"``
    also the population's speaker mean (:class:`FeatureStats` ``centre``)."""
    device = extractor.mean.device

    def frames() -> Iterator[Tensor]:
        with torch.inference_mode():
            for idx in batches_of(examples, 64):
                waves, lengths = pad_batch([examples[i].inputs for i in idx])
                centres = collate_centres([examples[i] for i in idx], extractor.config)
                feats, flen = extractor.raw(waves.to(device), lengths.to(device), centres)
                for b in range(feats.shape[0]):
                    yield feats[b, : flen[b]].cpu()

    stats = FeatureStats.accumulate(frames())
    if extractor.config.unknown_speaker == "population":
        known = [e.centre for e in examples if e.centre is not None]
        if known:  # every training example's speaker mean, averaged: speakers weigh by their speech
            stats.centre = torch.from_numpy(np.mean(known, axis=0, dtype=np.float64)).float()
    return stats
