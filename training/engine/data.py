"""Training data: a waveform cache (audio is decoded and trimmed once), length-bucketed
batches of padded sequences, and augmentation (gain, speed, noise on the waveform;
frequency warping and SpecAugment masks on the features).
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
from recognition.engine.features import (
    FeatureConfig,
    FeatureExtractor,
    SpeakerCentre,
    mel_points,
    prepare_waveform,
)
from recognition.engine.tta import change_speed

__all__ = [
    "Example",
    "WaveformCache",
    "AugmentConfig",
    "bucket_batches",
    "collate",
    "collate_centres",
    "assign_speaker_centres",
    "speaker_centres_at_speeds",
    "augment_waveform",
    "spec_augment",
    "warp_frequencies",
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
    # Vocal tract length perturbation: each example's Mel bands stretched along frequency by a
    # factor drawn uniformly from [1 - freq_warp, 1 + freq_warp] (0 = off; log-Mel features only).
    # Off: at 0.1 five models scored 0.640 against the default's 0.655 on RAVDESS (seed 4;
    # bench/RESULTS.md, "Not adopted").
    freq_warp: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.freq_warp <= 0.3:
            raise ValueError("freq_warp must be between 0 and 0.3")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["speed"] = list(self.speed)
        data["noise_snr_db"] = list(self.noise_snr_db)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> AugmentConfig:
        data = known_fields(cls, data, "augmentation settings")
        for key in ("speed", "noise_snr_db"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def augment_waveform(wav: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Random speed (resampling: tempo and pitch together), gain and additive noise.

    Returns the augmented ``(samples,)`` waveform and the speed it was played at.
    """
    if not config.enabled:
        return wav, 1.0
    factor = float(rng.choice(config.speed)) if config.speed else 1.0
    wav = change_speed(wav, factor)
    if config.gain_db > 0:
        wav = wav * np.float32(10 ** (rng.uniform(-config.gain_db, config.gain_db) / 20))
    if config.noise_prob > 0 and rng.random() < config.noise_prob:
        power = float(np.mean(wav * wav)) + 1e-12
        snr = rng.uniform(*config.noise_snr_db)
        wav = wav + rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), wav.size).astype(np.float32)
    return wav.astype(np.float32, copy=False), factor


def spec_augment(feats: Tensor, lengths: Tensor, config: AugmentConfig, generator: torch.Generator) -> Tensor:
    """SpecAugment frequency and time masks, filled with 0 (the normalised mean).

    feats ``(batch, frames, n_features)``; lengths ``(batch,)``. Masks stay inside valid frames.
    """
    if not config.enabled:
        return feats
    feats = feats.clone()
    batch, _, n_feat = feats.shape
    for b in range(batch):
        length = int(lengths[b])
        for _ in range(config.freq_masks):
            width = int(torch.randint(0, config.freq_mask_width + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, n_feat - width), (1,), generator=generator))
            feats[b, :length, start : start + width] = 0
        max_t = int(config.time_mask_fraction * length)
        for _ in range(config.time_masks):
            width = int(torch.randint(0, max_t + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, length - width), (1,), generator=generator))
            feats[b, start : start + width] = 0
    return feats


def warp_frequencies(feats: Tensor, factors: Sequence[float], config: FeatureConfig) -> Tensor:
    """Vocal tract length perturbation on log-Mel features: example ``b``'s spectrum is
    stretched along frequency by ``factors[b]`` (a formant at f moves to about f × factor).

    The warp is piecewise linear, as in VTLP: f → factor × f up to a boundary frequency, then a
    straight line that keeps the top of the band at the top. Each output band reads the input at
    the frequency that maps onto its centre, linearly interpolated between neighbouring bands.
    Applied to centred features it moves a speaker's deviations from their mean as a longer or
    shorter vocal tract would. feats ``(batch, frames, n_features)``, of which the first
    ``n_mels`` columns are Mel bands (any further columns are left as they are); padded frames
    stay zero.
    """
    if config.kind != "logmel":
        raise ValueError("frequency warping needs log-Mel features")
    n = config.n_mels
    points = mel_points(config.sample_rate, n, config.f_min, config.f_max)
    centres, top = points[1:-1], points[-1]
    boundary = 0.6 * top
    maps = np.zeros((len(factors), n, n), dtype=np.float32)
    for b, alpha in enumerate(factors):
        # Inverse of the forward warp: the input frequency that lands on each output centre.
        knee = boundary * min(alpha, 1.0) / alpha
        source = np.where(centres <= alpha * knee, centres / alpha,
                          knee + (centres - alpha * knee) * (top - knee) / (top - alpha * knee))
        position = np.interp(source, centres, np.arange(n, dtype=np.float64))
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, n - 1)
        frac = (position - low).astype(np.float32)
        maps[b, low, np.arange(n)] += 1.0 - frac
        maps[b, high, np.arange(n)] += frac
    warped = torch.bmm(feats[..., :n], torch.from_numpy(maps).to(feats.device, feats.dtype))
    return torch.cat([warped, feats[..., n:]], dim=-1) if feats.shape[-1] > n else warped


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


def collate(waves: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Zero-pad waveforms into ``(batch, max_samples)`` with lengths ``(batch,)``."""
    lengths = torch.tensor([w.size for w in waves], dtype=torch.int64)
    out = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(waves):
        out[i, : w.size] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    return out, lengths


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
        centre = extractor.speaker_mean([e.waveform for e in members]).numpy()
        for e in members:
            e.centre = centre


def speaker_centres_at_speeds(
    examples: Sequence[Example], extractor: FeatureExtractor, speeds: Sequence[float]
) -> dict[tuple[str, str, float], Tensor]:
    """Each speaker's mean ``(n_features,)`` over their audio changed to each of ``speeds``,
    keyed ``(corpus, speaker, speed)``, for the examples that have a speaker mean (``centre``)."""
    out: dict[tuple[str, str, float], Tensor] = {}
    if not speeds:
        return out
    for (corpus, speaker), members in _by_speaker(e for e in examples if e.centre is not None).items():
        centre = SpeakerCentre(extractor, speeds)
        centre.add([e.waveform for e in members])
        for speed, row in zip(speeds, centre.value.reshape(len(speeds), -1), strict=True):
            out[(corpus, speaker, float(speed))] = row
    return out


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
    yield from bucket_batches([e.waveform.size for e in examples], batch_size, None)
