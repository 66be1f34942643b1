"""Front ends shared by training and inference: log-Mel and MFCC on ``torch.stft``, and the
states of a pretrained Whisper-base encoder (``kind="whisper"``, :mod:`.whisper`).

Frames are taken with ``center=False``: every frame lies wholly inside the signal, so
zero padding added to batch utterances of different lengths never changes a valid frame
(padding invariance is tested). Normalisation statistics are computed on the training
set and travel in the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from . import SAMPLE_RATE
from .config import known_fields
from .trim import TRIM_METHODS, trim_bounds
from .tta import change_speed
from .whisper import get_encoder, state_frames

__all__ = [
    "FeatureConfig",
    "FeatureExtractor",
    "FeatureStats",
    "SpeakerCentre",
    "mel_filterbank",
    "mel_points",
    "hz_to_mel",
    "mel_to_hz",
    "prepare_waveform",
    "trim_span",
    "frame_count",
    "FEATURE_KINDS",
    "MEAN_NORMS",
]

# "whisper": every block's output of the frozen Whisper-base encoder, one vector per 20 ms.
FEATURE_KINDS = ("logmel", "mfcc", "whisper")
_WHISPER_LAYERS, _WHISPER_WIDTH = 6, 512
# Mean normalisation of each band before the training-set statistics: none, per utterance
# (``utterance_cmn``) or per speaker (``speaker_cmn``).
MEAN_NORMS = ("none", "utterance", "speaker")
_AMIN = 1e-10  # power floor before the log, as in librosa's power_to_db
# On the CPU a batch is processed in slices of about this many frames: the STFT's buffers for
# a whole batch (tens of MB) leave the cache and fresh pages are faulted in on every call,
# which made a batch of 32 four-second clips about 3x slower than the same clips one by one.
_CPU_SLICE_FRAMES = 1536


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that defines the features; stored in every checkpoint."""

    kind: str = "logmel"
    sample_rate: int = SAMPLE_RATE
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float | None = None
    n_mfcc: int = 20
    deltas: bool = True
    utterance_cmn: bool = False
    # Subtract the speaker's mean feature vector (over all of that speaker's speech) instead of
    # the utterance's: removes the speaker's colouring but keeps what sets one utterance apart
    # from the speaker's others (loudness, brightness). Without a known speaker mean the
    # utterance's own mean stands in (see FeatureExtractor.raw).
    speaker_cmn: bool = False
    trim: str = "energy"
    trim_top_db: float = 35.0

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, not {self.kind!r}")
        if self.kind == "whisper":
            if self.sample_rate != SAMPLE_RATE:
                raise ValueError(f"the Whisper front end needs {SAMPLE_RATE} Hz audio")
            # The encoder's own framing: a 25 ms window, one state per 20 ms.
            object.__setattr__(self, "win_ms", 25.0)
            object.__setattr__(self, "hop_ms", 20.0)
        if self.trim not in TRIM_METHODS:
            raise ValueError(f"trim must be one of {TRIM_METHODS}, not {self.trim!r}")
        if self.win_ms <= 0 or self.hop_ms <= 0 or self.hop_length < 1:
            raise ValueError("win_ms and hop_ms must be positive")
        for name in ("n_fft", "n_mels", "n_mfcc", "sample_rate"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.win_length > self.n_fft:
            raise ValueError("the window is longer than n_fft")
        f_max = self.sample_rate / 2 if self.f_max is None else self.f_max
        if not 0 <= self.f_min < f_max <= self.sample_rate / 2:
            raise ValueError("need 0 <= f_min < f_max <= sample_rate / 2")
        if self.kind == "mfcc" and not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError("need 1 <= n_mfcc <= n_mels")
        if self.utterance_cmn and self.speaker_cmn:
            raise ValueError("choose per-utterance or per-speaker mean normalisation, not both")

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def mean_norm(self) -> str:
        """The mean normalisation as one of :data:`MEAN_NORMS`."""
        return "speaker" if self.speaker_cmn else "utterance" if self.utterance_cmn else "none"

    @staticmethod
    def mean_norm_fields(name: str) -> dict[str, bool]:
        """The ``utterance_cmn``/``speaker_cmn`` fields for one of :data:`MEAN_NORMS`."""
        if name not in MEAN_NORMS:
            raise ValueError(f"mean normalisation must be one of {MEAN_NORMS}, not {name!r}")
        return {"utterance_cmn": name == "utterance", "speaker_cmn": name == "speaker"}

    @property
    def encoder_layers(self) -> int:
        """Encoder blocks whose outputs stand side by side in each feature vector (0: no encoder)."""
        return _WHISPER_LAYERS if self.kind == "whisper" else 0

    @property
    def n_features(self) -> int:
        if self.kind == "whisper":
            return _WHISPER_LAYERS * _WHISPER_WIDTH
        if self.kind == "logmel":
            return self.n_mels
        return self.n_mfcc * (3 if self.deltas else 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        return cls(**known_fields(cls, data, "feature settings", retired={"periodicity_bands": 0}))


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freq / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    log_region = freq >= min_log_hz
    mels = np.where(log_region, min_log_mel + np.log(np.maximum(freq, 1e-12) / min_log_hz) / logstep, mels)
    return mels


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def mel_points(sample_rate: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """The ``n_mels + 2`` frequencies in Hz, evenly spaced in Mel from ``f_min`` to ``f_max``
    (default: half the sample rate): filter ``i`` rises from point ``i``, peaks at ``i + 1``
    (its centre) and falls to ``i + 2``."""
    f_max = sample_rate / 2 if f_max is None else f_max
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """Triangular, area-normalised (Slaney) Mel filters for the real ``sample_rate``.

    Returns:
        float64 array of shape ``(n_mels, n_fft // 2 + 1)``.
    """
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    points = mel_points(sample_rate, n_mels, f_min, f_max)
    widths = np.diff(points)
    ramps = points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (points[2:] - points[:-2]))[:, None]
    return weights


def _dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II basis, shape ``(n_mfcc, n_mels)`` (scipy's ``dct(type=2, norm='ortho')``)."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)
    return basis


def frame_count(samples: int | Tensor, config: FeatureConfig) -> int | Tensor:
    """Number of frames for a signal of ``samples`` samples (signals shorter than n_fft give one)."""
    if config.kind == "whisper":
        return state_frames(samples)
    if isinstance(samples, Tensor):
        return torch.div(samples - config.n_fft, config.hop_length, rounding_mode="floor").add_(1).clamp_(min=1)
    return max(1, (samples - config.n_fft) // config.hop_length + 1)


def trim_span(waveform: np.ndarray, config: FeatureConfig) -> tuple[int, int]:
    """``[start, end)`` samples kept by the configured edge-silence trimming."""
    if config.trim == "none":
        return 0, int(waveform.shape[0])
    return trim_bounds(waveform, sample_rate=config.sample_rate, method=config.trim, top_db=config.trim_top_db)


def prepare_waveform(waveform: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Apply the configured edge-silence trimming. Shape ``(samples,)`` in and out."""
    start, end = trim_span(waveform, config)
    return waveform[start:end]


@dataclass
class FeatureStats:
    """Per-feature mean and standard deviation over the training set, shapes ``(n_features,)``."""

    mean: Tensor
    std: Tensor

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


class FeatureExtractor(nn.Module):
    """Batched waveform → normalised features on the module's device.

    ``forward(waveforms, lengths)``:
        waveforms: ``(batch, samples)`` float32, zero-padded.
        lengths: ``(batch,)`` valid samples per row.
    Returns:
        features ``(batch, frames, n_features)`` with padded frames set to 0,
        frame lengths ``(batch,)`` int64.
    """

    def __init__(self, config: FeatureConfig, stats: FeatureStats | None = None) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.win_length, periodic=True), persistent=False)
        fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
        # One buffer per band, so .to(device) moves them; (first, last, lo, hi, name) per band.
        self._mel_bands = []
        for i, (first, last, lo, hi, weights) in enumerate(_mel_bands(fb)):
            self.register_buffer(f"mel_band{i}", weights, persistent=False)
            self._mel_bands.append((first, last, lo, hi, f"mel_band{i}"))
        if config.kind == "mfcc":
            self.register_buffer("dct", torch.from_numpy(_dct_matrix(config.n_mfcc, config.n_mels)).float(), persistent=False)
        stats = stats or FeatureStats.identity(config.n_features)
        self.register_buffer("mean", stats.mean.clone().float())
        self.register_buffer("std", stats.std.clone().float())

    def set_stats(self, stats: FeatureStats) -> None:
        self.mean.copy_(stats.mean)
        self.std.copy_(stats.std)

    @property
    def stats(self) -> FeatureStats:
        return FeatureStats(self.mean.detach().cpu().clone(), self.std.detach().cpu().clone())

    def raw(self, waveforms: Tensor, lengths: Tensor, centres: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Features before the training-set statistics: ``(batch, frames, n_features)``, frame lengths ``(batch,)``.

        With ``utterance_cmn`` each row's own mean is subtracted. With ``speaker_cmn`` the row's
        speaker mean from ``centres`` ``(batch, n_features)`` is; a row of NaN (speaker mean
        unknown) or no ``centres`` falls back to the row's own mean.
        """
        return self.centred(*self.uncentred(waveforms, lengths), centres)

    def centred(self, feats: Tensor, frame_lengths: Tensor, centres: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`raw` from un-centred features ``(batch, frames, n_features)`` (for example
        cached encoder states) and their frame lengths ``(batch,)``."""
        cfg = self.config
        centring = cfg.utterance_cmn or cfg.speaker_cmn
        if not centring and int(frame_lengths.min()) == feats.shape[1]:
            return feats, frame_lengths  # no padded frames to zero (the common single-utterance case)
        mask = _time_mask(frame_lengths, feats.shape[1])
        if centring:
            denom = frame_lengths.clamp(min=1).to(feats.dtype)[:, None]
            centre = (feats * mask[..., None]).sum(1) / denom  # (batch, n_features)
            if cfg.speaker_cmn and centres is not None:
                centres = centres.to(device=feats.device, dtype=feats.dtype)
                centre = torch.where(torch.isfinite(centres).all(1, keepdim=True), centres, centre)
            feats = feats - centre[:, None, :]
        return feats * mask[..., None], frame_lengths

    def uncentred(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Log-Mel (or MFCC) features ``(batch, frames, n_features)`` before any mean removal;
        padded frames are not zeroed. Frame lengths ``(batch,)``. The Whisper kind runs the
        process's shared encoder (:func:`~recognition.engine.whisper.get_encoder`).

        ``waveforms`` may also be such features computed earlier, ``(batch, frames,
        n_features)`` with ``lengths`` in frames (a training run's cached encoder states):
        they are returned as they are, so every method here accepts either input."""
        if waveforms.dim() == 3:
            if waveforms.shape[2] != self.config.n_features:
                raise ValueError(f"precomputed features have {waveforms.shape[2]} values per frame, the config makes {self.config.n_features}")
            return waveforms, lengths.to(waveforms.device)
        if self.config.kind == "whisper":
            return get_encoder(waveforms.device)(waveforms, lengths)
        rows = max(1, _CPU_SLICE_FRAMES // int(frame_count(waveforms.shape[1], self.config)))
        if waveforms.device.type != "cpu" or waveforms.shape[0] <= rows:
            return self._uncentred(waveforms, lengths)
        # Every row is computed on its own anyway, so slicing the batch changes no value.
        parts = [self._uncentred(waveforms[i : i + rows], lengths[i : i + rows]) for i in range(0, waveforms.shape[0], rows)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _uncentred(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.config
        if waveforms.shape[1] < cfg.n_fft:
            waveforms = nn.functional.pad(waveforms, (0, cfg.n_fft - waveforms.shape[1]))
        spec = torch.stft(
            waveforms,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window,
            center=False,
            return_complex=True,
        )  # (batch, n_fft//2+1, frames), stored frame-major
        batch, frames = spec.shape[0], spec.shape[2]
        # Squared real and imaginary parts side by side, (batch * frames, 2 * bins): summing each
        # pair into |X|² is folded into the Mel weights, which are duplicated per pair.
        squares = torch.view_as_real(spec.transpose(1, 2)).reshape(batch * frames, -1).square_()
        mel = squares.new_empty(cfg.n_mels, batch * frames)
        for first, last, lo, hi, name in self._mel_bands:
            torch.mm(self._buffers[name], squares.T[lo:hi], out=mel[first:last])  # only the bins this band touches
        mel = _log10_(mel.clamp_(min=_AMIN)).mul_(10.0)
        feats = mel.view(cfg.n_mels, batch, frames).permute(1, 2, 0)  # (batch, frames, n_mels)
        frame_lengths = frame_count(lengths.to(feats.device), cfg).clamp_(max=frames)
        if cfg.kind == "mfcc":
            feats = torch.matmul(feats, self.dct.T)  # (batch, frames, n_mfcc)
            if cfg.deltas:
                d1 = _deltas(feats, frame_lengths)
                feats = torch.cat([feats, d1, _deltas(d1, frame_lengths)], dim=2)
        return feats, frame_lengths

    def forward(self, waveforms: Tensor, lengths: Tensor, centres: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.normalised(*self.raw(waveforms, lengths, centres))

    def normalised(self, feats: Tensor, frame_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Centred features ``(batch, frames, n_features)`` scaled by the training-set
        statistics, padded frames set to 0."""
        feats = (feats - self.mean) / self.std
        return feats * _time_mask(frame_lengths, feats.shape[1])[..., None], frame_lengths

    def extract(self, waveform: np.ndarray | Tensor, *, normalise: bool = True, centre: Tensor | None = None) -> Tensor:
        """One utterance ``(samples,)`` → features ``(frames, n_features)`` on the module's device.

        ``centre`` ``(n_features,)``: the speaker mean, for ``speaker_cmn`` features."""
        wav = torch.as_tensor(waveform, dtype=torch.float32, device=self.window.device)[None]
        lengths = torch.tensor([wav.shape[1]], device=wav.device)
        centres = None if centre is None else centre[None]
        feats, _ = self(wav, lengths, centres) if normalise else self.raw(wav, lengths, centres)
        return feats[0]

    def speaker_mean(self, waveforms: Sequence[np.ndarray]) -> Tensor:
        """The mean un-centred feature vector ``(n_features,)`` over all frames of one speaker's
        utterances (each ``(samples,)``), float32 on the CPU: the ``centres`` row for ``speaker_cmn``."""
        centre = SpeakerCentre(self)
        centre.add(waveforms)
        if centre.value is None:
            raise ValueError("no audio to compute a speaker mean from")
        return centre.value


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
        if not all(self._frames):
            return None
        mean = (self._total / torch.tensor(self._frames, dtype=torch.float64)[:, None]).float()
        return mean[0] if len(self._speeds) == 1 else mean

    @torch.inference_mode()
    def add(self, waveforms: Sequence[np.ndarray], batch_size: int = 64) -> None:
        """Add utterances (each ``(samples,)`` float, already trimmed as the features expect,
        or precomputed features ``(frames, n_features)``, at speed 1.0 only)."""
        for row, speed in enumerate(self._speeds):
            total, frames = self._sum([w if speed == 1.0 else change_speed(w, speed) for w in waveforms], batch_size)
            self._total[row] += total
            self._frames[row] += frames

    def _sum(self, waveforms: Sequence[np.ndarray], batch_size: int) -> tuple[Tensor, int]:
        """(sum of the un-centred feature vectors ``(n_features,)`` float64, frame count)."""
        device = self._extractor.window.device
        total, count = torch.zeros(self._extractor.config.n_features, dtype=torch.float64), 0
        order = sorted(range(len(waveforms)), key=lambda i: waveforms[i].shape[0])  # less padding
        for start in range(0, len(order), batch_size):
            chunk = [waveforms[i] for i in order[start : start + batch_size]]
            lengths = torch.tensor([w.shape[0] for w in chunk], dtype=torch.int64)
            batch = torch.zeros(len(chunk), int(lengths.max()), *chunk[0].shape[1:], dtype=torch.float32)
            for row, w in enumerate(chunk):
                batch[row, : w.shape[0]] = torch.as_tensor(w, dtype=torch.float32)
            feats, flen = self._extractor.uncentred(batch.to(device), lengths.to(device))
            feats = feats * _time_mask(flen, feats.shape[1])[..., None]
            total += feats.sum((0, 1)).double().cpu()
            count += int(flen.sum())
        return total, count


def _mel_bands(fb: np.ndarray, band: int = 8) -> list[tuple[int, int, int, int, Tensor]]:
    """The filterbank cut into bands of ``band`` filters, each kept only over the FFT bins it touches.

    A Mel filter is non-zero over a few bins, so one dense ``(n_mels, bins)`` product does about
    eight times the needed work; a product per band skips the zeros. Every bin's weight is written
    twice, for the squared real and imaginary parts that sit side by side in the input.

    Returns:
        per band ``(first filter, last filter + 1, first column, last column + 1, weights)``,
        the columns counting the interleaved ``2 * bins`` layout, weights float32
        ``(filters, columns)``.
    """
    bands = []
    for first in range(0, fb.shape[0], band):
        last = min(fb.shape[0], first + band)
        touched = np.flatnonzero(fb[first:last].any(axis=0))
        lo, hi = (int(touched[0]), int(touched[-1]) + 1) if touched.size else (0, 1)
        weights = np.repeat(fb[first:last, lo:hi], 2, axis=1)  # (filters, 2 * (hi - lo))
        bands.append((first, last, 2 * lo, 2 * hi, torch.from_numpy(weights).float().contiguous()))
    return bands


def _log10_(x: Tensor) -> Tensor:
    """``x.log10_()``; on the CPU through numpy, whose vectorised log is about five times faster.

    ``x`` is the contiguous Mel buffer of :meth:`FeatureExtractor.raw`, which is never part of
    an autograd graph (its products write into ``out=``)."""
    if x.device.type != "cpu":
        return x.log10_()
    values = x.numpy()
    np.log10(values, out=values)
    return x


def _time_mask(lengths: Tensor, frames: int) -> Tensor:
    """``(batch, frames)`` float mask, 1 on valid frames."""
    return (torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]).float()


def _deltas(feats: Tensor, lengths: Tensor, width: int = 2) -> Tensor:
    """Regression deltas over ±``width`` frames, edges replicated per utterance (never into padding)."""
    batch, frames, _ = feats.shape
    t = torch.arange(frames, device=feats.device)[None, :]
    last = (lengths - 1).clamp(min=0)[:, None]
    out = torch.zeros_like(feats)
    for k in range(1, width + 1):
        ahead = torch.minimum(t + k, last).clamp(min=0)
        behind = torch.minimum((t - k).clamp(min=0), last)
        gather = lambda idx: torch.gather(feats, 1, idx[..., None].expand(batch, frames, feats.shape[2]))  # noqa: E731
        out = out + k * (gather(ahead) - gather(behind))
    return out / (2 * sum(k * k for k in range(1, width + 1)))
