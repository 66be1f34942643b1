"""Cut leading and trailing silence off an utterance before feature extraction.

Corpora pad their clips with very different amounts of silence (a few ms to seconds);
left in, it becomes a cue the model can learn instead of the voice. Both methods only
look for the first and last non-silent moment: pauses inside the utterance are kept.
"""

from __future__ import annotations

import numpy as np

from .vad import VadConfig, segment_speech

__all__ = ["TRIM_METHODS", "trim_bounds", "trim_silence"]

TRIM_METHODS = ("energy", "vad", "none")

_FRAME_S = 0.025
_HOP_S = 0.010
# Below this the loudest frame is treated as digital silence: nothing to trim towards.
_SILENCE_FLOOR_DB = -80.0
_VAD_SAMPLE_RATES = (8000, 16000, 32000, 48000)


def _energy_bounds(x: np.ndarray, sample_rate: int, top_db: float) -> tuple[int, int] | None:
    """Sample range from the first to the last 25 ms frame within ``top_db`` of the loudest."""
    n = x.size
    frame = max(1, int(round(_FRAME_S * sample_rate)))
    hop = max(1, int(round(_HOP_S * sample_rate)))
    if n < frame:
        return None
    count = int(np.ceil((n - frame) / hop)) + 1  # the last frame may run past the end
    starts = np.arange(count) * hop
    # Frame energies from a running sum of squares: O(n), no (frames, frame) matrix.
    power = np.empty(int(starts[-1]) + frame + 1, np.float64)
    power[0] = 0.0
    power[1 : n + 1] = np.cumsum(x.astype(np.float64) ** 2)
    power[n + 1 :] = power[n]  # zero padding adds no energy
    mean_square = (power[starts + frame] - power[starts]) / frame  # (count,)
    db = 10.0 * np.log10(np.maximum(mean_square, 1e-20))
    loudest = float(db.max())
    if loudest < _SILENCE_FLOOR_DB:
        return None
    loud = np.flatnonzero(db > loudest - top_db)
    return int(starts[loud[0]]), min(n, int(starts[loud[-1]]) + frame)


def _vad_bounds(x: np.ndarray, sample_rate: int, aggressiveness: int) -> tuple[int, int] | None:
    """Sample range from the first to the last speech segment found by the segmenter.

    The segmenter, not raw webrtcvad labels, because webrtcvad calls the first ~80 ms of
    any non-silent input speech; its onset rule ignores that.
    """
    if sample_rate not in _VAD_SAMPLE_RATES:
        raise ValueError(
            f"method 'vad' needs a sample rate in {_VAD_SAMPLE_RATES}, got {sample_rate}"
        )
    config = VadConfig(
        aggressiveness=aggressiveness, padding_ms=0, min_speech_ms=0, sample_rate=sample_rate
    )
    segments = segment_speech(x, config)
    if not segments:
        return None
    return int(round(segments[0].start * sample_rate)), int(round(segments[-1].end * sample_rate))


def trim_bounds(
    waveform: np.ndarray,
    *,
    sample_rate: int = 16000,
    method: str = "energy",
    top_db: float = 35.0,
    margin_s: float = 0.1,
    vad_aggressiveness: int = 2,
) -> tuple[int, int]:
    """``[start, end)`` sample range of the non-silent core of ``waveform``, shape ``(samples,)``.

    Args:
        method: ``"energy"`` (frame RMS within ``top_db`` of the loudest 25 ms frame, 10 ms
            hop), ``"vad"`` (webrtcvad speech, ``vad_aggressiveness`` 0-3) or ``"none"``.
        margin_s: kept on each side of the core, clamped to the signal.

    Returns:
        ``(start, end)`` with ``0 <= start < end <= samples``; the whole range when nothing
        stands out (all silence, too short) or for ``"none"``. ``(0, 0)`` only for empty input.
    """
    if method not in TRIM_METHODS:
        raise ValueError(f"unknown trim method {method!r}; allowed: {', '.join(TRIM_METHODS)}")
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"trim expects a mono waveform of shape (samples,), got {x.shape}")
    if top_db <= 0 or margin_s < 0:
        raise ValueError(f"need top_db > 0 and margin_s >= 0, got {top_db}, {margin_s}")
    n = x.size
    if method == "none" or n == 0:
        return 0, n
    x = np.nan_to_num(x.astype(np.float32, copy=False))
    if method == "energy":
        bounds = _energy_bounds(x, sample_rate, top_db)
    else:
        bounds = _vad_bounds(x, sample_rate, vad_aggressiveness)
    if bounds is None or bounds[1] <= bounds[0]:
        return 0, n
    margin = int(round(margin_s * sample_rate))
    return max(0, bounds[0] - margin), min(n, bounds[1] + margin)


def trim_silence(
    waveform: np.ndarray,
    *,
    sample_rate: int = 16000,
    method: str = "energy",
    top_db: float = 35.0,
    margin_s: float = 0.1,
    vad_aggressiveness: int = 2,
) -> np.ndarray:
    """``waveform[start:end]`` for the bounds of :func:`trim_bounds` (a view, never empty
    unless the input is)."""
    start, end = trim_bounds(
        waveform,
        sample_rate=sample_rate,
        method=method,
        top_db=top_db,
        margin_s=margin_s,
        vad_aggressiveness=vad_aggressiveness,
    )
    return waveform[start:end]
