"""Speech segmentation with the WebRTC voice activity detector, batch or streaming.

webrtcvad labels fixed 10/20/30 ms frames of 16-bit PCM as speech or not. A small state
machine turns those labels into segments: speech opens when the current frame is voiced
and most of a short window of recent frames is voiced too (so a lone click does not),
and closes after ``min_silence_ms`` without a voiced frame. Speech that runs on past
``max_segment_s`` is cut at the quietest frame of the open segment's second half (a breath,
a stop consonant), so a listener gets results while someone keeps talking. Segments are
then padded and too-short ones dropped. :class:`StreamingVad` takes audio in chunks of any size and
reports each segment as soon as it is known to be over; :func:`segment_speech` runs the
same machine over a whole waveform, so both give identical segments.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import webrtcvad

from .config import known_fields

__all__ = ["VadConfig", "Segment", "StreamingVad", "segment_speech"]

_FRAME_MS = (10, 20, 30)
_SAMPLE_RATES = (8000, 16000, 32000, 48000)
# Speech opens when at least 120 ms of the last 150 ms are voiced. Why 120: webrtcvad
# labels the first 70-90 ms of any non-silent stream as speech while its noise model
# settles, and that must not open a segment (nor, with a long min_silence_ms, glue
# itself to the first real utterance).
_ONSET_WINDOW_MS = 150
_ONSET_VOICED_MS = 120


@dataclass(frozen=True)
class VadConfig:
    """Settings of the segmenter; saved with results so a segmentation can be repeated.

    Attributes:
        frame_ms: webrtcvad frame length, 10, 20 or 30 ms.
        aggressiveness: webrtcvad mode 0 (keeps most) to 3 (drops most non-speech).
        padding_ms: audio kept before and after each segment's speech.
        min_speech_ms: segments with less speech than this are dropped.
        min_silence_ms: a pause at least this long ends a segment.
        sample_rate: rate of the input, one of 8000, 16000, 32000, 48000 Hz.
        max_segment_s: speech running longer is cut at the quietest frame of the open
            segment's second half, so pieces last from half this length up to this length.
    """

    frame_ms: int = 30
    aggressiveness: int = 2
    padding_ms: int = 150
    min_speech_ms: int = 200
    min_silence_ms: int = 300
    sample_rate: int = 16000
    max_segment_s: float = 4.0

    def __post_init__(self) -> None:
        if self.frame_ms not in _FRAME_MS:
            raise ValueError(f"frame_ms must be one of {_FRAME_MS}, got {self.frame_ms!r}")
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {self.aggressiveness!r}")
        if self.sample_rate not in _SAMPLE_RATES:
            raise ValueError(
                f"sample_rate must be one of {_SAMPLE_RATES}, got {self.sample_rate!r}"
            )
        for name in ("padding_ms", "min_speech_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.min_silence_ms <= 0:
            raise ValueError(f"min_silence_ms must be > 0, got {self.min_silence_ms!r}")
        if not self.max_segment_s * 1000 >= self.frame_ms:
            raise ValueError(
                f"max_segment_s must be at least one frame long, got {self.max_segment_s!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VadConfig:
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys are an error."""
        return cls(**known_fields(cls, data, "VadConfig keys"))

    @property
    def frame_samples(self) -> int:
        """Samples per webrtcvad frame."""
        return self.sample_rate * self.frame_ms // 1000


@dataclass(frozen=True)
class Segment:
    """A stretch of speech, in seconds from the start of the stream."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"a segment needs 0 <= start <= end, got {self.start!r}, {self.end!r}")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    def slice(self, waveform: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        """The samples of this segment: ``waveform`` shape ``(samples,)`` -> ``(n,)`` view."""
        return waveform[int(round(self.start * sample_rate)) : int(round(self.end * sample_rate))]


def _to_pcm16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1], shape ``(n,)`` -> int16 ``(n,)``; NaN becomes silence."""
    x = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


