"""The Mel scale and the Mel/DCT matrices of the log-Mel and MFCC front ends (:mod:`.features`),
numpy for the filters, as librosa's defaults (Slaney scale, area-normalised triangles)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["hz_to_mel", "mel_to_hz", "mel_points", "mel_filterbank", "dct_matrix", "mel_bands", "log10_"]


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


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II basis, shape ``(n_mfcc, n_mels)`` (scipy's ``dct(type=2, norm='ortho')``)."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)
    return basis


def mel_bands(fb: np.ndarray, band: int = 8) -> list[tuple[int, int, int, int, Tensor]]:
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


def log10_(x: Tensor) -> Tensor:
    """``x.log10_()``; on the CPU through numpy, whose vectorised log is faster than torch's.

    ``x`` is the contiguous Mel buffer of :meth:`.features.FeatureExtractor.raw`, which is never part of
    an autograd graph (its products write into ``out=``)."""
    if x.device.type != "cpu":
        return x.log10_()
    values = x.numpy()
    np.log10(values, out=values)
    return x
