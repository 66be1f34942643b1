"""Front ends shared by training and inference: log-Mel and MFCC on ``torch.stft``, and the
states of a pretrained Whisper-base encoder (``kind="whisper"``, :mod:`.whisper`).

Frames are taken with ``center=False``: every frame lies wholly inside the signal, so
zero padding added to batch utterances of different lengths never changes a valid frame
(padding invariance is tested). Normalisation statistics are computed on the training
set and travel in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from . import SAMPLE_RATE
from .config import known_fields
from .feature_stats import FeatureStats, SpeakerCentre, time_mask
from .mel import dct_matrix, hz_to_mel, log10_, mel_bands, mel_filterbank, mel_points, mel_to_hz
from .trim import TRIM_METHODS, trim_bounds
from .whisper import get_encoder, pool_states, pooled_frames, state_frames

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
    "UNKNOWN_SPEAKER",
]

# "whisper": every block's output of the frozen Whisper-base encoder, one vector per 20 ms.
FEATURE_KINDS = ("logmel", "mfcc", "whisper")
_WHISPER_LAYERS, _WHISPER_WIDTH = 6, 512
# Mean normalisation of each band before the training-set statistics: none, per utterance
# (``utterance_cmn``) or per speaker (``speaker_cmn``).
MEAN_NORMS = ("none", "utterance", "speaker")
UNKNOWN_SPEAKER = ("own", "population")
_AMIN = 1e-10  # power floor before the log, as in librosa's power_to_db
# On the CPU a batch is processed in slices of about this many frames: the STFT's buffers for
# a whole batch (tens of MB) leave the cache and fresh pages are faulted in on every call,
# which made a whole batch slower than the same clips one by one.
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
    # With speaker_cmn, audio of an unknown speaker (a lone recording) is centred on itself
    # ("own") or on the training population's speaker mean ("population"); a speaker heard
    # for a while is centred on their mean shrunk towards the population's, which counts as
    # ``centre_prior_s`` seconds of their speech.
    unknown_speaker: str = "own"
    centre_prior_s: float = 0.0
    # Whisper front end: encoder states averaged per feature frame (they come every 20 ms;
    # prosody changes more slowly, and every later step, the cache included, costs per frame).
    state_pool: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, not {self.kind!r}")
        if self.kind == "whisper":
            if self.sample_rate != SAMPLE_RATE:
                raise ValueError(f"the Whisper front end needs {SAMPLE_RATE} Hz audio")
            if not isinstance(self.state_pool, int) or isinstance(self.state_pool, bool) or not 1 <= self.state_pool <= 16:
                raise ValueError("state_pool must be an integer from 1 to 16")
            # The encoder's own framing: a 25 ms window, one state per 20 ms, averaged in groups.
            object.__setattr__(self, "win_ms", 25.0)
            object.__setattr__(self, "hop_ms", 20.0 * self.state_pool)
        elif self.state_pool != 1:
            raise ValueError("state_pool applies to the Whisper front end only")
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
        if self.unknown_speaker not in UNKNOWN_SPEAKER:
            raise ValueError(f"unknown_speaker must be one of {UNKNOWN_SPEAKER}, not {self.unknown_speaker!r}")
        if self.unknown_speaker == "population" and not self.speaker_cmn:
            raise ValueError("a population centre needs per-speaker mean normalisation (speaker_cmn)")
        if not 0 <= self.centre_prior_s <= 3600 or (self.centre_prior_s and self.unknown_speaker != "population"):
            raise ValueError("centre_prior_s must be 0-3600 seconds, and needs unknown_speaker='population'")

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
    def mean_norm_fields(name: str) -> dict:
        """The ``utterance_cmn``/``speaker_cmn`` fields for one of :data:`MEAN_NORMS`; any but the
        speaker's also drops the population centre, which only speaker means use."""
        if name not in MEAN_NORMS:
            raise ValueError(f"mean normalisation must be one of {MEAN_NORMS}, not {name!r}")
        fields = {"utterance_cmn": name == "utterance", "speaker_cmn": name == "speaker"}
        return fields if name == "speaker" else {**fields, "unknown_speaker": "own", "centre_prior_s": 0.0}

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