class StreamingVad:
    """Incremental segmenter: :meth:`push` chunks of any length, :meth:`flush` at the end.

    All times are absolute from the first pushed sample. Results do not depend on how
    the audio was chunked, because every decision is taken at a frame boundary and only
    from frames already complete. A trailing part-frame is never classified.
    """

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config if config is not None else VadConfig()
        cfg = self.config
        self._vad = webrtcvad.Vad(cfg.aggressiveness)
        self._frame = cfg.frame_samples
        self._frame_s = cfg.frame_ms / 1000.0
        window = max(1, round(_ONSET_WINDOW_MS / cfg.frame_ms))
        self._onset_needed = min(window, max(1, math.ceil(_ONSET_VOICED_MS / cfg.frame_ms)))
        self._silence_frames = max(1, math.ceil(cfg.min_silence_ms / cfg.frame_ms))
        self._max_frames = max(1, int(cfg.max_segment_s * 1000 // cfg.frame_ms))
        self._recent: deque[bool] = deque(maxlen=window)  # labels while no segment is open
        # Label and energy of the latest frames, enough to cover an open segment and its onset
        # window: a cut looks back for the quietest frame.
        self._history: deque[tuple[bool, float]] = deque(maxlen=self._max_frames + window + 1)
        self._pending = np.zeros(0, np.int16)  # samples of the part-frame not yet classified
        self._received = 0  # samples pushed so far
        self._frames = 0  # frames classified so far
        self._start: int | None = None  # first frame of the open segment
        self._start_is_cut = False  # the open segment continues a force-cut one
        self._last_voiced = -1
        self._silence_run = 0
        self._closed = False

    @property
    def position(self) -> float:
        """Seconds of audio pushed so far."""
        return self._received / self.config.sample_rate

    @property
    def open_start(self) -> float | None:
        """Start (seconds) the open segment will be reported with, or None while none is open."""
        if self._start is None:
            return None
        pad = 0.0 if self._start_is_cut else self.config.padding_ms / 1000.0
        return round(max(0.0, self._start * self._frame_s - pad), 6)

    def push(self, samples: np.ndarray) -> list[Segment]:
        """Feed float samples, shape ``(n,)`` at ``config.sample_rate``; any ``n`` >= 0.

        Returns:
            Segments that ended within the audio seen so far, in time order.
        """
        if self._closed:
            raise RuntimeError("this StreamingVad was flushed; start a new one for a new stream")
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f"push() takes mono samples of shape (n,), got shape {samples.shape}")
        if samples.size and not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"push() takes float samples in [-1, 1], got dtype {samples.dtype}")
        self._received += samples.size
        pcm = (
            np.concatenate([self._pending, _to_pcm16(samples)])
            if self._pending.size
            else _to_pcm16(samples)
        )
        whole = pcm.size - pcm.size % self._frame
        frames = pcm[:whole].reshape(-1, self._frame).astype(np.float64)
        energies = np.einsum("ij,ij->i", frames, frames)  # (frames,) sum of squares
        segments: list[Segment] = []
        for k, offset in enumerate(range(0, whole, self._frame)):
            voiced = self._vad.is_speech(
                pcm[offset : offset + self._frame].tobytes(), self.config.sample_rate
            )
            segments.extend(self._step(bool(voiced), float(energies[k])))
        self._pending = pcm[whole:].copy()
        return segments

    def flush(self) -> list[Segment]:
        """End of stream: close the open segment, if any, and return what is left."""
        if self._closed:
            return []
        self._closed = True
        if self._start is None:
            return []
        start, cut = self._start, self._start_is_cut
        self._start = None
        return self._emit(
            start, self._last_voiced + 1, cut, False, self._received / self.config.sample_rate
        )

    # -- state machine, one call per classified frame ------------------------------------

    def _step(self, voiced: bool, energy: float) -> list[Segment]:
        index = self._frames
        self._frames += 1
        self._history.append((voiced, energy))
        seen_s = self._frames * self._frame_s  # audio classified so far: the clamp for padding
        if self._start is None:
            self._recent.append(voiced)
            if voiced and sum(self._recent) >= self._onset_needed:
                # Start at the earliest voiced frame of the window so onsets are not clipped.
                first = index - len(self._recent) + 1 + list(self._recent).index(True)
                self._open(first, cut=False)
                self._last_voiced = index
            return []
        if voiced:
            self._last_voiced = index
            self._silence_run = 0
        else:
            self._silence_run += 1
        if self._silence_run >= self._silence_frames:
            return self._close(self._last_voiced + 1, cut=False, seen_s=seen_s)
        if index + 1 - self._start >= self._max_frames:
            if self._silence_run:  # already pausing: end at the last voiced frame
                return self._close(self._last_voiced + 1, cut=False, seen_s=seen_s)
            return self._cut(index, seen_s)
        return []

    def _cut(self, index: int, seen_s: float) -> list[Segment]:
        """Speech goes on past the maximum: end the open segment at the start of the quietest
        frame of its second half; the next piece starts there and keeps the frames after it."""
        assert self._start is not None
        first = self._frames - len(self._history)  # frame index of _history[0]
        lo = self._start + max(1, self._max_frames // 2)
        window = [self._history[i - first] for i in range(lo, index + 1)]
        # (A one- or two-frame maximum leaves no second half: cut after the current frame.)
        quietest = lo + int(np.argmin([energy for _, energy in window])) if window else index + 1
        segments = self._close(quietest, cut=True, seen_s=seen_s)
        self._open(quietest, cut=True)
        carried = [voiced for voiced, _ in window[quietest - lo :]]  # frames quietest..index
        voiced_at = [i for i, v in enumerate(carried) if v]
        # No voiced frame carried over: the piece stays empty (end <= start) unless speech follows.
        self._last_voiced = quietest + voiced_at[-1] if voiced_at else quietest - 1
        self._silence_run = index - self._last_voiced
        return segments

    def _open(self, first: int, *, cut: bool) -> None:
        self._start = first
        self._start_is_cut = cut
        self._silence_run = 0
        self._recent.clear()

    def _close(self, end: int, *, cut: bool, seen_s: float) -> list[Segment]:
        start, start_cut = self._start, self._start_is_cut
        self._start = None
        assert start is not None
        return self._emit(start, end, start_cut, cut, seen_s)

    def _emit(
        self, start: int, end: int, start_cut: bool, end_cut: bool, limit_s: float
    ) -> list[Segment]:
        """Frames [start, end) -> a padded Segment, or nothing if there is too little speech."""
        begin_s, end_s = start * self._frame_s, end * self._frame_s
        if (end - start) * self.config.frame_ms < self.config.min_speech_ms or end <= start:
            return []
        pad = self.config.padding_ms / 1000.0
        # Force-cut boundaries are not padded: the neighbouring piece holds that audio.
        begin_s = max(0.0, begin_s - (0.0 if start_cut else pad))
        end_s = min(limit_s, end_s + (0.0 if end_cut else pad))
        return [Segment(round(begin_s, 6), round(max(end_s, begin_s), 6))]


def segment_speech(waveform: np.ndarray, config: VadConfig | None = None) -> list[Segment]:
    """Speech segments of a whole waveform, shape ``(samples,)`` float at ``config.sample_rate``.

    Same result as pushing the audio into a :class:`StreamingVad` in any chunking.
    """
    vad = StreamingVad(config)
    return vad.push(waveform) + vad.flush()