def frame_count(samples: int | Tensor, config: FeatureConfig) -> int | Tensor:
    """Number of frames for a signal of ``samples`` samples (signals shorter than n_fft give one)."""
    if config.kind == "whisper":
        return pooled_frames(state_frames(samples), config.state_pool)
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
        for i, (first, last, lo, hi, weights) in enumerate(mel_bands(fb)):
            self.register_buffer(f"mel_band{i}", weights, persistent=False)
            self._mel_bands.append((first, last, lo, hi, f"mel_band{i}"))
        if config.kind == "mfcc":
            self.register_buffer("dct", torch.from_numpy(dct_matrix(config.n_mfcc, config.n_mels)).float(), persistent=False)
        stats = stats or FeatureStats.identity(config.n_features)
        self.register_buffer("mean", stats.mean.clone().float())
        self.register_buffer("std", stats.std.clone().float())
        # The population's speaker mean; NaN when there is none (unknown speakers centre on themselves).
        self.register_buffer("population", torch.full((config.n_features,), float("nan")))
        self.set_stats(stats)

    def set_stats(self, stats: FeatureStats) -> None:
        self.mean.copy_(stats.mean)
        self.std.copy_(stats.std)
        self.population.fill_(float("nan"))
        if stats.centre is not None and self.config.unknown_speaker == "population":
            self.population.copy_(stats.centre)

    @property
    def stats(self) -> FeatureStats:
        centre = self.population.detach().cpu().clone() if self.has_population else None
        return FeatureStats(self.mean.detach().cpu().clone(), self.std.detach().cpu().clone(), centre)

    @property
    def has_population(self) -> bool:
        """Whether unknown speakers are centred on the population's speaker mean."""
        return bool(torch.isfinite(self.population).all())

    def speaker_estimate(self, totals: Tensor, frames: Tensor) -> Tensor:
        """A speaker's mean ``(rows, n_features)`` float32 on the CPU from their feature sums
        ``totals`` ``(rows, n_features)`` over ``frames`` ``(rows,)``: shrunk towards the
        population's mean by ``centre_prior_s`` seconds' worth of frames when there is one."""
        totals, frames = totals.double().cpu(), frames.double().cpu()
        if self.has_population and self.config.centre_prior_s > 0:
            prior = self.config.centre_prior_s * 1000.0 / self.config.hop_ms
            totals = totals + prior * self.population.double().cpu()[None]
            frames = frames + prior
        return (totals / frames.clamp(min=1e-9)[:, None]).float()

    def raw(self, waveforms: Tensor, lengths: Tensor, centres: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Features before the training-set statistics: ``(batch, frames, n_features)``, frame lengths ``(batch,)``.

        With ``utterance_cmn`` each row's own mean is subtracted. With ``speaker_cmn`` the row's
        speaker mean from ``centres`` ``(batch, n_features)`` is; a row of NaN (speaker mean
        unknown) or no ``centres`` falls back to the row's own mean, or to the population's
        speaker mean when the features have one (``unknown_speaker="population"``).
        """
        return self.centred(*self.uncentred(waveforms, lengths), centres)

    def centred(self, feats: Tensor, frame_lengths: Tensor, centres: Tensor | None = None, *, scale: bool = False) -> tuple[Tensor, Tensor]:
        """:meth:`raw` from un-centred features ``(batch, frames, n_features)`` (for example
        cached encoder states) and their frame lengths ``(batch,)``; with ``scale`` also scaled
        by the training-set statistics, in one pass over the features (``feats`` itself is never changed)."""
        cfg = self.config
        centring = cfg.utterance_cmn or cfg.speaker_cmn
        if not centring and not scale and int(frame_lengths.min()) == feats.shape[1]:
            return feats, frame_lengths  # no padded frames to zero (the common single-utterance case)
        mask = time_mask(frame_lengths, feats.shape[1]).to(feats.dtype)  # (batch, frames)
        offset = self.mean.to(feats.dtype)[None, :] if scale else feats.new_zeros(1, feats.shape[2])  # (1 or batch, n_features)
        if centring:
            if cfg.speaker_cmn and self.has_population:
                fallback = self.population.to(feats.dtype)[None].expand(feats.shape[0], -1)
            else:
                # Each row's own mean over its valid frames, as one batched product (no masked copy).
                fallback = torch.bmm(mask[:, None, :], feats)[:, 0] / frame_lengths.clamp(min=1).to(feats.dtype)[:, None]
            centre = fallback
            if cfg.speaker_cmn and centres is not None:
                centres = centres.to(device=feats.device, dtype=feats.dtype)
                centre = torch.where(torch.isfinite(centres).all(1, keepdim=True), centres, fallback)
            offset = offset + centre
        out = feats - offset[:, None, :]
        if scale:
            out.div_(self.std.to(feats.dtype))
        return out.mul_(mask[..., None]), frame_lengths

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
            return pool_states(*get_encoder(waveforms.device)(waveforms, lengths), self.config.state_pool)
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
        mel = log10_(mel.clamp_(min=_AMIN)).mul_(10.0)
        feats = mel.view(cfg.n_mels, batch, frames).permute(1, 2, 0)  # (batch, frames, n_mels)
        frame_lengths = frame_count(lengths.to(feats.device), cfg).clamp_(max=frames)
        if cfg.kind == "mfcc":
            feats = torch.matmul(feats, self.dct.T)  # (batch, frames, n_mfcc)
            if cfg.deltas:
                d1 = _deltas(feats, frame_lengths)
                feats = torch.cat([feats, d1, _deltas(d1, frame_lengths)], dim=2)
        return feats, frame_lengths

    def forward(self, waveforms: Tensor, lengths: Tensor, centres: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.centred(*self.uncentred(waveforms, lengths), centres, scale=True)

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
